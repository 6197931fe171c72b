/* Credentials out of text: every URL's password and every password=/secret= value, masked. */
#ifndef CS_REDACT_H
#define CS_REDACT_H

#include <stddef.h>

/* The mask that stands for a removed credential. */
#define CS_REDACTED "***"

/* Copies in to out[size] (always NUL-terminated, cut when too small) with
 * every credential replaced by CS_REDACTED: the password of a URL's
 * user:password@ (a user alone, which may be a token, is masked whole), and
 * the value of every key=value whose key ends in password, passwd, secret,
 * api_key, apikey, api-key or token (libpq conninfo, librdkafka properties,
 * URL queries; 'quoted' and "quoted" values too). out must not overlap in.
 * Returns the length of out. */
size_t cs_redact(char *out, size_t size, const char *in);

#endif
