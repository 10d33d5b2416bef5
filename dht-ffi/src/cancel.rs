//! Cancellation tokens for _async calls: one token may be given to any
//! number of calls; kad_cancel_token_cancel ends those still running, whose
//! callbacks then get KAD_CANCELLED (still exactly once).

use std::sync::Arc;

use tokio::sync::watch;

use crate::error::kad_result;

/// A cancellation token. Created by kad_cancel_token_new, released with
/// kad_cancel_token_free (also while operations using it still run: they
/// keep what they need). Any thread may use it.
pub struct kad_cancel_token {
    cancelled: Arc<watch::Sender<bool>>,
}

/// A new token, not cancelled. The caller owns it (kad_cancel_token_free).
/// Never returns NULL (aborts if memory is exhausted).
#[no_mangle]
pub extern "C" fn kad_cancel_token_new() -> *mut kad_cancel_token {
    ffi_panic_boundary! {
        Box::into_raw(Box::new(kad_cancel_token { cancelled: Arc::new(watch::Sender::new(false)) }))
    }
}

/// Cancel every operation started with `token` that has not finished: each
/// one stops (its RPCs are forgotten) and its callback gets KAD_CANCELLED,
/// exactly once, on a callback thread. Operations started with the token
/// afterwards are cancelled at once the same way. Idempotent.
#[no_mangle]
pub unsafe extern "C" fn kad_cancel_token_cancel(token: *mut kad_cancel_token) -> kad_result {
    ffi_panic_boundary! {
        let token = try_ref!(token);
        token.cancelled.send_replace(true);
        kad_result::KAD_OK
    }
}

/// Release a token (NULL is ignored; freeing twice is undefined behaviour).
/// Does not cancel anything.
#[no_mangle]
pub unsafe extern "C" fn kad_cancel_token_free(token: *mut kad_cancel_token) {
    ffi_panic_boundary! {
        if !token.is_null() {
            // SAFETY: from Box::into_raw in kad_cancel_token_new; ownership ends here.
            drop(unsafe { Box::from_raw(token) });
        }
    }
}

/// The token an operation watches (none for a NULL token).
pub(crate) struct Cancel(Option<watch::Receiver<bool>>);

impl Cancel {
    /// # Safety
    /// `token` must be NULL or a live kad_cancel_token.
    pub(crate) unsafe fn from_ptr(token: *const kad_cancel_token) -> Cancel {
        if token.is_null() {
            return Cancel(None);
        }
        // SAFETY: non-NULL live token per the contract.
        Cancel(Some(unsafe { (*token).cancelled.subscribe() }))
    }

    /// Resolves when the token is cancelled; never without a token.
    pub(crate) async fn cancelled(self) {
        match self.0 {
            Some(mut rx) => {
                // The sender lives in the token; if the token was freed
                // without cancelling, this never resolves.
                if rx.wait_for(|c| *c).await.is_err() {
                    std::future::pending::<()>().await;
                }
            }
            None => std::future::pending().await,
        }
    }
}
