//! The WhatsApp simulator in a process of its own, so its CPU time and memory are apart from
//! the node's: the bench binary starts itself again in simulator mode (the library is one of
//! its dependencies, so no second binary has to be built), and talks to it through its
//! control API like a test would.

use std::process::Stdio;
use std::time::Duration;

use botwave_wa_sim::{SimConfig, Simulator};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// Set in the environment of the bench binary started as the simulator.
const CHILD_MODE: &str = "BOTWAVE_BENCH_SIMULATOR_CHILD";

/// The line the child prints once it listens.
const READY_PREFIX: &str = "SIMULATOR_URL ";

/// Whether this process was started as the simulator child.
pub fn is_child() -> bool {
    std::env::var_os(CHILD_MODE).is_some()
}

/// The child's whole life: serve until the parent closes our stdin (it ended or died).
pub async fn run_child() {
    let sim = Simulator::start(SimConfig::default())
        .await
        .expect("the simulator starts");
    println!("{READY_PREFIX}{}", sim.base_url());
    // Blocking read on a thread of its own: tokio's stdin needs a feature nothing else uses.
    let _ = tokio::task::spawn_blocking(|| {
        let mut sink = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut sink)
    })
    .await;
    sim.shutdown().await;
}

/// A simulator process and a client of its control API.
pub struct SimProcess {
    /// `None` for a simulator somebody else started (`--sim-url`).
    child: Option<Child>,
    pub base: String,
    http: reqwest::Client,
}

/// What the simulator counted so far (`GET /control/stats`).
pub struct SimStats {
    pub decrypted_by_recipients: u64,
    pub connections: u64,
    pub logins: u64,
}

impl SimProcess {
    pub async fn start() -> Self {
        let exe = std::env::current_exe().expect("the bench binary's path");
        let mut child = Command::new(exe)
            .env(CHILD_MODE, "1")
            .env("RUST_LOG", "warn")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("the simulator process starts");
        let stdout = child.stdout.take().expect("the simulator's stdout");
        let mut lines = BufReader::new(stdout).lines();
        let base = loop {
            let line = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
                .await
                .expect("the simulator says where it listens within a minute")
                .expect("the simulator's stdout")
                .expect("the simulator runs");
            if let Some(url) = line.strip_prefix(READY_PREFIX) {
                break url.trim_end_matches('/').to_owned();
            }
        };
        Self {
            child: Some(child),
            base,
            http: reqwest::Client::new(),
        }
    }

    /// A simulator already running at `base` (`http://host:port`); its CPU time is not read.
    pub fn external(base: &str) -> Self {
        Self {
            child: None,
            base: base.trim_end_matches('/').to_owned(),
            http: reqwest::Client::new(),
        }
    }

    /// The simulator's process id, when this bench started it.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(Child::id)
    }

    /// The websocket URL a node connects to.
    pub fn ws_url(&self) -> String {
        format!("{}/ws/chat", self.base.replacen("http", "ws", 1))
    }

    fn control(&self, path: &str) -> String {
        format!("{}/control{path}", self.base)
    }

    pub async fn create_phone(&self, number: &str) {
        let response = self
            .http
            .post(self.control("/phones"))
            .json(&json!({ "number": number, "devices": 1 }))
            .send()
            .await
            .expect("the simulator answers");
        assert!(response.status().is_success(), "phone {number}");
    }

    /// Scans `qr` with phone `number` (created first when new).
    pub async fn scan(&self, number: &str, qr: &str) -> Result<(), String> {
        let response = self
            .http
            .post(self.control("/scan"))
            .json(&json!({ "phone": number, "qr": qr }))
            .send()
            .await
            .map_err(|error| error.to_string())?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(response.text().await.unwrap_or_default())
        }
    }

    /// `(text, decrypted at, Unix ms)` of what phone `number` decrypted so far.
    pub async fn texts(&self, number: &str) -> Vec<(String, f64)> {
        let response = self
            .http
            .get(self.control(&format!("/phones/{number}/messages")))
            .send()
            .await
            .expect("the simulator answers");
        let messages: Vec<Value> = response.json().await.unwrap_or_default();
        messages
            .iter()
            .filter_map(|m| Some((m["text"].as_str()?.to_owned(), m["received_at"].as_f64()?)))
            .collect()
    }

    pub async fn stats(&self) -> SimStats {
        let stats: Value = self
            .http
            .get(self.control("/stats"))
            .send()
            .await
            .expect("the simulator answers")
            .json()
            .await
            .expect("stats JSON");
        let number = |value: &Value| value.as_u64().unwrap_or(0);
        SimStats {
            decrypted_by_recipients: number(&stats["messages_decrypted_by_recipients"]),
            connections: number(&stats["connections"]["current"]),
            logins: number(&stats["logins"]),
        }
    }
}
