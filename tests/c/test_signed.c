/*
 * test_signed: signed and immutable records through the C ABI (key pairs,
 * put/update/CAS/delete, get, immutable put/get, their _async twins, the
 * new result codes, client-only and strict-local-limits configs) with a few
 * nodes on loopback. Run under valgrind by tests/c/run.sh.
 * Ends with "test_signed: N passed, M failed"; exit status 0 only if M is 0.
 */
#define _POSIX_C_SOURCE 200809L
#include <kadmium.h>

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

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

#define BYTES(s) (const uint8_t *)(s), strlen(s)
#define TIMEOUT 20000

static const char *detail(void) {
    static char buf[512];
    kad_last_error_detail(buf, sizeof buf, NULL);
    return buf;
}

static kad_node *start_node(int client_only) {
    kad_config *c = kad_config_new();
    kad_node *n = NULL;
    CHECK_RES(kad_config_set_bind(c, "127.0.0.1", 0), KAD_OK);
    CHECK_RES(kad_config_set_rpc_timeout_ms(c, 2000), KAD_OK);
    CHECK_RES(kad_config_set_client_only(c, client_only), KAD_OK);
    CHECK_RES(kad_config_set_strict_local_limits(c, 0), KAD_OK);
    CHECK_RES(kad_node_new(c, &n), KAD_OK);
    kad_config_free(c);
    return n;
}

/* 1 if `v` is a bytes value equal to `want`. */
static int value_is(const kad_value *v, const char *want) {
    const uint8_t *data = NULL;
    size_t len = 0;
    if (v == NULL || kad_value_bytes(v, &data, &len) != KAD_OK) return 0;
    return len == strlen(want) && memcmp(data, want, len) == 0;
}

/* ---- async completions ---------------------------------------------------- */

struct done {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int calls;
    kad_result result;
    uint64_t seq;
    kad_value *value;
    uint8_t digest[KAD_ID_LEN];
    size_t digest_len;
};

static void done_init(struct done *d) {
    memset(d, 0, sizeof *d);
    pthread_mutex_init(&d->mu, NULL);
    pthread_cond_init(&d->cv, NULL);
}

static void done_wait(struct done *d) {
    pthread_mutex_lock(&d->mu);
    while (d->calls == 0) pthread_cond_wait(&d->cv, &d->mu);
    pthread_mutex_unlock(&d->mu);
    pthread_mutex_destroy(&d->mu);
    pthread_cond_destroy(&d->cv);
}

static void done_signal(struct done *d) {
    pthread_mutex_lock(&d->mu);
    d->calls++;
    pthread_cond_broadcast(&d->cv);
    pthread_mutex_unlock(&d->mu);
}

static void on_seq(void *ud, kad_result r, uint64_t seq) {
    struct done *d = ud;
    d->result = r;
    d->seq = seq;
    done_signal(d);
}

static void on_signed(void *ud, kad_result r, kad_value *v, uint64_t seq) {
    struct done *d = ud;
    d->result = r;
    d->value = v;
    d->seq = seq;
    done_signal(d);
}

static void on_value(void *ud, kad_result r, kad_value *v) {
    struct done *d = ud;
    d->result = r;
    d->value = v;
    done_signal(d);
}

static void on_digest(void *ud, kad_result r, const uint8_t *digest, size_t len) {
    struct done *d = ud;
    d->result = r;
    if (digest != NULL && len <= sizeof d->digest) {
        memcpy(d->digest, digest, len);
        d->digest_len = len;
    }
    done_signal(d);
}

/* ---- tests ------------------------------------------------------------------ */

static void test_keypair(void) {
    kad_keypair *kp = kad_keypair_new();
    uint8_t secret[KAD_KEY_LEN], pk[KAD_KEY_LEN], pk2[KAD_KEY_LEN];
    CHECK(kp != NULL);
    CHECK_RES(kad_keypair_secret(kp, secret, sizeof secret), KAD_OK);
    CHECK_RES(kad_keypair_public_key(kp, pk, sizeof pk), KAD_OK);
    CHECK_RES(kad_keypair_public_key(kp, pk, 31), KAD_BUFFER_TOO_SMALL);
    CHECK_RES(kad_keypair_public_key(NULL, pk, sizeof pk), KAD_NULL_POINTER);
    kad_keypair *again = NULL;
    CHECK_RES(kad_keypair_from_secret(secret, sizeof secret, &again), KAD_OK);
    CHECK_RES(kad_keypair_public_key(again, pk2, sizeof pk2), KAD_OK);
    CHECK(memcmp(pk, pk2, KAD_KEY_LEN) == 0);
    kad_keypair *bad = NULL;
    CHECK_RES(kad_keypair_from_secret(secret, 31, &bad), KAD_INVALID_ARGUMENT);
    CHECK(bad == NULL);
    CHECK_RES(kad_keypair_from_secret(secret, sizeof secret, NULL), KAD_NULL_POINTER);
    CHECK_RES(kad_keypair_from_secret(NULL, 0, &bad), KAD_NULL_POINTER);
    CHECK(bad == NULL);
    CHECK(strcmp(kad_result_str(KAD_CAS_MISMATCH), "compare-and-swap mismatch") == 0);
    CHECK(strcmp(kad_result_str(KAD_INVALID_RECORD), "invalid record") == 0);
    kad_keypair_free(kp);
    kad_keypair_free(again);
    kad_keypair_free(NULL);
}

static void test_records(void) {
    kad_node *n[4];
    for (int i = 0; i < 3; i++) n[i] = start_node(0);
    n[3] = start_node(1); /* the reader: client-only */
    uint16_t port = 0;
    CHECK_RES(kad_node_port(n[0], &port), KAD_OK);
    char seed[32];
    snprintf(seed, sizeof seed, "127.0.0.1:%u", (unsigned)port);
    const char *via[] = {seed};
    for (int i = 1; i < 4; i++) CHECK_RES(kad_node_bootstrap(n[i], via, 1, TIMEOUT, NULL), KAD_OK);

    kad_keypair *kp = kad_keypair_new();
    uint8_t pk[KAD_KEY_LEN];
    CHECK_RES(kad_keypair_public_key(kp, pk, sizeof pk), KAD_OK);
    uint64_t seq = 0;
    kad_value *v = NULL;

    /* put, update, read from another node */
    CHECK_RES(kad_node_put_signed(n[1], kp, BYTES("chat"), BYTES("addr-1"), 0, 0, 0, TIMEOUT, &seq), KAD_OK);
    CHECK(seq == 1);
    CHECK_RES(kad_node_put_signed(n[1], kp, BYTES("chat"), BYTES("addr-2"), 0, 0, 0, TIMEOUT, &seq), KAD_OK);
    CHECK(seq == 2);
    CHECK_RES(kad_node_get_signed(n[3], pk, sizeof pk, BYTES("chat"), TIMEOUT, &v, &seq), KAD_OK);
    CHECK(value_is(v, "addr-2") && seq == 2);
    kad_value_free(v);
    v = NULL;
    /* another salt: nothing; a short public key: invalid */
    CHECK_RES(kad_node_get_signed(n[3], pk, sizeof pk, NULL, 0, TIMEOUT, &v, NULL), KAD_NOT_FOUND);
    CHECK(v == NULL);
    CHECK_RES(kad_node_get_signed(n[3], pk, 31, NULL, 0, TIMEOUT, &v, NULL), KAD_INVALID_ARGUMENT);
    CHECK_RES(kad_node_get_signed(n[3], NULL, 0, NULL, 0, TIMEOUT, &v, NULL), KAD_NULL_POINTER);
    CHECK_RES(kad_node_get_signed(n[3], pk, sizeof pk, NULL, 0, TIMEOUT, NULL, NULL), KAD_NULL_POINTER);
    CHECK_RES(kad_node_put_signed(n[1], NULL, NULL, 0, BYTES("x"), 0, 0, 0, TIMEOUT, NULL), KAD_NULL_POINTER);

    /* CAS conflict, stale seq, then CAS success (async) */
    CHECK_RES(kad_node_put_signed(n[2], kp, BYTES("chat"), BYTES("stale"), 0, 1, 0, TIMEOUT, NULL), KAD_CAS_MISMATCH);
    CHECK_RES(kad_node_put_signed(n[2], kp, BYTES("chat"), BYTES("old"), 2, 0, 0, TIMEOUT, NULL), KAD_INVALID_RECORD);
    struct done d;
    done_init(&d);
    CHECK_RES(kad_node_put_signed_async(n[2], kp, BYTES("chat"), BYTES("addr-3"), 0, 2, 0, TIMEOUT, on_seq, &d, NULL), KAD_OK);
    done_wait(&d);
    CHECK(d.calls == 1 && d.result == KAD_OK && d.seq == 3);

    done_init(&d);
    CHECK_RES(kad_node_get_signed_async(n[0], pk, sizeof pk, BYTES("chat"), TIMEOUT, on_signed, &d, NULL), KAD_OK);
    done_wait(&d);
    CHECK(d.result == KAD_OK && d.seq == 3 && value_is(d.value, "addr-3"));
    kad_value_free(d.value);

    /* delete: readers find nothing */
    CHECK_RES(kad_node_delete_signed(n[1], kp, BYTES("chat"), TIMEOUT, &seq), KAD_OK);
    CHECK(seq > 3);
    CHECK_RES(kad_node_get_signed(n[3], pk, sizeof pk, BYTES("chat"), TIMEOUT, &v, NULL), KAD_NOT_FOUND);

    /* immutable, blocking and async */
    uint8_t digest[KAD_ID_LEN];
    CHECK_RES(kad_node_put_immutable(n[1], BYTES("blob"), TIMEOUT, digest, 3), KAD_BUFFER_TOO_SMALL);
    CHECK_RES(kad_node_put_immutable(n[1], BYTES("blob"), TIMEOUT, digest, sizeof digest), KAD_OK);
    CHECK_RES(kad_node_get_immutable(n[3], digest, sizeof digest, TIMEOUT, &v), KAD_OK);
    CHECK(value_is(v, "blob"));
    kad_value_free(v);
    v = NULL;
    done_init(&d);
    CHECK_RES(kad_node_put_immutable_async(n[2], BYTES("blob2"), TIMEOUT, on_digest, &d, NULL), KAD_OK);
    done_wait(&d);
    CHECK(d.result == KAD_OK && d.digest_len == KAD_ID_LEN);
    uint8_t digest2[KAD_ID_LEN];
    memcpy(digest2, d.digest, sizeof digest2);
    done_init(&d);
    CHECK_RES(kad_node_get_immutable_async(n[3], digest2, sizeof digest2, TIMEOUT, on_value, &d, NULL), KAD_OK);
    done_wait(&d);
    CHECK(d.result == KAD_OK && value_is(d.value, "blob2"));
    kad_value_free(d.value);
    digest2[0] ^= 1;
    CHECK_RES(kad_node_get_immutable(n[3], digest2, sizeof digest2, TIMEOUT, &v), KAD_NOT_FOUND);

    /* the client-only reader is in no other node's routing table */
    uint8_t reader_id[KAD_ID_LEN];
    CHECK_RES(kad_node_id(n[3], reader_id, sizeof reader_id), KAD_OK);
    for (int i = 0; i < 3; i++) {
        kad_routing_table *t = NULL;
        CHECK_RES(kad_node_export_routing_table(n[i], &t), KAD_OK);
        size_t len = kad_routing_table_len(t);
        CHECK(len >= 1);
        for (size_t j = 0; j < len; j++) {
            uint8_t id[KAD_ID_LEN];
            char addr[64];
            CHECK_RES(kad_routing_table_contact(t, j, id, sizeof id, addr, sizeof addr), KAD_OK);
            CHECK(memcmp(id, reader_id, KAD_ID_LEN) != 0);
        }
        kad_routing_table_free(t);
    }

    kad_keypair_free(kp);
    for (int i = 0; i < 4; i++) kad_node_free(n[i]);
}

/* A fresh node bootstrapped from `seed`. */
static kad_node *node_joined_to(const kad_node *seed) {
    kad_node *n = start_node(0);
    uint16_t port = 0;
    CHECK_RES(kad_node_port(seed, &port), KAD_OK);
    char addr[32];
    snprintf(addr, sizeof addr, "127.0.0.1:%u", (unsigned)port);
    const char *via[] = {addr};
    CHECK_RES(kad_node_bootstrap(n, via, 1, TIMEOUT, NULL), KAD_OK);
    return n;
}

/* A salt above KAD_SALT_MAX_LEN is the same KAD_INVALID_ARGUMENT, naming
 * the salt and its limit, from put, get and delete (blocking and async), at
 * once; it was KAD_INVALID_RECORD, or for a long one on put
 * KAD_VALUE_TOO_LARGE "maximum 0". */
static void test_salt_limit(void) {
    kad_node *b = start_node(0), *a = node_joined_to(b);
    kad_keypair *kp = kad_keypair_new();
    uint8_t pk[KAD_KEY_LEN];
    CHECK_RES(kad_keypair_public_key(kp, pk, sizeof pk), KAD_OK);
    static uint8_t salt[65000];
    memset(salt, 's', sizeof salt);
    uint64_t seq = 0;
    kad_value *v = NULL;
    CHECK_RES(kad_node_put_signed(a, kp, salt, KAD_SALT_MAX_LEN, BYTES("v"), 0, 0, 0, TIMEOUT, &seq), KAD_OK);
    CHECK_RES(kad_node_get_signed(a, pk, sizeof pk, salt, KAD_SALT_MAX_LEN, TIMEOUT, &v, NULL), KAD_OK);
    kad_value_free(v);
    v = NULL;
    const size_t too_long[] = {KAD_SALT_MAX_LEN + 1, 1000, sizeof salt};
    char want[64];
    snprintf(want, sizeof want, "maximum is %d", KAD_SALT_MAX_LEN);
    for (size_t i = 0; i < sizeof too_long / sizeof too_long[0]; i++) {
        size_t len = too_long[i];
        CHECK_RES(kad_node_put_signed(a, kp, salt, len, BYTES("v"), 0, 0, 0, TIMEOUT, &seq), KAD_INVALID_ARGUMENT);
        CHECK(strstr(detail(), "salt") != NULL && strstr(detail(), want) != NULL);
        CHECK_RES(kad_node_get_signed(a, pk, sizeof pk, salt, len, TIMEOUT, &v, NULL), KAD_INVALID_ARGUMENT);
        CHECK(strstr(detail(), "salt") != NULL && strstr(detail(), want) != NULL);
        CHECK_RES(kad_node_delete_signed(a, kp, salt, len, TIMEOUT, &seq), KAD_INVALID_ARGUMENT);
        CHECK(strstr(detail(), "salt") != NULL && strstr(detail(), want) != NULL);
        CHECK_RES(kad_node_put_signed_async(a, kp, salt, len, BYTES("v"), 0, 0, 0, TIMEOUT, NULL, NULL, NULL),
                  KAD_INVALID_ARGUMENT);
        CHECK_RES(kad_node_get_signed_async(a, pk, sizeof pk, salt, len, TIMEOUT, NULL, NULL, NULL),
                  KAD_INVALID_ARGUMENT);
    }
    /* A NULL salt is KAD_NULL_POINTER whatever its length, as every NULL is. */
    CHECK_RES(kad_node_put_signed(a, kp, NULL, KAD_SALT_MAX_LEN + 1, BYTES("v"), 0, 0, 0, TIMEOUT, &seq),
              KAD_NULL_POINTER);
    CHECK_RES(kad_node_get_signed(a, pk, sizeof pk, NULL, 1000, TIMEOUT, &v, NULL), KAD_NULL_POINTER);
    CHECK(v == NULL);
    kad_keypair_free(kp);
    kad_node_free(a);
    kad_node_free(b);
}

/* What a put is refused for whatever the node holds is refused before an
 * _async call returns, as by the blocking call, and its callback never runs
 * (the async puts returned KAD_OK and reported these in the callback). */
static void test_async_puts_check_their_arguments(void) {
    kad_node *b = start_node(0), *a = node_joined_to(b);
    kad_keypair *kp = kad_keypair_new();
    static uint8_t big[70000];
    memset(big, 'v', sizeof big);
    struct done d;
    done_init(&d);
    CHECK_RES(kad_node_put_signed_async(a, kp, NULL, 0, BYTES("v"), UINT64_MAX, 0, 0, TIMEOUT, on_seq, &d, NULL),
              KAD_INVALID_ARGUMENT);
    CHECK(strstr(detail(), "seq must be below") != NULL);
    CHECK_RES(kad_node_put_signed_async(a, kp, NULL, 0, big, sizeof big, 0, 0, 0, TIMEOUT, on_seq, &d, NULL),
              KAD_VALUE_TOO_LARGE);
    CHECK(strstr(detail(), "70000 bytes") != NULL);
    CHECK_RES(kad_node_put_immutable_async(a, big, sizeof big, TIMEOUT, on_digest, &d, NULL), KAD_VALUE_TOO_LARGE);
    /* The caller's 70000 bytes and the limit on them, not the encoded record's. */
    const char *want = "70000 bytes (maximum ";
    CHECK(strstr(detail(), want) != NULL);
    uint8_t digest[KAD_ID_LEN];
    CHECK_RES(kad_node_put_immutable(a, big, sizeof big, TIMEOUT, digest, sizeof digest), KAD_VALUE_TOO_LARGE);
    CHECK(strstr(detail(), want) != NULL);
    if (failed == 0) printf("async puts: seq 2**64-1 and 70000-byte values refused before returning: ok\n");
    kad_node_free_wait(a, 5000);
    pthread_mutex_lock(&d.mu);
    CHECK(d.calls == 0);
    pthread_mutex_unlock(&d.mu);
    pthread_mutex_destroy(&d.mu);
    pthread_cond_destroy(&d.cv);
    kad_keypair_free(kp);
    kad_node_free(b);
}

static void test_data_dir(void) {
    char dir[64];
    snprintf(dir, sizeof dir, "/tmp/kadmium-test-signed-%ld", (long)time(NULL));
    kad_config *c = kad_config_new();
    CHECK_RES(kad_config_set_bind(c, "127.0.0.1", 0), KAD_OK);
    CHECK_RES(kad_config_set_data_dir(c, ""), KAD_INVALID_ARGUMENT);
    CHECK_RES(kad_config_set_data_dir(c, dir), KAD_OK);
    kad_node *first = NULL, *second = NULL;
    CHECK_RES(kad_node_new(c, &first), KAD_OK);
    /* the directory is locked while the first node runs */
    CHECK_RES(kad_node_new(c, &second), KAD_DATA_DIR_ERROR);
    CHECK(second == NULL);
    CHECK(strcmp(kad_result_str(KAD_DATA_DIR_ERROR), "data directory error") == 0);
    CHECK_RES(kad_config_set_data_dir(c, NULL), KAD_OK);
    kad_config_free(c);
    CHECK_RES(kad_node_free_wait(first, 5000), KAD_OK);
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    test_keypair();
    test_records();
    test_salt_limit();
    test_async_puts_check_their_arguments();
    test_data_dir();
    printf("test_signed: %d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}
