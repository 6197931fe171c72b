/* Shared by the libFuzzer targets of tests/fuzz: the entry point and the checks they share. */
#ifndef CS_FUZZ_H
#define CS_FUZZ_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* libFuzzer calls this once per input; it returns 0 (the input is not kept
 * out of the corpus). A property that does not hold aborts the process, so
 * libFuzzer saves the input as a crash. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Aborts with the message on stderr unless ok. */
__attribute__((format(printf, 2, 3))) void cs_fuzz_require(bool ok, const char *fmt, ...);

/* True if s[0..len-1] is UTF-8 that PostgreSQL's UTF8 encoding accepts:
 * well formed, no overlong forms, no surrogates, nothing over U+10FFFF and
 * no NUL byte. Reasons land in text columns, so they must pass this. */
bool cs_fuzz_utf8(const char *s, size_t len);

/* True if the NUL-terminated string of a buffer of size bytes ends inside it. */
bool cs_fuzz_terminated(const char *buf, size_t size);

/* A copy of data[0..len-1] in a heap block of exactly len bytes (not
 * NUL-terminated), so that AddressSanitizer catches any read past the end.
 * Caller frees. Running out of memory aborts; NULL only for len 0. */
char *cs_fuzz_exact_copy(const void *data, size_t len);

/* The JSON text with every number as PostgreSQL's jsonb gives it back: numeric
 * prints positionally, with as many fraction digits as the text had after
 * its point less its exponent (never fewer than 0), and zero without a sign
 * ("1e+19" becomes "10000000000000000000", "2.5e-08" "0.000000025", "-0.0"
 * "0.0"). Checked against PostgreSQL 15 for the seeds of corpus/jsondump.
 * Caller frees. */
char *cs_fuzz_pg_render(const char *text);

/* True if the number tokens of the JSON texts a and b, in order, are as many
 * and denote the same decimal values ("1.50e1" and "15.0" do; zero is zero
 * whatever its sign). Otherwise false, with the first pair that differs in
 * why. */
/* Calls fn on each number token of the JSON text (outside strings), in order. */
void cs_fuzz_each_number(const char *text, void (*fn)(const char *tok, size_t len, void *arg),
                         void *arg);

bool cs_fuzz_same_numbers(const char *a, const char *b, char *why, size_t why_size);

/* Aborts unless b is a like a: same types, integers, strings and members in
 * the same order, and reals equal, bit for bit when bitwise (else by ==, so
 * 0.0 matches -0.0). text names the input in the message. */
void cs_fuzz_require_same(json_t *a, json_t *b, bool bitwise, const char *text);

#endif
