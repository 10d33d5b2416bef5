/*
 * test_lifecycle: the guarantees about a node's end, tried by attacking them.
 *
 *   - operations racing kad_node_free on other threads always return, and
 *     every accepted _async call gets exactly one callback (counted);
 *   - kad_node_free / kad_node_shutdown return only once the port is free;
 *   - kad_node_free_wait and kad_node_shutdown_async wait for callbacks;
 *   - fork(): a child gets KAD_FORKED, never a hang;
 *   - addresses that can never work fail at once with KAD_BAD_ADDRESS, and
 *     _async calls resolve host names later, not on the calling thread;
 *   - lengths above PTRDIFF_MAX are refused before anything reads them,
 *     or writes to an output buffer;
 *   - at most KAD_CALLBACK_THREADS callbacks run at once;
 *   - blocking calls work in an atexit handler (run after the summary), and are
 *     refused with KAD_WRONG_THREAD in one a callback's exit() runs.
 *
 *   test_lifecycle [ROUNDS [nofork]]   (default 40 rounds; run.sh uses fewer, and
 *                                       no fork test, under valgrind)
 * Ends with "test_lifecycle: N passed, M failed" and the race figures.
 */
#define _POSIX_C_SOURCE 200809L
#include <kadmium.h>

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int passed, failed;
static int rounds = 40;

#define CHECK(cond)                                                                  \
    do {                                                                             \
        if (cond) {                                                                  \
            passed++;                                                                \
        } else {                                                                     \
            failed++;                                                                \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
        }                                                                            \
    } while (0)

#define CHECK_RES(expr, want)                                                    \
    do {                                                                         \
        kad_result got_ = (expr);                                                \
        if (got_ == (want)) {                                                    \
            passed++;                                                            \
        } else {                                                                 \
            char d_[256];                                                        \
            kad_last_error_detail(d_, sizeof d_, NULL);                          \
            failed++;                                                            \
            fprintf(stderr, "%s:%d: %s = %s, want %s (detail: %s)\n", __FILE__, \
                    __LINE__, #expr, kad_result_str(got_), #want, d_);           \
        }                                                                        \
    } while (0)

#define KEY(s) (const uint8_t *)(s), strlen(s)

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static kad_node *node_at(const char *host, uint16_t port, uint32_t rpc_timeout_ms) {
    kad_config *c = kad_config_new();
    kad_node *n = NULL;
    CHECK_RES(kad_config_set_bind(c, host, port), KAD_OK);
    CHECK_RES(kad_config_set_rpc_timeout_ms(c, rpc_timeout_ms), KAD_OK);
    CHECK_RES(kad_node_new(c, &n), KAD_OK);
    kad_config_free(c);
    return n;
}

static uint16_t port_of(const kad_node *n) {
    uint16_t p = 0;
    CHECK_RES(kad_node_port(n, &p), KAD_OK);
    return p;
}

/* Wait up to `secs` for *counter >= want. */
static int wait_count(atomic_int *counter, int want, double secs) {
    double until = now_s() + secs;
    while (atomic_load(counter) < want && now_s() < until) sleep_ms(2);
    return atomic_load(counter) >= want;
}

/* ---- 1. blocking gets racing kad_node_free -------------------------------- */

struct racer {
    kad_node *node;
    atomic_int *finished;
    long calls;
    kad_result last;
};

static void *blocking_getter(void *arg) {
    struct racer *r = arg;
    kad_result res;
    /* timeout 0: only the node itself can end the call */
    do {
        kad_value *v = NULL;
        res = kad_node_get(r->node, KEY("race"), 0, &v);
        kad_value_free(v);
        r->calls++;
    } while (res == KAD_NOT_FOUND);
    r->last = res;
    atomic_fetch_add(r->finished, 1);
    return NULL;
}

static void test_blocking_calls_racing_free(void) {
    enum { THREADS = 3 };
    int hung = 0;
    long calls = 0;
    for (int round = 0; round < rounds; round++) {
        kad_node *n = node_at("127.0.0.1", 0, 300);
        atomic_int finished = 0;
        struct racer r[THREADS];
        pthread_t t[THREADS];
        for (int i = 0; i < THREADS; i++) {
            r[i] = (struct racer){n, &finished, 0, KAD_OK};
            CHECK(pthread_create(&t[i], NULL, blocking_getter, &r[i]) == 0);
        }
        sleep_ms(round % 5);
        kad_node_free(n);
        if (!wait_count(&finished, THREADS, 20)) {
            /* A hung thread cannot be joined or cancelled: report and stop. */
            hung += THREADS - atomic_load(&finished);
            fprintf(stderr, "round %d: %d blocking calls never returned\n", round, hung);
            CHECK(hung == 0);
            return;
        }
        for (int i = 0; i < THREADS; i++) {
            pthread_join(t[i], NULL);
            calls += r[i].calls;
            CHECK(r[i].last == KAD_SHUT_DOWN || r[i].last == KAD_INVALID_HANDLE);
        }
    }
    printf("race: %d rounds x %d threads of blocking gets racing kad_node_free: %ld calls, %d hung\n",
           rounds, THREADS, calls, hung);
    CHECK(hung == 0);
}

/* ---- 2. async calls racing kad_node_free: every callback exactly once ------ */

enum { ASYNC_CALLS = 300 };

struct tally {
    atomic_int calls[ASYNC_CALLS * 2];
    atomic_int total;
    atomic_int delay_ms; /* how long each callback sleeps */
};

struct slot {
    struct tally *tally;
    int index;
};

static void on_get_counted(void *ud, kad_result r, kad_value *v) {
    struct slot *s = ud;
    (void)r;
    kad_value_free(v);
    int delay = atomic_load(&s->tally->delay_ms);
    if (delay) sleep_ms(delay);
    atomic_fetch_add(&s->tally->calls[s->index], 1);
    atomic_fetch_add(&s->tally->total, 1);
}

struct async_racer {
    kad_node *node;
    struct tally *tally;
    struct slot *slots; /* ASYNC_CALLS of them, indexes ASYNC_CALLS.. */
    int accepted[ASYNC_CALLS];
    int n_accepted;
};

static void *async_caller(void *arg) {
    struct async_racer *a = arg;
    for (int i = 0; i < ASYNC_CALLS; i++) {
        kad_result r = kad_node_get_async(a->node, KEY("race"), 0, on_get_counted, &a->slots[i], NULL);
        a->accepted[i] = r == KAD_OK;
        a->n_accepted += r == KAD_OK;
        if (r != KAD_OK && r != KAD_SHUT_DOWN && r != KAD_INVALID_HANDLE) {
            fprintf(stderr, "async call refused with %s\n", kad_result_str(r));
            a->accepted[i] = -1;
        }
    }
    return NULL;
}

static void test_async_calls_racing_free(void) {
    long promised = 0, delivered = 0, doubled = 0, lost = 0;
    struct tally *tally = calloc(1, sizeof *tally);
    struct slot *slots = calloc(ASYNC_CALLS * 2, sizeof *slots);
    struct async_racer *other = calloc(1, sizeof *other);
    for (int i = 0; i < ASYNC_CALLS * 2; i++) slots[i] = (struct slot){tally, i};
    for (int round = 0; round < rounds; round++) {
        memset(tally, 0, sizeof *tally);
        memset(other, 0, sizeof *other);
        kad_node *n = node_at("127.0.0.1", 0, 300);
        /* 300 calls from this thread, then free while another thread keeps calling */
        *other = (struct async_racer){.node = n, .tally = tally, .slots = slots + ASYNC_CALLS};
        int mine = 0;
        for (int i = 0; i < ASYNC_CALLS; i++) {
            CHECK_RES(kad_node_get_async(n, KEY("race"), 0, on_get_counted, &slots[i], NULL), KAD_OK);
            mine++;
        }
        pthread_t t;
        CHECK(pthread_create(&t, NULL, async_caller, other) == 0);
        sleep_ms(round % 3);
        kad_node_free(n);
        pthread_join(t, NULL);
        int want = mine + other->n_accepted;
        promised += want;
        CHECK(wait_count(&tally->total, want, 20));
        sleep_ms(50); /* a second callback for any call would show up here */
        for (int i = 0; i < ASYNC_CALLS * 2; i++) {
            int expect = i < ASYNC_CALLS ? 1 : other->accepted[i - ASYNC_CALLS];
            int got = atomic_load(&tally->calls[i]);
            if (got > expect) doubled++;
            if (got < expect) lost++;
            CHECK(expect >= 0);
        }
        delivered += atomic_load(&tally->total);
    }
    printf("race: %d rounds of %d _async gets + a thread calling during kad_node_free: "
           "%ld callbacks promised, %ld delivered, %ld lost, %ld doubled\n",
           rounds, ASYNC_CALLS, promised, delivered, lost, doubled);
    CHECK(lost == 0 && doubled == 0 && delivered == promised);
    free(other);
    free(slots);
    free(tally);
}

/* ---- 3. waiting for callbacks ---------------------------------------------- */

struct shutdown_seen {
    atomic_int calls;
    atomic_int callbacks_before; /* tally total when the shutdown callback ran */
    struct tally *tally;
    kad_result result;
};

static void on_shutdown(void *ud, kad_result r) {
    struct shutdown_seen *s = ud;
    s->result = r;
    atomic_store(&s->callbacks_before, atomic_load(&s->tally->total));
    atomic_fetch_add(&s->calls, 1);
}

struct slow_shutdown {
    atomic_int returned;
};

static void on_shutdown_slowly(void *ud, kad_result r) {
    struct slow_shutdown *s = ud;
    (void)r;
    sleep_ms(50);
    atomic_store(&s->returned, 1);
}

static void test_waiting_for_callbacks(void) {
    struct tally *tally = calloc(1, sizeof *tally);
    struct slot *slots = calloc(ASYNC_CALLS, sizeof *slots);
    for (int i = 0; i < ASYNC_CALLS; i++) slots[i] = (struct slot){tally, i};

    /* kad_node_free_wait returns after the last callback returned */
    atomic_store(&tally->delay_ms, 1);
    kad_node *n = node_at("127.0.0.1", 0, 300);
    for (int i = 0; i < ASYNC_CALLS; i++)
        CHECK_RES(kad_node_get_async(n, KEY("drain"), 0, on_get_counted, &slots[i], NULL), KAD_OK);
    CHECK_RES(kad_node_free_wait(n, 0), KAD_OK);
    CHECK(atomic_load(&tally->total) == ASYNC_CALLS); /* no waiting here: all done */
    CHECK_RES(kad_node_free_wait(n, 0), KAD_INVALID_HANDLE);
    CHECK_RES(kad_node_free_wait(NULL, 0), KAD_NULL_POINTER);

    /* a timeout shorter than the callbacks: KAD_TIMEOUT, the handle is gone anyway */
    memset(tally, 0, sizeof *tally);
    atomic_store(&tally->delay_ms, 200);
    n = node_at("127.0.0.1", 0, 300);
    CHECK_RES(kad_node_get_async(n, KEY("slow"), 0, on_get_counted, &slots[0], NULL), KAD_OK);
    CHECK_RES(kad_node_free_wait(n, 20), KAD_TIMEOUT);
    uint16_t p;
    CHECK_RES(kad_node_port(n, &p), KAD_INVALID_HANDLE);
    CHECK(wait_count(&tally->total, 1, 20));

    /* kad_node_shutdown_async: its callback comes last, exactly once */
    memset(tally, 0, sizeof *tally);
    atomic_store(&tally->delay_ms, 1);
    struct shutdown_seen seen = {.tally = tally, .result = KAD_PANIC};
    n = node_at("127.0.0.1", 0, 300);
    uint16_t port = port_of(n);
    for (int i = 0; i < 100; i++)
        CHECK_RES(kad_node_get_async(n, KEY("drain"), 0, on_get_counted, &slots[i], NULL), KAD_OK);
    CHECK_RES(kad_node_shutdown_async(n, on_shutdown, &seen), KAD_OK);
    CHECK(wait_count(&seen.calls, 1, 20));
    CHECK(seen.result == KAD_OK && atomic_load(&seen.callbacks_before) == 100);
    /* after shutdown, _async calls are refused and never call back */
    CHECK_RES(kad_node_get_async(n, KEY("late"), 0, on_get_counted, &slots[200], NULL), KAD_SHUT_DOWN);
    /* the port is free once the shutdown callback ran */
    kad_node *again = node_at("127.0.0.1", port, 300);
    CHECK(again != NULL);
    kad_node_free(again);
    CHECK_RES(kad_node_shutdown_async(n, NULL, NULL), KAD_OK); /* again, NULL callback: fine */
    kad_node_free(n);
    sleep_ms(50);
    CHECK(atomic_load(&seen.calls) == 1 && atomic_load(&tally->calls[200]) == 0);

    /* kad_node_free_wait waits for a kad_node_shutdown_async callback too:
     * userdata freed after it is never used (it returned before the
     * callback ran, a use after free under ASan) */
    for (int i = 0; i < 5; i++) {
        struct slow_shutdown *slow = calloc(1, sizeof *slow);
        n = node_at("127.0.0.1", 0, 300);
        CHECK_RES(kad_node_shutdown_async(n, on_shutdown_slowly, slow), KAD_OK);
        CHECK_RES(kad_node_free_wait(n, 0), KAD_OK);
        CHECK(atomic_load(&slow->returned) == 1);
        free(slow);
    }
    free(slots);
    free(tally);
}

/* ---- 4. the port is free when free/shutdown return -------------------------- */

static void test_port_released(void) {
    int rebound = 0, tries = 50;
    for (int i = 0; i < tries; i++) {
        kad_node *n = node_at("127.0.0.1", 0, 300);
        uint16_t port = port_of(n);
        kad_node *m = NULL;
        kad_config *c = kad_config_new();
        CHECK_RES(kad_config_set_bind(c, "127.0.0.1", port), KAD_OK);
        if (i % 2 == 0) {
            kad_node_free(n);
            n = NULL;
        } else {
            CHECK_RES(kad_node_shutdown(n), KAD_OK);
        }
        kad_result r = kad_node_new(c, &m);
        rebound += r == KAD_OK;
        kad_config_free(c);
        kad_node_free(m);
        kad_node_free(n);
    }
    printf("port: bound again right after kad_node_free/kad_node_shutdown %d times of %d\n", rebound, tries);
    CHECK(rebound == tries);
}

/* ---- 5. fork --------------------------------------------------------------- */

static void test_fork(void) {
    kad_node *n = node_at("127.0.0.1", 0, 300);
    fflush(NULL);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        alarm(20); /* a hang kills the child with SIGALRM: the parent sees it */
        int bad = 0;
        kad_value *v = NULL;
        bad += kad_node_get(n, KEY("k"), 2000, &v) != KAD_FORKED;
        bad += kad_node_get_async(n, KEY("k"), 2000, NULL, NULL, NULL) != KAD_FORKED;
        bad += kad_node_put(n, KEY("k"), KEY("v"), 0, 2000, NULL) != KAD_FORKED;
        uint16_t port;
        bad += kad_node_port(n, &port) != KAD_FORKED;
        kad_node *fresh = NULL;
        bad += kad_node_new(NULL, &fresh) != KAD_FORKED || fresh != NULL;
        bad += kad_node_shutdown(n) != KAD_FORKED;
        bad += kad_node_free_wait(n, 0) != KAD_FORKED;
        char d[256];
        kad_last_error_detail(d, sizeof d, NULL);
        bad += strstr(d, "fork") == NULL;
        kad_node_free(n); /* does nothing in the child, and returns */
        /* what needs no thread keeps working */
        uint8_t digest[KAD_ID_LEN];
        bad += kad_key_digest(KEY("k"), digest, sizeof digest) != KAD_OK;
        kad_config *c = kad_config_new();
        bad += kad_config_set_k(c, 5) != KAD_OK;
        kad_config_free(c);
        _exit(bad);
    }
    int status = 0;
    CHECK(waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    if (WIFSIGNALED(status)) fprintf(stderr, "fork child killed by signal %d\n", WTERMSIG(status));
    /* the parent's node is untouched */
    kad_value *v = NULL;
    CHECK_RES(kad_node_get(n, KEY("k"), 2000, &v), KAD_NOT_FOUND);
    kad_node_free(n);
    printf("fork: child exit status %d (0: every node call returned KAD_FORKED, no hang)\n",
           WIFEXITED(status) ? WEXITSTATUS(status) : -1);
}

/* ---- 6. addresses ---------------------------------------------------------- */

struct pinged {
    atomic_int calls;
    kad_result result;
    uint8_t id[KAD_ID_LEN];
};

static void on_ping(void *ud, kad_result r, const uint8_t *id, size_t len) {
    struct pinged *p = ud;
    p->result = r;
    if (id && len == KAD_ID_LEN) memcpy(p->id, id, KAD_ID_LEN);
    atomic_fetch_add(&p->calls, 1);
}

static void test_addresses(void) {
    /* a 5 s RPC timeout: an address that were tried would end in KAD_TIMEOUT */
    kad_node *v4 = node_at("127.0.0.1", 0, 5000);
    kad_node *peer = node_at("127.0.0.1", 0, 5000);
    /* (a wildcard address such as 0.0.0.0 means this host, as in Python) */
    const char *never[] = {"[::1]:4000", "127.0.0.1:0", "[::]:0", "localhost:0"};
    for (size_t i = 0; i < sizeof never / sizeof never[0]; i++) {
        double t0 = now_s();
        CHECK_RES(kad_node_ping(v4, never[i], 0, NULL, 0), KAD_BAD_ADDRESS);
        CHECK_RES(kad_node_bootstrap(v4, &never[i], 1, 0, NULL), KAD_BAD_ADDRESS);
        CHECK_RES(kad_node_ping_async(v4, never[i], 0, NULL, NULL, NULL), KAD_BAD_ADDRESS);
        CHECK_RES(kad_node_bootstrap_async(v4, &never[i], 1, 0, NULL, NULL, NULL), KAD_BAD_ADDRESS);
        double dt = now_s() - t0;
        if (dt > 1.0) fprintf(stderr, "address %s took %.1f s to refuse\n", never[i], dt);
    }
    kad_node *v6 = node_at("::1", 0, 5000);
    CHECK_RES(kad_node_ping(v6, "127.0.0.1:4000", 0, NULL, 0), KAD_BAD_ADDRESS);

    /* one node on "::" serves both families: it reaches, and is reached by,
     * an IPv4 node and an IPv6 node through its one dual-stack socket */
    kad_node *dual = node_at("::", 0, 5000);
    char dual_v4[64], dual_v6[64], v4_addr[64], v6_addr[64];
    snprintf(dual_v4, sizeof dual_v4, "127.0.0.1:%u", (unsigned)port_of(dual));
    snprintf(dual_v6, sizeof dual_v6, "[::1]:%u", (unsigned)port_of(dual));
    snprintf(v4_addr, sizeof v4_addr, "127.0.0.1:%u", (unsigned)port_of(peer));
    snprintf(v6_addr, sizeof v6_addr, "[::1]:%u", (unsigned)port_of(v6));
    uint8_t dual_id[KAD_ID_LEN], seen_id[KAD_ID_LEN];
    CHECK_RES(kad_node_id(dual, dual_id, sizeof dual_id), KAD_OK);
    CHECK_RES(kad_node_ping(peer, dual_v4, 10000, seen_id, sizeof seen_id), KAD_OK);
    CHECK(memcmp(seen_id, dual_id, KAD_ID_LEN) == 0);
    CHECK_RES(kad_node_ping(v6, dual_v6, 10000, seen_id, sizeof seen_id), KAD_OK);
    CHECK(memcmp(seen_id, dual_id, KAD_ID_LEN) == 0);
    CHECK_RES(kad_node_ping(dual, v4_addr, 10000, NULL, 0), KAD_OK);
    CHECK_RES(kad_node_ping(dual, v6_addr, 10000, NULL, 0), KAD_OK);
    const char *both[] = {v4_addr, v6_addr};
    size_t contacts = 0;
    CHECK_RES(kad_node_bootstrap(dual, both, 2, 10000, &contacts), KAD_OK);
    CHECK(contacts >= 2);
    CHECK_RES(kad_node_put(dual, KEY("dual"), KEY("both families"), 0, 10000, NULL), KAD_OK);
    kad_value *got = NULL;
    CHECK_RES(kad_node_get(v6, KEY("dual"), 10000, &got), KAD_OK); /* v6 never met the v4 node */
    kad_value_free(got);
    printf("dual-stack: a node bound to \"::\" pinged and was pinged by an IPv4 and an IPv6 node, "
           "and stored for both (%zu contacts)\n", contacts);
    kad_node_free(dual);
    kad_node_free(v6);

    /* names: the _async call returns at once; the outcome comes to the callback */
    char name[64];
    snprintf(name, sizeof name, "localhost:%u", (unsigned)port_of(peer));
    struct pinged p = {0};
    CHECK_RES(kad_node_ping_async(v4, name, 0, on_ping, &p, NULL), KAD_OK);
    CHECK(wait_count(&p.calls, 1, 20));
    uint8_t want[KAD_ID_LEN];
    CHECK_RES(kad_node_id(peer, want, sizeof want), KAD_OK);
    CHECK(p.result == KAD_OK && memcmp(p.id, want, KAD_ID_LEN) == 0);
    struct pinged q = {0};
    CHECK_RES(kad_node_ping_async(v4, "no-such-host.invalid:4000", 0, on_ping, &q, NULL), KAD_OK);
    CHECK(wait_count(&q.calls, 1, 30));
    CHECK(q.result == KAD_BAD_ADDRESS);
    CHECK_RES(kad_node_ping(v4, "no-such-host.invalid:4000", 0, NULL, 0), KAD_BAD_ADDRESS);
    CHECK_RES(kad_node_ping(v4, ":4000", 0, NULL, 0), KAD_BAD_ADDRESS);
    kad_node_free(peer);
    kad_node_free(v4);
}

/* ---- 6b. cancellation ------------------------------------------------------ */

static void test_cancel(void) {
    /* pings to a freed node's port wait for the 5 s RPC timeout unless cancelled */
    kad_node *n = node_at("127.0.0.1", 0, 5000);
    kad_node *gone = node_at("127.0.0.1", 0, 5000);
    char addr[32];
    snprintf(addr, sizeof addr, "127.0.0.1:%u", (unsigned)port_of(gone));
    kad_node_free(gone);
    kad_cancel_token *tok = kad_cancel_token_new();
    struct pinged p[3], kept;
    memset(p, 0, sizeof p);
    memset(&kept, 0, sizeof kept);
    CHECK_RES(kad_node_ping_async(n, addr, 0, on_ping, &p[0], tok), KAD_OK);
    CHECK_RES(kad_node_ping_async(n, addr, 0, on_ping, &p[1], tok), KAD_OK);
    CHECK_RES(kad_node_ping_async(n, addr, 300, on_ping, &kept, NULL), KAD_OK); /* no token */
    sleep_ms(50);
    CHECK(atomic_load(&p[0].calls) == 0 && atomic_load(&p[1].calls) == 0);
    double t0 = now_s();
    CHECK_RES(kad_cancel_token_cancel(tok), KAD_OK);
    CHECK(wait_count(&p[0].calls, 1, 20) && wait_count(&p[1].calls, 1, 20));
    double took = now_s() - t0;
    CHECK(p[0].result == KAD_CANCELLED && p[1].result == KAD_CANCELLED);
    /* the operation without the token is not affected */
    CHECK(wait_count(&kept.calls, 1, 20) && kept.result == KAD_TIMEOUT);
    /* a token already cancelled cancels new operations at once */
    CHECK_RES(kad_node_ping_async(n, addr, 0, on_ping, &p[2], tok), KAD_OK);
    CHECK(wait_count(&p[2].calls, 1, 20) && p[2].result == KAD_CANCELLED);
    CHECK_RES(kad_cancel_token_cancel(tok), KAD_OK); /* idempotent */
    kad_cancel_token_free(tok);
    /* freeing a token does not cancel: the operation ends on its own */
    struct pinged own;
    memset(&own, 0, sizeof own);
    tok = kad_cancel_token_new();
    CHECK_RES(kad_node_ping_async(n, addr, 200, on_ping, &own, tok), KAD_OK);
    kad_cancel_token_free(tok);
    CHECK(wait_count(&own.calls, 1, 20) && own.result == KAD_TIMEOUT);
    kad_cancel_token_free(NULL);
    CHECK_RES(kad_cancel_token_cancel(NULL), KAD_NULL_POINTER);
    CHECK_RES(kad_node_free_wait(n, 0), KAD_OK);
    CHECK(p[0].calls == 1 && p[1].calls == 1 && p[2].calls == 1 && kept.calls == 1 && own.calls == 1);
    printf("cancel: 2 pending pings (RPC timeout 5000 ms) ended KAD_CANCELLED %.0f ms after kad_cancel_token_cancel\n",
           took * 1000);
}

/* ---- 7. lengths ------------------------------------------------------------ */

static void test_huge_lengths(void) {
    kad_node *n = node_at("127.0.0.1", 0, 300);
    static const uint8_t byte[1] = {0};
    const size_t huge[] = {(size_t)PTRDIFF_MAX + 1, SIZE_MAX};
    for (int i = 0; i < 2; i++) {
        size_t len = huge[i];
        CHECK_RES(kad_node_put(n, KEY("k"), byte, len, 0, 1000, NULL), KAD_INVALID_ARGUMENT);
        CHECK_RES(kad_node_put_async(n, KEY("k"), byte, len, 0, 1000, NULL, NULL, NULL), KAD_INVALID_ARGUMENT);
        kad_value *v = NULL;
        CHECK_RES(kad_node_get(n, byte, len, 1000, &v), KAD_INVALID_ARGUMENT);
        uint8_t d[KAD_ID_LEN];
        CHECK_RES(kad_key_digest(byte, len, d, sizeof d), KAD_INVALID_ARGUMENT);
        kad_routing_table *t = NULL;
        CHECK_RES(kad_routing_table_parse(byte, len, &t), KAD_INVALID_ARGUMENT);
        const char *addrs[1] = {"127.0.0.1:1"};
        CHECK_RES(kad_node_bootstrap(n, addrs, len, 1000, NULL), KAD_INVALID_ARGUMENT);
        kad_config *c = kad_config_new();
        CHECK_RES(kad_config_set_node_id(c, byte, len), KAD_INVALID_ARGUMENT);
        kad_config_free(c);
    }
    uint8_t d[KAD_ID_LEN];
    CHECK_RES(kad_key_digest(NULL, 0, d, sizeof d), KAD_NULL_POINTER);

    /* output buffers: a length above PTRDIFF_MAX is refused before anything
     * is written (it used to be trusted: KAD_OK, and written) */
    kad_keypair *kp = kad_keypair_new();
    kad_routing_table *t = NULL;
    const char *text = "0000000000000000000000000000000000000001 127.0.0.1:5\n";
    CHECK_RES(kad_routing_table_parse((const uint8_t *)text, strlen(text), &t), KAD_OK);
    for (int i = 0; i < 2; i++) {
        size_t len = huge[i];
        char buf[64];
        uint8_t out[64];
        size_t written = 12345;
        memset(buf, 'x', sizeof buf);
        memset(out, 0x55, sizeof out);
        CHECK_RES(kad_result_message(KAD_OK, buf, len, &written), KAD_INVALID_ARGUMENT);
        CHECK_RES(kad_last_error_detail(buf, len, &written), KAD_INVALID_ARGUMENT);
        CHECK_RES(kad_key_digest(KEY("k"), out, len), KAD_INVALID_ARGUMENT);
        CHECK_RES(kad_node_id(n, out, len), KAD_INVALID_ARGUMENT);
        CHECK_RES(kad_keypair_public_key(kp, out, len), KAD_INVALID_ARGUMENT);
        CHECK_RES(kad_keypair_secret(kp, out, len), KAD_INVALID_ARGUMENT);
        CHECK_RES(kad_routing_table_contact(t, 0, out, len, buf, sizeof buf), KAD_INVALID_ARGUMENT);
        CHECK_RES(kad_routing_table_contact(t, 0, out, sizeof out, buf, len), KAD_INVALID_ARGUMENT);
        CHECK_RES(kad_node_public_address(n, buf, len, &written), KAD_INVALID_ARGUMENT);
        CHECK_RES(kad_node_ping(n, "127.0.0.1:5", 1000, out, len), KAD_INVALID_ARGUMENT);
        CHECK_RES(kad_node_put_immutable(n, KEY("v"), 1000, out, len), KAD_INVALID_ARGUMENT);
        CHECK(buf[0] == 'x' && out[0] == 0x55 && written == 12345);
    }
    kad_routing_table_free(t);
    kad_keypair_free(kp);
    kad_node_free(n);
}

/* ---- 8. the callback thread bound ------------------------------------------ */

struct gate {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int open, entered, running, most_running, finished;
};

static void on_get_gated(void *ud, kad_result r, kad_value *v) {
    struct gate *g = ud;
    (void)r;
    kad_value_free(v);
    pthread_mutex_lock(&g->mu);
    g->entered++;
    g->running++;
    if (g->running > g->most_running) g->most_running = g->running;
    pthread_cond_broadcast(&g->cv);
    while (!g->open) pthread_cond_wait(&g->cv, &g->mu);
    g->running--;
    g->finished++;
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
}

static void test_callback_threads_bounded(void) {
    enum { CALLS = KAD_CALLBACK_THREADS + 16 };
    struct gate g;
    memset(&g, 0, sizeof g);
    pthread_mutex_init(&g.mu, NULL);
    pthread_cond_init(&g.cv, NULL);
    kad_node *n = node_at("127.0.0.1", 0, 300);
    for (int i = 0; i < CALLS; i++) CHECK_RES(kad_node_get_async(n, KEY("gated"), 0, on_get_gated, &g, NULL), KAD_OK);
    double until = now_s() + 20;
    pthread_mutex_lock(&g.mu);
    while (g.entered < KAD_CALLBACK_THREADS && now_s() < until) {
        pthread_mutex_unlock(&g.mu);
        sleep_ms(5);
        pthread_mutex_lock(&g.mu);
    }
    pthread_mutex_unlock(&g.mu);
    sleep_ms(300); /* room for any callback beyond the bound to start */
    /* Every callback thread is taken: a node's disk work (opening its data
     * directory, the commit a put waits for) has a thread of its own, and
     * goes on (both waited for a free callback thread, before). */
    char dir[] = "/tmp/kadmium-test-disk-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    kad_config *c = kad_config_new();
    kad_node *saving = NULL;
    CHECK_RES(kad_config_set_bind(c, "127.0.0.1", 0), KAD_OK);
    CHECK_RES(kad_config_set_data_dir(c, dir), KAD_OK);
    double opened_at = now_s();
    CHECK_RES(kad_node_new(c, &saving), KAD_OK);
    kad_config_free(c);
    double open_s = now_s() - opened_at;
    char via[32];
    snprintf(via, sizeof via, "127.0.0.1:%u", (unsigned)port_of(n));
    const char *seeds[] = {via};
    CHECK_RES(kad_node_bootstrap(saving, seeds, 1, 10000, NULL), KAD_OK);
    double put_at = now_s();
    CHECK_RES(kad_node_put(saving, KEY("saved"), KEY("while the pool is full"), 0, 10000, NULL), KAD_OK);
    printf("threads: with every callback thread blocked, a data-directory node opened in %.3f s "
           "and a put it saved took %.3f s\n", open_s, now_s() - put_at);
    /* Blocking calls resolve host names on the calling thread, so a full
     * callback pool does not hold them up (they timed out, before). */
    char name[32];
    snprintf(name, sizeof name, "localhost:%u", (unsigned)port_of(n));
    const char *by_name[] = {name};
    double named_at = now_s();
    CHECK_RES(kad_node_ping(saving, name, 5000, NULL, 0), KAD_OK);
    CHECK_RES(kad_node_bootstrap(saving, by_name, 1, 5000, NULL), KAD_OK);
    printf("threads: with every callback thread blocked, a ping and a bootstrap given a host name "
           "took %.3f s\n", now_s() - named_at);
    kad_node_free(saving);
    char rm[64];
    snprintf(rm, sizeof rm, "rm -rf %s", dir);
    CHECK(system(rm) == 0);
    pthread_mutex_lock(&g.mu);
    int entered = g.entered;
    g.open = 1;
    pthread_cond_broadcast(&g.cv);
    pthread_mutex_unlock(&g.mu);
    CHECK_RES(kad_node_free_wait(n, 30000), KAD_OK);
    printf("threads: %d blocked callbacks: %d ran at once (bound KAD_CALLBACK_THREADS = %d), %d finished\n",
           CALLS, entered, KAD_CALLBACK_THREADS, g.finished);
    CHECK(entered == KAD_CALLBACK_THREADS);
    CHECK(g.most_running == KAD_CALLBACK_THREADS && g.finished == CALLS);
    pthread_mutex_destroy(&g.mu);
    pthread_cond_destroy(&g.cv);
}

/* ---- 10. exit() inside a callback ------------------------------------------ */

/* A callback that calls exit() runs the atexit handlers on a library thread
 * whose thread-locals glibc has just destroyed. A blocking call there must
 * still be refused with KAD_WRONG_THREAD (it could wait for the very thread
 * making it), not hang or panic. Run in a fresh process: this binary,
 * executed again with --exit-in-callback. */
static kad_node *exiting_node;

static void blocking_call_at_exit(void) {
    kad_result r = kad_node_put(exiting_node, KEY("k"), KEY("v"), 0, 1000, NULL);
    _exit(r == KAD_WRONG_THREAD ? 0 : 100 + (int)r);
}

static void exit_from_callback(void *userdata, kad_result r, kad_value *v) {
    (void)userdata;
    (void)r;
    kad_value_free(v);
    exit(0);
}

static int exit_in_callback_child(void) {
    alarm(20); /* a hang kills the child with SIGALRM: the parent sees it */
    exiting_node = node_at("127.0.0.1", 0, 300);
    atexit(blocking_call_at_exit);
    kad_node_get_async(exiting_node, KEY("k"), 1000, exit_from_callback, NULL, NULL);
    for (;;) pause(); /* until the callback exits */
    return 1;
}

static void test_exit_in_callback(void) {
    fflush(NULL);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        execl("/proc/self/exe", "test_lifecycle", "--exit-in-callback", (char *)NULL);
        _exit(99);
    }
    int status = 0;
    CHECK(waitpid(pid, &status, 0) == pid);
    int refused = WIFEXITED(status) && WEXITSTATUS(status) == 0;
    CHECK(refused);
    printf("exit in a callback: a blocking call from an atexit handler then: %s (status %d)\n",
           refused ? "KAD_WRONG_THREAD, no hang" : "FAILED", status);
}

/* ---- 11. calls from an atexit handler -------------------------------------- */

/* glibc's exit() destroys the main thread's thread-locals before it runs
 * atexit handlers and C++ static destructors, and blocking calls made there
 * got KAD_PANIC ("The Tokio context thread-local variable has been
 * destroyed"), with a panic report on stderr: a final put from cleanup code
 * failed. Registered last, so it runs after main's summary; a failure is
 * printed and made the exit status with _exit(1). */
static kad_node *exit_node, *exit_peer;

static void calls_from_atexit(void) {
    int bad = 0;
    char peer[64];
    snprintf(peer, sizeof peer, "127.0.0.1:%u", (unsigned)port_of(exit_peer));
    const char *seeds[] = {peer};
    kad_value *v = NULL;
    kad_node *fresh = NULL;
    struct { const char *what; kad_result got; } calls[4];
    calls[0].what = "kad_node_bootstrap";
    calls[0].got = kad_node_bootstrap(exit_node, seeds, 1, 5000, NULL);
    calls[1].what = "kad_node_put";
    calls[1].got = kad_node_put(exit_node, KEY("at-exit"), KEY("v"), 0, 5000, NULL);
    calls[2].what = "kad_node_get";
    calls[2].got = kad_node_get(exit_peer, KEY("at-exit"), 5000, &v);
    calls[3].what = "kad_node_new";
    calls[3].got = kad_node_new(NULL, &fresh);
    kad_keypair *keypair = kad_keypair_new();
    if (keypair == NULL) {
        fprintf(stderr, "atexit: kad_keypair_new returned NULL\n");
        bad = 1;
    }
    kad_keypair_free(keypair);
    for (size_t i = 0; i < sizeof calls / sizeof calls[0]; i++) {
        if (calls[i].got != KAD_OK) {
            char d[256];
            kad_last_error_detail(d, sizeof d, NULL);
            fprintf(stderr, "atexit: %s = %s (detail: %s)\n", calls[i].what, kad_result_str(calls[i].got), d);
            bad = 1;
        }
    }
    const uint8_t *data = NULL;
    size_t len = 0;
    if (!bad && !(kad_value_bytes(v, &data, &len) == KAD_OK && len == 1 && data[0] == 'v')) {
        fprintf(stderr, "atexit: the value put there was not found\n");
        bad = 1;
    }
    /* A failure there still leaves its detail. */
    kad_config *c = kad_config_new();
    kad_result refused = kad_config_set_k(c, 0);
    char detail[256] = "";
    kad_last_error_detail(detail, sizeof detail, NULL);
    kad_config_free(c);
    if (refused != KAD_INVALID_ARGUMENT || strstr(detail, "k") == NULL || kad_last_error_detail_len() == 0) {
        fprintf(stderr, "atexit: kad_config_set_k(c, 0) = %s, detail \"%s\"\n", kad_result_str(refused), detail);
        bad = 1;
    }
    kad_value_free(v);
    kad_node_free(fresh);
    kad_node_free(exit_node);
    kad_node_free(exit_peer);
    printf("atexit: bootstrap, put, get, kad_node_new, kad_keypair_new and an error's detail in an atexit handler: %s (detail \"%s\")\n",
           bad ? "FAILED" : "ok", detail);
    fflush(stdout);
    if (bad) _exit(1);
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc > 1 && strcmp(argv[1], "--exit-in-callback") == 0) return exit_in_callback_child();
    if (argc > 1) rounds = atoi(argv[1]);
    int with_fork = !(argc > 2 && strcmp(argv[2], "nofork") == 0);
    test_huge_lengths();
    test_addresses();
    test_cancel();
    if (with_fork) test_fork();
    if (with_fork) test_exit_in_callback();
    test_port_released();
    test_waiting_for_callbacks();
    test_blocking_calls_racing_free();
    test_async_calls_racing_free();
    test_callback_threads_bounded();
    /* The main thread's own random generator is in use (it was what
     * kad_keypair_new drew from), so a key pair made at exit shows whether
     * that still works. */
    kad_keypair_free(kad_keypair_new());
    exit_peer = node_at("127.0.0.1", 0, 300);
    exit_node = node_at("127.0.0.1", 0, 300);
    atexit(calls_from_atexit);
    printf("test_lifecycle: %d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}
