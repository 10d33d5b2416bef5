/*
 * two_nodes: start two kadmium nodes on loopback, bootstrap the second from
 * the first, put a value through one and get it through the other.
 *
 *   cc -std=c11 two_nodes.c $(pkg-config --cflags --libs kadmium) -o two_nodes
 */
#include <kadmium.h>

#include <stdio.h>
#include <string.h>

/* Print a failed call's result and detail; return 1 so main can bail out. */
static int fail(const char *what, kad_result r) {
    char detail[256];
    kad_last_error_detail(detail, sizeof detail, NULL);
    fprintf(stderr, "%s failed: %s (%s)\n", what, kad_result_str(r), detail);
    return 1;
}

static kad_result start_node(kad_node **node_out) {
    kad_config *config = kad_config_new();
    kad_result r = kad_config_set_bind(config, "127.0.0.1", 0); /* port 0: any free port */
    if (r == KAD_OK) r = kad_config_set_rpc_timeout_ms(config, 2000); /* generous: CI runs it under valgrind */
    if (r == KAD_OK) r = kad_node_new(config, node_out);
    kad_config_free(config); /* the node keeps its own copy */
    return r;
}

int main(void) {
    kad_node *first = NULL, *second = NULL;
    kad_value *value = NULL;
    kad_result r;
    int status = 1;

    printf("kadmium %s\n", kad_version());
    if ((r = start_node(&first)) != KAD_OK) return fail("first node", r);
    if ((r = start_node(&second)) != KAD_OK) {
        kad_node_free(first);
        return fail("second node", r);
    }

    uint16_t port = 0;
    char addr[32];
    kad_node_port(first, &port);
    snprintf(addr, sizeof addr, "127.0.0.1:%u", (unsigned)port);
    const char *peers[] = {addr};
    size_t contacts = 0;
    if ((r = kad_node_bootstrap(second, peers, 1, 5000, &contacts)) != KAD_OK) {
        status = fail("bootstrap", r);
        goto out;
    }
    printf("second node bootstrapped from %s, knows %zu contact(s)\n", addr, contacts);

    const char *key = "greeting";
    const char *text = "hello from kadmium";
    size_t stored = 0;
    r = kad_node_put(second, (const uint8_t *)key, strlen(key), (const uint8_t *)text,
                     strlen(text), 0, 5000, &stored);
    if (r != KAD_OK) {
        status = fail("put", r);
        goto out;
    }
    printf("put %s: stored on %zu node(s)\n", key, stored);

    if ((r = kad_node_get(first, (const uint8_t *)key, strlen(key), 5000, &value)) != KAD_OK) {
        status = fail("get", r);
        goto out;
    }
    const uint8_t *data = NULL;
    size_t len = 0;
    if ((r = kad_value_bytes(value, &data, &len)) != KAD_OK) {
        status = fail("value bytes", r);
        goto out;
    }
    /* data is followed by a NUL, so it prints as a string. */
    printf("get %s: \"%s\" (%zu bytes)\n", key, (const char *)data, len);
    status = (len == strlen(text) && memcmp(data, text, len) == 0) ? 0 : 1;

out:
    kad_value_free(value);
    kad_node_free(second);
    kad_node_free(first);
    return status;
}
