//! The simulator's side of WhatsApp's Noise layer: its identity and certificate chain
//! ([`identity`]), the responder for the XX, IK and XXfallback handshakes
//! ([`responder`]), and the per-direction transport cipher that follows
//! ([`transport`]).

mod identity;
mod responder;
mod transport;

pub use identity::{CertificateError, NoiseKeys, NoiseRootKey, ServerIdentity};
pub use responder::{
    CompletedHandshake, HandshakePattern, ServerHelloStep, respond_to_client_hello,
};
pub use transport::TransportCipher;

use wacore_noise::{HandshakeError, NoiseError};

/// Why a handshake or transport frame was refused.
#[derive(Debug, thiserror::Error)]
pub enum NoiseFailure {
    #[error("malformed handshake message: {0}")]
    Malformed(String),
    #[error("handshake crypto failed: {0}")]
    Handshake(#[from] HandshakeError),
    #[error("transport crypto failed: {0}")]
    Transport(#[from] NoiseError),
}
