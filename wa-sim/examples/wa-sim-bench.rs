//! Load benchmark for the simulator: pairs and logs in N synthetic clients (real Noise,
//! real ADV pairing through the scan path, real Signal), holds all connections, then
//! has S of them send M texts each to one simulated phone and measures how fast the
//! phone decrypts them.
//!
//! `cargo run --release -p botwave-wa-sim --example wa-sim-bench -- --clients 2000`

use std::sync::Arc;
use std::time::{Duration, Instant};

use botwave_wa_sim::phone::{CompanionBundle, PhoneDevice, text_message};
use botwave_wa_sim::{ReceiptMode, SimConfig, SimHandle, Simulator};
use clap::Parser;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use whatsapp_rust::wacore::companion_reg::CompanionWebClientType;
use whatsapp_rust::wacore::handshake::{NoiseCipher, XxHandshakeState};
use whatsapp_rust::wacore::pair::{DeviceState, PairUtils};
use whatsapp_rust::wacore::store::Device;
use whatsapp_rust::wacore_binary::builder::NodeBuilder;
use whatsapp_rust::wacore_binary::{Jid, Node, NodeContent};

#[derive(Parser, Debug)]
struct Args {
    /// Paired clients to connect and hold.
    #[arg(long, default_value_t = 2000)]
    clients: usize,
    /// How many of them send texts.
    #[arg(long, default_value_t = 50)]
    senders: usize,
    /// Texts per sender.
    #[arg(long, default_value_t = 200)]
    messages: usize,
    /// Clients set up at the same time.
    #[arg(long, default_value_t = 32)]
    setup_concurrency: usize,
}

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;
type BoxError = Box<dyn std::error::Error + Send + Sync>;

const WA_HEADER: [u8; 4] = *b"WA\x06\x03";
const TARGET_PHONE: &str = "19990000000";

fn frame(payload: &[u8]) -> Vec<u8> {
    let len = payload.len();
    let mut out = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8];
    out.extend_from_slice(payload);
    out
}

/// The client side of one connection: counters and keys of the Noise transport.
struct Transport {
    write: NoiseCipher,
    read: NoiseCipher,
    write_counter: u32,
    read_counter: u32,
    pending: Vec<u8>,
}

impl Transport {
    fn seal(&mut self, node: &Node) -> Result<Vec<u8>, BoxError> {
        let plaintext = whatsapp_rust::wacore_binary::marshal(node)?;
        let sealed = self
            .write
            .encrypt_with_counter(self.write_counter, &plaintext)?;
        self.write_counter += 1;
        Ok(frame(&sealed))
    }

    fn feed(&mut self, bytes: &[u8]) -> Result<Vec<Node>, BoxError> {
        self.pending.extend_from_slice(bytes);
        let mut nodes = Vec::new();
        while self.pending.len() >= 3 {
            let len = (usize::from(self.pending[0]) << 16)
                | (usize::from(self.pending[1]) << 8)
                | usize::from(self.pending[2]);
            if self.pending.len() < 3 + len {
                break;
            }
            let mut sealed = self.pending[3..3 + len].to_vec();
            self.pending.drain(..3 + len);
            self.read
                .decrypt_in_place_with_counter(self.read_counter, &mut sealed)?;
            self.read_counter += 1;
            let unpacked = whatsapp_rust::wacore_binary::util::unpack(&sealed)?;
            nodes.push(whatsapp_rust::wacore_binary::marshal::unmarshal_ref(&unpacked)?.to_owned());
        }
        Ok(nodes)
    }
}

async fn next_binary(ws: &mut SplitStream<Ws>) -> Result<Vec<u8>, BoxError> {
    loop {
        match ws.next().await {
            Some(Ok(Message::Binary(bytes))) => return Ok(bytes.to_vec()),
            Some(Ok(Message::Close(_))) | None => return Err("closed".into()),
            Some(Ok(_)) => continue,
            Some(Err(e)) => return Err(e.into()),
        }
    }
}

/// A connected client: handshake done with `device`'s current payload.
struct Connection {
    sink: SplitSink<Ws, Message>,
    stream: SplitStream<Ws>,
    transport: Transport,
    inbox: Vec<Node>,
}

impl Connection {
    async fn open(sim: &SimHandle, device: &Device) -> Result<Self, BoxError> {
        let (ws, _) = tokio_tungstenite::connect_async(sim.ws_url()).await?;
        let (mut sink, mut stream) = ws.split();
        let payload =
            whatsapp_rust::waproto::codec::client_payload_to_vec(&device.get_client_payload());
        let mut noise = XxHandshakeState::new(device.noise_key.clone(), payload, &WA_HEADER)?;
        let hello = noise.build_client_hello()?;
        sink.send(Message::binary([&WA_HEADER[..], &frame(&hello)].concat()))
            .await?;
        let server_hello = next_binary(&mut stream).await?;
        let finish = noise.read_server_hello_and_build_client_finish(&server_hello[3..])?;
        sink.send(Message::binary(frame(&finish))).await?;
        let keys = noise.finish()?;
        Ok(Self {
            sink,
            stream,
            transport: Transport {
                write: keys.write_cipher,
                read: keys.read_cipher,
                write_counter: 0,
                read_counter: 0,
                pending: Vec::new(),
            },
            inbox: Vec::new(),
        })
    }

    async fn send(&mut self, node: &Node) -> Result<(), BoxError> {
        let sealed = self.transport.seal(node)?;
        self.sink.send(Message::binary(sealed)).await?;
        Ok(())
    }

    /// The next stanza `pick` accepts (others are dropped).
    async fn wait_for(&mut self, pick: impl Fn(&Node) -> bool) -> Result<Node, BoxError> {
        loop {
            if let Some(index) = self.inbox.iter().position(&pick) {
                return Ok(self.inbox.remove(index));
            }
            let bytes = next_binary(&mut self.stream).await?;
            let nodes = self.transport.feed(&bytes)?;
            self.inbox.extend(nodes);
        }
    }
}

fn attr(node: &Node, key: &str) -> Option<String> {
    node.attrs().optional_string(key).map(|v| v.into_owned())
}

fn bytes_of(node: &Node) -> Option<&[u8]> {
    match &node.content {
        Some(NodeContent::Bytes(bytes)) => Some(bytes),
        _ => None,
    }
}

/// Pairs a fresh device to phone `number` through the scan path, then logs it in.
async fn paired_client(sim: Arc<SimHandle>, number: String) -> Result<(Connection, Jid), BoxError> {
    let mut device = Device::new();
    let mut pairing = Connection::open(&sim, &device).await?;
    let pair_device = pairing
        .wait_for(|n| n.get_optional_child("pair-device").is_some())
        .await?;
    let first_ref = pair_device
        .get_optional_child("pair-device")
        .and_then(|p| p.get_children_by_tag("ref").next())
        .and_then(bytes_of)
        .ok_or("no ref")?;
    let state = DeviceState {
        identity_key: device.identity_key.clone(),
        noise_key: device.noise_key.clone(),
        adv_secret_key: device.adv_secret_key,
    };
    let qr = PairUtils::make_qr_data(
        &state,
        std::str::from_utf8(first_ref)?,
        CompanionWebClientType::OtherWebClient,
    );
    let scan_sim = sim.clone();
    let scan = tokio::spawn(async move { scan_sim.scan(&number, &qr).await });
    let success = pairing
        .wait_for(|n| n.get_optional_child("pair-success").is_some())
        .await?;
    let identity = success
        .get_optional_child("pair-success")
        .and_then(|p| p.get_optional_child("device-identity"))
        .and_then(bytes_of)
        .ok_or("no device identity")?;
    let (signed, key_index) = PairUtils::do_pair_crypto(&state, identity)?;
    let id = attr(&success, "id").ok_or("no id")?;
    pairing
        .send(&PairUtils::build_pair_success_response(
            &id, signed, key_index,
        ))
        .await?;
    let paired = scan.await??;
    pairing.wait_for(|n| n.tag == "stream:error").await?;

    device.pn = Some(paired.jid.clone());
    let mut online = Connection::open(&sim, &device).await?;
    online.wait_for(|n| n.tag == "success").await?;
    online
        .send(
            &NodeBuilder::new("iq")
                .attr("id", "active-1")
                .attr("type", "set")
                .attr("xmlns", "passive")
                .attr("to", "s.whatsapp.net")
                .children([NodeBuilder::new("active").build()])
                .build(),
        )
        .await?;
    online
        .wait_for(|n| n.tag == "ib" && n.get_optional_child("offline").is_some())
        .await?;
    Ok((online, paired.jid))
}

/// Fetches the target phone's bundle with the client's key-fetch IQ.
async fn fetch_bundle(conn: &mut Connection, jid: &str) -> Result<CompanionBundle, BoxError> {
    conn.send(
        &NodeBuilder::new("iq")
            .attr("id", "keys-1")
            .attr("type", "get")
            .attr("xmlns", "encrypt")
            .attr("to", "s.whatsapp.net")
            .children([NodeBuilder::new("key")
                .children([NodeBuilder::new("user").attr("jid", jid).build()])
                .build()])
            .build(),
    )
    .await?;
    let reply = conn
        .wait_for(|n| attr(n, "id").as_deref() == Some("keys-1"))
        .await?;
    let user = reply
        .get_optional_child("list")
        .and_then(|l| l.get_optional_child("user"))
        .ok_or("no user")?;
    let child = |tag: &str| {
        user.get_optional_child(tag)
            .and_then(bytes_of)
            .ok_or(format!("no {tag}"))
    };
    let be = |b: &[u8]| b.iter().fold(0u32, |a, x| (a << 8) | u32::from(*x));
    let skey = user.get_optional_child("skey").ok_or("no skey")?;
    let skey_child = |tag: &str| {
        skey.get_optional_child(tag)
            .and_then(bytes_of)
            .ok_or(format!("no skey {tag}"))
    };
    let one_time = user.get_optional_child("key").and_then(|key| {
        let id = be(key.get_optional_child("id").and_then(bytes_of)?);
        let value: [u8; 32] = key
            .get_optional_child("value")
            .and_then(bytes_of)?
            .try_into()
            .ok()?;
        Some((id, value))
    });
    Ok(CompanionBundle {
        registration_id: be(child("registration")?),
        identity_public: child("identity")?.try_into()?,
        signed_prekey_id: be(skey_child("id")?),
        signed_prekey_public: skey_child("value")?.try_into()?,
        signed_prekey_signature: skey_child("signature")?.to_vec(),
        one_time_prekey: one_time,
    })
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let args = Args::parse();
    let sim = Arc::new(
        Simulator::start(SimConfig {
            receipts: ReceiptMode::Manual,
            ..SimConfig::default()
        })
        .await?,
    );
    sim.create_phone(TARGET_PHONE, 1)?;

    let started = Instant::now();
    let results: Vec<_> = futures_util::stream::iter(0..args.clients)
        .map(|i| paired_client(sim.clone(), format!("1555{:07}", i)))
        .buffer_unordered(args.setup_concurrency)
        .collect()
        .await;
    let setup = started.elapsed();
    let mut clients = Vec::new();
    let mut failures = 0;
    for result in results {
        match result {
            Ok(client) => clients.push(client),
            Err(error) => {
                failures += 1;
                if failures <= 3 {
                    eprintln!("client setup failed: {error}");
                }
            }
        }
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let held = sim.stats().connections.current;
    println!(
        "paired and logged in {} clients ({failures} failed) in {:.1?} ({:.0}/s); connections held: {held}",
        clients.len(),
        setup,
        clients.len() as f64 / setup.as_secs_f64()
    );

    // Senders: each encrypts with its own Signal identity to the target phone.
    let target = format!("{TARGET_PHONE}@s.whatsapp.net");
    let mut senders = Vec::new();
    for (conn, jid) in clients.iter_mut().take(args.senders) {
        let bundle = fetch_bundle(conn, &target).await?;
        senders.push((jid.clone(), bundle));
    }
    let before = sim.stats().messages_decrypted_by_recipients;
    let total = senders.len() * args.messages;
    let started = Instant::now();
    let mut tasks = Vec::new();
    let mut held_connections = Vec::new();
    for ((conn, jid), (_, bundle)) in clients.drain(..senders.len()).zip(senders) {
        let target = target.clone();
        let messages = args.messages;
        tasks.push(tokio::spawn(async move {
            let Connection {
                mut sink,
                mut stream,
                mut transport,
                ..
            } = conn;
            let drain = tokio::spawn(async move { while stream.next().await.is_some() {} });
            let mut signal = PhoneDevice::generate(0)?;
            for n in 0..messages {
                let encrypted =
                    signal.encrypt(&target, Some(&bundle), &text_message(&format!("bench {n}")))?;
                let stanza = NodeBuilder::new("message")
                    .attr("to", target.as_str())
                    .attr("id", format!("3EB0{:08X}{:08X}", jid.device, n))
                    .attr("type", "text")
                    .children([NodeBuilder::new("enc")
                        .attr("v", "2")
                        .attr("type", encrypted.enc_type.as_wire_str())
                        .bytes(encrypted.ciphertext)
                        .build()])
                    .build();
                sink.send(Message::binary(transport.seal(&stanza)?)).await?;
            }
            Ok::<_, BoxError>((sink, drain))
        }));
    }
    for task in tasks {
        held_connections.push(task.await??);
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let done = sim.stats().messages_decrypted_by_recipients - before;
        if done as usize >= total || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let elapsed = started.elapsed();
    let stats = sim.stats();
    let decrypted = stats.messages_decrypted_by_recipients - before;
    println!(
        "{decrypted}/{total} texts decrypted by the phone in {:.2?}: {:.0} msg/s ({} decrypt failures); connections held: {}",
        elapsed,
        decrypted as f64 / elapsed.as_secs_f64(),
        stats.decrypt_failures,
        stats.connections.current
    );
    drop(held_connections);
    drop(clients);
    Ok(())
}
