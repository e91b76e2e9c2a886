//! Proving who is calling: password hashing, login tokens, API keys and login rate limits.

pub mod api_key;
pub mod jwt;
pub mod password;
pub mod rate_limit;
