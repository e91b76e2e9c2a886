//! Conversions between wacore values and the column types of the schema: unsigned
//! numbers in `bigint`, fixed-size keys in `bytea`, key pairs as private || public.

use wacore::libsignal::protocol::{KeyPair, PrivateKey, PublicKey};
use wacore::store::error::{Result, StoreError};

use super::error::corrupt;

/// A `u32` as stored in a `bigint` column.
pub(super) fn from_u32(value: u32) -> i64 {
    i64::from(value)
}

/// A `bigint` column holding a `u32`.
pub(super) fn to_u32(value: i64, what: &str) -> Result<u32> {
    u32::try_from(value).map_err(|_| corrupt(what, format_args!("{value} is not a u32")))
}

/// A `u64` for a `bigint` column; values past `i64::MAX` are refused rather than wrapped.
pub(super) fn from_u64(value: u64, what: &str) -> Result<i64> {
    i64::try_from(value)
        .map_err(|_| StoreError::Validation(format!("{what} {value} does not fit in a bigint")))
}

/// A `bigint` column holding a `u64`.
pub(super) fn to_u64(value: i64, what: &str) -> Result<u64> {
    u64::try_from(value).map_err(|_| corrupt(what, format_args!("{value} is negative")))
}

/// A `bytea` column holding exactly `N` bytes.
pub(super) fn to_array<const N: usize>(bytes: &[u8], what: &str) -> Result<[u8; N]> {
    bytes
        .try_into()
        .map_err(|_| corrupt(what, format_args!("{} bytes, expected {N}", bytes.len())))
}

/// A key pair as 64 bytes: the private key, then the public key without its type byte.
pub(super) fn key_pair_bytes(pair: &KeyPair) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(64);
    bytes.extend_from_slice(pair.private_key.serialize());
    bytes.extend_from_slice(pair.public_key.public_key_bytes());
    bytes
}

/// The inverse of [`key_pair_bytes`].
pub(super) fn key_pair_from_bytes(bytes: &[u8], what: &str) -> Result<KeyPair> {
    let bytes: [u8; 64] = to_array(bytes, what)?;
    let private_key = PrivateKey::deserialize(&bytes[..32]).map_err(|e| corrupt(what, e))?;
    let public_key =
        PublicKey::from_djb_public_key_bytes(&bytes[32..]).map_err(|e| corrupt(what, e))?;
    Ok(KeyPair::new(public_key, private_key))
}

/// A row count from the driver as the `u32` the store traits report.
pub(super) fn count(rows: u64) -> u32 {
    u32::try_from(rows).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_pair_round_trips_through_64_bytes() {
        // A fresh device generates real key pairs; no RNG plumbing needed here.
        let pair = wacore::store::Device::new().noise_key;
        let bytes = key_pair_bytes(&pair);
        assert_eq!(bytes.len(), 64);
        let back = key_pair_from_bytes(&bytes, "key").expect("decodes");
        assert_eq!(back.private_key.serialize(), pair.private_key.serialize());
        assert_eq!(back.public_key, pair.public_key);
    }

    #[test]
    fn out_of_range_numbers_are_refused() {
        assert!(to_u32(-1, "id").is_err());
        assert!(to_u32(i64::from(u32::MAX) + 1, "id").is_err());
        assert_eq!(to_u32(i64::from(u32::MAX), "id").ok(), Some(u32::MAX));
        assert!(from_u64(u64::MAX, "version").is_err());
        assert!(to_u64(-5, "version").is_err());
        assert!(to_array::<32>(&[0; 31], "key").is_err());
    }
}
