//! Session actors end to end: real PostgreSQL (a fresh database per test) and the
//! WhatsApp simulator in-process, with the real whatsapp-rust client in between.
//! Run with `cargo test -p botwave --features simulator --test sessions`.

#[path = "../common/mod.rs"]
mod common;

mod lifecycle;
mod sending;
mod support;
