//! Noise responder: the simulator's static key and certificate chain, the XX (and
//! XXfallback, when a client tries IK) handshake, and the per-direction transport cipher.

use rand::rngs::StdRng;
use wacore_binary::consts::{NOISE_PATTERN_XX, NOISE_PATTERN_XXFALLBACK, WA_CONN_HEADER};
use wacore_libsignal::protocol::KeyPair;
use wacore_noise::{HandshakeError, NoiseCipher, NoiseError, NoiseHandshake};
use waproto::buffa::{Message as _, MessageField};
use waproto::whatsapp as wa;

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

/// The server's long-lived Noise identity.
pub struct ServerIdentity {
    static_key: KeyPair,
    cert_chain: Vec<u8>,
}

impl ServerIdentity {
    pub fn generate() -> Self {
        let static_key = KeyPair::generate(&mut rand::make_rng::<StdRng>());
        let cert_chain = build_cert_chain(static_key.public_key.public_key_bytes());
        Self {
            static_key,
            cert_chain,
        }
    }
}

/// A two-level chain with zero signatures and no validity window. The client accepts
/// it only with `danger-skip-cert-chain-verify`, and without `notBefore`/`notAfter`
/// it never selects IK on reconnect, so every connection runs XX.
fn build_cert_chain(static_pub: &[u8]) -> Vec<u8> {
    use wa::cert_chain::{NoiseCertificate, noise_certificate::Details};
    const INTERMEDIATE_SERIAL: u32 = 1;
    let intermediate = Details {
        serial: Some(INTERMEDIATE_SERIAL),
        issuer_serial: Some(0),
        key: Some(vec![7u8; 32]),
        ..Default::default()
    };
    let leaf = Details {
        serial: Some(2),
        issuer_serial: Some(INTERMEDIATE_SERIAL),
        key: Some(static_pub.to_vec()),
        ..Default::default()
    };
    let certificate = |details: Details| NoiseCertificate {
        details: Some(details.encode_to_vec()),
        signature: Some(vec![0; 64]),
    };
    wa::CertChain {
        leaf: MessageField::some(certificate(leaf)),
        intermediate: MessageField::some(certificate(intermediate)),
    }
    .encode_to_vec()
}

/// The handshake after the ServerHello went out, waiting for the ClientFinish.
pub struct AwaitingFinish {
    noise: NoiseHandshake,
    ephemeral: KeyPair,
    /// Whether the client opened with IK and was answered with XXfallback.
    pub fell_back_from_ik: bool,
}

/// Answers a ClientHello frame. Returns the ServerHello frame payload and the state
/// needed to complete the handshake.
pub fn respond_to_client_hello(
    identity: &ServerIdentity,
    hello_frame: &[u8],
) -> Result<(Vec<u8>, AwaitingFinish), NoiseFailure> {
    let message = wa::HandshakeMessage::decode_from_slice(hello_frame)
        .map_err(|e| NoiseFailure::Malformed(format!("client hello: {e}")))?;
    let hello = message
        .client_hello
        .into_option()
        .ok_or_else(|| NoiseFailure::Malformed("no clientHello".into()))?;
    let client_ephemeral: [u8; 32] = hello
        .ephemeral
        .as_deref()
        .and_then(|e| e.try_into().ok())
        .ok_or_else(|| NoiseFailure::Malformed("client ephemeral is not 32 bytes".into()))?;
    // An IK hello also carries the encrypted static and login payload. The simulator
    // never advertises a validity window, so a client only sends IK when it cached a
    // chain from elsewhere: ignore the 0-RTT part and answer XXfallback, which makes
    // the client redo the exchange as XX with the same ephemeral.
    let fell_back_from_ik = hello.r#static.is_some() || hello.payload.is_some();
    let pattern = if fell_back_from_ik {
        NOISE_PATTERN_XXFALLBACK
    } else {
        NOISE_PATTERN_XX
    };

    let mut noise = NoiseHandshake::new(pattern, &WA_CONN_HEADER)?;
    noise.authenticate(&client_ephemeral);
    let ephemeral = KeyPair::generate(&mut rand::make_rng::<StdRng>());
    noise.authenticate(ephemeral.public_key.public_key_bytes());
    noise.mix_shared_secret(ephemeral.private_key.serialize(), &client_ephemeral)?;
    let encrypted_static = noise.encrypt(identity.static_key.public_key.public_key_bytes())?;
    noise.mix_shared_secret(
        identity.static_key.private_key.serialize(),
        &client_ephemeral,
    )?;
    let encrypted_chain = noise.encrypt(&identity.cert_chain)?;

    let server_hello = wa::HandshakeMessage {
        server_hello: MessageField::some(wa::handshake_message::ServerHello {
            ephemeral: Some(ephemeral.public_key.public_key_bytes().to_vec()),
            r#static: Some(encrypted_static),
            payload: Some(encrypted_chain),
            ..Default::default()
        }),
        ..Default::default()
    };
    Ok((
        server_hello.encode_to_vec(),
        AwaitingFinish {
            noise,
            ephemeral,
            fell_back_from_ik,
        },
    ))
}

/// What the ClientFinish revealed.
pub struct CompletedHandshake {
    /// The client's Noise static public key: the device's identity on the wire.
    pub client_static: [u8; 32],
    pub payload: wa::ClientPayload,
    pub transport: TransportCipher,
}

impl AwaitingFinish {
    pub fn complete(mut self, finish_frame: &[u8]) -> Result<CompletedHandshake, NoiseFailure> {
        let message = wa::HandshakeMessage::decode_from_slice(finish_frame)
            .map_err(|e| NoiseFailure::Malformed(format!("client finish: {e}")))?;
        let finish = message
            .client_finish
            .into_option()
            .ok_or_else(|| NoiseFailure::Malformed("no clientFinish".into()))?;
        let encrypted_static = finish
            .r#static
            .ok_or_else(|| NoiseFailure::Malformed("clientFinish without static".into()))?;
        let encrypted_payload = finish
            .payload
            .ok_or_else(|| NoiseFailure::Malformed("clientFinish without payload".into()))?;
        let client_static: [u8; 32] = self
            .noise
            .decrypt(&encrypted_static)?
            .try_into()
            .map_err(|_| NoiseFailure::Malformed("client static is not 32 bytes".into()))?;
        self.noise
            .mix_shared_secret(self.ephemeral.private_key.serialize(), &client_static)?;
        let payload_bytes = self.noise.decrypt(&encrypted_payload)?;
        let payload = wa::ClientPayload::decode_from_slice(&payload_bytes)
            .map_err(|e| NoiseFailure::Malformed(format!("client payload: {e}")))?;
        // `finish` names the keys from the initiator's side: its write key is our read key.
        let (client_write, client_read) = self.noise.finish()?;
        Ok(CompletedHandshake {
            client_static,
            payload,
            transport: TransportCipher {
                send: client_read,
                receive: client_write,
                send_counter: 0,
                receive_counter: 0,
            },
        })
    }
}

/// AES-256-GCM per direction, each with its own frame counter starting at 0.
pub struct TransportCipher {
    send: NoiseCipher,
    receive: NoiseCipher,
    send_counter: u32,
    receive_counter: u32,
}

impl TransportCipher {
    pub fn seal(&mut self, plaintext: &[u8]) -> Result<Vec<u8>, NoiseFailure> {
        let sealed = self
            .send
            .encrypt_with_counter(self.send_counter, plaintext)?;
        self.send_counter = self.send_counter.wrapping_add(1);
        Ok(sealed)
    }

    /// Decrypts the next inbound frame. A failure leaves the stream unusable (the
    /// counters are out of step), so the caller closes the connection.
    pub fn open(&mut self, mut frame: Vec<u8>) -> Result<Vec<u8>, NoiseFailure> {
        let counter = self.receive_counter;
        self.receive_counter = self.receive_counter.wrapping_add(1);
        self.receive
            .decrypt_in_place_with_counter(counter, &mut frame)?;
        Ok(frame)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wacore_noise::XxHandshakeState;

    #[test]
    fn the_real_client_state_machine_completes_against_the_responder() {
        let device = wacore::store::Device::new();
        let payload = waproto::codec::client_payload_to_vec(&device.get_client_payload());
        let mut client =
            XxHandshakeState::new(device.noise_key.clone(), payload.clone(), &WA_CONN_HEADER)
                .unwrap();
        let hello = client.build_client_hello().unwrap();
        let identity = ServerIdentity::generate();
        let (server_hello, awaiting) = respond_to_client_hello(&identity, &hello).unwrap();
        assert!(!awaiting.fell_back_from_ik);
        let finish = client
            .read_server_hello_and_build_client_finish(&server_hello)
            .unwrap();
        let client_keys = client.finish().unwrap();
        let mut done = awaiting.complete(&finish).unwrap();
        assert_eq!(
            &done.client_static[..],
            device.noise_key.public_key.public_key_bytes()
        );
        let sealed = done.transport.seal(b"\x00ping").unwrap();
        let mut buffer = sealed.clone();
        client_keys
            .read_cipher
            .decrypt_in_place_with_counter(0, &mut buffer)
            .unwrap();
        assert_eq!(buffer, b"\x00ping");
        let up = client_keys
            .write_cipher
            .encrypt_with_counter(0, b"\x00up")
            .unwrap();
        assert_eq!(done.transport.open(up).unwrap(), b"\x00up");
        assert!(done.transport.open(vec![1, 2, 3]).is_err());
    }

    #[test]
    fn an_ik_hello_is_answered_with_xxfallback_and_completes() {
        use wacore_noise::{IkHandshakeState, IkServerHelloOutcome, XxFallbackHandshakeState};
        let device = wacore::store::Device::new();
        let payload = waproto::codec::client_payload_to_vec(&device.get_client_payload());
        // The client believes in a server key the simulator does not have.
        let cached_server_key = [9u8; 32];
        let mut client = IkHandshakeState::new(
            device.noise_key.clone(),
            cached_server_key,
            payload,
            &WA_CONN_HEADER,
        )
        .unwrap();
        let hello = client.build_client_hello().unwrap();
        let identity = ServerIdentity::generate();
        let (server_hello, awaiting) = respond_to_client_hello(&identity, &hello).unwrap();
        assert!(awaiting.fell_back_from_ik);
        let IkServerHelloOutcome::Fallback(inputs) =
            client.read_server_hello(&server_hello).unwrap()
        else {
            panic!("the client must see a fallback");
        };
        let mut fallback =
            XxFallbackHandshakeState::from_ik_failure(*inputs, &WA_CONN_HEADER).unwrap();
        let finish = fallback.build_client_finish().unwrap();
        let client_keys = fallback.finish().unwrap();
        let mut done = awaiting.complete(&finish).unwrap();
        let up = client_keys
            .write_cipher
            .encrypt_with_counter(0, b"\x00up")
            .unwrap();
        assert_eq!(done.transport.open(up).unwrap(), b"\x00up");
    }

    #[test]
    fn garbage_hellos_are_refused() {
        let identity = ServerIdentity::generate();
        assert!(respond_to_client_hello(&identity, b"\xff\xff garbage").is_err());
        assert!(respond_to_client_hello(&identity, b"").is_err());
    }
}
