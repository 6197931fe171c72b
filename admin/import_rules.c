/* casestream import's decisions: COPY row keys, commit turns, validate's comparison. */
#include "import_rules.h"

#include "merge_patch.h"

#include <string.h>

bool cs_import_row_keys(const char *row, size_t len, int n, int64_t out[2])
{
    size_t i = 0;

    for (int k = 0; k < n; k++) {
        uint64_t v = 0;
        size_t start = i;

        while (i < len && row[i] >= '0' && row[i] <= '9') {
            if (v > (UINT64_C(9223372036854775807) - (uint64_t)(row[i] - '0')) / 10)
                return false;
            v = v * 10 + (uint64_t)(row[i] - '0');
            i++;
        }
        if (i == start || i >= len || (row[i] != '\t' && row[i] != '\n'))
            return false;
        out[k] = (int64_t)v;
        if (k + 1 < n && row[i] != '\t')
            return false;
        i++;
    }
    return true;
}

bool cs_import_event_row(const char *row, size_t len, size_t *from, size_t *to, bool *skip)
{
    const char *first, *last;

    if (len < 2 || row[len - 1] != '\n')
        return false;
    if (!(first = memchr(row, '\t', len - 1)))
        return false;
    for (last = row + len - 2; last > first && *last != '\t'; last--)
        ;
    if (last == first)
        return false;
    *from = (size_t)(first + 1 - row);
    *to = (size_t)(last - row);
    *skip = !((size_t)(row + len - 1 - (last + 1)) == 2 && last[1] == '\\' && last[2] == 'N');
    return true;
}

unsigned cs_import_compare(const cs_import_case *s, const cs_import_case *t)
{
    unsigned diff = 0;

    if (s->events != t->events)
        diff |= CS_IMPORT_EVENTS;
    if (!s->data_md5 || !t->data_md5 || strcmp(s->data_md5, t->data_md5) != 0) {
        if (!s->data || !t->data || !cs_json_equal(s->data, t->data))
            diff |= CS_IMPORT_DATA;
    }
    if (!s->state || !t->state || strcmp(s->state, t->state) != 0)
        diff |= CS_IMPORT_STATE;
    if (s->version != t->version)
        diff |= CS_IMPORT_VERSION;
    if (!s->classification || !t->classification ||
        strcmp(s->classification, t->classification) != 0)
        diff |= CS_IMPORT_CLASSIFICATION;
    return diff;
}

const char *cs_import_field_name(unsigned bit)
{
    switch (bit) {
    case CS_IMPORT_EVENTS:
        return "events";
    case CS_IMPORT_DATA:
        return "data";
    case CS_IMPORT_STATE:
        return "state";
    case CS_IMPORT_VERSION:
        return "version";
    case CS_IMPORT_CLASSIFICATION:
        return "security_classification";
    default:
        return "?";
    }
}

bool cs_import_my_turn(const cs_import_turns *t, uint64_t seq)
{
    return !t->failed && t->next == seq;
}

void cs_import_done(cs_import_turns *t, uint64_t seq, bool committed)
{
    if (!committed)
        t->failed = true;
    else if (t->next == seq)
        t->next++;
}
