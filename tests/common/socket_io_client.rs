//! The real socket.io-client 4 (Node.js, `tests/api/socket_io/client.mjs`) as a test drives
//! it: one connection per process, every line it prints kept. Shared by the API suite and the
//! cluster suite (`#[path]`-included), installed once per lockfile under the target dir.

use std::{
    path::{Path, PathBuf},
    process::Stdio,
    time::{Duration, Instant},
};

use serde_json::Value;
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::{Child, Command},
    sync::mpsc,
};

/// Long enough for a debug build on a loaded 2-core machine.
const PATIENCE: Duration = Duration::from_secs(45);

/// `tests/api/socket_io`: the client script, its package.json and lockfile.
const PACKAGE_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/api/socket_io");

/// The folder holding `node_modules` for the current lockfile, installed on first use (once
/// per test process: the tests ask for it concurrently).
fn installed_client() -> PathBuf {
    static INSTALLED: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    INSTALLED.get_or_init(install_client).clone()
}

fn install_client() -> PathBuf {
    const FILES: [&str; 3] = ["package.json", "package-lock.json", "client.mjs"];
    let contents: Vec<u8> = FILES
        .iter()
        .flat_map(|file| std::fs::read(Path::new(PACKAGE_DIR).join(file)).unwrap())
        .collect();
    // A folder per version of these files: a changed pin or script installs afresh. (The
    // script lives beside node_modules: ES modules resolve packages from where they are.)
    let key = contents
        .iter()
        .fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
            (hash ^ u64::from(*byte)).wrapping_mul(0x100_0000_01b3)
        });
    let target =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("socket-io-client-{key:016x}"));
    if target.join(".installed").exists() {
        return target;
    }
    // Installed beside the final folder and renamed into place, so that a concurrent run
    // never sees half a node_modules.
    let staging = target.with_extension(format!("staging-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::create_dir_all(&staging).unwrap();
    for file in FILES {
        std::fs::copy(Path::new(PACKAGE_DIR).join(file), staging.join(file)).unwrap();
    }
    let output = std::process::Command::new("npm")
        .args(["ci", "--ignore-scripts", "--no-audit", "--no-fund"])
        .current_dir(&staging)
        .output()
        .expect("`npm` runs (install Node.js and npm for the Socket.IO tests)");
    assert!(
        output.status.success(),
        "npm ci failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    std::fs::write(staging.join(".installed"), b"").unwrap();
    if std::fs::rename(&staging, &target).is_err() {
        // Another run finished first; its install is as good as this one.
        let _ = std::fs::remove_dir_all(&staging);
    }
    target
}

/// One socket.io-client connection, and everything it has seen so far.
pub struct SocketIoClient {
    child: Child,
    lines: mpsc::UnboundedReceiver<Value>,
    pub seen: Vec<Value>,
}

impl SocketIoClient {
    /// Connects to the node at `url` over `transport` (`websocket` or `polling`) and, unless
    /// `credential` is empty, emits `authenticate` with it.
    pub async fn connect(url: &str, transport: &str, credential: &str) -> Self {
        let folder = tokio::task::spawn_blocking(installed_client).await.unwrap();
        let mut child = Command::new("node")
            .arg(folder.join("client.mjs"))
            .env("BOTWAVE_URL", url)
            .env("TRANSPORT", transport)
            .env("CREDENTIAL", credential)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("node starts");
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut stdout = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = stdout.next_line().await {
                if let Ok(value) = serde_json::from_str(&line) {
                    let _ = tx.send(value);
                }
            }
        });
        Self {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits for the next `event` (skipping, but keeping, everything before it).
    pub async fn next(&mut self, event: &str) -> Value {
        self.next_where(event, |_| true).await
    }

    /// Waits for an `event` whose payload passes `check`.
    pub async fn next_where(&mut self, event: &str, check: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = tokio::time::timeout(left, self.lines.recv())
                .await
                .unwrap_or_else(|_| panic!("no {event} within {PATIENCE:?}; saw {:?}", self.seen))
                .unwrap_or_else(|| panic!("the client ended before {event}; saw {:?}", self.seen));
            self.seen.push(line.clone());
            if line["event"] == event && check(&line) {
                return line;
            }
        }
    }

    /// What arrived by now, without waiting.
    #[allow(dead_code)] // not every suite looks back at what a client saw
    pub fn drain(&mut self) -> &[Value] {
        while let Ok(line) = self.lines.try_recv() {
            self.seen.push(line);
        }
        &self.seen
    }

    /// Sends the client script a command (`pause`, `resume`) and waits until it is applied.
    #[allow(dead_code)] // not every suite makes a client slow
    pub async fn command(&mut self, command: &str) {
        use tokio::io::AsyncWriteExt;
        let stdin = self.child.stdin.as_mut().expect("the client's stdin");
        stdin
            .write_all(format!("{command}\n").as_bytes())
            .await
            .expect("the client reads commands");
        let applied = self
            .next_where("command", |line| line["command"] == command)
            .await;
        assert_eq!(applied["applied"], true, "{applied}");
    }

    pub async fn close(mut self) {
        drop(self.child.stdin.take());
        let _ = tokio::time::timeout(Duration::from_secs(5), self.child.wait()).await;
    }
}
