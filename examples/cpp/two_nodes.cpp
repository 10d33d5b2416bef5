// two_nodes (C++17): two kadmium nodes on loopback through kadmium.hpp;
// the second joins through the first, puts a value, and both read it back,
// blocking and through a std::future. Then a signed record: the second node
// publishes and updates it under its key pair, the first reads the newest
// version by public key; and an immutable record, found by its digest.
//
//   c++ -std=c++17 two_nodes.cpp $(pkg-config --cflags --libs kadmium) -o two_nodes_cpp
#include <kadmium.hpp>

#include <cstdio>

int main() {
    try {
        kadmium::config cfg;
        cfg.bind("127.0.0.1", 0).rpc_timeout_ms(2000);
        kadmium::node first(cfg), second(cfg);
        size_t contacts = second.bootstrap({first.loopback_address()}, 5000);
        size_t stored = second.put("greeting", "hello from C++", 0, 5000);
        std::optional<kadmium::value> v = first.get("greeting", 5000);
        std::future<std::optional<kadmium::value>> later = second.get_future("greeting", 5000);
        std::optional<kadmium::value> w = later.get();
        if (!v || !w || v->str() != "hello from C++" || w->str() != v->str()) {
            std::fprintf(stderr, "two_nodes_cpp: value not found\n");
            return 1;
        }
        std::printf("two_nodes_cpp: %zu contact(s), stored on %zu node(s), got \"%s\" twice\n", contacts, stored,
                    v->str().c_str());

        // Signed: only the key pair's owner can write; anyone with the
        // public key reads the newest version.
        kadmium::keypair me;
        second.put_signed(me, "status", "online", {}, 5000);
        uint64_t seq = second.put_signed_future(me, "status", "away", {}, 5000).get();
        std::optional<kadmium::signed_record> status = first.get_signed(me.public_key(), "status", 5000);
        // Immutable: the key is the digest of the content.
        kadmium::node_id blob = second.put_immutable("an immutable blob", 5000);
        std::optional<kadmium::value> content = first.get_immutable(blob, 5000);
        if (!status || status->seq != seq || status->val.str() != "away" || !content) {
            std::fprintf(stderr, "two_nodes_cpp: signed or immutable record not found\n");
            return 1;
        }
        std::printf("two_nodes_cpp: signed \"status\" is \"%s\" (seq %llu), immutable blob \"%s\"\n",
                    status->val.str().c_str(), static_cast<unsigned long long>(status->seq),
                    content->str().c_str());
        return 0;
    } catch (const kadmium::error &e) {
        std::fprintf(stderr, "two_nodes_cpp: %s\n", e.what());
        return 1;
    }
}
