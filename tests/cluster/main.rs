//! The cluster, black box: real `botwave serve` processes (one per node) on 127.0.0.1 ports,
//! one PostgreSQL database, the WhatsApp simulator in a process of its own. Nodes are killed,
//! stopped and frozen for real, and the simulator tells what WhatsApp would have seen.

#![cfg(feature = "simulator")]

#[path = "../common/mod.rs"]
mod common;
#[path = "../common/socket_io_client.rs"]
mod socket_io_client;

mod database_cut;
mod db_proxy;
mod failover;
mod harness;
mod routing;
mod sim_process;
mod tls;
