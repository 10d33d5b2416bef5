/*
 * kadmium.hpp: header-only C++17 wrapper of kadmium.h.
 *
 * - RAII handles: kadmium::config, kadmium::node, kadmium::value,
 *   kadmium::keypair (move-only).
 * - Signed records (node::put_signed, get_signed, delete_signed: mutable,
 *   under a key pair and a salt) and immutable ones (node::put_immutable,
 *   get_immutable: under the digest of their content), blocking, with
 *   std::function handlers and as std::future, like plain puts and gets.
 * - Failures throw kadmium::error, carrying the kad_result code and the
 *   library's detail message (kad_last_error_detail). A missing key is not an
 *   error: get() returns std::nullopt.
 * - Asynchronous calls take a std::function (run on a library callback
 *   thread, see kadmium.h) or return a std::future.
 * - ~node() shuts the node down and waits until every callback of its
 *   operations has returned (kad_node_free_wait), so whatever the handlers
 *   capture only has to outlive the node. Destroying a node inside one of its
 *   own handlers does not wait (it cannot wait for itself).
 * - An exception thrown by a handler cannot cross the C library: it is caught
 *   and passed to kadmium::callback_exception_handler (by default printed to
 *   stderr), never allowed to terminate the process. A future receives the
 *   operation's error as its exception instead.
 *
 * Link with the C library: c++ -std=c++17 app.cpp $(pkg-config --cflags --libs kadmium)
 */
#ifndef KADMIUM_HPP
#define KADMIUM_HPP

#include <kadmium.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <functional>
#include <future>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace kadmium {

/// A failed kadmium call: code() is the kad_result, detail() the library's message.
class error : public std::runtime_error {
public:
    error(kad_result code, const std::string &what, std::string detail)
        : std::runtime_error(what + ": " + kad_result_str(static_cast<uint32_t>(code)) +
                             (detail.empty() ? std::string() : " (" + detail + ")")),
          code_(code), detail_(std::move(detail)) {}
    kad_result code() const noexcept { return code_; }
    const std::string &detail() const noexcept { return detail_; }

private:
    kad_result code_;
    std::string detail_;
};

/// Called with every exception a handler threw (on the callback thread).
inline std::function<void(std::exception_ptr)> callback_exception_handler =
    [](std::exception_ptr e) {
        try {
            std::rethrow_exception(e);
        } catch (const std::exception &ex) {
            std::fprintf(stderr, "kadmium: exception in a callback: %s\n", ex.what());
        } catch (...) {
            std::fprintf(stderr, "kadmium: unknown exception in a callback\n");
        }
    };

using node_id = std::array<uint8_t, KAD_ID_LEN>;
/// An ed25519 public key (what readers of signed records need) or secret.
using key_bytes = std::array<uint8_t, KAD_KEY_LEN>;

namespace detail {

inline std::string last_detail() {
    char buf[512];
    size_t n = 0;
    if (kad_last_error_detail(buf, sizeof buf, &n) != KAD_OK) return std::string();
    return std::string(buf, n);
}

inline error make_error(kad_result r, const char *what) { return error(r, what, last_detail()); }

inline void check(kad_result r, const char *what) {
    if (r != KAD_OK) throw make_error(r, what);
}

inline const uint8_t *bytes(std::string_view s) { return reinterpret_cast<const uint8_t *>(s.data()); }

/// Run a user handler on the callback thread; nothing may escape into C.
template <class F>
void guarded(F &&f) noexcept {
    try {
        f();
    } catch (...) {
        try {
            if (callback_exception_handler) callback_exception_handler(std::current_exception());
        } catch (...) {
            // The handler of handlers threw too: dropping it is all that is left.
        }
    }
}

struct value_free {
    void operator()(kad_value *v) const noexcept { kad_value_free(v); }
};
struct config_free {
    void operator()(kad_config *c) const noexcept { kad_config_free(c); }
};

}  // namespace detail

/// A value found by get (owned; any thread may read it).
class value {
public:
    explicit value(kad_value *v) noexcept : v_(v) {}
    /// Typed values to put with node::put_value (what Python peers store).
    static value of_int(int64_t i) { return value(kad_value_new_int(i)); }
    static value of_float(double f) { return value(kad_value_new_float(f)); }
    static value of_bool(bool b) { return value(kad_value_new_bool(b)); }
    static value of_str(std::string_view text) {
        kad_value *v = nullptr;
        detail::check(kad_value_new_str(text.data(), text.size(), &v), "kadmium::value::of_str");
        return value(v);
    }
    static value of_bytes(std::string_view bytes) {
        kad_value *v = nullptr;
        detail::check(kad_value_new_bytes(detail::bytes(bytes), bytes.size(), &v), "kadmium::value::of_bytes");
        return value(v);
    }
    kad_value_type type() const noexcept { return kad_value_get_type(v_.get()); }
    /// Bytes of a BYTES or STR value.
    std::string_view bytes() const {
        const uint8_t *data = nullptr;
        size_t len = 0;
        detail::check(kad_value_bytes(v_.get(), &data, &len), "kadmium::value::bytes");
        return std::string_view(reinterpret_cast<const char *>(data), len);
    }
    std::string str() const { return std::string(bytes()); }
    int64_t as_int() const {
        int64_t i = 0;
        detail::check(kad_value_int(v_.get(), &i), "kadmium::value::as_int");
        return i;
    }
    double as_float() const {
        double f = 0;
        detail::check(kad_value_float(v_.get(), &f), "kadmium::value::as_float");
        return f;
    }
    bool as_bool() const {
        bool b = false;
        detail::check(kad_value_bool(v_.get(), &b), "kadmium::value::as_bool");
        return b;
    }
    const kad_value *get() const noexcept { return v_.get(); }

private:
    std::unique_ptr<kad_value, detail::value_free> v_;
};

/// Cancels the asynchronous calls it is given (their handlers get KAD_CANCELLED).
class cancel_token {
public:
    cancel_token() : t_(kad_cancel_token_new()) {}
    void cancel() { detail::check(kad_cancel_token_cancel(t_.get()), "kadmium::cancel_token::cancel"); }
    const kad_cancel_token *get() const noexcept { return t_.get(); }

private:
    struct token_free {
        void operator()(kad_cancel_token *t) const noexcept { kad_cancel_token_free(t); }
    };
    std::unique_ptr<kad_cancel_token, token_free> t_;
};

/// An ed25519 key pair that signs records (move-only). The library keeps the
/// secret; secret() copies it out for storage.
class keypair {
public:
    /// A new key pair from the operating system's CSPRNG.
    keypair() : k_(kad_keypair_new()) {}
    /// The key pair of a secret written by secret().
    static keypair from_secret(const key_bytes &secret) {
        kad_keypair *k = nullptr;
        detail::check(kad_keypair_from_secret(secret.data(), secret.size(), &k), "kadmium::keypair::from_secret");
        return keypair(k);
    }
    /// The secret: keep it private, it signs records.
    key_bytes secret() const {
        key_bytes out{};
        detail::check(kad_keypair_secret(k_.get(), out.data(), out.size()), "kadmium::keypair::secret");
        return out;
    }
    /// The public key, what node::get_signed needs to find the records.
    key_bytes public_key() const {
        key_bytes out{};
        detail::check(kad_keypair_public_key(k_.get(), out.data(), out.size()), "kadmium::keypair::public_key");
        return out;
    }
    const kad_keypair *get() const noexcept { return k_.get(); }

private:
    explicit keypair(kad_keypair *k) noexcept : k_(k) {}
    struct keypair_free {
        void operator()(kad_keypair *k) const noexcept { kad_keypair_free(k); }
    };
    std::unique_ptr<kad_keypair, keypair_free> k_;
};

/// How node::put_signed stores a record. seq 0: one more than the newest
/// record found; cas non-zero: fail with KAD_CAS_MISMATCH unless the newest
/// record has that sequence number; ttl_secs 0: the node's default TTL.
struct signed_put_options {
    uint64_t seq = 0;
    uint64_t cas = 0;
    uint32_t ttl_secs = 0;
};

/// The newest signed record found: its value (bytes) and sequence number.
struct signed_record {
    value val;
    uint64_t seq;
};

/// Node settings; setters return *this and throw kadmium::error on bad values.
class config {
public:
    config() : c_(kad_config_new()) {}
    config &bind(const std::string &host, uint16_t port) {
        detail::check(kad_config_set_bind(c_.get(), host.c_str(), port), "kadmium::config::bind");
        return *this;
    }
    config &k(size_t k) {
        detail::check(kad_config_set_k(c_.get(), k), "kadmium::config::k");
        return *this;
    }
    config &alpha(size_t a) {
        detail::check(kad_config_set_alpha(c_.get(), a), "kadmium::config::alpha");
        return *this;
    }
    config &rpc_timeout_ms(uint32_t ms) {
        detail::check(kad_config_set_rpc_timeout_ms(c_.get(), ms), "kadmium::config::rpc_timeout_ms");
        return *this;
    }
    config &max_value_size(size_t n) {
        detail::check(kad_config_set_max_value_size(c_.get(), n), "kadmium::config::max_value_size");
        return *this;
    }
    const kad_config *get() const noexcept { return c_.get(); }

private:
    std::unique_ptr<kad_config, detail::config_free> c_;
};

using get_handler = std::function<void(kad_result, std::optional<value>)>;
using count_handler = std::function<void(kad_result, size_t)>;
/// (result, sequence number stored; 0 unless KAD_OK)
using seq_handler = std::function<void(kad_result, uint64_t)>;
/// (result, the record; std::nullopt unless KAD_OK)
using signed_handler = std::function<void(kad_result, std::optional<signed_record>)>;
/// (result, the immutable value's key; all zero unless KAD_OK)
using digest_handler = std::function<void(kad_result, node_id)>;

/// A running node (move-only). Timeouts are in milliseconds, 0 = no limit.
class node {
public:
    explicit node(const config &cfg = config()) {
        detail::check(kad_node_new(cfg.get(), &n_), "kadmium::node");
    }
    node(node &&other) noexcept : n_(std::exchange(other.n_, nullptr)) {}
    node &operator=(node &&other) noexcept {
        if (this != &other) {
            close();
            n_ = std::exchange(other.n_, nullptr);
        }
        return *this;
    }
    node(const node &) = delete;
    node &operator=(const node &) = delete;
    ~node() { close(); }

    uint16_t port() const {
        uint16_t p = 0;
        detail::check(kad_node_port(n_, &p), "kadmium::node::port");
        return p;
    }
    node_id id() const {
        node_id id{};
        detail::check(kad_node_id(n_, id.data(), id.size()), "kadmium::node::id");
        return id;
    }
    /// "127.0.0.1:PORT"-style address of this node for peers on loopback.
    std::string loopback_address() const { return "127.0.0.1:" + std::to_string(port()); }

    size_t bootstrap(const std::vector<std::string> &addrs, uint32_t timeout_ms = 0) {
        std::vector<const char *> ptrs;
        for (const auto &a : addrs) ptrs.push_back(a.c_str());
        size_t found = 0;
        detail::check(kad_node_bootstrap(n_, ptrs.data(), ptrs.size(), timeout_ms, &found),
                      "kadmium::node::bootstrap");
        return found;
    }
    /// Store bytes; returns how many nodes hold them.
    size_t put(std::string_view key, std::string_view bytes, uint32_t ttl_secs = 0, uint32_t timeout_ms = 0) {
        size_t stored = 0;
        detail::check(kad_node_put(n_, detail::bytes(key), key.size(), detail::bytes(bytes), bytes.size(),
                                   ttl_secs, timeout_ms, &stored),
                      "kadmium::node::put");
        return stored;
    }
    /// Store a typed value (value::of_int, ...); returns how many nodes hold it.
    size_t put_value(std::string_view key, const value &v, uint32_t ttl_secs = 0, uint32_t timeout_ms = 0) {
        size_t stored = 0;
        detail::check(kad_node_put_value(n_, detail::bytes(key), key.size(), v.get(), ttl_secs, timeout_ms, &stored),
                      "kadmium::node::put_value");
        return stored;
    }
    /// The value under key, or std::nullopt if the network does not have it.
    std::optional<value> get(std::string_view key, uint32_t timeout_ms = 0) {
        kad_value *v = nullptr;
        kad_result r = kad_node_get(n_, detail::bytes(key), key.size(), timeout_ms, &v);
        if (r == KAD_NOT_FOUND) return std::nullopt;
        detail::check(r, "kadmium::node::get");
        return value(v);
    }
    node_id ping(const std::string &addr, uint32_t timeout_ms = 0) {
        node_id id{};
        detail::check(kad_node_ping(n_, addr.c_str(), timeout_ms, id.data(), id.size()), "kadmium::node::ping");
        return id;
    }

    /// `handler(result, value)` runs once on a library thread.
    void get_async(std::string_view key, get_handler handler, uint32_t timeout_ms = 0,
                   const cancel_token *cancel = nullptr) {
        auto h = std::make_unique<get_handler>(std::move(handler));
        detail::check(kad_node_get_async(n_, detail::bytes(key), key.size(), timeout_ms, &on_get, h.get(),
                                         cancel ? cancel->get() : nullptr),
                      "kadmium::node::get_async");
        h.release();  // owned by on_get from now on
    }
    /// `handler(result, stored)` runs once on a library thread.
    void put_async(std::string_view key, std::string_view bytes, count_handler handler, uint32_t ttl_secs = 0,
                   uint32_t timeout_ms = 0, const cancel_token *cancel = nullptr) {
        auto h = std::make_unique<count_handler>(std::move(handler));
        detail::check(kad_node_put_async(n_, detail::bytes(key), key.size(), detail::bytes(bytes), bytes.size(),
                                         ttl_secs, timeout_ms, &on_count, h.get(), cancel ? cancel->get() : nullptr),
                      "kadmium::node::put_async");
        h.release();
    }

    /// The value (or std::nullopt), or the kadmium::error, through a future.
    std::future<std::optional<value>> get_future(std::string_view key, uint32_t timeout_ms = 0,
                                                 const cancel_token *cancel = nullptr) {
        auto p = std::make_shared<std::promise<std::optional<value>>>();
        auto f = p->get_future();
        get_async(
            key,
            [p](kad_result r, std::optional<value> v) {
                if (r == KAD_OK || r == KAD_NOT_FOUND) {
                    p->set_value(std::move(v));
                } else {
                    p->set_exception(std::make_exception_ptr(detail::make_error(r, "kadmium::node::get_future")));
                }
            },
            timeout_ms, cancel);
        return f;
    }
    /// How many nodes stored the value, or the kadmium::error, through a future.
    std::future<size_t> put_future(std::string_view key, std::string_view bytes, uint32_t ttl_secs = 0,
                                   uint32_t timeout_ms = 0) {
        auto p = std::make_shared<std::promise<size_t>>();
        auto f = p->get_future();
        put_async(
            key, bytes,
            [p](kad_result r, size_t stored) {
                if (r == KAD_OK) {
                    p->set_value(stored);
                } else {
                    p->set_exception(std::make_exception_ptr(detail::make_error(r, "kadmium::node::put_future")));
                }
            },
            ttl_secs, timeout_ms);
        return f;
    }

    /// This node's address as its peers see it ("ip:port", "[ip]:port"), or
    /// std::nullopt until at least two peer IPs agree on it.
    std::optional<std::string> public_address() const {
        char buf[KAD_ADDRESS_MAX_LEN];
        size_t n = 0;
        kad_result r = kad_node_public_address(n_, buf, sizeof buf, &n);
        if (r == KAD_NOT_FOUND) return std::nullopt;
        detail::check(r, "kadmium::node::public_address");
        return std::string(buf, n);
    }

    // --- signed records: mutable, under (key pair, salt) ---------------------

    /// Sign `bytes` and store it under (kp's public key, salt); returns the
    /// sequence number stored. kadmium::error with KAD_CAS_MISMATCH or
    /// KAD_INVALID_RECORD (seq not above the newest) when refused.
    uint64_t put_signed(const keypair &kp, std::string_view salt, std::string_view bytes,
                        const signed_put_options &opts = {}, uint32_t timeout_ms = 0) {
        uint64_t seq = 0;
        detail::check(kad_node_put_signed(n_, kp.get(), detail::bytes(salt), salt.size(), detail::bytes(bytes),
                                          bytes.size(), opts.seq, opts.cas, opts.ttl_secs, timeout_ms, &seq),
                      "kadmium::node::put_signed");
        return seq;
    }
    /// Store a signed tombstone: later get_signed finds nothing. Returns its sequence number.
    uint64_t delete_signed(const keypair &kp, std::string_view salt, uint32_t timeout_ms = 0) {
        uint64_t seq = 0;
        detail::check(kad_node_delete_signed(n_, kp.get(), detail::bytes(salt), salt.size(), timeout_ms, &seq),
                      "kadmium::node::delete_signed");
        return seq;
    }
    /// The newest valid record under (public key, salt), or std::nullopt if
    /// there is none or it was deleted.
    std::optional<signed_record> get_signed(const key_bytes &public_key, std::string_view salt,
                                            uint32_t timeout_ms = 0) {
        kad_value *v = nullptr;
        uint64_t seq = 0;
        kad_result r = kad_node_get_signed(n_, public_key.data(), public_key.size(), detail::bytes(salt), salt.size(),
                                           timeout_ms, &v, &seq);
        if (r == KAD_NOT_FOUND) return std::nullopt;
        detail::check(r, "kadmium::node::get_signed");
        return signed_record{value(v), seq};
    }
    /// `handler(result, seq)` runs once on a library thread.
    void put_signed_async(const keypair &kp, std::string_view salt, std::string_view bytes, seq_handler handler,
                          const signed_put_options &opts = {}, uint32_t timeout_ms = 0,
                          const cancel_token *cancel = nullptr) {
        auto h = std::make_unique<seq_handler>(std::move(handler));
        detail::check(kad_node_put_signed_async(n_, kp.get(), detail::bytes(salt), salt.size(), detail::bytes(bytes),
                                                bytes.size(), opts.seq, opts.cas, opts.ttl_secs, timeout_ms, &on_seq,
                                                h.get(), cancel ? cancel->get() : nullptr),
                      "kadmium::node::put_signed_async");
        h.release();  // owned by on_seq from now on
    }
    /// `handler(result, record)` runs once on a library thread.
    void get_signed_async(const key_bytes &public_key, std::string_view salt, signed_handler handler,
                          uint32_t timeout_ms = 0, const cancel_token *cancel = nullptr) {
        auto h = std::make_unique<signed_handler>(std::move(handler));
        detail::check(kad_node_get_signed_async(n_, public_key.data(), public_key.size(), detail::bytes(salt),
                                                salt.size(), timeout_ms, &on_signed, h.get(),
                                                cancel ? cancel->get() : nullptr),
                      "kadmium::node::get_signed_async");
        h.release();
    }
    /// The sequence number stored, or the kadmium::error, through a future.
    std::future<uint64_t> put_signed_future(const keypair &kp, std::string_view salt, std::string_view bytes,
                                            const signed_put_options &opts = {}, uint32_t timeout_ms = 0,
                                            const cancel_token *cancel = nullptr) {
        auto p = std::make_shared<std::promise<uint64_t>>();
        auto f = p->get_future();
        put_signed_async(
            kp, salt, bytes,
            [p](kad_result r, uint64_t seq) {
                if (r == KAD_OK) {
                    p->set_value(seq);
                } else {
                    p->set_exception(
                        std::make_exception_ptr(detail::make_error(r, "kadmium::node::put_signed_future")));
                }
            },
            opts, timeout_ms, cancel);
        return f;
    }
    /// The record (or std::nullopt), or the kadmium::error, through a future.
    std::future<std::optional<signed_record>> get_signed_future(const key_bytes &public_key, std::string_view salt,
                                                                uint32_t timeout_ms = 0,
                                                                const cancel_token *cancel = nullptr) {
        auto p = std::make_shared<std::promise<std::optional<signed_record>>>();
        auto f = p->get_future();
        get_signed_async(
            public_key, salt,
            [p](kad_result r, std::optional<signed_record> rec) {
                if (r == KAD_OK || r == KAD_NOT_FOUND) {
                    p->set_value(std::move(rec));
                } else {
                    p->set_exception(
                        std::make_exception_ptr(detail::make_error(r, "kadmium::node::get_signed_future")));
                }
            },
            timeout_ms, cancel);
        return f;
    }

    // --- immutable records: under the digest of their content ---------------

    /// Store `bytes` as an immutable record; returns its key.
    node_id put_immutable(std::string_view bytes, uint32_t timeout_ms = 0) {
        node_id digest{};
        detail::check(kad_node_put_immutable(n_, detail::bytes(bytes), bytes.size(), timeout_ms, digest.data(),
                                             digest.size()),
                      "kadmium::node::put_immutable");
        return digest;
    }
    /// The immutable value under `digest` (checked by hashing), or std::nullopt.
    std::optional<value> get_immutable(const node_id &digest, uint32_t timeout_ms = 0) {
        kad_value *v = nullptr;
        kad_result r = kad_node_get_immutable(n_, digest.data(), digest.size(), timeout_ms, &v);
        if (r == KAD_NOT_FOUND) return std::nullopt;
        detail::check(r, "kadmium::node::get_immutable");
        return value(v);
    }
    /// `handler(result, key)` runs once on a library thread.
    void put_immutable_async(std::string_view bytes, digest_handler handler, uint32_t timeout_ms = 0,
                             const cancel_token *cancel = nullptr) {
        auto h = std::make_unique<digest_handler>(std::move(handler));
        detail::check(kad_node_put_immutable_async(n_, detail::bytes(bytes), bytes.size(), timeout_ms, &on_digest,
                                                   h.get(), cancel ? cancel->get() : nullptr),
                      "kadmium::node::put_immutable_async");
        h.release();
    }
    /// `handler(result, value)` runs once on a library thread.
    void get_immutable_async(const node_id &digest, get_handler handler, uint32_t timeout_ms = 0,
                             const cancel_token *cancel = nullptr) {
        auto h = std::make_unique<get_handler>(std::move(handler));
        detail::check(kad_node_get_immutable_async(n_, digest.data(), digest.size(), timeout_ms, &on_get, h.get(),
                                                   cancel ? cancel->get() : nullptr),
                      "kadmium::node::get_immutable_async");
        h.release();
    }
    /// The key, or the kadmium::error, through a future.
    std::future<node_id> put_immutable_future(std::string_view bytes, uint32_t timeout_ms = 0,
                                              const cancel_token *cancel = nullptr) {
        auto p = std::make_shared<std::promise<node_id>>();
        auto f = p->get_future();
        put_immutable_async(
            bytes,
            [p](kad_result r, node_id digest) {
                if (r == KAD_OK) {
                    p->set_value(digest);
                } else {
                    p->set_exception(
                        std::make_exception_ptr(detail::make_error(r, "kadmium::node::put_immutable_future")));
                }
            },
            timeout_ms, cancel);
        return f;
    }
    /// The value (or std::nullopt), or the kadmium::error, through a future.
    std::future<std::optional<value>> get_immutable_future(const node_id &digest, uint32_t timeout_ms = 0,
                                                           const cancel_token *cancel = nullptr) {
        auto p = std::make_shared<std::promise<std::optional<value>>>();
        auto f = p->get_future();
        get_immutable_async(
            digest,
            [p](kad_result r, std::optional<value> v) {
                if (r == KAD_OK || r == KAD_NOT_FOUND) {
                    p->set_value(std::move(v));
                } else {
                    p->set_exception(
                        std::make_exception_ptr(detail::make_error(r, "kadmium::node::get_immutable_future")));
                }
            },
            timeout_ms, cancel);
        return f;
    }

    /// Stop the node (the handle stays until destruction); the port is free on return.
    void shutdown() { detail::check(kad_node_shutdown(n_), "kadmium::node::shutdown"); }
    kad_node *get() const noexcept { return n_; }

private:
    void close() noexcept {
        if (!n_) return;
        // Inside one of this node's callbacks waiting is refused; free without it.
        if (kad_node_free_wait(n_, 0) == KAD_WRONG_THREAD) kad_node_free(n_);
        n_ = nullptr;
    }
    static void on_get(void *ud, kad_result r, kad_value *v) noexcept {
        std::unique_ptr<get_handler> h(static_cast<get_handler *>(ud));
        std::optional<value> owned;
        if (v) owned.emplace(v);
        detail::guarded([&] {
            if (*h) (*h)(r, std::move(owned));
        });
    }
    static void on_count(void *ud, kad_result r, size_t n) noexcept {
        std::unique_ptr<count_handler> h(static_cast<count_handler *>(ud));
        detail::guarded([&] {
            if (*h) (*h)(r, n);
        });
    }
    static void on_seq(void *ud, kad_result r, uint64_t seq) noexcept {
        std::unique_ptr<seq_handler> h(static_cast<seq_handler *>(ud));
        detail::guarded([&] {
            if (*h) (*h)(r, seq);
        });
    }
    static void on_signed(void *ud, kad_result r, kad_value *v, uint64_t seq) noexcept {
        std::unique_ptr<signed_handler> h(static_cast<signed_handler *>(ud));
        std::optional<signed_record> rec;
        if (v) rec.emplace(signed_record{value(v), seq});
        detail::guarded([&] {
            if (*h) (*h)(r, std::move(rec));
        });
    }
    static void on_digest(void *ud, kad_result r, const uint8_t *digest, size_t len) noexcept {
        std::unique_ptr<digest_handler> h(static_cast<digest_handler *>(ud));
        node_id id{};
        if (digest && len == id.size()) std::copy(digest, digest + len, id.begin());
        detail::guarded([&] {
            if (*h) (*h)(r, id);
        });
    }

    kad_node *n_ = nullptr;
};

}  // namespace kadmium

#endif  // KADMIUM_HPP
