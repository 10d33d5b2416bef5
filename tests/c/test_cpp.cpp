// test_cpp: kadmium.hpp (C++17) — RAII, exceptions with code and detail,
// std::function handlers, std::future, exceptions thrown by handlers,
// ~node() waiting for outstanding callbacks, signed and immutable records
// (kadmium::keypair), the public address. Run under valgrind by run.sh.
#include <kadmium.hpp>

#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <chrono>
#include <cstdio>
#include <future>
#include <string>
#include <thread>
#include <utility>

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

// Signed and immutable records through the wrapper: blocking, handlers and
// futures, the refusals as kadmium::error codes, a key pair restored from its
// secret, and a moved-from key pair refused.
static void signed_records(kadmium::node &writer, kadmium::node &reader) {
    kadmium::keypair kp;
    const kadmium::key_bytes pk = kp.public_key();
    kadmium::keypair restored = kadmium::keypair::from_secret(kp.secret());
    CHECK(restored.public_key() == pk && restored.secret() == kp.secret());
    CHECK(pk != kadmium::keypair().public_key());

    CHECK(!reader.get_signed(pk, "chat", 5000));
    CHECK(writer.put_signed(kp, "chat", "addr-1", {}, 5000) == 1);
    CHECK(writer.put_signed(restored, "chat", std::string("addr\0-2", 7), {}, 5000) == 2);
    auto rec = reader.get_signed(pk, "chat", 5000);
    CHECK(rec && rec->seq == 2 && rec->val.bytes() == std::string_view("addr\0-2", 7));
    CHECK(!reader.get_signed(pk, "other salt", 5000));

    kadmium::signed_put_options cas;
    cas.cas = 1;  // the newest is 2
    CHECK(code_of([&] { writer.put_signed(kp, "chat", "stale", cas, 5000); }) == KAD_CAS_MISMATCH);
    kadmium::signed_put_options old;
    old.seq = 2;
    CHECK(code_of([&] { writer.put_signed(kp, "chat", "old", old, 5000); }) == KAD_INVALID_RECORD);

    // futures and handlers
    cas.cas = 2;
    CHECK(writer.put_signed_future(kp, "chat", "addr-3", cas, 5000).get() == 3);
    auto fut = reader.get_signed_future(pk, "chat", 5000).get();
    CHECK(fut && fut->seq == 3 && fut->val.str() == "addr-3");
    cas.cas = 1;
    auto refused = writer.put_signed_future(kp, "chat", "x", cas, 5000);
    CHECK(code_of([&] { refused.get(); }) == KAD_CAS_MISMATCH);
    std::promise<std::pair<kad_result, uint64_t>> seen;
    writer.put_signed_async(kp, "log", "entry", [&](kad_result r, uint64_t seq) { seen.set_value({r, seq}); }, {},
                            5000);
    auto put_result = seen.get_future().get();
    CHECK(put_result.first == KAD_OK && put_result.second == 1);
    std::promise<std::optional<kadmium::signed_record>> found;
    reader.get_signed_async(pk, "log", [&](kad_result r, std::optional<kadmium::signed_record> got) {
        found.set_value(r == KAD_OK ? std::move(got) : std::nullopt);
    });
    auto log = found.get_future().get();
    CHECK(log && log->seq == 1 && log->val.str() == "entry");

    // delete: readers find nothing, blocking or through a future
    CHECK(writer.delete_signed(kp, "chat", 5000) > 3);
    CHECK(!reader.get_signed(pk, "chat", 5000));
    CHECK(!reader.get_signed_future(pk, "chat", 5000).get());

    // immutable records
    kadmium::node_id blob = writer.put_immutable("blob", 5000);
    auto b = reader.get_immutable(blob, 5000);
    CHECK(b && b->str() == "blob");
    kadmium::node_id blob2 = writer.put_immutable_future("blob2", 5000).get();
    CHECK(blob2 != blob);
    auto b2 = reader.get_immutable_future(blob2, 5000).get();
    CHECK(b2 && b2->str() == "blob2");
    std::promise<kadmium::node_id> key3;
    writer.put_immutable_async("blob3",
                               [&](kad_result r, kadmium::node_id k) { key3.set_value(r == KAD_OK ? k : blob); });
    kadmium::node_id blob3 = key3.get_future().get();
    CHECK(blob3 != blob);
    std::promise<std::string> got3;
    reader.get_immutable_async(blob3, [&](kad_result r, std::optional<kadmium::value> v) {
        got3.set_value(r == KAD_OK && v ? v->str() : std::string("<none>"));
    });
    CHECK(got3.get_future().get() == "blob3");
    blob3[0] ^= 1;
    CHECK(!reader.get_immutable(blob3, 5000));
    CHECK(!reader.get_immutable_future(blob3, 5000).get());

    // a cancelled signed get; a moved-from key pair
    kadmium::cancel_token token;
    token.cancel();
    auto cancelled = reader.get_signed_future(pk, "log", 5000, &token);
    CHECK(code_of([&] { cancelled.get(); }) == KAD_CANCELLED);
    kadmium::keypair taken = std::move(kp);
    CHECK(taken.public_key() == pk);
    CHECK(code_of([&] { writer.put_signed(kp, "chat", "x", {}, 5000); }) == KAD_NULL_POINTER);
    CHECK(code_of([&] { kp.public_key(); }) == KAD_NULL_POINTER);
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
    CHECK(!b.public_address());  // one peer IP (127.0.0.1) so far

    signed_records(b, a);

    // The public address, once peers on two loopback IPs agree.
    {
        kadmium::config at2, at3;
        at2.bind("127.0.0.2", 0).rpc_timeout_ms(2000);
        at3.bind("127.0.0.3", 0).rpc_timeout_ms(2000);
        kadmium::node p2(at2), p3(at3);
        b.bootstrap({"127.0.0.2:" + std::to_string(p2.port()), "127.0.0.3:" + std::to_string(p3.port())}, 5000);
        CHECK(b.public_address() == std::optional<std::string>(b.loopback_address()));
    }

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
