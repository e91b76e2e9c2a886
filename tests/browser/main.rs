//! The dashboard in a real browser: headless Chromium driven over WebDriver against a real
//! node, real PostgreSQL and the WhatsApp simulator.

#[allow(dead_code)]
#[path = "../api/admin_helpers.rs"]
mod admin_helpers;
#[path = "../common/mod.rs"]
mod common;
#[allow(dead_code)]
#[path = "../api/helpers.rs"]
mod helpers;
#[allow(dead_code)]
#[path = "../api/smtp_sink.rs"]
mod smtp_sink;
#[allow(dead_code)]
#[path = "../api/stripe_standin.rs"]
mod stripe_standin;
#[allow(dead_code)]
#[path = "../api/webhook_receiver.rs"]
mod webhook_receiver;
#[allow(dead_code)]
#[path = "../api/whatsapp_helpers.rs"]
mod whatsapp_helpers;

mod accounts;
mod admin;
mod admin_analytics;
mod admin_cluster;
mod api_docs;
mod api_keys;
mod demo;
mod flow;
mod isolation;
mod message_log;
mod pacing;
mod page;
mod pair_code;
mod password;
mod plans;
mod polling;
mod send_form;
mod serving;
mod webdriver;
mod webhooks;
