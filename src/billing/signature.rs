//! Verifying Stripe's `Stripe-Signature` header: `t=<unix seconds>,v1=<hex>[,v1=<hex>…]`
//! (plus `v0` and other schemes, ignored), where each `v1` is the HMAC-SHA256 of
//! `<t>.<raw body>` with the endpoint's signing secret. A request is genuine if any `v1`
//! matches (Stripe sends several while a secret is being rolled) and `t` is within the
//! tolerance of now (an old request replayed is refused).

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// Why a signature was refused; all of them are the sender's fault (400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("no Stripe-Signature header")]
    Missing,
    #[error("the Stripe-Signature header has no timestamp (t=…)")]
    NoTimestamp,
    #[error("the Stripe-Signature header has no v1 signature")]
    NoSignature,
    #[error("the signed timestamp is too far from now")]
    OutsideTolerance,
    #[error("no v1 signature matches")]
    Mismatch,
}

/// Checks `header` for `body` against `secret`, at `now` (unix seconds), allowing
/// `tolerance_secs` between the signed time and now either way.
pub fn verify(
    header: Option<&str>,
    body: &[u8],
    secret: &str,
    now: i64,
    tolerance_secs: u64,
) -> Result<(), SignatureError> {
    let header = header.ok_or(SignatureError::Missing)?;
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for item in header.split(',') {
        match item.trim().split_once('=') {
            Some(("t", value)) => timestamp = value.trim().parse::<i64>().ok(),
            Some(("v1", value)) => signatures.push(value.trim()),
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or(SignatureError::NoTimestamp)?;
    if signatures.is_empty() {
        return Err(SignatureError::NoSignature);
    }
    if now.abs_diff(timestamp) > tolerance_secs {
        return Err(SignatureError::OutsideTolerance);
    }
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes())
        .expect("HMAC accepts any key length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    // Each candidate is compared through the MAC's constant-time check.
    let matches = signatures.iter().any(|given| {
        decode_hex(given).is_some_and(|given| mac.clone().verify_slice(&given).is_ok())
    });
    if matches {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || !text.is_ascii() {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sign(secret: &str, t: i64, body: &[u8]) -> String {
        crate::webhooks::signature::sign(secret, t, body)
    }

    #[test]
    fn accepts_any_matching_v1_within_the_tolerance() {
        let body = br#"{"id":"evt_1"}"#;
        let good = sign("whsec_a", 1000, body);
        let other = sign("whsec_b", 1000, body);
        let header = format!("t=1000,v1={other},v0=abc,v1={good}");
        assert_eq!(verify(Some(&header), body, "whsec_a", 1100, 300), Ok(()));
        assert_eq!(
            verify(Some(&header), body, "whsec_a", 1400, 300),
            Err(SignatureError::OutsideTolerance)
        );
        assert_eq!(
            verify(Some(&header), b"{}", "whsec_a", 1000, 300),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(Some("v1=00"), body, "whsec_a", 1000, 300),
            Err(SignatureError::NoTimestamp)
        );
        assert_eq!(
            verify(Some("t=1000"), body, "whsec_a", 1000, 300),
            Err(SignatureError::NoSignature)
        );
        assert_eq!(
            verify(Some("t=1000,v1=zz€"), body, "whsec_a", 1000, 300),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(None, body, "whsec_a", 1000, 300),
            Err(SignatureError::Missing)
        );
    }
}
