//! The one error type of the simulated phone's crypto.

use wacore_libsignal::protocol::{CurveError, SignalProtocolError};

/// Everything that can go wrong in the phone's crypto. Bad input from the wire
/// (a QR, a ciphertext, a client's signature) always ends up here, never in a panic.
#[derive(Debug, thiserror::Error)]
pub enum PhoneError {
    /// libsignal refused: bad MAC, unknown prekey, malformed envelope, bad bundle signature…
    #[error("signal protocol: {0}")]
    Signal(#[from] SignalProtocolError),
    /// A Curve25519 key or signature operation failed.
    #[error("curve25519: {0}")]
    Curve(#[from] CurveError),
    /// The `type` attribute of an `<enc>` node is neither `pkmsg` nor `msg`.
    #[error("unsupported enc type {0:?} (expected \"pkmsg\" or \"msg\")")]
    UnsupportedEncType(String),
    /// The decrypted bytes did not unpad/decode to a `wa::Message`.
    #[error("decrypted plaintext is not a valid message: {0}")]
    Plaintext(String),
    /// A key given as raw bytes has the wrong length or is not a valid point.
    #[error("invalid {what}: {reason}")]
    InvalidKey { what: &'static str, reason: String },
    /// Encrypting to a device with no session and no bundle to start one.
    #[error("no Signal session with {0} and no prekey bundle to start one")]
    NoSession(String),
    /// The pairing QR string could not be parsed.
    #[error("invalid pairing QR code: {0}")]
    InvalidQr(String),
    /// A protobuf blob (ADV identity, key index list) could not be decoded or lacks a field.
    #[error("invalid {what}: {reason}")]
    InvalidProto { what: &'static str, reason: String },
    /// The companion's `pair-device-sign` blob did not verify.
    #[error("companion device identity rejected: {0}")]
    AdvRejected(&'static str),
    /// A store future did not complete synchronously (the in-memory stores never wait).
    #[error("signal operation unexpectedly suspended")]
    Suspended,
    /// A prekey bundle node could not be built.
    #[error("cannot build prekey bundle node: {0}")]
    BundleNode(String),
}
