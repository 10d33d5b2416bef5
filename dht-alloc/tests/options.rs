//! dht-alloc linked as the Python module and the examples link it (`use
//! dht_alloc as _;`): mimalloc is the allocator and its arenas commit on use.
#![cfg(target_os = "linux")]

use std::ffi::{c_char, c_void, CStr};

use dht_alloc as _;

type Output = unsafe extern "C" fn(msg: *const c_char, arg: *mut c_void);

extern "C" {
    fn mi_options_print_out(out: Output, arg: *mut c_void);
    fn mi_is_in_heap_region(p: *const c_void) -> bool;
}

/// Appends each line mimalloc prints to the `String` behind `arg`.
unsafe extern "C" fn collect(msg: *const c_char, arg: *mut c_void) {
    // SAFETY: mimalloc passes a NUL-terminated message, and `arg` is the
    // `String` that `options` lends for the call.
    let (msg, text) = unsafe { (CStr::from_ptr(msg), &mut *arg.cast::<String>()) };
    text.push_str(&msg.to_string_lossy());
}

/// mimalloc's own listing of its options, with their names.
fn options() -> String {
    let mut text = String::new();
    // SAFETY: `collect` matches mimalloc's output callback and writes only
    // to `text`, which outlives the call.
    unsafe { mi_options_print_out(collect, (&mut text as *mut String).cast()) };
    text
}

/// The option the constructor set is the one named arena_eager_commit: a
/// mimalloc that numbered its options differently fails here.
#[test]
fn arenas_commit_on_use_from_the_start() {
    let options = options();
    assert!(
        options
            .lines()
            .any(|l| l.trim() == "option 'arena_eager_commit': 0"),
        "{options}"
    );
    assert!(options.starts_with("v3."), "{options}");
}

#[test]
fn rust_allocations_come_from_mimalloc() {
    let boxed = Box::new([0u8; 64]);
    // SAFETY: mi_is_in_heap_region only compares the address with mimalloc's.
    assert!(unsafe { mi_is_in_heap_region(boxed.as_ptr().cast()) });
}
