// test_cpp: kadmium.hpp (C++17) — RAII, exceptions with code and detail,
// std::function handlers, std::future, exceptions thrown by handlers, and
// ~node() waiting for outstanding callbacks. Run under valgrind by run.sh.
#include <kadmium.hpp>

#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <chrono>
#include <cstdio>
#include <string>
#include <thread>

static int passed, failed;

#define CHECK(cond)                                                                   \
    do {                                                                              \
        if (cond) {                                                                   \
            passed++;                                                                 \
        } else {                                                                      \
            failed++;                                                                 \
            std::fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
        }                                                                             \
    } while (0)

template <class F>
static kad_result code_of(F &&f) {
    try {
        f();
    } catch (const kadmium::error &e) {
        return e.code();
    }
    return KAD_OK;
}

// A C++ exception escaping a raw C callback (not through kadmium.hpp): the
// library's frames are "C-unwind", so it reaches Rust's catch_unwind, which
// aborts the process. Run in a child forked before the library is used.
static void throwing_callback(void *, kad_result, kad_value *v) {
    kad_value_free(v);
    throw std::runtime_error("escapes into the library");
}

static int exception_through_raw_callback_aborts() {
    std::fflush(nullptr);
    pid_t pid = fork();
    if (pid == 0) {
        kad_node *n = nullptr;
        kad_config *c = kad_config_new();
        kad_config_set_bind(c, "127.0.0.1", 0);
        kad_node_new(c, &n);
        kad_config_free(c);
        kad_node_get_async(n, reinterpret_cast<const uint8_t *>("k"), 1, 0, throwing_callback, nullptr, nullptr);
        std::this_thread::sleep_for(std::chrono::seconds(20));
        _exit(0);  // the callback did not abort: the check below fails
    }
    int status = 0;
    waitpid(pid, &status, 0);
    return WIFSIGNALED(status) ? WTERMSIG(status) : -1;
}

static int run() {
    std::atomic<int> handler_exceptions{0};
    kadmium::callback_exception_handler = [&](std::exception_ptr) { handler_exceptions++; };

    kadmium::config cfg;
    cfg.bind("127.0.0.1", 0).rpc_timeout_ms(2000);
    CHECK(code_of([] { kadmium::config().k(0); }) == KAD_INVALID_ARGUMENT);
    CHECK(code_of([] { kadmium::config().bind("not an ip", 0); }) == KAD_BAD_ADDRESS);
    try {
        kadmium::config().bind("nonsense", 1);
        CHECK(false);
    } catch (const kadmium::error &e) {
        CHECK(e.detail().find("nonsense") != std::string::npos);
        CHECK(std::string(e.what()).find("bad address") != std::string::npos);
    }

    kadmium::node a(cfg), b(cfg);
    CHECK(a.port() != 0 && a.id() != b.id());
    CHECK(b.bootstrap({a.loopback_address()}, 5000) >= 1);
    CHECK(b.ping(a.loopback_address(), 5000) == a.id());
    CHECK(b.put("k", std::string("v\0w", 3), 0, 5000) >= 1);
    auto v = a.get("k", 5000);
    CHECK(v && v->type() == KAD_VALUE_TYPE_BYTES && v->bytes() == std::string_view("v\0w", 3));
    CHECK(v && code_of([&] { v->as_int(); }) == KAD_WRONG_TYPE);
    CHECK(!a.get("missing", 5000));
    CHECK(code_of([&] { a.get("", 5000); }) == KAD_INVALID_ARGUMENT);
    CHECK(code_of([&] { a.ping("[::1]:4000"); }) == KAD_BAD_ADDRESS);

    // futures: value, nullopt, and an error as the future's exception
    CHECK(b.put_future("f", "fv", 0, 5000).get() >= 1);
    auto got = a.get_future("f", 5000).get();
    CHECK(got && got->str() == "fv");
    CHECK(!a.get_future("nothing", 5000).get());
    CHECK(code_of([&] { a.get_future("", 5000); }) == KAD_INVALID_ARGUMENT);  // refused at once

    // typed puts, and a cancelled future
    CHECK(b.put_value("i", kadmium::value::of_int(-7), 0, 5000) >= 1);
    CHECK(b.put_value("s", kadmium::value::of_str("text"), 0, 5000) >= 1);
    CHECK(b.put_value("d", kadmium::value::of_float(0.5), 0, 5000) >= 1);
    auto gi = a.get("i", 5000);
    CHECK(gi && gi->type() == KAD_VALUE_TYPE_INT && gi->as_int() == -7);
    auto gs = a.get("s", 5000);
    CHECK(gs && gs->type() == KAD_VALUE_TYPE_STR && gs->str() == "text");
    auto gd = a.get("d", 5000);
    CHECK(gd && gd->as_float() == 0.5);
    CHECK(code_of([] { kadmium::value::of_str("\xff"); }) == KAD_INVALID_ARGUMENT);
    kadmium::cancel_token token;
    token.cancel();
    auto cancelled = a.get_future("k", 5000, &token);
    CHECK(code_of([&] { cancelled.get(); }) == KAD_CANCELLED);

    // std::function handlers; one throws, and the process goes on
    std::atomic<int> calls{0};
    a.get_async("k", [&](kad_result r, std::optional<kadmium::value> val) {
        if (r == KAD_OK && val && val->bytes().size() == 3) calls++;
    });
    a.get_async("k", [&](kad_result, std::optional<kadmium::value>) {
        calls++;
        throw std::runtime_error("thrown by a handler");
    });
    for (int i = 0; i < 2000 && (calls < 2 || handler_exceptions < 1); i++)
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    CHECK(calls == 2 && handler_exceptions == 1);

    // ~node() waits for every handler: none runs after the node is gone
    std::atomic<int> late{0};
    {
        kadmium::node c(cfg);
        for (int i = 0; i < 200; i++)
            c.get_async("x", [&](kad_result, std::optional<kadmium::value>) {
                std::this_thread::sleep_for(std::chrono::microseconds(200));
                late++;
            });
    }
    CHECK(late == 200);

    // move, shutdown
    kadmium::node moved = std::move(b);
    CHECK(moved.port() != 0 && b.get() == nullptr);
    moved.shutdown();
    CHECK(code_of([&] { moved.put("k", "v", 0, 1000); }) == KAD_SHUT_DOWN);

    std::printf("test_cpp: %d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}

int main() {
    int sig = exception_through_raw_callback_aborts();
    CHECK(sig == SIGABRT);
    std::printf("test_cpp: an exception escaping a raw C callback ended the process with signal %d (SIGABRT)\n", sig);
    try {
        return run();
    } catch (const std::exception &e) {
        std::fprintf(stderr, "test_cpp: unexpected exception: %s\n", e.what());
        return 1;
    }
}
