//! The panic boundary: no Rust panic may unwind into C (that is undefined
//! behaviour). Every exported function body runs inside `ffi_panic_boundary!`,
//! which catches a panic, records it as the thread's error detail and returns
//! the neutral value of the function's return type (KAD_PANIC for results).

use crate::error::kad_result;
use crate::value::kad_value_type;

/// What an exported function returns when its body panicked.
pub(crate) trait PanicDefault {
    fn panic_default() -> Self;
}

impl PanicDefault for kad_result {
    fn panic_default() -> Self {
        kad_result::KAD_PANIC
    }
}

impl PanicDefault for () {
    fn panic_default() -> Self {}
}

impl PanicDefault for usize {
    fn panic_default() -> Self {
        0
    }
}

impl PanicDefault for u32 {
    fn panic_default() -> Self {
        0
    }
}

impl PanicDefault for kad_value_type {
    fn panic_default() -> Self {
        kad_value_type::None
    }
}

impl<T> PanicDefault for *const T {
    fn panic_default() -> Self {
        std::ptr::null()
    }
}

impl<T> PanicDefault for *mut T {
    fn panic_default() -> Self {
        std::ptr::null_mut()
    }
}

/// Record a caught panic's message as the detail of the current thread.
pub(crate) fn record_panic(payload: &(dyn std::any::Any + Send)) {
    let msg = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic payload".to_owned());
    crate::error::set_last_error(format!("panic inside kadmium: {msg}"));
}

/// Run the body, converting a panic into the return type's neutral value.
/// `return` inside the body returns from the closure, i.e. from the function.
macro_rules! ffi_panic_boundary {
    ( $($body:tt)* ) => {
        match ::std::panic::catch_unwind(::std::panic::AssertUnwindSafe(move || { $($body)* })) {
            Ok(ret) => ret,
            Err(payload) => {
                $crate::panic::record_panic(&*payload);
                $crate::panic::PanicDefault::panic_default()
            }
        }
    };
}

/// Dereference a `*const T` argument or return KAD_NULL_POINTER (with a
/// detail naming the argument) from the enclosing function.
macro_rules! try_ref {
    ($ptr:ident) => {{
        let p = $ptr;
        if p.is_null() {
            return $crate::error::Failure::new(
                $crate::error::kad_result::KAD_NULL_POINTER,
                concat!("argument `", stringify!($ptr), "` is NULL"),
            )
            .report();
        }
        // SAFETY: non-NULL; the caller promises a valid object as documented.
        unsafe { &*p }
    }};
}

/// Like `try_ref!` for `*mut T`.
macro_rules! try_mut {
    ($ptr:ident) => {{
        let p = $ptr;
        if p.is_null() {
            return $crate::error::Failure::new(
                $crate::error::kad_result::KAD_NULL_POINTER,
                concat!("argument `", stringify!($ptr), "` is NULL"),
            )
            .report();
        }
        // SAFETY: non-NULL; the caller promises a valid object as documented.
        unsafe { &mut *p }
    }};
}

/// Return KAD_NULL_POINTER early if a required out-parameter is NULL.
macro_rules! check_out {
    ($ptr:ident) => {
        if $ptr.is_null() {
            return $crate::error::Failure::new(
                $crate::error::kad_result::KAD_NULL_POINTER,
                concat!("out-parameter `", stringify!($ptr), "` is NULL"),
            )
            .report();
        }
    };
}

/// Evaluate a `Result<T, Failure>`; on error record it and return its code.
macro_rules! try_ffi {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(f) => return $crate::error::Failure::report(f),
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    fn panicking(fail: bool) -> kad_result {
        ffi_panic_boundary! {
            if fail {
                panic!("boom");
            }
            kad_result::KAD_OK
        }
    }

    #[test]
    fn panic_becomes_result_code_and_detail() {
        assert_eq!(panicking(false), kad_result::KAD_OK);
        // The default hook would print the panic; keep test output clean.
        let hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {}));
        let r = panicking(true);
        std::panic::set_hook(hook);
        assert_eq!(r, kad_result::KAD_PANIC);
        let mut buf = [0 as std::ffi::c_char; 64];
        let mut n = 0usize;
        let ok =
            unsafe { crate::error::kad_last_error_detail(buf.as_mut_ptr(), buf.len(), &mut n) };
        assert_eq!(ok, kad_result::KAD_OK);
        let detail: Vec<u8> = buf[..n].iter().map(|&c| c as u8).collect();
        assert_eq!(
            String::from_utf8_lossy(&detail),
            "panic inside kadmium: boom"
        );
    }
}
