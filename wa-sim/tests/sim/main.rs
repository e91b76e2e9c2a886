//! End-to-end tests of the simulator driving the real whatsapp-rust client (one test
//! binary: every test binary links the whole client, and builds are slow).

mod common;
mod control_api;
mod lifecycle;
mod messaging;
mod noise_handshake;
mod pair_code;
mod pairing;
mod prekeys;
mod robustness;
