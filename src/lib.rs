//! botwave: a self-hosted, multi-user WhatsApp automation gateway.
//!
//! A node serves the HTTP API and dashboard ([`http`]), keeps accounts and keys in PostgreSQL
//! ([`db`], [`users`], [`api_keys`]) and is assembled by [`startup::Application`].

pub mod admin;
pub mod api_keys;
pub mod auth;
pub mod billing;
pub mod cli;
pub mod config;
pub mod data_dir;
pub mod db;
pub mod domain;
pub mod http;
pub mod mail;
pub mod message_log;
pub mod metrics;
pub mod password_reset;
pub mod plans;
pub mod qr;
pub mod startup;
pub mod state;
pub mod systemd;
pub mod users;
pub mod webhooks;
