/*
 * join_node: run one kadmium node that joins a network given on the command
 * line, then serve simple commands read from standard input.
 *
 *   join_node [-b BIND_IP] [-p PORT] [-t TIMEOUT_MS] [HOST:PORT ...]
 *
 * With no HOST:PORT it starts a new network. Once ready it prints
 *   ready <port> <node id in hex>
 * and then answers one line per command:
 *   put KEY VALUE   -> "ok put <nodes storing it>"       (VALUE is stored as bytes)
 *   get KEY         -> "ok get <type> <value>"           (bytes as hex, str as text,
 *                      or "notfound get KEY"              int/uint/float/bool as numbers)
 *   contacts        -> "ok contacts <n>"
 *   stats           -> "ok stats name=value ..."
 *   quit (or EOF)   -> exit
 * Failures print "error <command> <result> <detail>".
 *
 *   cc -std=c11 join_node.c $(pkg-config --cflags --libs kadmium) -o join_node
 */
#include <kadmium.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void print_error(const char *cmd, kad_result r) {
    char detail[256];
    kad_last_error_detail(detail, sizeof detail, NULL);
    printf("error %s %s %s\n", cmd, kad_result_str(r), detail);
}

/* "ok get KIND <hex of data>" */
static void print_hex(const char *kind, const uint8_t *data, size_t len) {
    printf("ok get %s ", kind);
    for (size_t k = 0; k < len; k++) printf("%02x", data[k]);
    printf("\n");
}

static void print_value(const kad_value *v) {
    const uint8_t *data = NULL;
    size_t len = 0;
    int64_t i = 0;
    uint64_t u = 0;
    double f = 0;
    bool b = false;
    switch (kad_value_get_type(v)) {
    case KAD_VALUE_TYPE_BYTES:
        kad_value_bytes(v, &data, &len);
        print_hex("bytes", data, len);
        break;
    case KAD_VALUE_TYPE_STR:
        kad_value_bytes(v, &data, &len);
        printf("ok get str %s\n", (const char *)data);
        break;
    case KAD_VALUE_TYPE_INT:
        kad_value_int(v, &i);
        printf("ok get int %" PRId64 "\n", i);
        break;
    case KAD_VALUE_TYPE_UINT:
        kad_value_uint(v, &u);
        printf("ok get uint %" PRIu64 "\n", u);
        break;
    case KAD_VALUE_TYPE_FLOAT:
        kad_value_float(v, &f);
        printf("ok get float %.17g\n", f);
        break;
    case KAD_VALUE_TYPE_BOOL:
        kad_value_bool(v, &b);
        printf("ok get bool %s\n", b ? "true" : "false");
        break;
    case KAD_VALUE_TYPE_NIL:
    case KAD_VALUE_TYPE_LIST:
    case KAD_VALUE_TYPE_MAP:
        /* Python's None, lists and dicts: their msgpack, for a msgpack library. */
        kad_value_msgpack(v, &data, &len);
        print_hex("msgpack", data, len);
        break;
    default:
        printf("error get unknown-type\n");
    }
}

static void serve(kad_node *node, uint32_t timeout_ms) {
    char line[4096];
    while (fgets(line, sizeof line, stdin)) {
        line[strcspn(line, "\r\n")] = '\0';
        char *cmd = strtok(line, " ");
        if (!cmd) continue;
        if (strcmp(cmd, "quit") == 0) break;
        if (strcmp(cmd, "put") == 0) {
            char *key = strtok(NULL, " ");
            char *val = strtok(NULL, "");
            if (!key || !val) {
                printf("error put usage: put KEY VALUE\n");
                continue;
            }
            size_t stored = 0;
            kad_result r = kad_node_put(node, (const uint8_t *)key, strlen(key),
                                        (const uint8_t *)val, strlen(val), 0, timeout_ms, &stored);
            if (r == KAD_OK) printf("ok put %zu\n", stored);
            else print_error("put", r);
        } else if (strcmp(cmd, "get") == 0) {
            char *key = strtok(NULL, " ");
            if (!key) {
                printf("error get usage: get KEY\n");
                continue;
            }
            kad_value *v = NULL;
            kad_result r = kad_node_get(node, (const uint8_t *)key, strlen(key), timeout_ms, &v);
            if (r == KAD_OK) print_value(v);
            else if (r == KAD_NOT_FOUND) printf("notfound get %s\n", key);
            else print_error("get", r);
            kad_value_free(v);
        } else if (strcmp(cmd, "contacts") == 0) {
            kad_routing_table *t = NULL;
            kad_result r = kad_node_export_routing_table(node, &t);
            if (r == KAD_OK) printf("ok contacts %zu\n", kad_routing_table_len(t));
            else print_error("contacts", r);
            kad_routing_table_free(t);
        } else if (strcmp(cmd, "stats") == 0) {
            kad_stats *s = NULL;
            kad_result r = kad_node_stats(node, &s);
            if (r != KAD_OK) {
                print_error("stats", r);
                continue;
            }
            printf("ok stats");
            for (uint32_t k = 0; kad_stat_name(k) != NULL; k++) {
                uint64_t n = 0;
                if (kad_stats_get(s, k, &n) == KAD_OK) printf(" %s=%" PRIu64, kad_stat_name(k), n);
            }
            printf("\n");
            kad_stats_free(s);
        } else {
            printf("error %s unknown command\n", cmd);
        }
    }
}

int main(int argc, char **argv) {
    const char *bind_ip = "127.0.0.1";
    unsigned long port = 0, timeout_ms = 10000;
    int first_peer = 1;
    for (; first_peer + 1 < argc && argv[first_peer][0] == '-'; first_peer += 2) {
        const char *opt = argv[first_peer], *arg = argv[first_peer + 1];
        if (strcmp(opt, "-b") == 0) bind_ip = arg;
        else if (strcmp(opt, "-p") == 0) port = strtoul(arg, NULL, 10);
        else if (strcmp(opt, "-t") == 0) timeout_ms = strtoul(arg, NULL, 10);
        else {
            fprintf(stderr, "usage: %s [-b BIND_IP] [-p PORT] [-t TIMEOUT_MS] [HOST:PORT ...]\n", argv[0]);
            return 2;
        }
    }
    setvbuf(stdout, NULL, _IOLBF, 0); /* one line per answer, even into a pipe */

    kad_config *config = kad_config_new();
    kad_result r = kad_config_set_bind(config, bind_ip, (uint16_t)port);
    if (r == KAD_OK) r = kad_config_set_rpc_timeout_ms(config, 1000);
    kad_node *node = NULL;
    if (r == KAD_OK) r = kad_node_new(config, &node);
    kad_config_free(config);
    if (r != KAD_OK) {
        print_error("start", r);
        return 1;
    }

    int status = 0;
    if (first_peer < argc) {
        size_t contacts = 0;
        r = kad_node_bootstrap(node, (const char *const *)&argv[first_peer],
                               (size_t)(argc - first_peer), (uint32_t)timeout_ms, &contacts);
        if (r != KAD_OK) {
            print_error("bootstrap", r);
            status = 1;
        }
    }
    if (status == 0) {
        uint16_t bound = 0;
        uint8_t id[KAD_ID_LEN];
        kad_node_port(node, &bound);
        kad_node_id(node, id, sizeof id);
        printf("ready %u ", (unsigned)bound);
        for (size_t k = 0; k < sizeof id; k++) printf("%02x", id[k]);
        printf("\n");
        serve(node, (uint32_t)timeout_ms);
    }
    kad_node_free(node);
    return status;
}
