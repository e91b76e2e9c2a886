//! Runs libsignal's async API to completion without a runtime.
//!
//! libsignal's functions are `async` only because real stores do I/O. The phone's
//! stores are plain HashMaps, so every future is ready on its first poll. Driving
//! it here keeps the phone's API synchronous, so the server can hold a phone
//! behind a `std::sync::Mutex` and call it from any tokio task without awaiting
//! while locked.

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use super::PhoneError;

/// A cooperative yield inside libsignal would wake itself immediately; allow a
/// few of those, but never spin forever on something that really waits.
const MAX_POLLS: usize = 64;

/// Polls `future` until it is ready, failing with [`PhoneError::Suspended`] if it
/// keeps returning `Pending` (which would mean a store that really waits).
pub(crate) fn run_ready<F: Future>(future: F) -> Result<F::Output, PhoneError> {
    let mut future = pin!(future);
    let mut context = Context::from_waker(Waker::noop());
    for _ in 0..MAX_POLLS {
        if let Poll::Ready(output) = future.as_mut().poll(&mut context) {
            return Ok(output);
        }
    }
    Err(PhoneError::Suspended)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_future_returns_its_value() {
        assert_eq!(run_ready(async { 7 }).unwrap(), 7);
    }

    #[test]
    fn future_that_never_completes_is_an_error() {
        let result = run_ready(std::future::pending::<()>());
        assert!(matches!(result, Err(PhoneError::Suspended)));
    }
}
