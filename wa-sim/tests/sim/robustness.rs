//! Malformed input closes only the offending connection: wrong prologue, truncated
//! and oversized frames, garbage, and bad ciphertext after a valid handshake. A real
//! client connected meanwhile keeps working.

use std::time::Duration;

use botwave_wa_sim::{SimConfig, SimHandle};
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;
use whatsapp_rust::wacore::handshake::XxHandshakeState;

use crate::common::{eventually, paired_client, pn, start_sim};

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

const WA_HEADER: [u8; 4] = *b"WA\x06\x03";

async fn raw_socket(sim: &SimHandle) -> Socket {
    let (socket, _) = tokio_tungstenite::connect_async(sim.ws_url())
        .await
        .expect("websocket connects");
    socket
}

fn frame(payload: &[u8]) -> Vec<u8> {
    let len = payload.len();
    let mut out = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8];
    out.extend_from_slice(payload);
    out
}

/// Reads until the server closes; panics if it keeps the socket open.
async fn expect_closed(socket: &mut Socket, what: &str) {
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match socket.next().await {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                Some(Ok(_)) => continue,
            }
        }
    })
    .await;
    assert!(
        closed.is_ok(),
        "server kept the connection open after {what}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_input_closes_only_that_connection() {
    let sim = start_sim(SimConfig {
        handshake_timeout: Duration::from_millis(500),
        max_frame_len: 64 * 1024,
        ..SimConfig::default()
    })
    .await;
    let bystander = paired_client(&sim, "15554440000").await;

    // Wrong prologue.
    let mut socket = raw_socket(&sim).await;
    socket
        .send(Message::binary(
            [b"XX\x06\x03".as_slice(), &frame(b"hello")].concat(),
        ))
        .await
        .unwrap();
    expect_closed(&mut socket, "a wrong prologue").await;

    // Truncated frame: the length promises more than ever arrives.
    let mut socket = raw_socket(&sim).await;
    socket
        .send(Message::binary(
            [&WA_HEADER[..], &[0, 0, 100], &[1u8; 10]].concat(),
        ))
        .await
        .unwrap();
    expect_closed(&mut socket, "a truncated frame").await;

    // Oversized frame.
    let mut socket = raw_socket(&sim).await;
    socket
        .send(Message::binary(
            [&WA_HEADER[..], &[0xff, 0xff, 0xff], &[0u8; 16]].concat(),
        ))
        .await
        .unwrap();
    expect_closed(&mut socket, "an oversized frame").await;

    // A well-framed hello that is not a protobuf.
    let mut socket = raw_socket(&sim).await;
    socket
        .send(Message::binary(
            [&WA_HEADER[..], &frame(&[0xff; 40])].concat(),
        ))
        .await
        .unwrap();
    expect_closed(&mut socket, "a garbage hello").await;

    // Text instead of binary.
    let mut socket = raw_socket(&sim).await;
    socket.send(Message::text("hello?")).await.unwrap();
    expect_closed(&mut socket, "a text message").await;

    // A real handshake followed by a frame that does not decrypt.
    let mut socket = raw_socket(&sim).await;
    let device = whatsapp_rust::wacore::store::Device::new();
    let payload =
        whatsapp_rust::waproto::codec::client_payload_to_vec(&device.get_client_payload());
    let mut noise =
        XxHandshakeState::new(device.noise_key.clone(), payload, &WA_HEADER).expect("client state");
    let hello = noise.build_client_hello().unwrap();
    socket
        .send(Message::binary([&WA_HEADER[..], &frame(&hello)].concat()))
        .await
        .unwrap();
    let server_hello = loop {
        match socket.next().await {
            Some(Ok(Message::Binary(bytes))) => break bytes.to_vec(),
            Some(Ok(_)) => continue,
            other => panic!("no server hello: {other:?}"),
        }
    };
    let finish = noise
        .read_server_hello_and_build_client_finish(&server_hello[3..])
        .expect("the simulator's server hello verifies");
    socket.send(Message::binary(frame(&finish))).await.unwrap();
    socket
        .send(Message::binary(frame(&[0x42; 48])))
        .await
        .unwrap();
    expect_closed(&mut socket, "bad ciphertext").await;

    // The server counts a connection's error once its task has wound down, just after the
    // close reached us: give it a moment.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let stats = loop {
        let stats = sim.stats();
        if stats.protocol_errors >= 1 || std::time::Instant::now() > deadline {
            break stats;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert!(stats.handshakes.failed >= 4, "{stats:?}");
    assert!(stats.protocol_errors >= 1, "{stats:?}");

    // The paired client was never disturbed and new clients are still served.
    sim.create_phone("15554441111", 1).unwrap();
    bystander
        .client
        .send_text(pn("15554441111"), "still here")
        .await
        .expect("send after the garbage");
    eventually("the bystander's text", || {
        sim.messages("15554441111")
            .iter()
            .any(|m| m.text == "still here")
            .then_some(())
    })
    .await;
    let _late = paired_client(&sim, "15554442222").await;
}
