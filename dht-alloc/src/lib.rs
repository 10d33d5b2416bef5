//! The allocator of kadmium's Python module and benchmark programs:
//! mimalloc, its arenas committed as they are used. A program or library
//! that links this crate (`use dht_alloc as _;`) gets it as its Rust global
//! allocator; in the Python module that leaves Python's own objects alone
//! (they use Python's allocator). The C library does not link it: a C
//! program keeps the allocator it chose.
//!
//! Why not the C library's malloc: a node's driver moves between tokio's
//! worker threads, so memory allocated on one thread is often freed on
//! another. glibc then takes the other thread's arena lock, and its per-thread
//! arenas grow a page at a time, one `mprotect` each. In
//! `efficiency --nodes 64 --ops 2000` that was about 10,000 `futex` and
//! 4,200 `mprotect` calls and 7,600 page faults, against 1,700, 13 and 190
//! with mimalloc (`perf stat -e 'syscalls:sys_enter_*'`), and the shared
//! benchmark's puts took 10% less CPU (see the README's performance section).
//!
//! One option is changed from mimalloc's defaults: arenas are committed as
//! they are used, not up front. Memory of an eagerly committed arena is given
//! back with `MADV_FREE`, which leaves it resident until the system runs
//! short: `bench/workload.py`'s memory per node nearly doubled (482 against
//! 255 KB at 64 nodes); committed on use it is about 300 KB.

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[cfg(target_os = "linux")]
mod configure {
    use std::ffi::{c_int, c_long};

    // In the mimalloc library the `mimalloc` crate links (version 3, pinned
    // by Cargo.lock). The crate's own binding of it sits behind a feature
    // whose extra dependency is not worth one call.
    extern "C" {
        pub(crate) fn mi_option_set(option: c_int, value: c_long);
        #[cfg(test)]
        pub(crate) fn mi_option_get(option: c_int) -> c_long;
        #[cfg(test)]
        pub(crate) fn mi_version() -> c_int;
    }

    /// `mi_option_arena_eager_commit` in mimalloc 3's `mi_option_e` (the
    /// options are numbered differently in mimalloc 2).
    pub(crate) const ARENA_EAGER_COMMIT: c_int = 4;

    /// Runs when the program or shared object is loaded, before any Rust
    /// code and so before mimalloc reserves its first arena, which is what
    /// the option governs. (`MIMALLOC_VERBOSE=1` lists the options in force:
    /// `arena_eager_commit: 0`.)
    extern "C" fn commit_arenas_on_use() {
        // SAFETY: mi_option_set stores the value in mimalloc's option
        // table (range-checked); it has no other precondition.
        unsafe { mi_option_set(ARENA_EAGER_COMMIT, 0) }
    }

    #[used]
    #[link_section = ".init_array"]
    static AT_LOAD: extern "C" fn() = commit_arenas_on_use;
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::configure::*;

    /// The option's number is mimalloc 3's: a Cargo.lock update to another
    /// major version fails here rather than setting some other option.
    #[test]
    fn the_linked_mimalloc_numbers_its_options_as_version_3_does() {
        // SAFETY: mi_version reads a constant.
        let version = unsafe { mi_version() };
        assert_eq!(version / 10_000, 3, "mimalloc {version}");
    }

    /// The constructor ran before this test's code: arenas commit on use.
    #[test]
    fn arenas_are_committed_on_use_from_the_start() {
        // SAFETY: mi_option_get reads mimalloc's option table.
        assert_eq!(unsafe { mi_option_get(ARENA_EAGER_COMMIT) }, 0);
    }
}
