/* Logging: one line per event of note, key=value fields, to stderr. */
#ifndef CS_LOG_H
#define CS_LOG_H

#include <stdbool.h>

typedef enum cs_log_level {
    CS_LOG_ERROR = 0,
    CS_LOG_WARN = 1,
    CS_LOG_INFO = 2,
    CS_LOG_DEBUG = 3
} cs_log_level;

extern int cs_log_threshold;

/* Sets the program name printed on every line (borrowed; keep it static). */
void cs_log_init(const char *program);

/* Parses "error", "warn", "info" or "debug"; returns false if unknown. */
bool cs_log_level_parse(const char *name, int *out);

/* Writes one line: "<UTC time> <level> <program>: <message>". */
void cs_log_write(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

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
