/* Logging to stderr, one preformatted line per write so threads do not interleave. */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int cs_log_threshold = CS_LOG_INFO;
static const char *log_program = "casestream";

static const char *const level_names[] = {"error", "warn", "info", "debug"};

void cs_log_init(const char *program)
{
    if (program)
        log_program = program;
}

bool cs_log_level_parse(const char *name, int *out)
{
    for (int i = 0; i < (int)(sizeof(level_names) / sizeof(level_names[0])); i++) {
        if (strcmp(name, level_names[i]) == 0) {
            *out = i;
            return true;
        }
    }
    return false;
}

void cs_log_write(int level, const char *fmt, ...)
{
    char line[4096];
    struct timespec ts;
    struct tm tm;
    size_t n;
    va_list ap;
    int w;

    if (level < CS_LOG_ERROR)
        level = CS_LOG_ERROR;
    if (level > CS_LOG_DEBUG)
        level = CS_LOG_DEBUG;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    n = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
    w = snprintf(line + n, sizeof(line) - n, ".%03ldZ %s %s: ", ts.tv_nsec / 1000000L,
                 level_names[level], log_program);
    if (w > 0)
        n += (size_t)w;
    va_start(ap, fmt);
    w = vsnprintf(line + n, sizeof(line) - n - 1, fmt, ap);
    va_end(ap);
    if (w > 0)
        n += (size_t)w < sizeof(line) - n - 1 ? (size_t)w : sizeof(line) - n - 2;
    line[n++] = '\n';
    /* One write(2) per line keeps lines whole across threads and processes. */
    if (write(STDERR_FILENO, line, n) < 0)
        return;
}
