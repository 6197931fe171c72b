/* casestream migrate: applies the numbered migrations of --sql-dir. */
#include "admin.h"
#include "db.h"
#include "migrate.h"

#include <stdio.h>

static void print_applied(const char *name, void *ctx)
{
    (void)ctx;
    printf("applied %s\n", name);
}

int cs_admin_migrate(const cs_config *cfg, int argc, char **argv)
{
    char errstr[1024];
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
    n = cs_migrate(conn, cfg->sql_dir, print_applied, NULL, errstr, sizeof(errstr));
    PQfinish(conn);
    if (n < 0) {
        cs_log_error("migrate: %s", errstr);
        return 1;
    }
    printf("schema up to date (%d migration%s applied now)\n", n, n == 1 ? "" : "s");
    return 0;
}
