/* Schema migrations: numbered SQL files applied in order, once, with checksums. */
#ifndef CS_MIGRATE_H
#define CS_MIGRATE_H

#include <libpq-fe.h>
#include <stddef.h>

/* Called for each migration as it is applied (name is borrowed). */
typedef void (*cs_migrate_cb)(const char *name, void *ctx);

/* Applies the migrations in dir ("NNN_name.sql", in number order) that the
 * database has not recorded in ccd.schema_migrations, each in its own
 * transaction, all under one advisory lock so concurrent runs serialise.
 * A recorded migration whose file checksum changed is refused.
 * Returns the number applied (0 when up to date) or a negative cs_err with
 * the reason in errstr. */
int cs_migrate(PGconn *conn, const char *dir, cs_migrate_cb on_applied, void *ctx, char *errstr,
               size_t errstr_size);

#endif
