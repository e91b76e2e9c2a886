//! The WhatsApp simulator in a process of its own, so its CPU time and memory are apart from
//! the node's: the bench binary starts itself again in simulator mode (the library is one of
//! its dependencies, so no second binary has to be built), and talks to it through its
//! control API (`botwave_wa_sim::remote`) like a test would. The bench's use of it panics
//! on any failure: a bench that lost its simulator has nothing to report.

use std::process::Stdio;

use botwave_wa_sim::SimConfig;
use botwave_wa_sim::remote::{RemoteSim, serve_until_stdin_closes};
use tokio::process::Command;

/// Set in the environment of the bench binary started as the simulator.
const CHILD_MODE: &str = "BOTWAVE_BENCH_SIMULATOR_CHILD";

/// Whether this process was started as the simulator child.
pub fn is_child() -> bool {
    std::env::var_os(CHILD_MODE).is_some()
}

/// The child's whole life: serve until the parent closes our stdin (it ended or died).
pub async fn run_child() {
    serve_until_stdin_closes(SimConfig::default())
        .await
        .expect("the simulator serves");
}

/// A simulator process and a client of its control API.
pub struct SimProcess(RemoteSim);

/// What the simulator counted so far (`GET /control/stats`).
pub struct SimStats {
    pub decrypted_by_recipients: u64,
    pub connections: u64,
    pub logins: u64,
}

/// Starts this bench binary again as the simulator (see [`is_child`]).
pub async fn spawn_child() -> RemoteSim {
    let exe = std::env::current_exe().expect("the bench binary's path");
    let mut command = Command::new(exe);
    command
        .env(CHILD_MODE, "1")
        .env("RUST_LOG", "warn")
        .stderr(Stdio::inherit());
    RemoteSim::spawn(command)
        .await
        .expect("the simulator process starts")
}

impl SimProcess {
    pub async fn start() -> Self {
        Self(spawn_child().await)
    }

    /// A simulator already running at `base` (`http://host:port`); its CPU time is not read.
    pub fn external(base: &str) -> Self {
        Self(RemoteSim::external(base))
    }

    /// The simulator's process id, when this bench started it.
    pub fn pid(&self) -> Option<u32> {
        self.0.pid()
    }

    /// The websocket URL a node connects to.
    pub fn ws_url(&self) -> String {
        self.0.ws_url()
    }

    pub async fn create_phone(&self, number: &str) {
        self.0
            .create_phone(number, 1)
            .await
            .unwrap_or_else(|error| panic!("phone {number}: {error}"));
    }

    /// Scans `qr` with phone `number` (created first when new).
    pub async fn scan(&self, number: &str, qr: &str) -> Result<(), String> {
        self.0
            .scan(number, qr)
            .await
            .map(drop)
            .map_err(|error| error.to_string())
    }

    /// `(text, decrypted at, Unix ms)` of what phone `number` decrypted so far.
    pub async fn texts(&self, number: &str) -> Vec<(String, f64)> {
        self.0
            .messages(number)
            .await
            .expect("the simulator answers")
            .into_iter()
            .map(|message| (message.text, message.received_at as f64))
            .collect()
    }

    pub async fn stats(&self) -> SimStats {
        let stats = self.0.stats().await.expect("the simulator answers");
        SimStats {
            decrypted_by_recipients: stats.messages_decrypted_by_recipients,
            connections: stats.connections.current,
            logins: stats.logins,
        }
    }
}
