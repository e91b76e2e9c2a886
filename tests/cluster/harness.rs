//! Starting node processes, and the few requests and checks every scenario needs.

use std::collections::HashMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use botwave_wa_sim::remote::RemoteSim;
use futures_util::{SinkExt, StreamExt};
use reqwest::Method;
use serde_json::{Value, json};
use tokio::process::{Child, Command};
use tokio_tungstenite::tungstenite::Message;
use uuid::Uuid;

use crate::common::TestDatabase;

/// Short leases, so failover tests take seconds: a dead node's sessions run elsewhere
/// after at most this long (plus a placement tick and the reconnect).
pub const LEASE_TTL_SECS: u64 = 6;
pub const PATIENCE: Duration = Duration::from_secs(90);
const JWT_SECRET: &str = "cluster-test-secret-cluster-test-secret!";
const COOKIE: &str = "cluster-test-cookie-0123456789";
const PASSWORD: &str = "correct horse battery staple";

pub struct Cluster {
    pub db: TestDatabase,
    pub sim: RemoteSim,
    pub nodes: Vec<Node>,
    http: reqwest::Client,
    scratch: PathBuf,
    /// Node processes started so far (for names and log files).
    spawned: usize,
}

pub struct Node {
    pub name: String,
    pub http: String,
    pub cluster_port: u16,
    child: Option<Child>,
    log: PathBuf,
}

impl Node {
    pub fn pid(&self) -> i32 {
        self.child
            .as_ref()
            .and_then(Child::id)
            .and_then(|pid| i32::try_from(pid).ok())
            .expect("the node runs")
    }

    pub fn signal(&self, signal: libc::c_int) {
        // SAFETY: kill(2) on a child process this test started and still owns.
        let sent = unsafe { libc::kill(self.pid(), signal) };
        assert_eq!(sent, 0, "signal {signal} to {}", self.name);
    }

    /// Waits for the process to exit; answers how long that took.
    pub async fn wait_exit(&mut self, within: Duration) -> Duration {
        let started = Instant::now();
        let child = self.child.as_mut().expect("the node runs");
        let status = tokio::time::timeout(within, child.wait())
            .await
            .unwrap_or_else(|_| panic!("{} did not exit within {within:?}", self.name))
            .expect("wait for the node");
        eprintln!("{} exited: {status}", self.name);
        self.child = None;
        started.elapsed()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.start_kill();
        }
    }
}

/// A free port on 127.0.0.1 (released again: the node binds it a moment later).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("a free port")
}

pub struct User {
    pub id: Uuid,
    pub token: String,
    pub phone: String,
}

impl Cluster {
    pub async fn start(nodes: usize) -> Self {
        let db = TestDatabase::create().await;
        let sim = crate::sim_process::start().await;
        let scratch = std::env::temp_dir().join(format!("botwave-cluster-{}", Uuid::new_v4()));
        std::fs::create_dir_all(&scratch).expect("scratch dir");
        let mut cluster = Self {
            db,
            sim,
            nodes: Vec::new(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .expect("http client"),
            scratch,
            spawned: 0,
        };
        for _ in 0..nodes {
            cluster.add_node().await;
        }
        cluster
    }

    /// Starts one more node, peered with the others, and waits until it is ready.
    pub async fn add_node(&mut self) -> usize {
        self.add_node_with(&[]).await
    }

    /// Like [`add_node`](Self::add_node), reaching the database at `database_url` (through
    /// a [`DbProxy`](crate::db_proxy::DbProxy), say).
    pub async fn add_node_with_database(&mut self, database_url: &str) -> usize {
        self.add_node_with(&[("BOTWAVE_DATABASE_URL", database_url.to_owned())])
            .await
    }

    /// [`add_node`](Self::add_node) with more `BOTWAVE_*` variables (they win over the
    /// harness's own).
    pub async fn add_node_with(&mut self, env: &[(&str, String)]) -> usize {
        let node = self.spawn_node(env);
        let deadline = Instant::now() + PATIENCE;
        loop {
            let ready = self
                .http
                .get(format!("{}/readyz", node.http))
                .send()
                .await
                .is_ok_and(|response| response.status() == 200);
            if ready {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{} never got ready:\n{}",
                node.name,
                node.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        self.nodes.push(node);
        self.nodes.len() - 1
    }

    /// Starts a node process, peered with the nodes of the cluster, without waiting for it.
    pub fn spawn_node(&mut self, env: &[(&str, String)]) -> Node {
        let name = format!("node-{}", (b'a' + self.spawned as u8) as char);
        self.spawned += 1;
        let http_port = free_port();
        let cluster_port = free_port();
        let peers: Vec<String> = self
            .nodes
            .iter()
            .map(|node| format!("127.0.0.1:{}", node.cluster_port))
            .collect();
        let log = self.scratch.join(format!("{name}.log"));
        let log_file = std::fs::File::create(&log).expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_botwave"))
            .arg("serve")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("RUST_LOG", "botwave=info,botwave_actors=info,warn")
            .env("BOTWAVE_LISTEN", format!("127.0.0.1:{http_port}"))
            .env("BOTWAVE_DATA_DIR", self.scratch.join(&name))
            .env("BOTWAVE_DATABASE_URL", &self.db.url)
            .env("BOTWAVE_JWT_SECRET", JWT_SECRET)
            // Every account of these tests registers from 127.0.0.1.
            .env("BOTWAVE_LOGIN_ATTEMPTS_PER_IP", "100000")
            .env("BOTWAVE_WHATSAPP_URL", self.sim.ws_url())
            // The tests send more than the default plan's daily quota.
            .env("BOTWAVE_PLANS_ENFORCE", "false")
            .env("BOTWAVE_PACING_ENABLED", "false")
            .env("BOTWAVE_CLUSTER_NODE_NAME", &name)
            .env(
                "BOTWAVE_CLUSTER_LISTEN",
                format!("127.0.0.1:{cluster_port}"),
            )
            .env("BOTWAVE_CLUSTER_PEERS", peers.join(","))
            .env("BOTWAVE_CLUSTER_COOKIE", COOKIE)
            .env("BOTWAVE_CLUSTER_LEASE_TTL_SECS", LEASE_TTL_SECS.to_string())
            .env("BOTWAVE_CLUSTER_SHUTDOWN_TIMEOUT_SECS", "20")
            .envs(env.iter().map(|(key, value)| (key, value)))
            .stdout(Stdio::null())
            .stderr(Stdio::from(log_file))
            .kill_on_drop(true)
            .spawn()
            .expect("botwave serve starts");
        Node {
            name,
            http: format!("http://127.0.0.1:{http_port}"),
            cluster_port,
            child: Some(child),
            log,
        }
    }

    /// A directory for the test's own files, removed with the cluster.
    pub fn scratch(&self) -> &Path {
        &self.scratch
    }

    pub async fn api(
        &self,
        node: usize,
        method: Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> reqwest::Response {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.nodes[node].http))
            .bearer_auth(token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        request.send().await.expect("the node answers")
    }

    pub async fn status(&self, node: usize, user: &User) -> Value {
        let response = self
            .api(node, Method::GET, "/api/whatsapp/status", &user.token, None)
            .await;
        assert_eq!(response.status(), 200);
        response.json().await.expect("status JSON")
    }

    /// Registers a user through `node` and links its WhatsApp to a new simulated phone by
    /// initializing on `node` and scanning the QR code it shows.
    pub async fn linked_user(&self, node: usize, phone: &str) -> User {
        let user = self.user(node, phone).await;
        self.initialize(node, &user).await;
        // Under load a code can be replaced between reading and scanning it (the client
        // rotates them): then the next one is scanned, as a person would.
        let mut scanned: Option<String> = None;
        for attempt in 1..=3 {
            let qr = self
                .eventually("a QR code", || async {
                    let response = self
                        .api(node, Method::GET, "/api/whatsapp/qr", &user.token, None)
                        .await;
                    if response.status() != 200 {
                        return None;
                    }
                    let body: Value = response.json().await.ok()?;
                    let code = body["code"].as_str()?.to_owned();
                    (Some(&code) != scanned.as_ref()).then_some(code)
                })
                .await;
            match self.sim.scan(phone, &qr).await {
                Ok(_) => break,
                Err(error) if attempt < 3 => eprintln!("scan of {phone} failed ({error:?}); again"),
                Err(error) => panic!("scan of {phone} failed: {error:?}"),
            }
            scanned = Some(qr);
        }
        self.wait_connected(&user).await;
        user
    }

    /// Registers a user through `node` (no WhatsApp yet).
    pub async fn user(&self, node: usize, phone: &str) -> User {
        let email = format!("u-{}@example.com", Uuid::new_v4().simple());
        let response = self
            .http
            .post(format!("{}/api/auth/register", self.nodes[node].http))
            .json(&json!({ "email": email, "password": PASSWORD }))
            .send()
            .await
            .expect("register");
        assert_eq!(response.status(), 201, "register through node {node}");
        let body: Value = response.json().await.expect("register JSON");
        User {
            id: body["user"]["id"].as_str().unwrap().parse().unwrap(),
            token: body["token"].as_str().unwrap().to_owned(),
            phone: phone.to_owned(),
        }
    }

    /// `POST /api/whatsapp/initialize` for `user` through `node`, whatever it answers.
    pub async fn try_initialize(&self, node: usize, user: &User) -> reqwest::Response {
        self.api(
            node,
            Method::POST,
            "/api/whatsapp/initialize",
            &user.token,
            None,
        )
        .await
    }

    /// `POST /api/whatsapp/initialize` for `user` through `node`, which must accept it.
    pub async fn initialize(&self, node: usize, user: &User) {
        let response = self.try_initialize(node, user).await;
        assert_eq!(response.status(), 202, "initialize through node {node}");
    }

    /// A dashboard's websocket on `node`, authenticated as `user`.
    pub async fn dashboard(&self, node: usize, user: &User) -> Dashboard {
        let url = format!("{}/ws", self.nodes[node].http.replacen("http", "ws", 1));
        let (mut socket, _) = tokio_tungstenite::connect_async(url).await.expect("ws");
        socket
            .send(Message::text(
                json!({ "type": "authenticate", "token": user.token }).to_string(),
            ))
            .await
            .expect("authenticate");
        let mut dashboard = Dashboard(socket);
        let authenticated = dashboard
            .event(Duration::from_secs(30), |event| {
                event["type"] == "authenticated"
            })
            .await;
        assert!(authenticated, "the websocket on node {node} authenticated");
        dashboard
    }

    /// Waits until `user`'s device is logged in to WhatsApp from a node holding its lease.
    pub async fn wait_connected(&self, user: &User) {
        self.eventually("connected", || async {
            let owned = self.owner(user).await.is_some();
            (owned && self.is_connected(user).await).then_some(())
        })
        .await;
    }

    /// Sends `text` to `to` as `user` through `node`; returns the message id.
    pub async fn send(&self, node: usize, user: &User, to: &str, text: &str) -> String {
        let response = self
            .api(
                node,
                Method::POST,
                "/api/messages/send",
                &user.token,
                Some(json!({ "to": to, "text": text })),
            )
            .await;
        assert_eq!(response.status(), 202, "send through node {node}");
        let body: Value = response.json().await.expect("send JSON");
        body["id"].as_str().expect("message id").to_owned()
    }

    /// The name of the node holding a live lease of `user`'s session.
    pub async fn owner(&self, user: &User) -> Option<String> {
        let conn = self.db.pool.get().await.expect("db");
        let row = conn
            .query_opt(
                "SELECT n.name FROM wa_sessions s
                   JOIN wa_leases l ON l.session_id = s.id AND l.expires_at > now()
                   JOIN cluster_nodes n ON n.incarnation = l.owner
                  WHERE s.user_id = $1",
                &[&user.id],
            )
            .await
            .expect("owner query");
        row.map(|row| row.get(0))
    }

    /// The epoch of `user`'s lease (it grows with every acquisition).
    pub async fn epoch(&self, user: &User) -> i64 {
        let conn = self.db.pool.get().await.expect("db");
        conn.query_one(
            "SELECT l.epoch FROM wa_sessions s JOIN wa_leases l ON l.session_id = s.id
              WHERE s.user_id = $1",
            &[&user.id],
        )
        .await
        .expect("epoch query")
        .get(0)
    }

    /// How many sessions each node holds.
    pub async fn spread(&self) -> HashMap<String, i64> {
        let conn = self.db.pool.get().await.expect("db");
        let rows = conn
            .query(
                "SELECT n.name, count(*) FROM wa_leases l
                   JOIN cluster_nodes n ON n.incarnation = l.owner
                  WHERE l.expires_at > now() GROUP BY n.name",
                &[],
            )
            .await
            .expect("spread query");
        rows.iter().map(|row| (row.get(0), row.get(1))).collect()
    }

    /// Whether `user`'s device is logged in to WhatsApp now.
    pub async fn is_connected(&self, user: &User) -> bool {
        self.sim
            .is_connected(&user.phone, 1)
            .await
            .expect("the simulator answers")
    }

    /// How often `text` was decrypted by its recipient `to`.
    pub async fn received(&self, to: &str, text: &str) -> usize {
        self.sim
            .messages(to)
            .await
            .expect("the simulator answers")
            .iter()
            .filter(|message| message.text == text)
            .count()
    }

    /// How many pairings (QR scans or link codes) the simulator has seen.
    pub async fn pairings(&self) -> u64 {
        self.stats().await.pairings
    }

    pub async fn double_connections(&self) -> u64 {
        self.stats().await.double_connections.count
    }

    async fn stats(&self) -> botwave_wa_sim::StatsSnapshot {
        self.sim.stats().await.expect("the simulator answers")
    }

    pub async fn eventually<T, F, Fut>(&self, what: &str, mut probe: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Option<T>>,
    {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(value) = probe().await {
                return value;
            }
            if Instant::now() > deadline {
                for node in &self.nodes {
                    eprintln!("---- {} ----\n{}", node.name, node.log());
                }
                panic!("gave up waiting for {what}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// A dashboard's websocket.
pub struct Dashboard(
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
);

impl Dashboard {
    /// Waits up to `within` for an event that `wanted` accepts; answers whether one came.
    pub async fn event(&mut self, within: Duration, wanted: impl Fn(&Value) -> bool) -> bool {
        let found = tokio::time::timeout(within, async {
            while let Some(Ok(frame)) = self.0.next().await {
                let Ok(text) = frame.to_text() else { continue };
                if serde_json::from_str::<Value>(text).is_ok_and(|event| wanted(&event)) {
                    return true;
                }
            }
            false
        });
        found.await.unwrap_or(false)
    }

    /// Waits up to `within` for the event saying message `id` was delivered.
    pub async fn delivered(&mut self, id: &str, within: Duration) -> bool {
        self.event(within, |event| {
            event["type"] == "message_status"
                && event["message_id"] == id
                && event["status"] == "delivered"
        })
        .await
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.nodes.clear();
        let _ = std::fs::remove_dir_all(&self.scratch);
    }
}
