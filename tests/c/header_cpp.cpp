// Compiled as C++17 with -Wall -Wextra -Werror -pedantic: the header must be
// usable from C++, and a few calls must link and behave.
#include <kadmium.h>

#include <cstdio>
#include <cstring>
#include <memory>
#include <string>

namespace {
struct ConfigDeleter {
    void operator()(kad_config *c) const { kad_config_free(c); }
};
struct NodeDeleter {
    void operator()(kad_node *n) const { kad_node_free(n); }
};
}  // namespace

int main() {
    int failed = 0;
    auto expect = [&failed](bool ok, const char *what) {
        if (!ok) {
            std::fprintf(stderr, "header_cpp: %s failed\n", what);
            failed++;
        }
    };
    std::unique_ptr<kad_config, ConfigDeleter> config(kad_config_new());
    expect(kad_config_set_bind(config.get(), "127.0.0.1", 0) == KAD_OK, "set_bind");
    kad_node *raw = nullptr;
    expect(kad_node_new(config.get(), &raw) == KAD_OK, "node_new");
    std::unique_ptr<kad_node, NodeDeleter> node(raw);
    uint16_t port = 0;
    expect(kad_node_port(node.get(), &port) == KAD_OK && port != 0, "node_port");
    std::string key = "c++";
    kad_value *value = nullptr;
    kad_result r = kad_node_get(node.get(), reinterpret_cast<const uint8_t *>(key.data()), key.size(), 1000, &value);
    expect(r == KAD_NOT_FOUND && value == nullptr, "get of a missing key");
    expect(std::strcmp(kad_result_str(r), "not found") == 0, "result_str");
    kad_value_type t = kad_value_get_type(nullptr);
    expect(t == KAD_VALUE_TYPE_NONE, "value_get_type(NULL)");
    std::printf("header_cpp: %s, port %u\n", failed ? "FAILED" : "ok", static_cast<unsigned>(port));
    return failed ? 1 : 0;
}
