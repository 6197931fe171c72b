/* casestream token: a development service-to-service token for a configured key. */
#include "admin.h"
#include "jwt.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

int cs_admin_token(const cs_config *cfg, int argc, char **argv)
{
    char errstr[512];
    cs_jwt_key *key;
    char *token;

    (void)argv;
    if (argc != 0) {
        cs_log_error("invalid configuration: usage: casestream token --service NAME "
                     "[--ttl SECONDS] [--s2s-alg HS256|HS512|RS256] [--s2s-key-file FILE]");
        return CS_EXIT_CONFIG;
    }
    if (cfg->service[0] == '\0') {
        cs_log_error("invalid configuration: token: --service NAME is required");
        return CS_EXIT_CONFIG;
    }
    if (cfg->s2s_key_file[0] == '\0') {
        cs_log_error("invalid configuration: token: no key: set --s2s-key-file "
                     "(CASESTREAM_S2S_KEY_FILE) to the %s %s",
                     cfg->s2s_alg, cfg->s2s_alg[0] == 'R' ? "private key (PEM)" : "secret");
        return CS_EXIT_CONFIG;
    }
    if (!(key = cs_jwt_key_load(cfg->s2s_alg, cfg->s2s_key_file, errstr, sizeof(errstr)))) {
        cs_log_error("invalid configuration: %s", errstr);
        return CS_EXIT_CONFIG;
    }
    token = cs_jwt_mint(key, cfg->service, (long long)time(NULL), cfg->ttl, errstr, sizeof(errstr));
    cs_jwt_key_free(key);
    if (!token) {
        cs_log_error("invalid configuration: token: %s", errstr);
        return CS_EXIT_CONFIG;
    }
    printf("%s\n", token);
    free(token);
    return fflush(stdout) == 0 ? 0 : 1;
}
