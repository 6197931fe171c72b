/* Applies numbered migrations under an advisory lock, recording a checksum of each. */
#include "migrate.h"

#include "db.h"
#include "err.h"

#include <ctype.h>
#include <stdbool.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Advisory lock key: "casestream migrate" folded into a 64-bit constant. */
#define MIGRATE_LOCK_KEY "4846216231957312849"

static int name_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool is_migration(const char *name)
{
    size_t n = strlen(name);

    return n > 8 && isdigit((unsigned char)name[0]) && isdigit((unsigned char)name[1]) &&
           isdigit((unsigned char)name[2]) && name[3] == '_' && strcmp(name + n - 4, ".sql") == 0;
}

/* Reads a whole file; caller frees. */
static char *read_file(const char *path, char *errstr, size_t errstr_size)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    long size;

    if (!f) {
        snprintf(errstr, errstr_size, "could not open %s", path);
        return NULL;
    }
    if (fseek(f, 0, SEEK_END) == 0 && (size = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0 &&
        (buf = malloc((size_t)size + 1)) != NULL) {
        if (fread(buf, 1, (size_t)size, f) != (size_t)size) {
            free(buf);
            buf = NULL;
        } else {
            buf[size] = '\0';
        }
    }
    if (!buf)
        snprintf(errstr, errstr_size, "could not read %s", path);
    fclose(f);
    return buf;
}

static int list_migrations(const char *dir, char ***names, size_t *count, char *errstr,
                           size_t errstr_size)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    size_t cap = 0;

    *names = NULL;
    *count = 0;
    if (!d) {
        snprintf(errstr, errstr_size, "could not open migrations directory %s", dir);
        return CS_ERR;
    }
    while ((e = readdir(d)) != NULL) {
        if (!is_migration(e->d_name))
            continue;
        if (*count == cap) {
            char **grown = realloc(*names, (cap = cap ? cap * 2 : 16) * sizeof(**names));

            if (!grown)
                break;
            *names = grown;
        }
        (*names)[(*count)++] = strdup(e->d_name);
    }
    closedir(d);
    qsort(*names, *count, sizeof(**names), name_cmp);
    for (size_t i = 1; i < *count; i++) {
        if (strncmp((*names)[i - 1], (*names)[i], 3) == 0) {
            snprintf(errstr, errstr_size, "two migrations share the number %.3s: %s and %s",
                     (*names)[i], (*names)[i - 1], (*names)[i]);
            return CS_ERR;
        }
    }
    return CS_OK;
}

/* Applies one migration in its own transaction unless it is recorded;
 * returns 1 if applied, 0 if it was already, or a negative cs_err. */
static int apply_one(PGconn *conn, const char *dir, const char *name, char *errstr,
                     size_t errstr_size)
{
    char path[4096];
    char *sql = NULL;
    PGresult *res = NULL;
    const char *params[2];
    int rc = CS_ERR;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    if (!(sql = read_file(path, errstr, errstr_size)))
        return CS_ERR;
    params[0] = name;
    params[1] = sql;
    res = PQexecParams(conn,
                       "SELECT m.checksum, encode(sha256(convert_to($2, 'UTF8')), 'hex') "
                       "FROM (SELECT 1) one LEFT JOIN ccd.schema_migrations m ON m.name = $1",
                       2, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        cs_db_error(conn, res, errstr, errstr_size);
        goto cleanup;
    }
    if (!PQgetisnull(res, 0, 0)) {
        if (strcmp(PQgetvalue(res, 0, 0), PQgetvalue(res, 0, 1)) != 0) {
            snprintf(errstr, errstr_size,
                     "migration %s was edited after it was applied (recorded checksum %.12s, "
                     "file now %.12s): add a new migration instead",
                     name, PQgetvalue(res, 0, 0), PQgetvalue(res, 0, 1));
            goto cleanup;
        }
        rc = 0;
        goto cleanup;
    }
    if ((rc = cs_db_exec(conn, "BEGIN", errstr, errstr_size)))
        goto cleanup;
    PQclear(res);
    res = PQexec(conn, sql);
    if (PQresultStatus(res) != PGRES_COMMAND_OK && PQresultStatus(res) != PGRES_TUPLES_OK) {
        char why[1024];

        cs_db_error(conn, res, why, sizeof(why));
        snprintf(errstr, errstr_size, "migration %s failed: %s", name, why);
        cs_db_exec(conn, "ROLLBACK", why, sizeof(why));
        rc = CS_ERR;
        goto cleanup;
    }
    PQclear(res);
    res = PQexecParams(conn,
                       "INSERT INTO ccd.schema_migrations (name, checksum) "
                       "VALUES ($1, encode(sha256(convert_to($2, 'UTF8')), 'hex'))",
                       2, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        char why[256];

        cs_db_error(conn, res, errstr, errstr_size);
        cs_db_exec(conn, "ROLLBACK", why, sizeof(why));
        rc = CS_ERR;
        goto cleanup;
    }
    rc = cs_db_exec(conn, "COMMIT", errstr, errstr_size);
    if (rc == CS_OK)
        rc = 1;
cleanup:
    PQclear(res);
    free(sql);
    return rc;
}

int cs_migrate(PGconn *conn, const char *dir, cs_migrate_cb on_applied, void *ctx, char *errstr,
               size_t errstr_size)
{
    char **names = NULL;
    size_t count = 0;
    int applied = 0, rc;
    char ignored[256];

    if ((rc = list_migrations(dir, &names, &count, errstr, errstr_size)))
        goto cleanup;
    if ((rc = cs_db_exec(conn, "SELECT pg_advisory_lock(" MIGRATE_LOCK_KEY ")", errstr,
                         errstr_size)))
        goto cleanup;
    rc = cs_db_exec(conn,
                    "SET client_min_messages = warning;"
                    "CREATE SCHEMA IF NOT EXISTS ccd;"
                    "CREATE TABLE IF NOT EXISTS ccd.schema_migrations ("
                    " name text PRIMARY KEY, checksum text NOT NULL,"
                    " applied_at timestamptz NOT NULL DEFAULT now())",
                    errstr, errstr_size);
    for (size_t i = 0; rc == CS_OK && i < count; i++) {
        int one = apply_one(conn, dir, names[i], errstr, errstr_size);

        if (one < 0)
            rc = one;
        else if (one == 1) {
            applied++;
            if (on_applied)
                on_applied(names[i], ctx);
        }
    }
    /* The programs' roles get their privileges on every table, old and new. */
    if (rc == CS_OK)
        rc = cs_db_exec(conn,
                        "SELECT ccd.grant_roles("
                        " (SELECT rolname FROM pg_roles WHERE rolname = 'casestream_worker'),"
                        " (SELECT rolname FROM pg_roles WHERE rolname = 'casestream_reader'))"
                        " WHERE to_regprocedure('ccd.grant_roles(name, name)') IS NOT NULL",
                        errstr, errstr_size);
    cs_db_exec(conn, "SELECT pg_advisory_unlock(" MIGRATE_LOCK_KEY ")", ignored, sizeof(ignored));
cleanup:
    for (size_t i = 0; i < count; i++)
        free(names[i]);
    free(names);
    return rc ? rc : applied;
}
