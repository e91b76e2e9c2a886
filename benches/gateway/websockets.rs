//! Websocket fan-out on the in-process node: memory per authenticated socket, and how long
//! one state change takes to reach every admin socket.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio_tungstenite::tungstenite::{Message, protocol::WebSocketConfig};

use crate::node::Api;
use crate::{now_ms, summary, usage::rss_kib};

pub struct FanOut {
    pub sockets: usize,
    /// Sockets that got the event.
    pub reached: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub kib_per_socket: f64,
}

/// Holds `sockets` sockets authenticated as admin `admin`, then starts the session of
/// `trigger` (its first state change is published at once to every admin) and times the
/// event's arrival on each socket from the HTTP request.
pub async fn fan_out(api: &Api, admin: &str, trigger: &str, sockets: usize) -> FanOut {
    let url = format!("{}/ws", api.base.replacen("http", "ws", 1));
    let rss_before = rss_kib(std::process::id());
    let mut connected = Vec::with_capacity(sockets);
    for _ in 0..sockets {
        // A small client-side buffer, so the figure is mostly what the node spends per socket.
        let config = WebSocketConfig::default().read_buffer_size(4096);
        let (mut socket, _) =
            tokio_tungstenite::connect_async_with_config(url.as_str(), Some(config), false)
                .await
                .expect("a websocket upgrade");
        socket
            .send(Message::text(
                json!({ "type": "authenticate", "token": admin }).to_string(),
            ))
            .await
            .expect("authenticate");
        let _authenticated = socket.next().await;
        connected.push(socket);
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let kib_per_socket =
        rss_kib(std::process::id()).saturating_sub(rss_before) as f64 / sockets.max(1) as f64;
    println!(
        "  websocket memory: {kib_per_socket:.1} KiB per authenticated socket ({sockets} held; client ends in the same process, 4 KiB buffers)"
    );

    let (arrived_tx, mut arrived) = tokio::sync::mpsc::unbounded_channel::<f64>();
    for mut socket in connected {
        let arrived_tx = arrived_tx.clone();
        tokio::spawn(async move {
            while let Some(Ok(message)) = socket.next().await {
                if let Message::Text(text) = message
                    && text.contains("\"session_state\"")
                {
                    let _ = arrived_tx.send(now_ms());
                    break;
                }
            }
        });
    }
    drop(arrived_tx);
    let triggered = now_ms();
    let _ = api.initialize(trigger).await;
    let mut arrivals = Vec::new();
    while let Ok(Some(at)) = tokio::time::timeout(Duration::from_secs(30), arrived.recv()).await {
        arrivals.push(at);
        if arrivals.len() == sockets {
            break;
        }
    }
    println!("  {} of {sockets} sockets got the event", arrivals.len());
    let (p50_ms, p99_ms) = summary(
        "  HTTP request -> event on each socket",
        arrivals.iter().map(|at| at - triggered).collect(),
        "ms",
    );
    FanOut {
        sockets,
        reached: arrivals.len(),
        p50_ms,
        p99_ms,
        kib_per_socket,
    }
}
