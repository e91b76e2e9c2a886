//! Proving who is calling: password hashing, login tokens, API keys and their scopes, login
//! and request rate limits, and the account-change watch that keeps long-lived connections
//! authorized.

pub mod account_watch;
pub mod api_key;
pub mod jwt;
pub mod password;
pub mod rate_limit;
pub mod request_limit;
pub mod scope;
