//! `botwave-wa-sim`: runs the WhatsApp Web simulator as a standalone server.

use std::net::SocketAddr;
use std::time::Duration;

use botwave_wa_sim::{ReceiptMode, SimConfig, Simulator};
use clap::Parser;
use tracing_subscriber::EnvFilter;

#[derive(Parser, Debug)]
#[command(
    name = "botwave-wa-sim",
    about = "WhatsApp Web server simulator for botwave"
)]
struct Args {
    /// Address to listen on (websocket at /ws/chat, control API under /control/).
    #[arg(long, default_value = "127.0.0.1:8089", env = "WA_SIM_LISTEN")]
    listen: SocketAddr,
    /// QR refs per unpaired connection.
    #[arg(long, default_value_t = 6)]
    qr_refs: usize,
    /// Retire each QR ref after this many seconds (default: the client's own 60 s / 20 s).
    #[arg(long)]
    qr_ref_ttl_secs: Option<u64>,
    /// How long a link code (pairing by phone number) can be entered on the phone.
    #[arg(long, default_value_t = 180)]
    pair_code_ttl_secs: u64,
    /// Delay before phones send delivery receipts, in ms.
    #[arg(long, default_value_t = 50)]
    delivered_ms: u64,
    /// Delay before phones send read receipts, in ms.
    #[arg(long, default_value_t = 150)]
    read_ms: u64,
    /// Phones send receipts only on command.
    #[arg(long)]
    manual_receipts: bool,
    /// Extra latency before every server stanza, in ms.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
}

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
    let args = Args::parse();
    let receipts = if args.manual_receipts {
        ReceiptMode::Manual
    } else {
        ReceiptMode::Auto {
            delivered_ms: Some(args.delivered_ms),
            read_ms: Some(args.read_ms),
        }
    };
    let config = SimConfig {
        listen: args.listen,
        qr_ref_count: args.qr_refs,
        qr_ref_ttl: args.qr_ref_ttl_secs.map(Duration::from_secs),
        pair_code_ttl: Duration::from_secs(args.pair_code_ttl_secs),
        receipts,
        latency: Duration::from_millis(args.latency_ms),
        ..SimConfig::default()
    };
    let sim = match Simulator::start(config).await {
        Ok(sim) => sim,
        Err(error) => {
            tracing::error!(%error, "cannot start");
            std::process::exit(1);
        }
    };
    let root_key = botwave_wa_sim::NoiseRootKey::new(&sim.noise_root_public_key());
    tracing::info!(
        ws = %sim.ws_url(),
        control = %sim.control_url(),
        noise_root_key = %root_key.hex,
        "ready"
    );
    let _ = tokio::signal::ctrl_c().await;
    tracing::info!("shutting down");
    sim.shutdown().await;
}
