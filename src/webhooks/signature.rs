//! Signing webhook requests: HMAC-SHA256 over `<unix seconds>.<body>` with the endpoint's
//! secret, sent as `X-Botwave-Signature: t=<unix seconds>,v1=<lowercase hex>` (and a second
//! `v1` with the replaced secret while a rotation's grace period runs). Receivers recompute it
//! over the exact bytes they received and reject old timestamps (replays).

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

pub const HEADER: &str = "x-botwave-signature";

/// Secrets are `whsec_` and 32 random bytes in hex: the prefix makes a leaked one easy to
/// recognise in logs and code.
pub fn new_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::fill(&mut bytes);
    format!("whsec_{}", hex(&bytes))
}

/// The header value for `body` sent at `timestamp`: one `v1` per valid secret, the current
/// one first, then the one it replaced while that is in its grace period (Stripe's
/// convention, so a receiver accepts a request if any `v1` matches a secret it knows).
pub fn header_value(secret: &str, previous: Option<&str>, timestamp: i64, body: &[u8]) -> String {
    let mut value = format!("t={timestamp},v1={}", sign(secret, timestamp, body));
    if let Some(previous) = previous {
        value.push_str(",v1=");
        value.push_str(&sign(previous, timestamp, body));
    }
    value
}

/// The lowercase hex HMAC-SHA256 of `<timestamp>.<body>`.
pub fn sign(secret: &str, timestamp: i64, body: &[u8]) -> String {
    // HMAC takes keys of any length, so this cannot fail.
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes())
        .expect("HMAC accepts any key length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    hex(&mac.finalize().into_bytes())
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut out, byte| {
            let _ = write!(out, "{byte:02x}");
            out
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 4231 test case 2, then the `<timestamp>.<body>` framing.
    #[test]
    fn matches_the_reference_hmac() {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(b"Jefe").unwrap();
        mac.update(b"what do ya want for nothing?");
        assert_eq!(
            hex(&mac.finalize().into_bytes()),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert_eq!(
            header_value("s", None, 1, b"{}"),
            format!("t=1,v1={}", sign("s", 1, b"{}"))
        );
        assert_eq!(
            header_value("new", Some("old"), 1, b"{}"),
            format!(
                "t=1,v1={},v1={}",
                sign("new", 1, b"{}"),
                sign("old", 1, b"{}")
            )
        );
        assert_ne!(sign("s", 1, b"{}"), sign("s", 2, b"{}"));
        assert!(new_secret().starts_with("whsec_"));
        assert_eq!(new_secret().len(), 6 + 64);
    }
}
