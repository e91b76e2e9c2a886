//! Behaviours every storage backend must share, written once against wacore's
//! `Backend` trait. Each function takes a fresh backend and panics on a deviation.

pub mod app_state;
pub mod device;
pub mod isolation;
pub mod msg_secret;
pub mod protocol;
pub mod signal;

/// `rows` sorted, for comparing results whose order the trait leaves open.
pub fn sorted<T: Ord>(mut rows: Vec<T>) -> Vec<T> {
    rows.sort();
    rows
}
