//! Black-box tests of the HTTP API: a real node, real PostgreSQL, real HTTP.

#[path = "../common/mod.rs"]
mod common;
#[path = "../common/socket_io_client.rs"]
mod socket_io_client;

mod accounts;
mod admin;
mod admin_analytics;
mod admin_cluster;
mod admin_helpers;
mod api_keys;
mod bad_input;
mod billing;
mod cli;
mod contract;
mod deployment;
mod fuzz;
mod hardening;
mod health;
mod helpers;
mod inbound;
mod limits;
mod live_authorization;
mod metrics;
mod migrations;
mod openapi;
mod pacing;
mod password_reset;
mod plans;
mod smtp_sink;
mod socket_io;
mod stripe_standin;
mod webhook_receiver;
mod webhooks;
mod websocket;
mod websocket_catch_up;
mod whatsapp;
mod whatsapp_helpers;
mod whatsapp_pair_code;
