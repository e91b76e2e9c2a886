//! End-to-end tests of the simulator driving the real whatsapp-rust client and, in
//! `baileys`, the independent Baileys client under Node (one test binary: every test
//! binary links the whole client, and builds are slow).

mod app_state;
mod baileys;
mod common;
mod control_api;
mod double_connections;
mod lifecycle;
mod messaging;
mod noise_handshake;
mod pair_code;
mod pairing;
mod prekeys;
mod robustness;
