//! The Noise certificate chain and handshake patterns, as WhatsApp runs them: the
//! chain verifies against the simulator's published root key (and no other), a
//! paired client resumes with IK on reconnect, and after a server static key
//! rotation its IK attempt fails over to XXfallback without a new QR code.

use botwave_wa_sim::{KickKind, NoiseRootKey, SimConfig, SimHandle};
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;
use wacore_binary::consts::{NOISE_PATTERN_XX, NOISE_PATTERN_XXFALLBACK, WA_CONN_HEADER};
use wacore_libsignal::protocol::{KeyPair, PublicKey};
use wacore_noise::NoiseHandshake;
use waproto::buffa::{Message as _, MessageField};
use waproto::whatsapp as wa;
use waproto::whatsapp::cert_chain::noise_certificate::Details;
use whatsapp_rust::types::events::Event;
use whatsapp_rust::wacore::handshake::{HandshakeUtils, WA_CERT_PUB_KEY};

use crate::common::{TestClient, WAIT, eventually, paired_client, start_sim};

const PHONE: &str = "15553330000";

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// What an XX-shaped ServerHello (XX or XXfallback) reveals to the client.
struct ServerHello {
    static_key: [u8; 32],
    cert_chain: Vec<u8>,
}

/// The client's side of a raw handshake: its ephemeral and the socket.
struct RawClient {
    socket: Socket,
    ephemeral: KeyPair,
}

impl RawClient {
    async fn connect(sim: &SimHandle) -> Self {
        let (socket, _) = tokio_tungstenite::connect_async(sim.ws_url())
            .await
            .expect("websocket connects");
        Self {
            socket,
            ephemeral: KeyPair::generate(&mut rand::rng()),
        }
    }

    /// Sends the prologue and a ClientHello with this ephemeral and, for an IK-shaped
    /// hello, the given (encrypted) static and payload.
    async fn send_hello(&mut self, r#static: Option<Vec<u8>>, payload: Option<Vec<u8>>) {
        let hello = wa::HandshakeMessage {
            client_hello: MessageField::some(wa::handshake_message::ClientHello {
                ephemeral: Some(self.ephemeral.public_key.public_key_bytes().to_vec()),
                r#static,
                payload,
                ..Default::default()
            }),
            ..Default::default()
        }
        .encode_to_vec();
        let length = (hello.len() as u32).to_be_bytes();
        self.socket
            .send(Message::binary(
                [&WA_CONN_HEADER[..], &length[1..], &hello].concat(),
            ))
            .await
            .unwrap();
    }

    /// The next frame, or `None` once the server closed the socket.
    async fn next_frame(&mut self) -> Option<Vec<u8>> {
        let mut received = Vec::new();
        tokio::time::timeout(WAIT, async {
            loop {
                if received.len() >= 3 {
                    let length = u32::from_be_bytes([0, received[0], received[1], received[2]]);
                    let end = 3 + length as usize;
                    if received.len() >= end {
                        return Some(received[3..end].to_vec());
                    }
                }
                match self.socket.next().await {
                    Some(Ok(Message::Binary(bytes))) => received.extend_from_slice(&bytes),
                    Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return None,
                    Some(Ok(_)) => continue,
                }
            }
        })
        .await
        .expect("the server answers or closes")
    }

    /// Reads the ServerHello and follows `<- e, ee, s, es, payload` on a transcript
    /// started with `protocol`: XX for an XX hello, XXfallback after an IK one (the
    /// client re-initialises and mixes in the ephemeral it already sent).
    async fn read_full_server_hello(&mut self, protocol: &str) -> ServerHello {
        let frame = self.next_frame().await.expect("a ServerHello");
        let server_hello = wa::HandshakeMessage::decode_from_slice(&frame)
            .unwrap()
            .server_hello
            .into_option()
            .expect("a serverHello");
        let private = self.ephemeral.private_key.serialize();
        let mut noise = NoiseHandshake::new(protocol, &WA_CONN_HEADER).unwrap();
        noise.authenticate(self.ephemeral.public_key.public_key_bytes());
        let server_ephemeral = server_hello.ephemeral.expect("server ephemeral");
        noise.authenticate(&server_ephemeral);
        noise.mix_shared_secret(private, &server_ephemeral).unwrap();
        let encrypted_static = server_hello
            .r#static
            .expect("an XX-shaped serverHello carries the server static");
        let static_key: [u8; 32] = noise
            .decrypt(&encrypted_static)
            .expect("the static decrypts on this transcript")
            .try_into()
            .unwrap();
        noise.mix_shared_secret(private, &static_key).unwrap();
        let cert_chain = noise
            .decrypt(&server_hello.payload.expect("the chain"))
            .unwrap();
        ServerHello {
            static_key,
            cert_chain,
        }
    }
}

/// Plays the client's half of XX up to the ServerHello on a raw websocket, the way
/// the protocol defines it (`-> e`, then `<- e, ee, s, es, payload`).
async fn xx_server_hello(sim: &SimHandle) -> ServerHello {
    let mut client = RawClient::connect(sim).await;
    client.send_hello(None, None).await;
    client.read_full_server_hello(NOISE_PATTERN_XX).await
}

/// The chain checks WhatsApp clients make (whatsmeow and Baileys agree; wacore makes
/// the same ones), with `root` in place of WhatsApp's hard-coded root key, plus the
/// validity window that decides whether a client may resume with IK.
fn verify_chain(chain: &[u8], server_static: &[u8; 32], root: &[u8; 32]) -> Result<(), String> {
    let chain = wa::CertChain::decode_from_slice(chain).map_err(|e| e.to_string())?;
    let intermediate = chain.intermediate.into_option().ok_or("no intermediate")?;
    let leaf = chain.leaf.into_option().ok_or("no leaf")?;
    let signed_by = |issuer: &[u8], certificate: &wa::cert_chain::NoiseCertificate| {
        let details = certificate.details.as_deref().ok_or("no details")?;
        let signature = certificate.signature.as_deref().ok_or("no signature")?;
        if signature.len() != 64 {
            return Err(format!("a {}-byte signature", signature.len()));
        }
        let issuer = PublicKey::from_djb_public_key_bytes(issuer).map_err(|e| e.to_string())?;
        if !issuer.verify_signature(details, signature) {
            return Err("XEdDSA signature does not verify".to_string());
        }
        Details::decode_from_slice(details).map_err(|e| e.to_string())
    };
    let intermediate = signed_by(root, &intermediate).map_err(|e| format!("intermediate: {e}"))?;
    if intermediate.issuer_serial.unwrap_or(0) != 0 {
        return Err("the intermediate is not issued by the root (serial 0)".into());
    }
    let intermediate_key = intermediate.key.as_deref().unwrap_or_default();
    if intermediate_key.len() != 32 {
        return Err("the intermediate key is not 32 bytes".into());
    }
    let leaf = signed_by(intermediate_key, &leaf).map_err(|e| format!("leaf: {e}"))?;
    if leaf.issuer_serial != intermediate.serial {
        return Err("the leaf names another issuer".into());
    }
    if leaf.key.as_deref() != Some(&server_static[..]) {
        return Err("the leaf key is not the server static key".into());
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    for (name, details) in [("intermediate", &intermediate), ("leaf", &leaf)] {
        let (Some(not_before), Some(not_after)) = (details.not_before, details.not_after) else {
            return Err(format!("the {name} has no validity window"));
        };
        if !(not_before <= now && now < not_after) {
            return Err(format!("the {name} is not valid now"));
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chain_verifies_with_the_published_root_key_and_no_other() {
    let sim = start_sim(SimConfig::default()).await;
    let published: NoiseRootKey = reqwest::get(format!("{}/root-key", sim.control_url()))
        .await
        .unwrap()
        .error_for_status()
        .unwrap()
        .json()
        .await
        .unwrap();
    let root = sim.noise_root_public_key();
    assert_eq!(published, NoiseRootKey::new(&root));

    let hello = xx_server_hello(&sim).await;
    assert_eq!(hello.static_key, sim.noise_static_public_key());
    verify_chain(&hello.cert_chain, &hello.static_key, &root).expect("the chain verifies");

    let stranger: [u8; 32] = KeyPair::generate(&mut rand::rng())
        .public_key
        .public_key_bytes()
        .try_into()
        .unwrap();
    let refused = verify_chain(&hello.cert_chain, &hello.static_key, &stranger).unwrap_err();
    assert!(refused.starts_with("intermediate"), "{refused}");
    // WhatsApp's own root does not vouch for the simulator: real clients refuse it.
    assert!(verify_chain(&hello.cert_chain, &hello.static_key, &WA_CERT_PUB_KEY).is_err());
    // Another static key does not match the leaf.
    assert!(verify_chain(&hello.cert_chain, &stranger, &root).is_err());

    // wacore's own checks (signatures skipped in this build) accept the chain and
    // keep the validity window that makes the client choose IK next time.
    let cached = HandshakeUtils::verify_server_cert(&hello.cert_chain, &hello.static_key)
        .expect("wacore accepts the chain's structure");
    assert_eq!(cached.leaf_key, hello.static_key);
    assert!(cached.leaf_not_after > cached.leaf_not_before);
    assert!(cached.intermediate_not_after >= cached.leaf_not_after);
}

/// The cached server static key of the client's store, if any.
fn cached_server_static(client: &TestClient) -> Option<[u8; 32]> {
    let device = client.client.persistence_manager().get_device_snapshot();
    device
        .server_cert_chain
        .as_ref()
        .map(|chain| chain.leaf.key)
}

/// Drops the client's connection and waits until it has logged in again, failing on
/// a QR code (the client must not need pairing again).
async fn drop_and_reconnect(sim: &SimHandle, client: &mut TestClient) {
    let device = client.client.pn().expect("paired").device;
    assert!(sim.kick(PHONE, device, KickKind::Drop));
    let reconnected = client
        .events
        .wait("Connected", |e| match e {
            Event::Connected(_) => Some(true),
            Event::PairingQrCode(_) => Some(false),
            _ => None,
        })
        .await;
    assert!(
        reconnected,
        "the client showed a QR code instead of logging in"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paired_client_resumes_with_ik_on_reconnect() {
    let sim = start_sim(SimConfig::default()).await;
    let mut client = paired_client(&sim, PHONE).await;
    let after_pairing = sim.stats().handshakes;
    assert_eq!(after_pairing.ik, 0, "{after_pairing:?}");
    assert_eq!(
        after_pairing.xx, 2,
        "pairing and the first login run XX: {after_pairing:?}"
    );
    assert_eq!(
        cached_server_static(&client),
        Some(sim.noise_static_public_key()),
        "the client caches the chain of its first registered login"
    );

    drop_and_reconnect(&sim, &mut client).await;
    let resumed = sim.stats().handshakes;
    assert_eq!(resumed.ik, 1, "{resumed:?}");
    assert_eq!(resumed.xx, after_pairing.xx, "{resumed:?}");
    assert_eq!(resumed.xx_fallback, 0, "{resumed:?}");

    // A restarted client process on the same store resumes with IK too.
    let backend = client.stop().await;
    let mut restarted = TestClient::start_with(&sim, backend).await;
    restarted.connected().await;
    let after_restart = sim.stats().handshakes;
    assert_eq!(after_restart.ik, 2, "{after_restart:?}");
    assert_eq!(after_restart.xx, after_pairing.xx, "{after_restart:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_static_key_rotation_ik_falls_back_to_xx_and_the_client_logs_in() {
    let sim = start_sim(SimConfig::default()).await;
    let mut client = paired_client(&sim, PHONE).await;
    let old_key = sim.noise_static_public_key();
    assert_eq!(cached_server_static(&client), Some(old_key));
    let logins = sim.stats().logins;

    let new_key = sim.rotate_noise_static_key().expect("rotation");
    assert_ne!(new_key, old_key);
    assert_eq!(sim.noise_static_public_key(), new_key);
    drop_and_reconnect(&sim, &mut client).await;
    let fell_back = sim.stats();
    assert_eq!(fell_back.handshakes.xx_fallback, 1, "{fell_back:?}");
    assert_eq!(fell_back.handshakes.ik, 0, "{fell_back:?}");
    assert_eq!(fell_back.logins, logins + 1, "{fell_back:?}");
    assert_eq!(
        cached_server_static(&client),
        Some(new_key),
        "the fallback taught the client the new key"
    );

    // The next reconnect resumes with IK against the new key.
    drop_and_reconnect(&sim, &mut client).await;
    let resumed = sim.stats().handshakes;
    assert_eq!(resumed.ik, 1, "{resumed:?}");
    assert_eq!(resumed.xx_fallback, 1, "{resumed:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_undecryptable_ik_hello_gets_xxfallback_and_a_half_one_is_refused() {
    let sim = start_sim(SimConfig::default()).await;

    // Static and payload sealed for some other server key: the server cannot read
    // them, so it answers XXfallback, which only a fallback transcript decrypts.
    let mut client = RawClient::connect(&sim).await;
    client
        .send_hello(Some(vec![1; 48]), Some(vec![2; 80]))
        .await;
    let fallback = client
        .read_full_server_hello(NOISE_PATTERN_XXFALLBACK)
        .await;
    assert_eq!(fallback.static_key, sim.noise_static_public_key());
    verify_chain(
        &fallback.cert_chain,
        &fallback.static_key,
        &sim.noise_root_public_key(),
    )
    .expect("the fallback carries the same chain");

    // An IK hello needs both the static and the payload.
    let failed = sim.stats().handshakes.failed;
    let mut half = RawClient::connect(&sim).await;
    half.send_hello(Some(vec![1; 48]), None).await;
    assert!(half.next_frame().await.is_none(), "the server must close");
    eventually("the failed handshake is counted", || {
        (sim.stats().handshakes.failed > failed).then_some(())
    })
    .await;
    let stats = sim.stats().handshakes;
    assert_eq!(
        (stats.ok, stats.ik, stats.xx_fallback),
        (0, 0, 0),
        "{stats:?}"
    );
}
