/* SHA-256 (FIPS 180-4), for payload fingerprints. */
#ifndef CS_SHA256_H
#define CS_SHA256_H

#include <stddef.h>

/* Writes the SHA-256 of data[0..len) as 64 lower-case hex digits and a NUL to hex. */
void cs_sha256_hex(const void *data, size_t len, char hex[65]);

#endif
