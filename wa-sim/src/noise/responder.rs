//! The Noise responder. A ClientHello with only an ephemeral runs XX. One that also
//! carries an encrypted static and login payload is a client resuming with IK
//! against the server static key it cached: if that is the current key, the server
//! completes IK (the login rides in the hello, and no ClientFinish follows).
//! Otherwise the hello cannot be decrypted, and the server answers XXfallback, as
//! WhatsApp does after a key rotation: the client redoes the exchange as XX with
//! the ephemeral it already sent.

use rand::rngs::StdRng;
use wacore_binary::consts::{
    NOISE_PATTERN_IK, NOISE_PATTERN_XX, NOISE_PATTERN_XXFALLBACK, WA_CONN_HEADER,
};
use wacore_libsignal::protocol::KeyPair;
use wacore_noise::{HandshakeError, NoiseHandshake};
use waproto::buffa::{Message as _, MessageField};
use waproto::whatsapp as wa;

use super::{NoiseFailure, ServerIdentity, TransportCipher};

/// Which handshake a connection completed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandshakePattern {
    /// Full handshake: first connection, or a client without a cached chain.
    Xx,
    /// Resumption with the cached server static key.
    Ik,
    /// An IK attempt against a stale static key, finished as XX.
    XxFallback,
}

/// What the server does after reading the ClientHello. Both states are boxed: the
/// Noise and cipher state they hold are hundreds of bytes.
pub enum ServerHelloStep {
    /// IK accepted. The hello carried the login, so the handshake is complete once
    /// `server_hello` is sent.
    Resumed {
        server_hello: Vec<u8>,
        handshake: Box<CompletedHandshake>,
    },
    /// XX or XXfallback: send `server_hello`, then wait for the ClientFinish.
    AwaitFinish {
        server_hello: Vec<u8>,
        awaiting: Box<AwaitingFinish>,
    },
}

/// The handshake after an XX or XXfallback ServerHello went out, waiting for the
/// ClientFinish.
pub struct AwaitingFinish {
    noise: NoiseHandshake,
    ephemeral: KeyPair,
    pattern: HandshakePattern,
}

impl AwaitingFinish {
    pub fn pattern(&self) -> HandshakePattern {
        self.pattern
    }
}

/// What a completed handshake revealed.
pub struct CompletedHandshake {
    /// The client's Noise static public key: the device's identity on the wire.
    pub client_static: [u8; 32],
    pub payload: wa::ClientPayload,
    pub transport: TransportCipher,
    pub pattern: HandshakePattern,
}

/// Answers a ClientHello frame with `identity`, the server's current static key
/// and chain.
pub fn respond_to_client_hello(
    identity: &ServerIdentity,
    hello_frame: &[u8],
) -> Result<ServerHelloStep, NoiseFailure> {
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
    let pattern = match (hello.r#static, hello.payload) {
        (None, None) => HandshakePattern::Xx,
        (Some(encrypted_static), Some(encrypted_payload)) => {
            let attempt = IkAttempt {
                client_ephemeral,
                encrypted_static: &encrypted_static,
                encrypted_payload: &encrypted_payload,
            };
            if let Some(resumed) = attempt.resume(identity)? {
                return Ok(resumed);
            }
            HandshakePattern::XxFallback
        }
        _ => {
            return Err(NoiseFailure::Malformed(
                "an IK clientHello needs both static and payload".into(),
            ));
        }
    };
    let (server_hello, awaiting) = full_handshake_hello(identity, client_ephemeral, pattern)?;
    Ok(ServerHelloStep::AwaitFinish {
        server_hello,
        awaiting,
    })
}

/// The parts of an IK ClientHello (`-> e, es, s, ss` plus the 0-RTT login payload).
struct IkAttempt<'a> {
    client_ephemeral: [u8; 32],
    encrypted_static: &'a [u8],
    encrypted_payload: &'a [u8],
}

impl IkAttempt<'_> {
    /// Completes IK, or returns `None` when the hello was not made for this static
    /// key (its AEAD tags fail), which calls for XXfallback.
    fn resume(&self, identity: &ServerIdentity) -> Result<Option<ServerHelloStep>, NoiseFailure> {
        let static_private = identity.static_key.private_key.serialize();
        let mut noise = NoiseHandshake::new(NOISE_PATTERN_IK, &WA_CONN_HEADER)?;
        // Pre-message `<- s`: the client mixed in the server static it cached.
        noise.authenticate(identity.static_key.public_key.public_key_bytes());
        noise.authenticate(&self.client_ephemeral);
        noise.mix_shared_secret(static_private, &self.client_ephemeral)?;
        let Some(client_static) = decrypt_or_stale(&mut noise, self.encrypted_static)? else {
            return Ok(None);
        };
        let client_static: [u8; 32] = client_static
            .try_into()
            .map_err(|_| NoiseFailure::Malformed("client static is not 32 bytes".into()))?;
        noise.mix_shared_secret(static_private, &client_static)?;
        let Some(payload_bytes) = decrypt_or_stale(&mut noise, self.encrypted_payload)? else {
            return Ok(None);
        };
        let payload = decode_client_payload(&payload_bytes)?;

        // `<- e, ee, se`, then the chain as the ServerHello payload; no static.
        let ephemeral = KeyPair::generate(&mut rand::make_rng::<StdRng>());
        noise.authenticate(ephemeral.public_key.public_key_bytes());
        noise.mix_shared_secret(ephemeral.private_key.serialize(), &self.client_ephemeral)?;
        noise.mix_shared_secret(ephemeral.private_key.serialize(), &client_static)?;
        let encrypted_chain = noise.encrypt(identity.cert_chain())?;
        let server_hello = server_hello_frame(&ephemeral, None, encrypted_chain);
        let (client_write, client_read) = noise.finish()?;
        Ok(Some(ServerHelloStep::Resumed {
            server_hello,
            handshake: Box::new(CompletedHandshake {
                client_static,
                payload,
                transport: TransportCipher::from_initiator_keys(client_write, client_read),
                pattern: HandshakePattern::Ik,
            }),
        }))
    }
}

/// A failed AEAD check during IK means the client encrypted to another static key.
fn decrypt_or_stale(
    noise: &mut NoiseHandshake,
    ciphertext: &[u8],
) -> Result<Option<Vec<u8>>, NoiseFailure> {
    match noise.decrypt(ciphertext) {
        Ok(plaintext) => Ok(Some(plaintext)),
        Err(HandshakeError::Noise(_)) => Ok(None),
        Err(other) => Err(other.into()),
    }
}

/// The XX (or XXfallback) ServerHello: `<- e, ee, s, es` and the chain. XXfallback
/// differs only in the protocol name, which the client re-initialises with before
/// mixing in the ephemeral it sent in its IK hello.
fn full_handshake_hello(
    identity: &ServerIdentity,
    client_ephemeral: [u8; 32],
    pattern: HandshakePattern,
) -> Result<(Vec<u8>, Box<AwaitingFinish>), NoiseFailure> {
    let protocol = match pattern {
        HandshakePattern::XxFallback => NOISE_PATTERN_XXFALLBACK,
        HandshakePattern::Xx | HandshakePattern::Ik => NOISE_PATTERN_XX,
    };
    let mut noise = NoiseHandshake::new(protocol, &WA_CONN_HEADER)?;
    noise.authenticate(&client_ephemeral);
    let ephemeral = KeyPair::generate(&mut rand::make_rng::<StdRng>());
    noise.authenticate(ephemeral.public_key.public_key_bytes());
    noise.mix_shared_secret(ephemeral.private_key.serialize(), &client_ephemeral)?;
    let encrypted_static = noise.encrypt(identity.static_key.public_key.public_key_bytes())?;
    noise.mix_shared_secret(
        identity.static_key.private_key.serialize(),
        &client_ephemeral,
    )?;
    let encrypted_chain = noise.encrypt(identity.cert_chain())?;
    let server_hello = server_hello_frame(&ephemeral, Some(encrypted_static), encrypted_chain);
    Ok((
        server_hello,
        Box::new(AwaitingFinish {
            noise,
            ephemeral,
            pattern,
        }),
    ))
}

fn server_hello_frame(
    ephemeral: &KeyPair,
    encrypted_static: Option<Vec<u8>>,
    encrypted_chain: Vec<u8>,
) -> Vec<u8> {
    wa::HandshakeMessage {
        server_hello: MessageField::some(wa::handshake_message::ServerHello {
            ephemeral: Some(ephemeral.public_key.public_key_bytes().to_vec()),
            r#static: encrypted_static,
            payload: Some(encrypted_chain),
            ..Default::default()
        }),
        ..Default::default()
    }
    .encode_to_vec()
}

fn decode_client_payload(bytes: &[u8]) -> Result<wa::ClientPayload, NoiseFailure> {
    wa::ClientPayload::decode_from_slice(bytes)
        .map_err(|e| NoiseFailure::Malformed(format!("client payload: {e}")))
}

impl AwaitingFinish {
    pub fn complete(
        mut self: Box<Self>,
        finish_frame: &[u8],
    ) -> Result<CompletedHandshake, NoiseFailure> {
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
        let payload = decode_client_payload(&self.noise.decrypt(&encrypted_payload)?)?;
        let (client_write, client_read) = self.noise.finish()?;
        Ok(CompletedHandshake {
            client_static,
            payload,
            transport: TransportCipher::from_initiator_keys(client_write, client_read),
            pattern: self.pattern,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::noise::NoiseKeys;
    use wacore_noise::{
        IkHandshakeState, IkServerHelloOutcome, NoiseCipher, XxFallbackHandshakeState,
        XxHandshakeState,
    };

    fn identity() -> std::sync::Arc<ServerIdentity> {
        NoiseKeys::generate().unwrap().current()
    }

    fn login_payload(device: &wacore::store::Device) -> Vec<u8> {
        waproto::codec::client_payload_to_vec(&device.get_client_payload())
    }

    fn awaiting(step: ServerHelloStep) -> (Vec<u8>, Box<AwaitingFinish>) {
        match step {
            ServerHelloStep::AwaitFinish {
                server_hello,
                awaiting,
            } => (server_hello, awaiting),
            ServerHelloStep::Resumed { .. } => panic!("expected a full handshake"),
        }
    }

    /// Both directions of the transport work with the client's keys.
    fn assert_transport_pairs(
        server: &mut TransportCipher,
        client_write: &NoiseCipher,
        client_read: &NoiseCipher,
    ) {
        let sealed = server.seal(b"\x00ping").unwrap();
        let mut buffer = sealed.clone();
        client_read
            .decrypt_in_place_with_counter(0, &mut buffer)
            .unwrap();
        assert_eq!(buffer, b"\x00ping");
        let up = client_write.encrypt_with_counter(0, b"\x00up").unwrap();
        assert_eq!(server.open(up).unwrap(), b"\x00up");
        assert!(server.open(vec![1, 2, 3]).is_err());
    }

    #[test]
    fn the_real_client_xx_state_machine_completes_against_the_responder() {
        let device = wacore::store::Device::new();
        let mut client = XxHandshakeState::new(
            device.noise_key.clone(),
            login_payload(&device),
            &WA_CONN_HEADER,
        )
        .unwrap();
        let hello = client.build_client_hello().unwrap();
        let identity = identity();
        let (server_hello, awaiting) =
            awaiting(respond_to_client_hello(&identity, &hello).unwrap());
        assert_eq!(awaiting.pattern(), HandshakePattern::Xx);
        let finish = client
            .read_server_hello_and_build_client_finish(&server_hello)
            .unwrap();
        let client_keys = client.finish().unwrap();
        assert_eq!(
            client_keys.server_cert_chain.leaf_key,
            identity.static_public()
        );
        let mut done = awaiting.complete(&finish).unwrap();
        assert_eq!(done.pattern, HandshakePattern::Xx);
        assert_eq!(
            &done.client_static[..],
            device.noise_key.public_key.public_key_bytes()
        );
        assert_transport_pairs(
            &mut done.transport,
            &client_keys.write_cipher,
            &client_keys.read_cipher,
        );
    }

    #[test]
    fn an_ik_hello_for_the_current_static_key_completes_ik_with_the_login_inside() {
        let mut device = wacore::store::Device::new();
        device.push_name = "resumer".into();
        let identity = identity();
        let mut client = IkHandshakeState::new(
            device.noise_key.clone(),
            identity.static_public(),
            login_payload(&device),
            &WA_CONN_HEADER,
        )
        .unwrap();
        let hello = client.build_client_hello().unwrap();
        let ServerHelloStep::Resumed {
            server_hello,
            mut handshake,
        } = respond_to_client_hello(&identity, &hello).unwrap()
        else {
            panic!("the server must accept IK");
        };
        assert_eq!(handshake.pattern, HandshakePattern::Ik);
        assert_eq!(
            &handshake.client_static[..],
            device.noise_key.public_key.public_key_bytes()
        );
        assert_eq!(handshake.payload, device.get_client_payload());
        let IkServerHelloOutcome::Continue(keys) = client.read_server_hello(&server_hello).unwrap()
        else {
            panic!("the client must see IK accepted, not a fallback");
        };
        assert_transport_pairs(
            &mut handshake.transport,
            &keys.write_cipher,
            &keys.read_cipher,
        );
    }

    #[test]
    fn an_ik_hello_for_a_stale_static_key_is_answered_with_xxfallback_and_completes() {
        let device = wacore::store::Device::new();
        let keys = NoiseKeys::generate().unwrap();
        let cached_server_key = keys.current().static_public();
        keys.rotate_static_key().unwrap();
        let identity = keys.current();
        let mut client = IkHandshakeState::new(
            device.noise_key.clone(),
            cached_server_key,
            login_payload(&device),
            &WA_CONN_HEADER,
        )
        .unwrap();
        let hello = client.build_client_hello().unwrap();
        let (server_hello, awaiting) =
            awaiting(respond_to_client_hello(&identity, &hello).unwrap());
        assert_eq!(awaiting.pattern(), HandshakePattern::XxFallback);
        let IkServerHelloOutcome::Fallback(inputs) =
            client.read_server_hello(&server_hello).unwrap()
        else {
            panic!("the client must see a fallback");
        };
        let mut fallback =
            XxFallbackHandshakeState::from_ik_failure(*inputs, &WA_CONN_HEADER).unwrap();
        let finish = fallback.build_client_finish().unwrap();
        let client_keys = fallback.finish().unwrap();
        // The client learns the new key from the fallback and caches it for next time.
        assert_eq!(
            client_keys.server_cert_chain.leaf_key,
            identity.static_public()
        );
        let mut done = awaiting.complete(&finish).unwrap();
        assert_eq!(done.pattern, HandshakePattern::XxFallback);
        assert_eq!(done.payload, device.get_client_payload());
        assert_transport_pairs(
            &mut done.transport,
            &client_keys.write_cipher,
            &client_keys.read_cipher,
        );
    }

    #[test]
    fn garbage_and_half_ik_hellos_are_refused() {
        let identity = identity();
        assert!(respond_to_client_hello(&identity, b"\xff\xff garbage").is_err());
        assert!(respond_to_client_hello(&identity, b"").is_err());
        let half_ik = wa::HandshakeMessage {
            client_hello: MessageField::some(wa::handshake_message::ClientHello {
                ephemeral: Some(vec![5; 32]),
                r#static: Some(vec![6; 48]),
                ..Default::default()
            }),
            ..Default::default()
        }
        .encode_to_vec();
        assert!(matches!(
            respond_to_client_hello(&identity, &half_ik),
            Err(NoiseFailure::Malformed(_))
        ));
    }
}
