//! The allocator of kadmium's Python module and benchmark programs:
//! mimalloc, its arenas committed as they are used. A program or library
//! that links this crate (`use dht_alloc as _;`) gets it as its Rust global
//! allocator; in the Python module that leaves Python's own objects alone
//! (they use Python's allocator). The C library does not link it: a C
//! program keeps the allocator it chose.
//!
//! Why not the C library's malloc: a node's driver moves between tokio's
//! worker threads, so memory allocated on one thread is often freed on
//! another. glibc then takes the other thread's arena lock, and its
//! per-thread arenas grow a page at a time, one `mprotect` each. In
//! `efficiency --nodes 64 --ops 2000` that was about 10,000 `futex` and
//! 4,200 `mprotect` calls and 7,600 page faults, against 1,700, 13 and 190
//! with mimalloc (`perf stat -e 'syscalls:sys_enter_*'`); the shared
//! benchmark's puts took about 5% less CPU (the README's performance
//! section has the figures).
//!
//! One option differs from mimalloc's defaults: arenas are committed as
//! they are used, not up front. mimalloc advises an eagerly committed arena
//! for transparent huge pages (`MADV_HUGEPAGE`), so each 2 MiB region the
//! process touches becomes resident whole: `bench/workload.py`'s memory per
//! node nearly doubled (482 against 255 KB at 64 nodes). Committed on use it
//! is about 300 KB, as with huge pages off (`MIMALLOC_ALLOW_THP=0`: 288 KB);
//! mimalloc's own switch for that, `allow_thp`, turns them off for the whole
//! process (`prctl`), Python's memory included. The option is only a
//! default: `MIMALLOC_ARENA_EAGER_COMMIT` in the environment still wins.
//!
//! The module is loaded with `dlopen`, so mimalloc's thread-locals use the
//! local-dynamic model (`local_dynamic_tls`, `Cargo.toml`): the initial-exec
//! model takes from glibc's small static-TLS reserve, which other extension
//! modules may have used up.

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[cfg(target_os = "linux")]
mod configure {
    use std::ffi::{c_int, c_long};

    // In the mimalloc library the `mimalloc` crate links (version 3, pinned
    // by Cargo.lock). The crate's own binding of it sits behind a feature
    // whose extra dependency is not worth one call.
    extern "C" {
        fn mi_option_set_default(option: c_int, value: c_long);
    }

    /// `mi_option_arena_eager_commit` in mimalloc 3's `mi_option_e`
    /// (`tests/options.rs` checks it by name).
    const ARENA_EAGER_COMMIT: c_int = 4;

    /// Runs when the program or shared object is loaded, before any Rust
    /// code allocates, and so before mimalloc reserves its first arena,
    /// which is when it reads the option.
    extern "C" fn commit_arenas_on_use() {
        // SAFETY: mi_option_set_default stores the value in mimalloc's
        // option table (range-checked); it has no other precondition.
        unsafe { mi_option_set_default(ARENA_EAGER_COMMIT, 0) }
    }

    #[used]
    #[link_section = ".init_array"]
    static AT_LOAD: extern "C" fn() = commit_arenas_on_use;
}
