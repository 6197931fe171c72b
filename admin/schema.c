/* casestream migrate: applies the numbered migrations of --sql-dir (or the ones found by
 * default: ./sql, else the installed share/casestream/sql). */
#include "admin.h"
#include "db.h"
#include "migrate.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static bool is_dir(const char *path)
{
    struct stat st;

    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* The migrations to apply: --sql-dir when given; else ./sql (a source tree); else
 * share/casestream/sql beside the installed program (<prefix>/bin/casestream ->
 * <prefix>/share/casestream/sql), found through /proc/self/exe. */
static const char *sql_dir(const cs_config *cfg, char *buf, size_t size)
{
    char exe[PATH_MAX];
    ssize_t n;
    char *slash;

    if (cfg->sql_dir[0])
        return cfg->sql_dir;
    if (is_dir("sql"))
        return "sql";
    n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (n > 0) {
        exe[n] = '\0';
        if ((slash = strrchr(exe, '/')) != NULL) {
            *slash = '\0';
            snprintf(buf, size, "%s/../share/casestream/sql", exe);
            if (is_dir(buf))
                return buf;
        }
    }
    return "sql"; /* cs_migrate names it in its error */
}

static void print_applied(const char *name, void *ctx)
{
    (void)ctx;
    printf("applied %s\n", name);
}

int cs_admin_migrate(const cs_config *cfg, int argc, char **argv)
{
    char errstr[1024], dir[PATH_MAX + 32];
    PGconn *conn;
    int n;

    (void)argv;
    if (argc != 0) {
        cs_log_error("invalid configuration: migrate takes no arguments");
        return CS_EXIT_CONFIG;
    }
    if (!(conn = cs_db_connect(cfg->pg, errstr, sizeof(errstr)))) {
        cs_log_error("migrate: could not connect to postgresql: %s", errstr);
        return 1;
    }
    n = cs_migrate(conn, sql_dir(cfg, dir, sizeof(dir)), print_applied, NULL, errstr,
                   sizeof(errstr));
    PQfinish(conn);
    if (n < 0) {
        cs_log_error("migrate: %s", errstr);
        return 1;
    }
    printf("schema up to date (%d migration%s applied now)\n", n, n == 1 ? "" : "s");
    return 0;
}
