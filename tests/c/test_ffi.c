/*
 * test_ffi: every function of kadmium.h, success and error paths, with a few
 * nodes on loopback in one process. Run under valgrind by tests/c/run.sh.
 * Ends with "test_ffi: N passed, M failed"; exit status 0 only if M is 0.
 */
#define _POSIX_C_SOURCE 200809L
#include <kadmium.h>

#include <errno.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static int passed, failed;

#define CHECK(cond)                                                                  \
    do {                                                                             \
        if (cond) {                                                                  \
            passed++;                                                                \
        } else {                                                                     \
            failed++;                                                                \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
        }                                                                            \
    } while (0)

/* Check that `expr` returns `want`; on mismatch print both and the detail. */
#define CHECK_RES(expr, want)                                                       \
    do {                                                                            \
        kad_result got_ = (expr);                                                   \
        if (got_ == (want)) {                                                       \
            passed++;                                                               \
        } else {                                                                    \
            char d_[256];                                                           \
            kad_last_error_detail(d_, sizeof d_, NULL);                             \
            failed++;                                                               \
            fprintf(stderr, "%s:%d: %s = %s, want %s (detail: %s)\n", __FILE__,    \
                    __LINE__, #expr, kad_result_str(got_), #want, d_);              \
        }                                                                           \
    } while (0)

#define KEY(s) (const uint8_t *)(s), strlen(s)
#define TIMEOUT 10000

static const char *detail(void) {
    static char buf[512];
    kad_last_error_detail(buf, sizeof buf, NULL);
    return buf;
}

static kad_node *start_node(void) {
    kad_config *c = kad_config_new();
    kad_node *n = NULL;
    CHECK_RES(kad_config_set_bind(c, "127.0.0.1", 0), KAD_OK);
    CHECK_RES(kad_config_set_rpc_timeout_ms(c, 300), KAD_OK);
    CHECK_RES(kad_node_new(c, &n), KAD_OK);
    kad_config_free(c);
    return n;
}

static void addr_of(const kad_node *n, char *buf, size_t len) {
    uint16_t port = 0;
    CHECK_RES(kad_node_port(n, &port), KAD_OK);
    snprintf(buf, len, "127.0.0.1:%u", (unsigned)port);
}

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* ---- async plumbing: one completion slot per call ------------------------ */

struct done {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int calls;          /* how often the callback ran: must end at exactly 1 */
    kad_result result;
    size_t count;       /* contacts / stored */
    kad_value *value;   /* get */
    uint8_t id[KAD_ID_LEN];
    pthread_t thread;   /* the thread the callback ran on */
    kad_result nested;  /* what a blocking call inside the callback returned */
    char detail[256];   /* kad_last_error_detail inside the callback */
    kad_node *node;     /* for the nested call */
};

static void done_init(struct done *d, kad_node *node) {
    memset(d, 0, sizeof *d);
    pthread_mutex_init(&d->mu, NULL);
    pthread_cond_init(&d->cv, NULL);
    d->node = node;
    d->nested = KAD_OK;
}

static void done_destroy(struct done *d) {
    pthread_mutex_destroy(&d->mu);
    pthread_cond_destroy(&d->cv);
}

/* Wait up to 20 s for the callback; returns 1 if it ran. */
static int done_wait(struct done *d) {
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 20;
    pthread_mutex_lock(&d->mu);
    int rc = 0;
    while (d->calls == 0 && rc != ETIMEDOUT) rc = pthread_cond_timedwait(&d->cv, &d->mu, &until);
    int ran = d->calls > 0;
    pthread_mutex_unlock(&d->mu);
    return ran;
}

static void done_signal(struct done *d) {
    pthread_mutex_lock(&d->mu);
    d->calls++;
    d->thread = pthread_self();
    kad_last_error_detail(d->detail, sizeof d->detail, NULL);
    pthread_cond_broadcast(&d->cv);
    pthread_mutex_unlock(&d->mu);
}

static void on_bootstrap(void *ud, kad_result r, size_t contacts) {
    struct done *d = ud;
    d->result = r;
    d->count = contacts;
    done_signal(d);
}

static void on_put(void *ud, kad_result r, size_t stored) {
    struct done *d = ud;
    d->result = r;
    d->count = stored;
    done_signal(d);
}

static void on_get(void *ud, kad_result r, kad_value *v) {
    struct done *d = ud;
    d->result = r;
    d->value = v;
    /* Blocking calls are refused on library threads. */
    if (d->node) {
        kad_value *tmp = NULL;
        d->nested = kad_node_get(d->node, KEY("x"), 100, &tmp);
    }
    done_signal(d);
}

static void on_ping(void *ud, kad_result r, const uint8_t *id, size_t id_len) {
    struct done *d = ud;
    d->result = r;
    d->count = id_len;
    if (id && id_len == KAD_ID_LEN) memcpy(d->id, id, KAD_ID_LEN);
    done_signal(d);
}

/* ---- callbacks that block until released: they must not stall the nodes --- */

struct gate {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int open, entered, finished;
    kad_result results[8];
};

/* Wait (at most 20 s) until *counter reaches want; returns 1 if it did. */
static int gate_wait_for(struct gate *g, const int *counter, int want) {
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 20;
    pthread_mutex_lock(&g->mu);
    int rc = 0;
    while (*counter < want && rc != ETIMEDOUT) rc = pthread_cond_timedwait(&g->cv, &g->mu, &until);
    int ok = *counter >= want;
    pthread_mutex_unlock(&g->mu);
    return ok;
}

static void on_get_blocked(void *ud, kad_result r, kad_value *v) {
    struct gate *g = ud;
    kad_value_free(v);
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 20;
    pthread_mutex_lock(&g->mu);
    g->results[g->entered++] = r;
    pthread_cond_broadcast(&g->cv);
    int rc = 0;
    while (!g->open && rc != ETIMEDOUT) rc = pthread_cond_timedwait(&g->cv, &g->mu, &until);
    g->finished++;
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
}

/* More blocked callbacks than the library has worker threads: if callbacks
 * ran on the workers, the blocking calls below could not finish (they would
 * end in KAD_TIMEOUT). No timing is measured, only that they succeed while
 * every callback is still blocked. */
static void test_slow_callbacks(kad_node *a, kad_node *b) {
    enum { SLOW = 6 };
    struct gate g;
    memset(&g, 0, sizeof g);
    pthread_mutex_init(&g.mu, NULL);
    pthread_cond_init(&g.cv, NULL);
    for (int i = 0; i < SLOW; i++) CHECK_RES(kad_node_get_async(b, KEY("binary"), TIMEOUT, on_get_blocked, &g, NULL), KAD_OK);
    CHECK(gate_wait_for(&g, &g.entered, SLOW));
    kad_value *v = NULL;
    CHECK_RES(kad_node_put(a, KEY("while-blocked"), KEY("still serving"), 0, TIMEOUT, NULL), KAD_OK);
    CHECK_RES(kad_node_get(b, KEY("while-blocked"), TIMEOUT, &v), KAD_OK);
    kad_value_free(v);
    pthread_mutex_lock(&g.mu);
    CHECK(g.finished == 0); /* all callbacks were still blocked meanwhile */
    g.open = 1;
    pthread_cond_broadcast(&g.cv);
    pthread_mutex_unlock(&g.mu);
    CHECK(gate_wait_for(&g, &g.finished, SLOW));
    for (int i = 0; i < SLOW; i++) CHECK(g.results[i] == KAD_OK);
    pthread_mutex_destroy(&g.mu);
    pthread_cond_destroy(&g.cv);
}

/* ---- tests --------------------------------------------------------------- */

static void test_results_and_version(void) {
    char buf[64];
    size_t n = 0;
    CHECK_RES(kad_result_message(KAD_NOT_FOUND, buf, sizeof buf, &n), KAD_OK);
    CHECK(strcmp(buf, "not found") == 0 && n == strlen("not found"));
    CHECK_RES(kad_result_message(KAD_OK, buf, sizeof buf, NULL), KAD_OK);
    CHECK(strcmp(buf, "success") == 0);
    CHECK_RES(kad_result_message(KAD_NOT_FOUND, buf, 4, &n), KAD_OK); /* truncated */
    CHECK(strcmp(buf, "not") == 0 && n == 3);
    CHECK_RES(kad_result_message(9999, buf, sizeof buf, NULL), KAD_OK);
    CHECK(strcmp(buf, "unknown result code") == 0);
    CHECK_RES(kad_result_message(KAD_OK, NULL, 10, NULL), KAD_NULL_POINTER);
    CHECK_RES(kad_result_message(KAD_OK, buf, 0, NULL), KAD_BUFFER_TOO_SMALL);
    CHECK(strcmp(kad_result_str(KAD_TIMEOUT), "timed out") == 0);
    CHECK(strcmp(kad_result_str(KAD_PANIC), "internal panic (a bug in kadmium)") == 0);
    CHECK(strcmp(kad_result_str(12345), "unknown result code") == 0);
    /* every code has its own message */
    const kad_result all[] = {KAD_OK, KAD_INVALID_ARGUMENT, KAD_NULL_POINTER, KAD_INVALID_HANDLE,
                              KAD_BUFFER_TOO_SMALL, KAD_WRONG_TYPE, KAD_WRONG_THREAD,
                              KAD_VALUE_TOO_LARGE, KAD_BAD_ADDRESS, KAD_FORKED, KAD_NOT_FOUND, KAD_TIMEOUT,
                              KAD_NO_PEERS, KAD_NETWORK_ERROR, KAD_STORAGE_FULL, KAD_BUSY,
                              KAD_SHUT_DOWN, KAD_CANCELLED, KAD_CAS_MISMATCH, KAD_INVALID_RECORD,
                              KAD_PANIC, KAD_RUNTIME_ERROR, KAD_DATA_DIR_ERROR};
    size_t count = sizeof all / sizeof all[0];
    for (size_t i = 0; i < count; i++) {
        CHECK(strcmp(kad_result_str(all[i]), "unknown result code") != 0);
        for (size_t j = i + 1; j < count; j++) CHECK(strcmp(kad_result_str(all[i]), kad_result_str(all[j])) != 0);
    }

    CHECK_RES(kad_last_error_detail(NULL, 1, NULL), KAD_NULL_POINTER);
    CHECK_RES(kad_last_error_detail(buf, 0, NULL), KAD_BUFFER_TOO_SMALL);
    CHECK_RES(kad_config_set_k(NULL, 3), KAD_NULL_POINTER);
    CHECK_RES(kad_last_error_detail(buf, sizeof buf, &n), KAD_OK);
    CHECK(strstr(buf, "config") != NULL && n == strlen(buf));
    CHECK(kad_last_error_detail_len() == n);
    /* a truncated copy shows as *written_out below kad_last_error_detail_len() */
    char tiny[5];
    CHECK_RES(kad_last_error_detail(tiny, sizeof tiny, &n), KAD_OK);
    CHECK(n == 4 && tiny[4] == '\0' && kad_last_error_detail_len() > n);
    /* the copy is the caller's: a later failure does not change it */
    char saved[64];
    memcpy(saved, buf, sizeof saved);
    CHECK_RES(kad_key_digest(NULL, 0, NULL, 0), KAD_NULL_POINTER);
    CHECK(strcmp(saved, buf) == 0);
    CHECK(strcmp(detail(), saved) != 0);

    char want[32];
    snprintf(want, sizeof want, "%d.%d.%d", KAD_VERSION_MAJOR, KAD_VERSION_MINOR, KAD_VERSION_PATCH);
    CHECK(strcmp(kad_version(), want) == 0);
}

static void test_key_digest(void) {
    uint8_t d[KAD_ID_LEN], small[KAD_ID_LEN - 1];
    /* sha1("hello") = aaf4c61ddcc5e8a2dabede0f3b482cd9aea9434d */
    static const uint8_t hello[KAD_ID_LEN] = {0xaa, 0xf4, 0xc6, 0x1d, 0xdc, 0xc5, 0xe8, 0xa2, 0xda, 0xbe,
                                              0xde, 0x0f, 0x3b, 0x48, 0x2c, 0xd9, 0xae, 0xa9, 0x43, 0x4d};
    CHECK_RES(kad_key_digest(KEY("hello"), d, sizeof d), KAD_OK);
    CHECK(memcmp(d, hello, KAD_ID_LEN) == 0);
    memset(d, 0x55, sizeof d);
    CHECK_RES(kad_key_digest((const uint8_t *)"", 0, d, sizeof d), KAD_INVALID_ARGUMENT);
    CHECK(d[0] == 0x55); /* out-parameters untouched on failure */
    CHECK_RES(kad_key_digest(NULL, 5, d, sizeof d), KAD_NULL_POINTER);
    CHECK_RES(kad_key_digest(KEY("hello"), NULL, KAD_ID_LEN), KAD_NULL_POINTER);
    CHECK_RES(kad_key_digest(KEY("hello"), small, sizeof small), KAD_BUFFER_TOO_SMALL);
}

static void test_config(void) {
    kad_config *c = kad_config_new();
    CHECK(c != NULL);
    CHECK_RES(kad_config_set_bind(c, "::1", 0), KAD_OK);
    CHECK_RES(kad_config_set_bind(c, "127.0.0.1", 0), KAD_OK);
    CHECK_RES(kad_config_set_bind(c, "localhost", 0), KAD_BAD_ADDRESS);
    CHECK_RES(kad_config_set_bind(c, "300.1.1.1", 0), KAD_BAD_ADDRESS);
    CHECK_RES(kad_config_set_bind(c, NULL, 0), KAD_NULL_POINTER);
    CHECK_RES(kad_config_set_bind(NULL, "127.0.0.1", 0), KAD_NULL_POINTER);
    CHECK_RES(kad_config_set_k(c, 0), KAD_INVALID_ARGUMENT);
    CHECK_RES(kad_config_set_k(c, 1001), KAD_INVALID_ARGUMENT);
    CHECK_RES(kad_config_set_k(c, 8), KAD_OK);
    CHECK_RES(kad_config_set_alpha(c, 0), KAD_INVALID_ARGUMENT);
    CHECK_RES(kad_config_set_alpha(NULL, 3), KAD_NULL_POINTER);
    CHECK_RES(kad_config_set_alpha(c, 2), KAD_OK);
    CHECK_RES(kad_config_set_rpc_timeout_ms(c, 0), KAD_INVALID_ARGUMENT);
    CHECK_RES(kad_config_set_rpc_timeout_ms(NULL, 1), KAD_NULL_POINTER);
    CHECK_RES(kad_config_set_rpc_timeout_ms(c, 300), KAD_OK);
    CHECK_RES(kad_config_set_max_failures(c, 0), KAD_INVALID_ARGUMENT);
    CHECK_RES(kad_config_set_max_failures(NULL, 1), KAD_NULL_POINTER);
    CHECK_RES(kad_config_set_max_failures(c, 2), KAD_OK);
    CHECK_RES(kad_config_set_max_value_size(c, 0), KAD_INVALID_ARGUMENT);
    CHECK_RES(kad_config_set_max_value_size(NULL, 1), KAD_NULL_POINTER);
    CHECK_RES(kad_config_set_max_value_size(c, 65401), KAD_INVALID_ARGUMENT);
    CHECK_RES(kad_config_set_max_value_size(c, 65400), KAD_OK);
    CHECK_RES(kad_config_set_max_value_size(c, 1000), KAD_OK);
    CHECK_RES(kad_config_set_storage_limits(c, 0, 10), KAD_INVALID_ARGUMENT);
    CHECK_RES(kad_config_set_storage_limits(c, 10, 0), KAD_INVALID_ARGUMENT);
    CHECK_RES(kad_config_set_storage_limits(NULL, 1, 1), KAD_NULL_POINTER);
    CHECK_RES(kad_config_set_storage_limits(c, 1000, 1 << 20), KAD_OK);
    CHECK_RES(kad_config_set_max_pending_rpcs(c, 0), KAD_INVALID_ARGUMENT);
    CHECK_RES(kad_config_set_max_pending_rpcs(NULL, 1), KAD_NULL_POINTER);
    CHECK_RES(kad_config_set_max_pending_rpcs(c, 64), KAD_OK);
    CHECK_RES(kad_config_set_ttl(c, 0, 10), KAD_INVALID_ARGUMENT);
    CHECK_RES(kad_config_set_ttl(c, 20, 10), KAD_INVALID_ARGUMENT);
    /* a bad maximum is named as such (it read "default ttl must be between 1 and 0, not 5") */
    CHECK_RES(kad_config_set_ttl(c, 5, 0), KAD_INVALID_ARGUMENT);
    CHECK(strstr(detail(), "max ttl") != NULL);
    CHECK_RES(kad_config_set_ttl(NULL, 1, 1), KAD_NULL_POINTER);
    CHECK_RES(kad_config_set_ttl(c, 600, 3600), KAD_OK);
    CHECK_RES(kad_config_set_rng_seed(c, 42), KAD_OK);
    CHECK_RES(kad_config_set_rng_seed(NULL, 42), KAD_NULL_POINTER);
    uint8_t id[KAD_ID_LEN];
    for (int i = 0; i < KAD_ID_LEN; i++) id[i] = (uint8_t)(i * 7 + 1);
    CHECK_RES(kad_config_set_node_id(c, id, KAD_ID_LEN - 1), KAD_INVALID_ARGUMENT);
    CHECK_RES(kad_config_set_node_id(c, NULL, KAD_ID_LEN), KAD_NULL_POINTER);
    CHECK_RES(kad_config_set_node_id(NULL, id, KAD_ID_LEN), KAD_NULL_POINTER);
    CHECK_RES(kad_config_set_node_id(c, id, KAD_ID_LEN), KAD_OK);

    /* the configured node has that id and port; values above 1000 bytes are refused */
    kad_node *n = NULL;
    CHECK_RES(kad_node_new(c, &n), KAD_OK);
    kad_config_free(c); /* the node copied it */
    uint8_t got[KAD_ID_LEN + 4];
    CHECK_RES(kad_node_id(n, got, sizeof got), KAD_OK);
    CHECK(memcmp(got, id, KAD_ID_LEN) == 0);
    CHECK_RES(kad_node_id(n, got, KAD_ID_LEN - 1), KAD_BUFFER_TOO_SMALL);
    CHECK_RES(kad_node_id(n, NULL, KAD_ID_LEN), KAD_NULL_POINTER);
    static uint8_t big[1001];
    CHECK_RES(kad_node_put(n, KEY("k"), big, sizeof big, 0, TIMEOUT, NULL), KAD_VALUE_TOO_LARGE);
    CHECK(strstr(detail(), "1001") != NULL);
    kad_node_free(n);

    /* inconsistent settings are caught when the node is created */
    c = kad_config_new();
    CHECK_RES(kad_config_set_bind(c, "127.0.0.1", 0), KAD_OK);
    CHECK_RES(kad_config_set_alpha(c, 10), KAD_OK);
    CHECK_RES(kad_config_set_max_pending_rpcs(c, 5), KAD_OK);
    n = (kad_node *)&n; /* a sentinel: must stay untouched */
    CHECK_RES(kad_node_new(c, &n), KAD_INVALID_ARGUMENT);
    CHECK(n == (kad_node *)&n);
    kad_config_free(c);
    kad_config_free(NULL);
}

static void test_node_lifecycle(void) {
    kad_node *n = NULL;
    CHECK_RES(kad_node_new(NULL, NULL), KAD_NULL_POINTER);
    CHECK_RES(kad_node_new(NULL, &n), KAD_OK); /* NULL config: defaults, 0.0.0.0:0 */
    uint16_t port = 0;
    CHECK_RES(kad_node_port(n, &port), KAD_OK);
    CHECK(port != 0);
    CHECK_RES(kad_node_port(n, NULL), KAD_NULL_POINTER);
    CHECK_RES(kad_node_port(NULL, &port), KAD_NULL_POINTER);

    /* binding a port in use fails */
    kad_config *c = kad_config_new();
    kad_node *clash = NULL;
    CHECK_RES(kad_config_set_bind(c, "0.0.0.0", port), KAD_OK);
    CHECK_RES(kad_node_new(c, &clash), KAD_NETWORK_ERROR);
    CHECK(clash == NULL);
    kad_config_free(c);

    /* shutdown keeps the handle; operations then fail */
    CHECK_RES(kad_node_shutdown(n), KAD_OK);
    CHECK_RES(kad_node_shutdown(n), KAD_OK); /* idempotent */
    CHECK_RES(kad_node_put(n, KEY("k"), KEY("v"), 0, TIMEOUT, NULL), KAD_SHUT_DOWN);
    CHECK_RES(kad_node_port(n, &port), KAD_OK);
    CHECK_RES(kad_node_shutdown(NULL), KAD_NULL_POINTER);

    /* documented double-free protection for nodes */
    kad_node_free(n);
    kad_node_free(n); /* no-op */
    kad_node_free(NULL);
    CHECK_RES(kad_node_port(n, &port), KAD_INVALID_HANDLE);
    CHECK_RES(kad_node_shutdown(n), KAD_INVALID_HANDLE);
    kad_value *v = NULL;
    CHECK_RES(kad_node_get(n, KEY("k"), TIMEOUT, &v), KAD_INVALID_HANDLE);
    CHECK(v == NULL);
}

static void test_network(void) {
    kad_node *a = start_node(), *b = start_node(), *c = start_node();
    char addr_a[32], addr_b[32];
    addr_of(a, addr_a, sizeof addr_a);
    addr_of(b, addr_b, sizeof addr_b);

    /* an address where nothing listens: a node that was freed */
    kad_node *gone = start_node();
    char addr_gone[32];
    addr_of(gone, addr_gone, sizeof addr_gone);
    kad_node_free(gone);
    sleep_ms(200);

    /* a lone node: no peers for put, nothing to find for get */
    CHECK_RES(kad_node_put(a, KEY("k"), KEY("v"), 0, TIMEOUT, NULL), KAD_NO_PEERS);
    kad_value *v = NULL;
    CHECK_RES(kad_node_get(a, KEY("k"), TIMEOUT, &v), KAD_NOT_FOUND);
    CHECK(v == NULL);

    /* bootstrap error paths */
    const char *nobody[] = {addr_gone};
    size_t contacts = 12345;
    CHECK_RES(kad_node_bootstrap(a, nobody, 1, TIMEOUT, &contacts), KAD_NO_PEERS);
    CHECK(contacts == 12345);
    const char *bad[] = {"127.0.0.1"};
    CHECK_RES(kad_node_bootstrap(a, bad, 1, TIMEOUT, NULL), KAD_BAD_ADDRESS);
    const char *bad_port[] = {"127.0.0.1:notaport"};
    CHECK_RES(kad_node_bootstrap(a, bad_port, 1, TIMEOUT, NULL), KAD_BAD_ADDRESS);
    const char *null_entry[] = {NULL};
    CHECK_RES(kad_node_bootstrap(a, null_entry, 1, TIMEOUT, NULL), KAD_NULL_POINTER);
    CHECK_RES(kad_node_bootstrap(a, NULL, 1, TIMEOUT, NULL), KAD_NULL_POINTER);
    CHECK_RES(kad_node_bootstrap(NULL, nobody, 1, TIMEOUT, NULL), KAD_NULL_POINTER);
    CHECK_RES(kad_node_bootstrap(a, NULL, 0, TIMEOUT, NULL), KAD_NO_PEERS); /* empty table */

    /* ping */
    uint8_t id[KAD_ID_LEN], id_b[KAD_ID_LEN];
    CHECK_RES(kad_node_id(b, id_b, sizeof id_b), KAD_OK);
    CHECK_RES(kad_node_ping(a, addr_b, TIMEOUT, id, sizeof id), KAD_OK);
    CHECK(memcmp(id, id_b, KAD_ID_LEN) == 0);
    CHECK_RES(kad_node_ping(a, addr_b, TIMEOUT, NULL, 0), KAD_OK);
    CHECK_RES(kad_node_ping(a, addr_gone, TIMEOUT, id, sizeof id), KAD_TIMEOUT);
    /* our own limit (50 ms) expires before the RPC timeout (300 ms) */
    CHECK_RES(kad_node_ping(a, addr_gone, 50, NULL, 0), KAD_TIMEOUT);
    CHECK(strstr(detail(), "50 ms") != NULL);
    CHECK_RES(kad_node_ping(a, addr_b, TIMEOUT, id, 3), KAD_BUFFER_TOO_SMALL);
    CHECK_RES(kad_node_ping(a, NULL, TIMEOUT, NULL, 0), KAD_NULL_POINTER);
    CHECK_RES(kad_node_ping(a, "nonsense", TIMEOUT, NULL, 0), KAD_BAD_ADDRESS);

    /* join: b and c bootstrap from a */
    const char *via_a[] = {addr_a};
    CHECK_RES(kad_node_bootstrap(b, via_a, 1, TIMEOUT, &contacts), KAD_OK);
    CHECK(contacts >= 1);
    CHECK_RES(kad_node_bootstrap(c, via_a, 1, TIMEOUT, NULL), KAD_OK);

    /* put through b, get through c (byte keys, binary values) */
    const uint8_t value[] = {0, 1, 2, 0xff, 'x', 0};
    size_t stored = 0;
    CHECK_RES(kad_node_put(b, KEY("binary"), value, sizeof value, 0, TIMEOUT, &stored), KAD_OK);
    CHECK(stored >= 1 && stored <= 3);
    CHECK_RES(kad_node_get(c, KEY("binary"), TIMEOUT, &v), KAD_OK);
    const uint8_t *data = NULL;
    size_t len = 0;
    CHECK(kad_value_get_type(v) == KAD_VALUE_TYPE_BYTES);
    CHECK_RES(kad_value_bytes(v, &data, &len), KAD_OK);
    CHECK(len == sizeof value && memcmp(data, value, len) == 0 && data[len] == 0);
    /* accessors of other types refuse, and leave their out-parameters alone */
    int64_t i = 7;
    uint64_t u = 7;
    double f = 7;
    bool bo = true;
    CHECK_RES(kad_value_int(v, &i), KAD_WRONG_TYPE);
    CHECK_RES(kad_value_uint(v, &u), KAD_WRONG_TYPE);
    CHECK_RES(kad_value_float(v, &f), KAD_WRONG_TYPE);
    CHECK_RES(kad_value_bool(v, &bo), KAD_WRONG_TYPE);
    CHECK(i == 7 && u == 7 && f == 7 && bo);
    CHECK_RES(kad_value_int(v, NULL), KAD_NULL_POINTER);
    CHECK_RES(kad_value_uint(v, NULL), KAD_NULL_POINTER);
    CHECK_RES(kad_value_float(v, NULL), KAD_NULL_POINTER);
    CHECK_RES(kad_value_bool(v, NULL), KAD_NULL_POINTER);
    CHECK_RES(kad_value_bytes(v, NULL, &len), KAD_NULL_POINTER);
    CHECK_RES(kad_value_bytes(v, &data, NULL), KAD_NULL_POINTER);
    CHECK_RES(kad_value_int(NULL, &i), KAD_NULL_POINTER);
    CHECK_RES(kad_value_uint(NULL, &u), KAD_NULL_POINTER);
    CHECK_RES(kad_value_float(NULL, &f), KAD_NULL_POINTER);
    CHECK_RES(kad_value_bool(NULL, &bo), KAD_NULL_POINTER);
    CHECK_RES(kad_value_bytes(NULL, &data, &len), KAD_NULL_POINTER);
    CHECK(kad_value_get_type(NULL) == KAD_VALUE_TYPE_NONE);
    {
        /* Scalars have accessors of their own; msgpack is for nil, lists, maps. */
        kad_value *scalar = kad_value_new_int(7);
        const uint8_t *packed = NULL;
        size_t packed_len = 0;
        CHECK(scalar != NULL);
        CHECK_RES(kad_value_msgpack(scalar, &packed, &packed_len), KAD_WRONG_TYPE);
        CHECK_RES(kad_value_msgpack(NULL, &packed, &packed_len), KAD_NULL_POINTER);
        CHECK_RES(kad_value_msgpack(scalar, NULL, &packed_len), KAD_NULL_POINTER);
        kad_value_free(scalar);
    }
    kad_value_free(v);
    kad_value_free(NULL);
    v = NULL;

    /* empty value, TTL, digest keys */
    CHECK_RES(kad_node_put(b, KEY("empty"), NULL, 0, 60, TIMEOUT, NULL), KAD_OK);
    CHECK_RES(kad_node_get(a, KEY("empty"), TIMEOUT, &v), KAD_OK);
    CHECK_RES(kad_value_bytes(v, &data, &len), KAD_OK);
    CHECK(len == 0 && data != NULL && data[0] == 0);
    kad_value_free(v);
    v = NULL;
    uint8_t digest[KAD_ID_LEN];
    CHECK_RES(kad_key_digest(KEY("by-digest"), digest, sizeof digest), KAD_OK);
    CHECK_RES(kad_node_put_digest(c, digest, sizeof digest, KEY("dv"), 0, TIMEOUT, &stored), KAD_OK);
    CHECK_RES(kad_node_get(a, KEY("by-digest"), TIMEOUT, &v), KAD_OK); /* same key both ways */
    CHECK_RES(kad_value_bytes(v, &data, &len), KAD_OK);
    CHECK(len == 2 && memcmp(data, "dv", 2) == 0);
    kad_value_free(v);
    v = NULL;
    CHECK_RES(kad_node_get_digest(b, digest, sizeof digest, TIMEOUT, &v), KAD_OK);
    kad_value_free(v);
    v = NULL;

    /* put/get error paths */
    CHECK_RES(kad_node_put(b, (const uint8_t *)"", 0, KEY("v"), 0, TIMEOUT, NULL), KAD_INVALID_ARGUMENT);
    CHECK_RES(kad_node_put(b, NULL, 3, KEY("v"), 0, TIMEOUT, NULL), KAD_NULL_POINTER);
    CHECK_RES(kad_node_put(b, KEY("k"), NULL, 3, 0, TIMEOUT, NULL), KAD_NULL_POINTER);
    CHECK_RES(kad_node_put(NULL, KEY("k"), KEY("v"), 0, TIMEOUT, NULL), KAD_NULL_POINTER);
    size_t huge_len = 8138; /* default max value size is 8137 (DEFAULT_MAX_VALUE_SIZE) */
    uint8_t *huge = calloc(huge_len, 1);
    CHECK_RES(kad_node_put(b, KEY("huge"), huge, huge_len, 0, TIMEOUT, NULL), KAD_VALUE_TOO_LARGE);
    CHECK_RES(kad_node_put(b, KEY("fits"), huge, huge_len - 1, 0, TIMEOUT, NULL), KAD_OK);
    free(huge);
    CHECK_RES(kad_node_put_digest(b, digest, KAD_ID_LEN - 1, KEY("v"), 0, TIMEOUT, NULL), KAD_INVALID_ARGUMENT);
    CHECK_RES(kad_node_put_digest(b, NULL, KAD_ID_LEN, KEY("v"), 0, TIMEOUT, NULL), KAD_NULL_POINTER);
    CHECK_RES(kad_node_get(c, KEY("missing"), TIMEOUT, &v), KAD_NOT_FOUND);
    CHECK(v == NULL);
    CHECK(strstr(detail(), "not found") != NULL);
    CHECK_RES(kad_node_get(c, (const uint8_t *)"", 0, TIMEOUT, &v), KAD_INVALID_ARGUMENT);
    CHECK_RES(kad_node_get(c, KEY("binary"), TIMEOUT, NULL), KAD_NULL_POINTER);
    CHECK_RES(kad_node_get(NULL, KEY("binary"), TIMEOUT, &v), KAD_NULL_POINTER);
    CHECK_RES(kad_node_get_digest(c, digest, 21, TIMEOUT, &v), KAD_INVALID_ARGUMENT);
    CHECK_RES(kad_node_get_digest(c, NULL, KAD_ID_LEN, TIMEOUT, &v), KAD_NULL_POINTER);
    /* a missing digest is a NULL pointer, not a wrong length, even with length 0 */
    CHECK_RES(kad_node_get_digest(c, NULL, 0, TIMEOUT, &v), KAD_NULL_POINTER);
    CHECK_RES(kad_node_get_digest(c, digest, KAD_ID_LEN, TIMEOUT, NULL), KAD_NULL_POINTER);
    CHECK(v == NULL);

    /* ---- typed puts: what Python peers store ---- */
    {
        kad_value *vi = kad_value_new_int(-42), *vf = kad_value_new_float(2.5), *vb = kad_value_new_bool(true);
        kad_value *vs = NULL, *vy = NULL, *got = NULL;
        CHECK_RES(kad_value_new_str("h\xc3\xa9llo", 6, &vs), KAD_OK);
        CHECK_RES(kad_value_new_bytes((const uint8_t *)"\0\1", 2, &vy), KAD_OK);
        CHECK_RES(kad_value_new_str("\xff", 1, &got), KAD_INVALID_ARGUMENT); /* not UTF-8 */
        CHECK(got == NULL);
        CHECK_RES(kad_value_new_str(NULL, 3, &got), KAD_NULL_POINTER);
        CHECK_RES(kad_value_new_bytes(NULL, 0, NULL), KAD_NULL_POINTER);
        CHECK_RES(kad_node_put_value(b, KEY("t-int"), vi, 0, TIMEOUT, &stored), KAD_OK);
        CHECK_RES(kad_node_put_value(b, KEY("t-float"), vf, 0, TIMEOUT, NULL), KAD_OK);
        CHECK_RES(kad_node_put_value(b, KEY("t-bool"), vb, 0, TIMEOUT, NULL), KAD_OK);
        CHECK_RES(kad_node_put_value(b, KEY("t-str"), vs, 0, TIMEOUT, NULL), KAD_OK);
        struct done pd;
        done_init(&pd, NULL);
        CHECK_RES(kad_node_put_value_async(b, KEY("t-bytes"), vy, 0, TIMEOUT, on_put, &pd, NULL), KAD_OK);
        kad_value_free(vy); /* copied by the call */
        CHECK(done_wait(&pd) && pd.result == KAD_OK && pd.count >= 1);
        done_destroy(&pd);
        CHECK_RES(kad_node_put_value(b, KEY("t-int"), NULL, 0, TIMEOUT, NULL), KAD_NULL_POINTER);
        CHECK_RES(kad_node_put_value_async(b, KEY("t-int"), NULL, 0, TIMEOUT, NULL, NULL, NULL), KAD_NULL_POINTER);
        int64_t gi = 0;
        double gf = 0;
        bool gb = false;
        CHECK_RES(kad_node_get(c, KEY("t-int"), TIMEOUT, &got), KAD_OK);
        CHECK(kad_value_get_type(got) == KAD_VALUE_TYPE_INT && kad_value_int(got, &gi) == KAD_OK && gi == -42);
        kad_value_free(got);
        CHECK_RES(kad_node_get(c, KEY("t-float"), TIMEOUT, &got), KAD_OK);
        CHECK(kad_value_float(got, &gf) == KAD_OK && gf == 2.5);
        kad_value_free(got);
        CHECK_RES(kad_node_get(c, KEY("t-bool"), TIMEOUT, &got), KAD_OK);
        CHECK(kad_value_bool(got, &gb) == KAD_OK && gb);
        kad_value_free(got);
        CHECK_RES(kad_node_get(c, KEY("t-str"), TIMEOUT, &got), KAD_OK);
        CHECK(kad_value_get_type(got) == KAD_VALUE_TYPE_STR);
        CHECK(kad_value_bytes(got, &data, &len) == KAD_OK && len == 6 && strcmp((const char *)data, "h\xc3\xa9llo") == 0);
        kad_value_free(got);
        CHECK_RES(kad_node_get(c, KEY("t-bytes"), TIMEOUT, &got), KAD_OK);
        CHECK(kad_value_get_type(got) == KAD_VALUE_TYPE_BYTES && kad_value_bytes(got, &data, &len) == KAD_OK && len == 2);
        kad_value_free(got);
        kad_value_free(vi);
        kad_value_free(vf);
        kad_value_free(vb);
        kad_value_free(vs);
    }

    /* ---- asynchronous twins ---- */
    struct done d;
    kad_node *lone = start_node();
    done_init(&d, NULL);
    CHECK_RES(kad_node_bootstrap_async(lone, via_a, 1, TIMEOUT, on_bootstrap, &d, NULL), KAD_OK);
    CHECK(done_wait(&d) && d.result == KAD_OK && d.count >= 1);
    CHECK(!pthread_equal(d.thread, pthread_self()));
    done_destroy(&d);

    done_init(&d, NULL);
    CHECK_RES(kad_node_bootstrap_async(lone, nobody, 1, TIMEOUT, on_bootstrap, &d, NULL), KAD_OK);
    CHECK(done_wait(&d));
    /* lone already knows a, b and c, which also seed the lookup */
    CHECK(d.result == KAD_OK);
    done_destroy(&d);

    done_init(&d, NULL);
    CHECK_RES(kad_node_put_async(lone, KEY("async"), KEY("av"), 0, TIMEOUT, on_put, &d, NULL), KAD_OK);
    CHECK(done_wait(&d) && d.result == KAD_OK && d.count >= 1);
    done_destroy(&d);

    done_init(&d, NULL);
    CHECK_RES(kad_node_put_digest_async(lone, digest, sizeof digest, KEY("dv2"), 0, TIMEOUT, on_put, &d, NULL), KAD_OK);
    CHECK(done_wait(&d) && d.result == KAD_OK);
    done_destroy(&d);

    /* get: the callback owns the value; a blocking call inside it is refused */
    done_init(&d, a);
    CHECK_RES(kad_node_get_async(a, KEY("async"), TIMEOUT, on_get, &d, NULL), KAD_OK);
    CHECK(done_wait(&d) && d.result == KAD_OK && d.value != NULL);
    CHECK(d.nested == KAD_WRONG_THREAD);
    CHECK(kad_value_bytes(d.value, &data, &len) == KAD_OK && len == 2 && memcmp(data, "av", 2) == 0);
    kad_value_free(d.value);
    done_destroy(&d);

    done_init(&d, NULL);
    CHECK_RES(kad_node_get_digest_async(b, digest, sizeof digest, TIMEOUT, on_get, &d, NULL), KAD_OK);
    CHECK(done_wait(&d) && d.result == KAD_OK);
    CHECK(kad_value_bytes(d.value, &data, &len) == KAD_OK && len == 3 && memcmp(data, "dv2", 3) == 0);
    kad_value_free(d.value);
    done_destroy(&d);

    done_init(&d, NULL);
    CHECK_RES(kad_node_get_async(c, KEY("missing"), TIMEOUT, on_get, &d, NULL), KAD_OK);
    CHECK(done_wait(&d) && d.result == KAD_NOT_FOUND && d.value == NULL);
    CHECK(strstr(d.detail, "not found") != NULL); /* detail visible inside the callback */
    done_destroy(&d);

    done_init(&d, NULL);
    CHECK_RES(kad_node_ping_async(a, addr_b, TIMEOUT, on_ping, &d, NULL), KAD_OK);
    CHECK(done_wait(&d) && d.result == KAD_OK && d.count == KAD_ID_LEN);
    CHECK(memcmp(d.id, id_b, KAD_ID_LEN) == 0);
    done_destroy(&d);

    done_init(&d, NULL);
    CHECK_RES(kad_node_ping_async(a, addr_gone, 50, on_ping, &d, NULL), KAD_OK);
    CHECK(done_wait(&d) && d.result == KAD_TIMEOUT && d.count == 0);
    done_destroy(&d);

    /* NULL callback: fire and forget */
    CHECK_RES(kad_node_put_async(b, KEY("forgotten"), KEY("fv"), 0, TIMEOUT, NULL, NULL, NULL), KAD_OK);
    CHECK_RES(kad_node_get_async(b, KEY("binary"), TIMEOUT, NULL, NULL, NULL), KAD_OK);
    int found = 0;
    for (int tries = 0; tries < 100 && !found; tries++) {
        if (kad_node_get(c, KEY("forgotten"), TIMEOUT, &v) == KAD_OK) found = 1;
        else sleep_ms(50);
        kad_value_free(v);
        v = NULL;
    }
    CHECK(found);

    /* argument errors are returned at once and the callback never runs */
    done_init(&d, NULL);
    CHECK_RES(kad_node_put_async(b, (const uint8_t *)"", 0, KEY("v"), 0, TIMEOUT, on_put, &d, NULL), KAD_INVALID_ARGUMENT);
    CHECK_RES(kad_node_put_async(NULL, KEY("k"), KEY("v"), 0, TIMEOUT, on_put, &d, NULL), KAD_NULL_POINTER);
    CHECK_RES(kad_node_put_digest_async(b, digest, 3, KEY("v"), 0, TIMEOUT, on_put, &d, NULL), KAD_INVALID_ARGUMENT);
    static uint8_t big[65001];
    CHECK_RES(kad_node_put_async(b, KEY("k"), big, sizeof big, 0, TIMEOUT, on_put, &d, NULL), KAD_VALUE_TOO_LARGE);
    CHECK_RES(kad_node_get_async(b, NULL, 1, TIMEOUT, on_get, &d, NULL), KAD_NULL_POINTER);
    CHECK_RES(kad_node_get_digest_async(b, digest, 0, TIMEOUT, on_get, &d, NULL), KAD_INVALID_ARGUMENT);
    CHECK_RES(kad_node_bootstrap_async(b, bad, 1, TIMEOUT, on_bootstrap, &d, NULL), KAD_BAD_ADDRESS);
    CHECK_RES(kad_node_bootstrap_async(NULL, via_a, 1, TIMEOUT, on_bootstrap, &d, NULL), KAD_NULL_POINTER);
    CHECK_RES(kad_node_ping_async(b, NULL, TIMEOUT, on_ping, &d, NULL), KAD_NULL_POINTER);
    CHECK_RES(kad_node_ping_async(NULL, addr_a, TIMEOUT, on_ping, &d, NULL), KAD_NULL_POINTER);
    sleep_ms(200);
    CHECK(d.calls == 0);
    done_destroy(&d);

    /* freeing a node with an operation in flight: its callback still runs once */
    kad_node *doomed = start_node();
    done_init(&d, NULL);
    CHECK_RES(kad_node_ping_async(doomed, addr_gone, 0, on_ping, &d, NULL), KAD_OK);
    kad_node_free(doomed);
    CHECK(done_wait(&d));
    CHECK(d.result == KAD_SHUT_DOWN);
    sleep_ms(400); /* past the RPC timeout: a second call would have come by now */
    CHECK(d.calls == 1);
    done_destroy(&d);

    test_slow_callbacks(a, b);

    /* ---- statistics ---- */
    kad_stats *s = NULL;
    CHECK_RES(kad_node_stats(a, &s), KAD_OK);
    uint64_t sent = 0, received = 0, count = 0;
    CHECK_RES(kad_stats_get(s, KAD_STAT_DATAGRAMS_SENT, &sent), KAD_OK);
    CHECK_RES(kad_stats_get(s, KAD_STAT_DATAGRAMS_RECEIVED, &received), KAD_OK);
    CHECK(sent > 0 && received > 0);
    CHECK_RES(kad_stats_get(s, KAD_STAT_CONTACTS, &count), KAD_OK);
    CHECK(count >= 3);
    for (uint32_t k = 0; k <= KAD_STAT_PING_MAX_US; k++) {
        CHECK(kad_stat_name(k) != NULL);
        CHECK_RES(kad_stats_get(s, k, &count), KAD_OK);
    }
    CHECK(strcmp(kad_stat_name(KAD_STAT_RPC_TIMEOUTS), "rpc_timeouts") == 0);
    CHECK(kad_stat_name(999) == NULL);
    CHECK_RES(kad_stats_get(s, 999, &count), KAD_INVALID_ARGUMENT);
    CHECK_RES(kad_stats_get(s, 0, NULL), KAD_NULL_POINTER);
    CHECK_RES(kad_stats_get(NULL, 0, &count), KAD_NULL_POINTER);
    kad_stats_free(s);
    kad_stats_free(NULL);
    /* per-operation latency: c did gets, b puts, a pings */
    uint64_t n_ok = 0, mean = 0, max = 0;
    CHECK_RES(kad_node_stats(c, &s), KAD_OK);
    CHECK_RES(kad_stats_get(s, KAD_STAT_GETS_SUCCEEDED, &n_ok), KAD_OK);
    CHECK_RES(kad_stats_get(s, KAD_STAT_GET_MEAN_US, &mean), KAD_OK);
    CHECK_RES(kad_stats_get(s, KAD_STAT_GET_MAX_US, &max), KAD_OK);
    CHECK(n_ok >= 5 && mean > 0 && max >= mean);
    printf("stats: node c: %llu gets succeeded, mean %llu us, max %llu us\n", (unsigned long long)n_ok,
           (unsigned long long)mean, (unsigned long long)max);
    kad_stats_free(s);
    CHECK_RES(kad_node_stats(b, &s), KAD_OK);
    CHECK_RES(kad_stats_get(s, KAD_STAT_PUTS_SUCCEEDED, &n_ok), KAD_OK);
    CHECK(n_ok >= 5);
    kad_stats_free(s);
    CHECK_RES(kad_node_stats(a, &s), KAD_OK);
    CHECK_RES(kad_stats_get(s, KAD_STAT_PINGS_SUCCEEDED, &n_ok), KAD_OK);
    CHECK_RES(kad_stats_get(s, KAD_STAT_PING_MEAN_US, &mean), KAD_OK);
    CHECK(n_ok >= 2 && mean > 0);
    CHECK(strcmp(kad_stat_name(KAD_STAT_GET_MEAN_US), "get_mean_us") == 0);
    kad_stats_free(s);
    kad_stats *unset = NULL;
    CHECK_RES(kad_node_stats(NULL, &unset), KAD_NULL_POINTER);
    CHECK_RES(kad_node_stats(a, NULL), KAD_NULL_POINTER);
    CHECK(unset == NULL);

    /* ---- routing table export / import ---- */
    kad_routing_table *t = NULL, *parsed = NULL;
    CHECK_RES(kad_node_export_routing_table(a, &t), KAD_OK);
    size_t rows = kad_routing_table_len(t);
    CHECK(rows >= 3);
    CHECK(kad_routing_table_len(NULL) == 0);
    char addr[64];
    CHECK_RES(kad_routing_table_contact(t, 0, id, sizeof id, addr, sizeof addr), KAD_OK);
    CHECK(strncmp(addr, "127.0.0.1:", 10) == 0);
    CHECK_RES(kad_routing_table_contact(t, rows, id, sizeof id, addr, sizeof addr), KAD_INVALID_ARGUMENT);
    CHECK_RES(kad_routing_table_contact(t, 0, id, sizeof id, addr, 5), KAD_BUFFER_TOO_SMALL);
    CHECK_RES(kad_routing_table_contact(t, 0, id, 5, addr, sizeof addr), KAD_BUFFER_TOO_SMALL);
    CHECK_RES(kad_routing_table_contact(t, 0, id, sizeof id, NULL, sizeof addr), KAD_NULL_POINTER);
    CHECK_RES(kad_routing_table_contact(NULL, 0, id, sizeof id, addr, sizeof addr), KAD_NULL_POINTER);
    const uint8_t *text = NULL;
    size_t text_len = 0;
    CHECK_RES(kad_routing_table_serialize(t, &text, &text_len), KAD_OK);
    CHECK(text_len > 0 && text[text_len] == 0 && text[text_len - 1] == '\n');
    CHECK_RES(kad_routing_table_serialize(NULL, &text, &text_len), KAD_NULL_POINTER);
    CHECK_RES(kad_routing_table_serialize(t, NULL, &text_len), KAD_NULL_POINTER);
    CHECK_RES(kad_routing_table_parse(text, text_len, &parsed), KAD_OK);
    CHECK(kad_routing_table_len(parsed) == rows);
    kad_node *fresh = start_node();
    size_t added = 0;
    CHECK_RES(kad_node_import_routing_table(fresh, parsed, &added), KAD_OK);
    CHECK(added == rows);
    CHECK_RES(kad_node_import_routing_table(fresh, parsed, NULL), KAD_OK);
    CHECK_RES(kad_node_import_routing_table(fresh, NULL, &added), KAD_NULL_POINTER);
    CHECK_RES(kad_node_import_routing_table(NULL, parsed, &added), KAD_NULL_POINTER);
    CHECK_RES(kad_node_bootstrap(fresh, NULL, 0, TIMEOUT, NULL), KAD_OK); /* from the imported table */
    CHECK_RES(kad_node_get(fresh, KEY("binary"), TIMEOUT, &v), KAD_OK);
    kad_value_free(v);
    v = NULL;
    kad_node_free(fresh);
    kad_routing_table_free(parsed);
    parsed = NULL;
    const char *garbage = "# comment\n\nnot-an-id 127.0.0.1:1\n";
    CHECK_RES(kad_routing_table_parse((const uint8_t *)garbage, strlen(garbage), &parsed), KAD_INVALID_ARGUMENT);
    CHECK(parsed == NULL && strstr(detail(), "line 3") != NULL);
    /* forty characters a byte-pair parser would take as signed hex ("+1" = 1) */
    const char *signed_hex = "+1+1+1+1+1+1+1+1+1+1+1+1+1+1+1+1+1+1+1+1 127.0.0.1:1\n";
    CHECK_RES(kad_routing_table_parse((const uint8_t *)signed_hex, strlen(signed_hex), &parsed), KAD_INVALID_ARGUMENT);
    CHECK(parsed == NULL && strstr(detail(), "line 1") != NULL);
    /* text that is not UTF-8: the detail names the line, as for other bad lines */
    const char not_utf8[] = "# saved\n0000000000000000000000000000000000000001 10.0.0.\xff:1\n";
    CHECK_RES(kad_routing_table_parse((const uint8_t *)not_utf8, strlen(not_utf8), &parsed), KAD_INVALID_ARGUMENT);
    CHECK(parsed == NULL && strstr(detail(), "line 2") != NULL);
    /* contacts of the other IP family than the node's socket are skipped on
     * import, as port 0 ones are (ping refuses them with KAD_BAD_ADDRESS) */
    const char *other_family = "0000000000000000000000000000000000000002 [::1]:5\n"
                               "0000000000000000000000000000000000000003 127.0.0.1:0\n"
                               "0000000000000000000000000000000000000004 127.0.0.1:5\n";
    CHECK_RES(kad_routing_table_parse((const uint8_t *)other_family, strlen(other_family), &parsed), KAD_OK);
    CHECK(kad_routing_table_len(parsed) == 3);
    kad_node *v4_only = start_node();
    added = 99;
    CHECK_RES(kad_node_import_routing_table(v4_only, parsed, &added), KAD_OK);
    CHECK(added == 1);
    kad_routing_table *kept = NULL;
    CHECK_RES(kad_node_export_routing_table(v4_only, &kept), KAD_OK);
    CHECK(kad_routing_table_len(kept) == 1);
    kad_routing_table_free(kept);
    kad_node_free(v4_only);
    kad_routing_table_free(parsed);
    parsed = NULL;
    CHECK_RES(kad_routing_table_parse(NULL, 0, &parsed), KAD_OK); /* empty table */
    CHECK(kad_routing_table_len(parsed) == 0);
    kad_routing_table_free(parsed);
    CHECK_RES(kad_routing_table_parse(NULL, 3, &parsed), KAD_NULL_POINTER);
    CHECK_RES(kad_routing_table_parse((const uint8_t *)"", 0, NULL), KAD_NULL_POINTER);
    CHECK_RES(kad_node_export_routing_table(NULL, &t), KAD_NULL_POINTER);
    CHECK_RES(kad_node_export_routing_table(a, NULL), KAD_NULL_POINTER);
    kad_routing_table_free(t);
    kad_routing_table_free(NULL);

    kad_node_free(lone);
    kad_node_free(c);
    kad_node_free(b);
    kad_node_free(a);
}

/* ---- many threads on shared nodes ---------------------------------------- */

struct worker {
    kad_node *put_node, *get_node;
    int index, ok;
};

static void *worker_main(void *arg) {
    struct worker *w = arg;
    for (int i = 0; i < 5; i++) {
        char key[32], val[32];
        snprintf(key, sizeof key, "thread-%d-%d", w->index, i);
        snprintf(val, sizeof val, "value-%d-%d", w->index, i);
        kad_value *v = NULL;
        const uint8_t *data = NULL;
        size_t len = 0;
        if (kad_node_put(w->put_node, KEY(key), KEY(val), 0, TIMEOUT, NULL) == KAD_OK &&
            kad_node_get(w->get_node, KEY(key), TIMEOUT, &v) == KAD_OK &&
            kad_value_bytes(v, &data, &len) == KAD_OK && len == strlen(val) &&
            memcmp(data, val, len) == 0)
            w->ok++;
        kad_value_free(v);
    }
    return NULL;
}

static void test_threads(void) {
    kad_node *n[3] = {start_node(), start_node(), start_node()};
    char addr[32];
    addr_of(n[0], addr, sizeof addr);
    const char *via[] = {addr};
    CHECK_RES(kad_node_bootstrap(n[1], via, 1, TIMEOUT, NULL), KAD_OK);
    CHECK_RES(kad_node_bootstrap(n[2], via, 1, TIMEOUT, NULL), KAD_OK);
    enum { THREADS = 4 };
    pthread_t t[THREADS];
    struct worker w[THREADS];
    for (int i = 0; i < THREADS; i++) {
        w[i] = (struct worker){n[i % 3], n[(i + 1) % 3], i, 0};
        CHECK(pthread_create(&t[i], NULL, worker_main, &w[i]) == 0);
    }
    for (int i = 0; i < THREADS; i++) {
        pthread_join(t[i], NULL);
        CHECK(w[i].ok == 5);
    }
    for (int i = 0; i < 3; i++) kad_node_free(n[i]);
}

/* ---- logging callback ---------------------------------------------------- */

struct logs {
    pthread_mutex_t mu;
    int count, node_started, bad_level;
};

static void on_log(void *ud, kad_log_level level, const char *target, const char *message) {
    struct logs *l = ud;
    pthread_mutex_lock(&l->mu);
    l->count++;
    if (strncmp(target, "dht_core", 8) == 0 && strstr(message, "node started") != NULL) l->node_started++;
    if (level < KAD_LOG_LEVEL_ERROR || level > KAD_LOG_LEVEL_DEBUG) l->bad_level++;
    pthread_mutex_unlock(&l->mu);
}

static void test_logging(void) {
    struct logs l;
    memset(&l, 0, sizeof l);
    pthread_mutex_init(&l.mu, NULL);
    CHECK_RES(kad_set_log_callback(on_log, &l, KAD_LOG_LEVEL_DEBUG), KAD_OK);
    kad_node *n = start_node();
    kad_node_free(n);
    CHECK_RES(kad_set_log_callback(NULL, NULL, KAD_LOG_LEVEL_OFF), KAD_OK);
    pthread_mutex_lock(&l.mu);
    int seen = l.count;
    CHECK(l.node_started == 1 && seen >= 1 && l.bad_level == 0);
    pthread_mutex_unlock(&l.mu);
    n = start_node(); /* no callback any more: nothing reaches it */
    kad_node_free(n);
    CHECK(l.count == seen);
    CHECK_RES(kad_set_log_callback(on_log, &l, 6), KAD_INVALID_ARGUMENT);
    pthread_mutex_destroy(&l.mu);
}

/* kad_node_shutdown waits, so from a log callback (a worker thread) it is
 * refused with KAD_WRONG_THREAD and does nothing: the node goes on serving.
 * (It used to refuse but shut the node down all the same.) */
struct shutdown_in_log {
    pthread_mutex_t mu;
    kad_node *node;
    int tried;
    kad_result result;
};

static void on_log_shutdown(void *ud, kad_log_level level, const char *target, const char *message) {
    (void)level;
    (void)target;
    struct shutdown_in_log *l = ud;
    if (strstr(message, "node started") == NULL) return;
    pthread_mutex_lock(&l->mu);
    if (l->node != NULL && !l->tried) {
        l->tried = 1;
        l->result = kad_node_shutdown(l->node);
    }
    pthread_mutex_unlock(&l->mu);
}

static void test_shutdown_in_log_callback(void) {
    struct shutdown_in_log l;
    memset(&l, 0, sizeof l);
    pthread_mutex_init(&l.mu, NULL);
    kad_node *a = start_node(), *b = start_node();
    char b_addr[32];
    addr_of(b, b_addr, sizeof b_addr);
    pthread_mutex_lock(&l.mu);
    l.node = a;
    pthread_mutex_unlock(&l.mu);
    CHECK_RES(kad_set_log_callback(on_log_shutdown, &l, KAD_LOG_LEVEL_DEBUG), KAD_OK);
    kad_node *c = start_node(); /* logs "node started" */
    CHECK_RES(kad_set_log_callback(NULL, NULL, KAD_LOG_LEVEL_OFF), KAD_OK);
    pthread_mutex_lock(&l.mu);
    CHECK(l.tried == 1 && l.result == KAD_WRONG_THREAD);
    pthread_mutex_unlock(&l.mu);
    CHECK_RES(kad_node_ping(a, b_addr, TIMEOUT, NULL, 0), KAD_OK); /* still running */
    kad_node_free(c);
    kad_node_free(b);
    kad_node_free(a);
    pthread_mutex_destroy(&l.mu);
}

/* A log callback that reads the node which is logging. The node logs
 * "dropped datagram" while it holds its state's lock; a read of that state
 * from there waited for the lock on the thread holding it (a hang, first;
 * then KAD_WRONG_THREAD). The callback now gets the message once the lock is
 * released, so the reads answer. */
struct reading_logs {
    pthread_mutex_t mu;
    kad_node *node;
    int dropped_seen, stats_res, address_res, export_res;
    uint64_t dropped_then;
};

static void on_log_read_node(void *ud, kad_log_level level, const char *target, const char *message) {
    (void)level;
    (void)target;
    struct reading_logs *l = ud;
    if (strstr(message, "dropped datagram") == NULL) return;
    kad_stats *st = NULL;
    int stats_res = (int)kad_node_stats(l->node, &st);
    uint64_t dropped = 0;
    if (st != NULL) kad_stats_get(st, KAD_STAT_DATAGRAMS_DROPPED, &dropped);
    kad_stats_free(st);
    char addr[64];
    size_t written = 0;
    int address_res = (int)kad_node_public_address(l->node, addr, sizeof addr, &written);
    kad_routing_table *table = NULL;
    int export_res = (int)kad_node_export_routing_table(l->node, &table);
    kad_routing_table_free(table);
    pthread_mutex_lock(&l->mu);
    l->dropped_seen++;
    l->stats_res = stats_res;
    l->address_res = address_res;
    l->export_res = export_res;
    l->dropped_then = dropped;
    pthread_mutex_unlock(&l->mu);
}

static void test_log_callback_reading_the_node(void) {
    /* A callback stuck on the node's lock would hang kad_set_log_callback
     * below: end the process instead (a failure, not a wedged run). */
    alarm(60);
    struct reading_logs l;
    memset(&l, 0, sizeof l);
    pthread_mutex_init(&l.mu, NULL);
    l.node = start_node();
    uint16_t port = 0;
    CHECK_RES(kad_node_port(l.node, &port), KAD_OK);
    CHECK_RES(kad_set_log_callback(on_log_read_node, &l, KAD_LOG_LEVEL_DEBUG), KAD_OK);
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    CHECK(s >= 0);
    struct sockaddr_in to;
    memset(&to, 0, sizeof to);
    to.sin_family = AF_INET;
    to.sin_port = htons(port);
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    const char garbage[] = "not a datagram of this protocol";
    CHECK(sendto(s, garbage, sizeof garbage, 0, (struct sockaddr *)&to, sizeof to) > 0);
    close(s);
    int seen = 0;
    for (int i = 0; i < 1000 && !seen; i++) {
        pthread_mutex_lock(&l.mu);
        seen = l.dropped_seen;
        pthread_mutex_unlock(&l.mu);
        if (!seen) sleep_ms(5);
    }
    CHECK_RES(kad_set_log_callback(NULL, NULL, KAD_LOG_LEVEL_OFF), KAD_OK);
    CHECK(seen == 1);
    CHECK(l.stats_res == KAD_OK);
    CHECK(l.dropped_then == 1); /* the state the message was about */
    CHECK(l.export_res == KAD_OK);
    /* The same answer as from here (a fresh node knows no public address yet). */
    char addr[64];
    size_t written = 0;
    CHECK(l.address_res == (int)kad_node_public_address(l.node, addr, sizeof addr, &written));
    kad_stats *st = NULL;
    CHECK_RES(kad_node_stats(l.node, &st), KAD_OK);
    uint64_t dropped = 0;
    CHECK_RES(kad_stats_get(st, KAD_STAT_DATAGRAMS_DROPPED, &dropped), KAD_OK);
    CHECK(dropped == 1);
    kad_stats_free(st);
    kad_node_free(l.node);
    pthread_mutex_destroy(&l.mu);
    alarm(0);
}

/* A node bound to `ip` (any address of 127.0.0.0/8 is loopback on Linux). */
static kad_node *start_node_at(const char *ip) {
    kad_config *c = kad_config_new();
    kad_node *n = NULL;
    CHECK_RES(kad_config_set_bind(c, ip, 0), KAD_OK);
    CHECK_RES(kad_config_set_rpc_timeout_ms(c, 2000), KAD_OK);
    CHECK_RES(kad_node_new(c, &n), KAD_OK);
    kad_config_free(c);
    return n;
}

/* kad_node_public_address: unknown until two peer IPs agree, then the
 * address the peers saw (here the loopback address and port it sends from). */
static void test_public_address(void) {
    kad_node *a = start_node_at("127.0.0.1");
    kad_node *b = start_node_at("127.0.0.2");
    kad_node *c = start_node_at("127.0.0.3");
    char buf[KAD_ADDRESS_MAX_LEN], via[64], want[64];
    size_t n = 12345;
    uint16_t port_a = 0, port_b = 0, port_c = 0;
    CHECK_RES(kad_node_port(a, &port_a), KAD_OK);
    CHECK_RES(kad_node_port(b, &port_b), KAD_OK);
    CHECK_RES(kad_node_port(c, &port_c), KAD_OK);

    memset(buf, 'x', sizeof buf);
    CHECK_RES(kad_node_public_address(a, buf, sizeof buf, &n), KAD_NOT_FOUND);
    CHECK(strstr(detail(), "2 peer IPs") != NULL);
    CHECK(buf[0] == 'x' && n == 12345); /* written only on success */

    snprintf(via, sizeof via, "127.0.0.2:%u", (unsigned)port_b);
    const char *via_b[] = {via};
    CHECK_RES(kad_node_bootstrap(a, via_b, 1, TIMEOUT, NULL), KAD_OK);
    CHECK_RES(kad_node_public_address(a, buf, sizeof buf, &n), KAD_NOT_FOUND); /* one peer IP */

    char via2[64];
    snprintf(via2, sizeof via2, "127.0.0.3:%u", (unsigned)port_c);
    const char *via_c[] = {via2};
    CHECK_RES(kad_node_bootstrap(a, via_c, 1, TIMEOUT, NULL), KAD_OK);
    snprintf(want, sizeof want, "127.0.0.1:%u", (unsigned)port_a);
    CHECK_RES(kad_node_public_address(a, buf, sizeof buf, &n), KAD_OK);
    CHECK(strcmp(buf, want) == 0 && n == strlen(want));
    CHECK_RES(kad_node_public_address(a, buf, sizeof buf, NULL), KAD_OK); /* written_out may be NULL */

    /* Exactly the length plus the NUL fits; one byte less is refused whole. */
    char exact[64];
    memset(exact, 'x', sizeof exact);
    CHECK_RES(kad_node_public_address(a, exact, strlen(want) + 1, &n), KAD_OK);
    CHECK(strcmp(exact, want) == 0);
    memset(exact, 'x', sizeof exact);
    CHECK_RES(kad_node_public_address(a, exact, strlen(want), &n), KAD_BUFFER_TOO_SMALL);
    CHECK(exact[0] == 'x' && strstr(detail(), "needs") != NULL);
    CHECK_RES(kad_node_public_address(a, NULL, 64, &n), KAD_NULL_POINTER);
    CHECK_RES(kad_node_public_address(NULL, buf, sizeof buf, &n), KAD_NULL_POINTER);

    kad_node_free(a);
    CHECK_RES(kad_node_public_address(a, buf, sizeof buf, &n), KAD_INVALID_HANDLE);
    kad_node_free(b);
    kad_node_free(c);
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    test_results_and_version();
    test_key_digest();
    test_config();
    test_node_lifecycle();
    test_network();
    test_threads();
    test_public_address();
    test_logging();
    test_log_callback_reading_the_node();
    test_shutdown_in_log_callback();
    printf("test_ffi: %d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}
