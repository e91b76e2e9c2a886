//! The node under measurement, in either of the two shapes the bench needs, and the HTTP
//! calls a user makes to it.
//!
//! - [`InProcessNode`]: `Application` on a runtime of its own inside the bench process, its
//!   threads named so that their CPU time can be told from the load generator's, and its
//!   connection pool at hand for wait counters. The send phases use it.
//! - [`NodeProcess`]: the `botwave serve` binary of this build, configured by environment
//!   like an installation, so that it can be stopped and started again. The idle and
//!   restart phase uses it.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use botwave::{
    config::{
        AuthSettings, DatabaseSettings, HttpSettings, PlanSettings, Settings, WhatsappSettings,
    },
    db::DbPool,
    startup::Application,
};
use serde_json::{Value, json};
use tokio::process::{Child, Command};

use crate::simulator::SimProcess;
use crate::usage::NODE_THREAD_NAME;

pub const JWT_SECRET: &str = "benchmark-secret-benchmark-secret-benchmark";

/// Every client of the bench comes from 127.0.0.1, so the per-address caps are lifted.
const CONNECTION_CAP: usize = 50_000;

/// The node inside the bench process.
pub struct InProcessNode {
    runtime: Option<tokio::runtime::Runtime>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    running: Option<tokio::task::JoinHandle<()>>,
    pub pool: DbPool,
    pub api: Api,
}

impl InProcessNode {
    pub async fn start(database_url: &str, whatsapp_url: String) -> Self {
        let settings = Settings {
            listen: "127.0.0.1:0".parse().expect("an address"),
            data_dir: std::env::temp_dir().join(format!("botwave-bench-{}", uuid::Uuid::new_v4())),
            database: DatabaseSettings {
                url: Some(database_url.to_owned()),
                ..DatabaseSettings::default()
            },
            auth: AuthSettings {
                jwt_secret: Some(JWT_SECRET.into()),
                ..AuthSettings::default()
            },
            whatsapp: WhatsappSettings {
                url: Some(whatsapp_url),
                ..WhatsappSettings::default()
            },
            cluster: Default::default(),
            http: HttpSettings {
                max_connections: CONNECTION_CAP,
                max_connections_per_ip: CONNECTION_CAP,
                max_websockets_per_ip: CONNECTION_CAP,
                max_websockets_per_user: CONNECTION_CAP,
                ..HttpSettings::default()
            },
            // The bench measures the pipeline, not a plan's quotas: the default plan's 100
            // messages a day would stop it at once. Usage is still counted, as in production.
            plans: PlanSettings { enforce: false },
            // The bench measures the pipeline, not pacing.
            pacing: botwave::config::PacingSettings {
                enabled: false,
                ..Default::default()
            },
            ..Settings::default()
        };
        // As many worker threads as `botwave serve` gets (one per core), apart from the
        // bench's own runtime; every task the node spawns lands on these threads.
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .thread_name(NODE_THREAD_NAME)
            .enable_all()
            .build()
            .expect("the node's runtime");
        let app = runtime
            .spawn(async move {
                Application::build(&settings)
                    .await
                    .expect("the node starts")
            })
            .await
            .expect("the node's start-up task");
        let pool = app.pool().clone();
        let base = format!("http://{}", app.local_addr());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let running = runtime.spawn(app.run_until(async {
            let _ = stopped.await;
        }));
        Self {
            runtime: Some(runtime),
            stop: Some(stop),
            running: Some(running),
            pool,
            api: Api::new(base),
        }
    }

    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(running) = self.running.take() {
            let _ = tokio::time::timeout(Duration::from_secs(30), running).await;
        }
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// `botwave serve` as a child process.
pub struct NodeProcess {
    child: Option<Child>,
    pub api: Api,
    env: Vec<(String, String)>,
    log: PathBuf,
}

impl NodeProcess {
    /// Starts the node and returns once it runs (not yet ready: see [`wait_ready`]).
    /// `resume_rate` is its `whatsapp.resume_rate`, the default when `None`.
    pub fn spawn(
        database_url: &str,
        sim: &SimProcess,
        scratch: &std::path::Path,
        resume_rate: Option<u32>,
    ) -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .map(|addr| addr.port())
            .expect("a free port");
        let cap = CONNECTION_CAP.to_string();
        let mut env: Vec<(String, String)> = [
            ("RUST_LOG", "warn".to_owned()),
            ("BOTWAVE_LISTEN", format!("127.0.0.1:{port}")),
            (
                "BOTWAVE_DATA_DIR",
                scratch.join("node").display().to_string(),
            ),
            ("BOTWAVE_DATABASE_URL", database_url.to_owned()),
            ("BOTWAVE_JWT_SECRET", JWT_SECRET.to_owned()),
            ("BOTWAVE_WHATSAPP_URL", sim.ws_url()),
            // The bench measures the pipeline, not pacing.
            ("BOTWAVE_PACING_ENABLED", "false".to_owned()),
            ("BOTWAVE_MAX_CONNECTIONS", cap.clone()),
            ("BOTWAVE_MAX_CONNECTIONS_PER_IP", cap.clone()),
            ("BOTWAVE_MAX_WEBSOCKETS_PER_IP", cap.clone()),
            ("BOTWAVE_MAX_WEBSOCKETS_PER_USER", cap),
            ("BOTWAVE_PLANS_ENFORCE", "false".to_owned()),
        ]
        .into_iter()
        .map(|(key, value)| (key.to_owned(), value))
        .collect();
        if let Some(rate) = resume_rate {
            env.push(("BOTWAVE_WHATSAPP_RESUME_RATE".to_owned(), rate.to_string()));
        }
        let mut node = Self {
            child: None,
            api: Api::new(format!("http://127.0.0.1:{port}")),
            env,
            log: scratch.join("node.log"),
        };
        node.start_again();
        node
    }

    /// Starts the process (again, after [`stop`](Self::stop)) with the same settings.
    pub fn start_again(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("the node's log file");
        let child = Command::new(env!("CARGO_BIN_EXE_botwave"))
            .arg("serve")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(self.env.iter().map(|(key, value)| (key, value)))
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .kill_on_drop(true)
            .spawn()
            .expect("botwave serve starts");
        self.child = Some(child);
    }

    pub fn pid(&self) -> u32 {
        self.child
            .as_ref()
            .and_then(Child::id)
            .expect("the node runs")
    }

    /// Waits for `/readyz` to answer 200.
    pub async fn wait_ready(&self, patience: Duration) {
        let started = Instant::now();
        loop {
            let ready = self
                .api
                .http
                .get(format!("{}/readyz", self.api.base))
                .send()
                .await
                .is_ok_and(|response| response.status() == 200);
            if ready {
                return;
            }
            assert!(
                started.elapsed() < patience,
                "the node was not ready within {patience:?}; its log:\n{}",
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGTERM, as a service manager stops it; SIGKILL if it has not exited within
    /// `patience`. Answers how long it took to exit.
    pub async fn stop(&mut self, patience: Duration) -> Duration {
        let started = Instant::now();
        let Some(mut child) = self.child.take() else {
            return Duration::ZERO;
        };
        if let Some(pid) = child.id().and_then(|pid| i32::try_from(pid).ok()) {
            // SAFETY: kill(2) on a child this bench started and has not reaped.
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
        if tokio::time::timeout(patience, child.wait()).await.is_err() {
            eprintln!("the node did not exit within {patience:?} of SIGTERM: killed");
            let _ = child.kill().await;
        }
        started.elapsed()
    }
}

/// The user-facing HTTP API of a node.
#[derive(Clone)]
pub struct Api {
    pub base: String,
    pub http: reqwest::Client,
}

impl Api {
    fn new(base: String) -> Self {
        Self {
            base,
            http: reqwest::Client::builder()
                .pool_max_idle_per_host(1024)
                .timeout(Duration::from_secs(120))
                .build()
                .expect("an HTTP client"),
        }
    }

    async fn get_json(&self, path: &str, token: &str) -> Result<(u16, Value), String> {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(token)
            .send()
            .await
            .map_err(|error| error.to_string())?;
        let status = response.status().as_u16();
        Ok((status, response.json().await.unwrap_or(Value::Null)))
    }

    /// `POST /api/messages/send`; answers the HTTP status.
    pub async fn send(&self, token: &str, to: &str, text: &str) -> u16 {
        self.http
            .post(format!("{}/api/messages/send", self.base))
            .bearer_auth(token)
            .json(&json!({ "to": to, "text": text }))
            .send()
            .await
            .map_or(0, |response| response.status().as_u16())
    }

    pub async fn initialize(&self, token: &str) -> Result<u16, String> {
        self.http
            .post(format!("{}/api/whatsapp/initialize", self.base))
            .bearer_auth(token)
            .send()
            .await
            .map(|response| response.status().as_u16())
            .map_err(|error| error.to_string())
    }

    /// Initialize → QR → scan with phone `phone` → connected; answers (initialize to QR,
    /// scan to connected).
    pub async fn pair(
        &self,
        sim: &SimProcess,
        token: &str,
        phone: &str,
    ) -> Result<(Duration, Duration), String> {
        let patience = Duration::from_secs(120);
        let started = Instant::now();
        let status = self.initialize(token).await?;
        if status != 202 {
            return Err(format!("initialize answered {status}"));
        }
        let mut scanned_code: Option<String> = None;
        let mut to_qr = None;
        let mut scanned_at = Instant::now();
        // A code can rotate between reading and scanning it under load: then the next one
        // is scanned, as a person would.
        for _attempt in 0..3 {
            let code = loop {
                let (status, body) = self.get_json("/api/whatsapp/qr", token).await?;
                if status == 200
                    && let Some(code) = body["code"].as_str()
                    && scanned_code.as_deref() != Some(code)
                {
                    break code.to_owned();
                }
                if started.elapsed() > patience {
                    return Err("no QR code".into());
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            };
            to_qr.get_or_insert(started.elapsed());
            scanned_at = Instant::now();
            match sim.scan(phone, &code).await {
                Ok(()) => {
                    scanned_code = None;
                    break;
                }
                Err(_) => scanned_code = Some(code),
            }
        }
        if scanned_code.is_some() {
            return Err("three scans refused".into());
        }
        loop {
            let (_, status) = self.get_json("/api/whatsapp/status", token).await?;
            if status["state"] == "connected" {
                break;
            }
            if scanned_at.elapsed() > patience {
                return Err(format!("never connected: {status}"));
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        Ok((to_qr.unwrap_or_default(), scanned_at.elapsed()))
    }
}
