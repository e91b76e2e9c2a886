//! Session actors end to end: real PostgreSQL (a fresh database per test) and the
//! WhatsApp simulator in-process, with the real whatsapp-rust client in between.
//! Run with `cargo test -p botwave --features simulator --test sessions`; without the
//! feature only the check that the simulator's certificate chain is refused runs.

#[path = "../common/mod.rs"]
mod common;

mod connectivity;
#[cfg(feature = "simulator")]
mod lifecycle;
#[cfg(feature = "simulator")]
mod sending;
mod support;
