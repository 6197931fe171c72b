/* bench/es_watch: logs when each revision of a set of case documents becomes visible in
 * Elasticsearch, to GET (realtime) and to _search (after a refresh), for bench/run.sh.
 *
 * usage: es_watch ES_URL INDEX INTERVAL_MS REFS_FILE
 *
 * Every INTERVAL_MS it sends one _search (terms query on reference, version: true) for all the
 * references of REFS_FILE (one per line) and one _mget (realtime GET) for the documents of those
 * cases whose _id it knows, and prints, on stdout, one line per document whose external version
 * (= case_revision) went up since the previous request of that kind:
 *
 *   get|search REFERENCE VERSION SEEN_MS BEFORE_MS
 *
 * SEEN_MS is the wall clock (ms since the epoch, the clock of Kafka's CreateTime) when the
 * response that first showed VERSION arrived; BEFORE_MS is when the previous request of that
 * kind, which did not show it yet, was sent. The moment the version became visible lies
 * between the two.
 *
 * A document's _id is the case's internal id (DESIGN §6), which PostgreSQL gives the case when
 * it is created: es_watch learns it from the first search that finds the case, and prints
 *
 *   getfrom REFERENCE VERSION
 *
 * then: GET lines of that case start above VERSION, so the GET latency of revisions up to
 * VERSION is not measured. On SIGTERM or SIGINT it prints a summary line starting with '#' and
 * exits. A missing index counts as "nothing visible yet". Exit status 0, or 2 on bad usage or
 * setup. */
#include <curl/curl.h>
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_REFS 10000

typedef struct watched {
    int64_t ref;
    int64_t id;                    /* the document's _id, 0 until a search found it */
    int64_t seen_get, seen_search; /* highest version seen so far, 0 = none */
} watched;

/* The watched cases by _id, for the GET answers. */
typedef struct by_id_entry {
    int64_t id;
    watched *w;
} by_id_entry;

typedef struct buffer {
    char *data;
    size_t len, cap;
} buffer;

typedef struct totals {
    long cycles, errors;
    double cycle_ms, get_ms, search_ms;
} totals;

static volatile sig_atomic_t running = 1;

static void on_signal(int sig)
{
    (void)sig;
    running = 0;
}

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static double mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    buffer *b = userdata;
    size_t n = size * nmemb;

    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 65536;
        char *grown;

        while (cap < b->len + n + 1)
            cap *= 2;
        if (!(grown = realloc(b->data, cap)))
            return 0;
        b->data = grown;
        b->cap = cap;
    }
    memcpy(b->data + b->len, ptr, n);
    b->len += n;
    b->data[b->len] = '\0';
    return n;
}

static int by_ref(const void *pa, const void *pb)
{
    const watched *a = pa, *b = pb;

    return a->ref < b->ref ? -1 : a->ref > b->ref;
}

static watched *find_ref(watched *w, size_t n, int64_t ref)
{
    watched key;

    key.ref = ref;
    return bsearch(&key, w, n, sizeof(*w), by_ref);
}

static int by_id(const void *pa, const void *pb)
{
    const by_id_entry *a = pa, *b = pb;

    return a->id < b->id ? -1 : a->id > b->id;
}

static watched *find_id(by_id_entry *ids, size_t n, const char *id)
{
    by_id_entry key, *hit;
    char *end;

    errno = 0;
    key.id = strtoll(id, &end, 10);
    if (errno || *end)
        return NULL;
    hit = bsearch(&key, ids, n, sizeof(*ids), by_id);
    return hit ? hit->w : NULL;
}

/* Reads the references of path into *out (caller frees). Returns the count, or -1. */
static long read_refs(const char *path, watched **out)
{
    FILE *f = fopen(path, "r");
    watched *w = calloc(MAX_REFS, sizeof(*w));
    long n = 0;
    long long v;

    if (!f || !w) {
        if (f)
            fclose(f);
        free(w);
        return -1;
    }
    while (n < MAX_REFS && fscanf(f, "%lld", &v) == 1)
        if (v > 0)
            w[n++].ref = v;
    fclose(f);
    qsort(w, (size_t)n, sizeof(*w), by_ref);
    *out = w;
    return n;
}

/* Body listing every reference (ids false) or every known _id (ids true) as a string:
 * prefix "n","n",... suffix. Caller frees. */
static char *list_body(const watched *w, size_t n, bool ids, const char *prefix, const char *suffix)
{
    size_t cap = strlen(prefix) + strlen(suffix) + n * 24 + 1, len, k = 0;
    char *s = malloc(cap);

    if (!s)
        return NULL;
    len = (size_t)snprintf(s, cap, "%s", prefix);
    for (size_t i = 0; i < n; i++) {
        if (ids && w[i].id == 0)
            continue;
        len += (size_t)snprintf(s + len, cap - len, "%s\"%" PRId64 "\"", k++ ? "," : "",
                                ids ? w[i].id : w[i].ref);
    }
    snprintf(s + len, cap - len, "%s", suffix);
    return s;
}

/* POSTs body to url. Returns the HTTP status (0 on a transport error); the body is in *b. */
static long post(CURL *h, const char *url, const char *body, buffer *b)
{
    long status = 0;

    b->len = 0;
    if (b->data)
        b->data[0] = '\0';
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, b);
    if (curl_easy_perform(h) != CURLE_OK)
        return 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    return status;
}

/* The watched cases, their _ids as learned, and the GET request that follows them. */
typedef struct watch {
    watched *w;
    size_t n;
    by_id_entry *ids; /* sorted by id */
    size_t n_ids;
    char *mget_body; /* NULL until an id is known */
} watch;

/* Rebuilds the id lookup and the GET body after ids were learned. */
static bool ids_changed(watch *x)
{
    x->n_ids = 0;
    for (size_t i = 0; i < x->n; i++)
        if (x->w[i].id != 0)
            x->ids[x->n_ids++] = (by_id_entry){x->w[i].id, &x->w[i]};
    qsort(x->ids, x->n_ids, sizeof(*x->ids), by_id);
    free(x->mget_body);
    x->mget_body = list_body(x->w, x->n, true, "{\"ids\":[", "]}");
    return x->mget_body != NULL;
}

/* Prints and records every version in items (an array of {_id, _version[, found][, _source]})
 * that is higher than the one seen before. A search hit names its case by _source.reference and
 * teaches the case's _id. */
static void note_versions(json_t *items, watch *x, bool get, int64_t seen_ms, int64_t before_ms)
{
    bool learned = false;
    size_t i;
    json_t *it;

    json_array_foreach(items, i, it)
    {
        json_t *found = json_object_get(it, "found");
        const char *id = json_string_value(json_object_get(it, "_id"));
        watched *c;
        int64_t v;

        if ((found && !json_is_true(found)) || !id)
            continue;
        v = json_integer_value(json_object_get(it, "_version"));
        if (get) {
            c = find_id(x->ids, x->n_ids, id);
        } else {
            c = find_ref(
                x->w, x->n,
                json_integer_value(json_object_get(json_object_get(it, "_source"), "reference")));
            if (c && c->id == 0) {
                c->id = strtoll(id, NULL, 10);
                /* GET did not watch this case until now. */
                c->seen_get = v;
                printf("getfrom %" PRId64 " %" PRId64 "\n", c->ref, v);
                learned = true;
            }
        }
        if (!c)
            continue;
        if (v > (get ? c->seen_get : c->seen_search)) {
            printf("%s %" PRId64 " %" PRId64 " %" PRId64 " %" PRId64 "\n", get ? "get" : "search",
                   c->ref, v, seen_ms, before_ms);
            if (get)
                c->seen_get = v;
            else
                c->seen_search = v;
        }
    }
    if (learned && !ids_changed(x))
        fprintf(stderr, "es_watch: out of memory\n");
}

/* One request of one kind. Returns false on an unexpected answer. */
static bool poll_kind(CURL *h, const char *url, const char *body, bool get, watch *x,
                      int64_t *last_sent, buffer *b, double *took_ms)
{
    int64_t sent = now_ms();
    double t0 = mono_ms();
    long status = post(h, url, body, b);
    int64_t seen = now_ms();
    json_t *root = NULL;
    bool ok = true;

    *took_ms = mono_ms() - t0;
    if (status == 200 && (root = json_loadb(b->data, b->len, 0, NULL))) {
        json_t *items = get ? json_object_get(root, "docs")
                            : json_object_get(json_object_get(root, "hits"), "hits");

        note_versions(items, x, get, seen, *last_sent);
    } else if (status != 404) { /* 404: the index does not exist yet */
        ok = false;
    }
    json_decref(root);
    *last_sent = sent;
    return ok;
}

int main(int argc, char **argv)
{
    char mget_url[1024], search_url[1024];
    char *search_body = NULL, prefix[192];
    struct curl_slist *headers = NULL;
    struct sigaction sa;
    buffer b = {NULL, 0, 0};
    totals t = {0, 0, 0, 0, 0};
    watch x = {NULL, 0, NULL, 0, NULL};
    CURL *h = NULL;
    long n, interval;
    int64_t last_get, last_search;
    int rc = 2;

    if (argc != 5 || (interval = strtol(argv[3], NULL, 10)) <= 0) {
        fprintf(stderr, "usage: es_watch ES_URL INDEX INTERVAL_MS REFS_FILE\n");
        return 2;
    }
    if ((n = read_refs(argv[4], &x.w)) <= 0) {
        fprintf(stderr, "es_watch: no references in %s\n", argv[4]);
        goto cleanup;
    }
    x.n = (size_t)n;
    snprintf(mget_url, sizeof(mget_url), "%s/%s/_mget?realtime=true&_source=false", argv[1],
             argv[2]);
    snprintf(search_url, sizeof(search_url), "%s/%s/_search", argv[1], argv[2]);
    snprintf(prefix, sizeof(prefix),
             "{\"size\":%ld,\"version\":true,\"_source\":[\"reference\"],"
             "\"track_total_hits\":false,\"query\":{\"terms\":{\"reference\":[",
             n);
    search_body = list_body(x.w, x.n, false, prefix, "]}}}");
    x.ids = calloc(x.n, sizeof(*x.ids));
    if (!x.ids || !search_body || curl_global_init(CURL_GLOBAL_DEFAULT) ||
        !(h = curl_easy_init()) ||
        !(headers = curl_slist_append(NULL, "Content-Type: application/json"))) {
        fprintf(stderr, "es_watch: out of memory\n");
        goto cleanup;
    }
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 10000L);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal; /* no SA_RESTART: a signal cuts the sleep short */
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    last_get = last_search = now_ms();
    while (running) {
        double start = mono_ms(), took, left;

        took = 0;
        if (x.mget_body && !poll_kind(h, mget_url, x.mget_body, true, &x, &last_get, &b, &took))
            t.errors++;
        t.get_ms += took;
        if (!poll_kind(h, search_url, search_body, false, &x, &last_search, &b, &took))
            t.errors++;
        t.search_ms += took;
        fflush(stdout);
        left = (double)interval - (mono_ms() - start);
        if (left > 0 && running) {
            long ns = (long)(left * 1e6);
            struct timespec ts = {ns / 1000000000L, ns % 1000000000L};

            nanosleep(&ts, NULL);
        }
        t.cycles++;
        t.cycle_ms += mono_ms() - start;
    }
    printf("# cycles=%ld mean_cycle_ms=%.1f mean_get_ms=%.1f mean_search_ms=%.1f errors=%ld\n",
           t.cycles, t.cycles ? t.cycle_ms / (double)t.cycles : 0.0,
           t.cycles ? t.get_ms / (double)t.cycles : 0.0,
           t.cycles ? t.search_ms / (double)t.cycles : 0.0, t.errors);
    rc = 0;
cleanup:
    curl_slist_free_all(headers);
    if (h)
        curl_easy_cleanup(h);
    free(b.data);
    free(x.mget_body);
    free(x.ids);
    free(search_body);
    free(x.w);
    return rc;
}
