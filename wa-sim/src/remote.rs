//! The simulator in a process of its own, and a client of its control API.
//!
//! Tests and benches that measure or kill botwave nodes keep WhatsApp out of their own
//! process, as it is in production: a crash, a stall or the CPU time of the test then
//! cannot be confused with the simulator's. The parent starts a child (any binary that
//! calls [`serve_until_stdin_closes`] in the mode it chooses, usually itself again), reads
//! the address the child prints, and drives it over HTTP like any other client. The
//! child ends when the parent closes its stdin, so a parent killed by a signal leaves no
//! simulator behind.

use std::process::Stdio;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::{PhoneInfo, ReceivedText, ScanResponse, SentText, SimConfig, Simulator, StatsSnapshot};

/// The line the child prints once it listens; the rest of the line is its base URL.
const READY_PREFIX: &str = "WA_SIM_READY ";

/// How long a child may take to print its address.
const START_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    #[error("cannot start the simulator process: {0}")]
    Spawn(#[source] std::io::Error),
    #[error("the simulator process ended or said nothing within {START_TIMEOUT:?}")]
    NotReady,
    #[error("the simulator's control API did not answer: {0}")]
    Http(#[from] reqwest::Error),
    #[error("the simulator refused {what}: {status} {body}")]
    Refused {
        what: String,
        status: reqwest::StatusCode,
        body: String,
    },
}

/// The child's whole life: serve `config` until the parent closes our stdin.
pub async fn serve_until_stdin_closes(config: SimConfig) -> Result<(), crate::SimError> {
    let sim = Simulator::start(config).await?;
    println!("{READY_PREFIX}{}", sim.base_url());
    // A blocking read on a thread of its own: tokio's stdin would need a feature for this
    // one call.
    let _ = tokio::task::spawn_blocking(|| {
        let mut sink = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut sink)
    })
    .await;
    sim.shutdown().await;
    Ok(())
}

/// A simulator process (or one somebody else runs) and a client of its control API.
pub struct RemoteSim {
    /// `None` for a simulator this value did not start.
    child: Option<Child>,
    base: String,
    http: reqwest::Client,
}

impl RemoteSim {
    /// Runs `command` (which must end in [`serve_until_stdin_closes`]) and waits until the
    /// simulator in it listens. The process is killed when this value is dropped.
    pub async fn spawn(mut command: Command) -> Result<Self, RemoteError> {
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(RemoteError::Spawn)?;
        let stdout = child.stdout.take().ok_or(RemoteError::NotReady)?;
        let mut lines = BufReader::new(stdout).lines();
        let base = tokio::time::timeout(START_TIMEOUT, async {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(url) = line.strip_prefix(READY_PREFIX) {
                    return Some(url.trim_end_matches('/').to_owned());
                }
            }
            None
        })
        .await
        .ok()
        .flatten()
        .ok_or(RemoteError::NotReady)?;
        // Whatever else the child prints goes nowhere, but must be read: a full pipe
        // would block it.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(Self {
            child: Some(child),
            base,
            http: client(),
        })
    }

    /// A simulator already running at `base` (`http://host:port`).
    pub fn external(base: &str) -> Self {
        Self {
            child: None,
            base: base.trim_end_matches('/').to_owned(),
            http: client(),
        }
    }

    /// The process id, when this value started the simulator.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(Child::id)
    }

    /// `http://host:port`.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// The websocket URL a client connects to.
    pub fn ws_url(&self) -> String {
        format!("{}/ws/chat", self.base.replacen("http", "ws", 1))
    }

    /// Creates phone `number` with `devices` devices (no-op if it exists with as many).
    pub async fn create_phone(&self, number: &str, devices: u16) -> Result<PhoneInfo, RemoteError> {
        let request = self
            .http
            .post(self.control("/phones"))
            .json(&json!({ "number": number, "devices": devices }));
        answer(format!("phone {number}"), request).await
    }

    /// Phone `number`, or `None` when the simulator has no such phone.
    pub async fn phone(&self, number: &str) -> Result<Option<PhoneInfo>, RemoteError> {
        let response = self
            .http
            .get(self.control(&format!("/phones/{number}")))
            .send()
            .await?;
        if response.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        Ok(Some(decode(format!("phone {number}"), response).await?))
    }

    /// Whether companion `device` of phone `number` is logged in now.
    pub async fn is_connected(&self, number: &str, device: u16) -> Result<bool, RemoteError> {
        let Some(phone) = self.phone(number).await? else {
            return Ok(false);
        };
        let jid_user = format!("{number}:{device}@");
        Ok(phone
            .companion_devices
            .iter()
            .any(|companion| companion.connected && companion.jid.starts_with(&jid_user)))
    }

    /// Phone `number` (created first when new) scans `qr`.
    pub async fn scan(&self, number: &str, qr: &str) -> Result<ScanResponse, RemoteError> {
        let request = self
            .http
            .post(self.control("/scan"))
            .json(&json!({ "phone": number, "qr": qr }));
        answer(format!("the scan of {number}"), request).await
    }

    /// What phone `number` decrypted so far.
    pub async fn messages(&self, number: &str) -> Result<Vec<ReceivedText>, RemoteError> {
        let request = self
            .http
            .get(self.control(&format!("/phones/{number}/messages")));
        answer(format!("the messages of {number}"), request).await
    }

    /// Phone `from` sends `text` to the companions of `to`.
    pub async fn send_text(
        &self,
        from: &str,
        to: &str,
        text: &str,
    ) -> Result<SentText, RemoteError> {
        let request = self
            .http
            .post(self.control(&format!("/phones/{from}/send")))
            .json(&json!({ "to": to, "text": text }));
        answer(format!("a text from {from} to {to}"), request).await
    }

    pub async fn stats(&self) -> Result<StatsSnapshot, RemoteError> {
        answer("stats".to_owned(), self.http.get(self.control("/stats"))).await
    }

    fn control(&self, path: &str) -> String {
        format!("{}/control{path}", self.base)
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap_or_default()
}

async fn answer<T: DeserializeOwned>(
    what: String,
    request: reqwest::RequestBuilder,
) -> Result<T, RemoteError> {
    decode(what, request.send().await?).await
}

async fn decode<T: DeserializeOwned>(
    what: String,
    response: reqwest::Response,
) -> Result<T, RemoteError> {
    let status = response.status();
    if !status.is_success() {
        let body = response.text().await.unwrap_or_default();
        return Err(RemoteError::Refused { what, status, body });
    }
    Ok(response.json().await?)
}
