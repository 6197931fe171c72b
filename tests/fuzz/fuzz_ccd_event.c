/* libFuzzer target: the mapping of CCD's request bodies to submissions (api/ccd.c).
 *
 * Input: a request body, mapped both as a DecentralisedCaseEvent (POST
 * /ccd-persistence/cases) and as a supplementary data request. A mapped
 * submission must be one the worker's validator takes, for the reference and
 * key it was given, with the notes projection never in its data, an expected
 * version exactly when CCD sent a version, and the body's numbers kept; a
 * refusal must carry a reason that is UTF-8 (it goes into a JSON answer). */
#include "fuzz.h"

#include "../../api/ccd.h"
#include "envelope.h"
#include "err.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KEY "6f1c2b4e-7d1a-4c3e-9b2a-1f0e5d6c7b8a"

static void check_submission(const char *json, int64_t ref)
{
    char key[24], errstr[512] = "";
    int n = snprintf(key, sizeof(key), "%" PRId64, ref);
    cs_submission *s = NULL;
    cs_verdict v = cs_submission_parse(json, strlen(json), key, (size_t)n, SIZE_MAX, &s, errstr,
                                       sizeof(errstr));

    cs_fuzz_require(v == CS_VALID, "a mapped submission is refused: %s: %s", errstr, json);
    cs_fuzz_require(s->case_reference == ref, "the reference moved: %s", json);
    cs_fuzz_require(strcmp(s->idempotency_key, KEY) == 0, "the key moved: %s", json);
    cs_fuzz_require(ref >= 1000000000000000LL && ref <= 9999999999999999LL,
                    "a reference of other than 16 digits: %" PRId64, ref);
    cs_submission_free(s);
}

static void check_reason(const char *errstr)
{
    cs_fuzz_require(errstr[0] != '\0', "a refusal without a reason");
    cs_fuzz_require(cs_fuzz_utf8(errstr, strlen(errstr)), "a reason that is not UTF-8");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const cs_api_user user = {"u-1", "Ann", NULL};
    char *body = cs_fuzz_exact_copy(data, size);
    char errstr[512] = "", *json = NULL;
    cs_api_mapped m;
    int rc;

    rc = cs_api_map_event(body ? body : "", size, KEY, &user, "caseNotes", &m, errstr,
                          sizeof(errstr));
    if (rc == CS_OK) {
        json_t *root = json_loads(m.json, 0, NULL), *sub_data = json_object_get(root, "data");

        cs_fuzz_require(root != NULL, "a mapped submission is not JSON: %s", m.json);
        check_submission(m.json, m.ref);
        cs_fuzz_require(!json_object_get(sub_data, "caseNotes"),
                        "the notes projection went into the data: %s", m.json);
        cs_fuzz_require(m.created == !json_object_get(root, "expected_version"),
                        "expected_version and created disagree: %s", m.json);
        cs_fuzz_require(!strchr(m.json, '\n'), "a mapped submission is not compact");
        json_decref(root);
        free(m.json);
    } else {
        cs_fuzz_require(rc == CS_ERR_INVALID, "mapping failed with %d: %s", rc, errstr);
        cs_fuzz_require(m.json == NULL, "a refused mapping left a submission");
        check_reason(errstr);
    }
    errstr[0] = '\0';
    rc = cs_api_map_supplementary(body ? body : "", size, 1796021823004242LL, "NFD", KEY, &user,
                                  &json, errstr, sizeof(errstr));
    if (rc == CS_OK) {
        check_submission(json, 1796021823004242LL);
        free(json);
    } else {
        cs_fuzz_require(rc == CS_ERR_INVALID && json == NULL, "supplementary: %d", rc);
        check_reason(errstr);
    }
    free(body);
    return 0;
}
