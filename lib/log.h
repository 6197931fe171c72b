/* Logging: one line per event of note, logfmt (or JSON), to stderr, credentials removed. */
#ifndef CS_LOG_H
#define CS_LOG_H

#include <stdbool.h>
#include <stddef.h>

typedef enum cs_log_level {
    CS_LOG_ERROR = 0,
    CS_LOG_WARN = 1,
    CS_LOG_INFO = 2,
    CS_LOG_DEBUG = 3
} cs_log_level;

typedef enum cs_log_format { CS_LOG_LOGFMT = 0, CS_LOG_JSON = 1 } cs_log_format;

extern int cs_log_threshold;

/* The longest line written, newline included; longer values are cut. */
#define CS_LOG_LINE_MAX 8192

/* Sets the program name printed on every line (borrowed; keep it static). */
void cs_log_init(const char *program);

/* Parses "error", "warn", "info" or "debug"; returns false if unknown. */
bool cs_log_level_parse(const char *name, int *out);

/* Parses "logfmt" or "json"; returns false if unknown. */
bool cs_log_format_parse(const char *name, int *out);

/* Sets the format of the lines written from now on (CS_LOG_LOGFMT by default). */
void cs_log_set_format(int format);

/* Writes one line for the event: ts, level, program, then the message. The
 * message is printf text whose trailing `key=value` words become fields (see
 * cs_log_render). */
void cs_log_write(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Renders one line for message at level as cs_log_write would (the current format and
 * program, the time now) into out[size], for a caller that writes it elsewhere. Returns the
 * length, newline included. */
size_t cs_log_line(char *out, size_t size, int level, const char *message);

/* Renders one line (newline included) into out[size] and returns its length:
 * credentials are removed (cs_redact), line breaks are folded into one
 * space, the words of message before its first ` key=` make msg, and each
 * `key=value` after it a field (a value runs to the next ` key=`; one written
 * as key="..." ends at the quote before the next field or the end). Values
 * are quoted and escaped as logfmt or JSON needs, invalid UTF-8 becomes
 * U+FFFD, and a value that does not fit is cut, so the line always parses. */
size_t cs_log_render(char *out, size_t size, int format, const char *ts, int level,
                     const char *program, const char *message);

/* The level is checked before the arguments are formatted. */
#define cs_log(level, ...)                                                                         \
    do {                                                                                           \
        if ((level) <= cs_log_threshold)                                                           \
            cs_log_write((level), __VA_ARGS__);                                                    \
    } while (0)

#define cs_log_error(...) cs_log(CS_LOG_ERROR, __VA_ARGS__)
#define cs_log_warn(...)  cs_log(CS_LOG_WARN, __VA_ARGS__)
#define cs_log_info(...)  cs_log(CS_LOG_INFO, __VA_ARGS__)
#define cs_log_debug(...) cs_log(CS_LOG_DEBUG, __VA_ARGS__)

#endif
