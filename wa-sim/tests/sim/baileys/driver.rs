//! Runs `tests/baileys/flow.mjs` under `node`: installs the pinned Baileys once per lockfile
//! into the cargo target dir, starts the script against a simulator, writes its commands
//! and waits for its JSON events, keeping Baileys' log to explain a failed step.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use botwave_wa_sim::SimHandle;
use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::mpsc;

/// `wa-sim/tests/baileys`: the script, its package.json and lockfile.
const PACKAGE_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/baileys");
/// Baileys 7 refuses older Node versions (its engine-requirements.js).
const MIN_NODE_MAJOR: u32 = 20;
/// How many lines of Baileys' log are kept, and how many a failure prints.
const LOG_KEEP: usize = 2000;
const LOG_SHOW: usize = 80;
/// A longer log line (a stanza dump) is cut to this many characters in a failure message.
const LOG_LINE_MAX: usize = 800;

/// The folder holding `node_modules` for the current lockfile, installed on first use.
pub async fn installed_package() -> PathBuf {
    tokio::task::spawn_blocking(install_blocking)
        .await
        .expect("install task")
        .unwrap_or_else(|message| panic!("{message}"))
}

fn install_blocking() -> Result<PathBuf, String> {
    check_node()?;
    let manifest = read(&Path::new(PACKAGE_DIR).join("package.json"))?;
    let lockfile = read(&Path::new(PACKAGE_DIR).join("package-lock.json"))?;
    let key = Sha256::new()
        .chain_update(&manifest)
        .chain_update(&lockfile)
        .finalize();
    let key: String = key[..8].iter().map(|b| format!("{b:02x}")).collect();
    let target = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("baileys-{key}"));
    let marker = target.join(".installed");
    if marker.exists() {
        return Ok(target);
    }
    // Install beside the final folder and rename it into place, so a concurrent or
    // interrupted run never sees half a node_modules.
    let staging = target.with_extension(format!("staging-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::create_dir_all(&staging).map_err(|e| format!("create {staging:?}: {e}"))?;
    write(&staging.join("package.json"), &manifest)?;
    write(&staging.join("package-lock.json"), &lockfile)?;
    let output = std::process::Command::new("npm")
        .args(["ci", "--ignore-scripts", "--no-audit", "--no-fund"])
        .current_dir(&staging)
        .output()
        .map_err(|e| format!("`npm ci` did not start ({e}); install Node.js {MIN_NODE_MAJOR}+ with npm to run the Baileys test"))?;
    if !output.status.success() {
        return Err(format!(
            "`npm ci` for the pinned Baileys failed ({}) in {staging:?}:\n{}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    write(&staging.join(".installed"), key.as_bytes())?;
    if target.exists() && !marker.exists() {
        // Not one of ours (every install is renamed into place complete, marker included).
        let _ = std::fs::remove_dir_all(&target);
    }
    match std::fs::rename(&staging, &target) {
        Ok(()) => Ok(target),
        // Another run finished first; its install is as good as this one.
        Err(_) if marker.exists() => {
            let _ = std::fs::remove_dir_all(&staging);
            Ok(target)
        }
        Err(error) => Err(format!("move {staging:?} to {target:?}: {error}")),
    }
}

fn check_node() -> Result<(), String> {
    let missing = |e: std::io::Error| {
        format!(
            "`node` did not start ({e}); install Node.js {MIN_NODE_MAJOR}+ with npm to run the Baileys test"
        )
    };
    let output = std::process::Command::new("node")
        .arg("--version")
        .output()
        .map_err(missing)?;
    let version = String::from_utf8_lossy(&output.stdout).trim().to_string();
    let major = version
        .trim_start_matches('v')
        .split('.')
        .next()
        .and_then(|major| major.parse::<u32>().ok())
        .ok_or_else(|| format!("`node --version` printed {version:?}"))?;
    if major < MIN_NODE_MAJOR {
        return Err(format!(
            "node {version} is too old: Baileys 7 needs Node.js {MIN_NODE_MAJOR}+"
        ));
    }
    Ok(())
}

fn read(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("read {path:?}: {e}"))
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), String> {
    std::fs::write(path, bytes).map_err(|e| format!("write {path:?}: {e}"))
}

/// Baileys' log lines (stderr), the most recent last.
#[derive(Clone, Default)]
struct LogTail(Arc<Mutex<VecDeque<String>>>);

impl LogTail {
    fn push(&self, line: String) {
        let mut lines = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if lines.len() == LOG_KEEP {
            lines.pop_front();
        }
        lines.push_back(line);
    }

    fn render(&self) -> String {
        let lines = self.0.lock().unwrap_or_else(|e| e.into_inner());
        lines
            .iter()
            .skip(lines.len().saturating_sub(LOG_SHOW))
            .map(|line| match line.char_indices().nth(LOG_LINE_MAX) {
                Some((cut, _)) => format!("{}…", &line[..cut]),
                None => line.clone(),
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// One `node flow.mjs` process.
pub struct Baileys {
    child: Child,
    stdin: ChildStdin,
    /// This run's copy of the script, removed on drop.
    script: PathBuf,
    /// Ends when the script's stderr closes: every log line has been read.
    log_reader: Option<tokio::task::JoinHandle<()>>,
    events: mpsc::UnboundedReceiver<Value>,
    /// Every event read so far, for failure messages.
    seen: Vec<Value>,
    log: LogTail,
}

impl Baileys {
    /// Starts the script with its auth state in `auth_dir`.
    pub async fn start(package: &Path, sim: &SimHandle, auth_dir: &Path) -> Self {
        // Node resolves `import 'baileys'` from the script's folder, so the script runs
        // from the install folder. Written each time: the install is keyed by the lockfile.
        let script = package.join(format!("flow-{}.mjs", std::process::id()));
        let source = Path::new(PACKAGE_DIR).join("flow.mjs");
        tokio::fs::copy(&source, &script)
            .await
            .unwrap_or_else(|e| panic!("copy {source:?} to {script:?}: {e}"));
        let mut child = Command::new("node")
            .arg(&script)
            .current_dir(package)
            .env("WA_SIM_WS", sim.ws_url())
            .env("WA_SIM_CONTROL", sim.control_url())
            .env("AUTH_DIR", auth_dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("`node` did not start ({e}); install Node.js {MIN_NODE_MAJOR}+")
            });
        let stdin = child.stdin.take().expect("piped stdin");
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr = child.stderr.take().expect("piped stderr");
        let log = LogTail::default();
        let (events_tx, events) = mpsc::unbounded_channel();
        let stdout_log = log.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                match serde_json::from_str::<Value>(&line) {
                    Ok(event) => {
                        let _ = events_tx.send(event);
                    }
                    Err(_) => stdout_log.push(format!("[stdout] {line}")),
                }
            }
        });
        let stderr_log = log.clone();
        let log_reader = tokio::spawn(async move {
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                stderr_log.push(line);
            }
        });
        Self {
            child,
            stdin,
            script,
            log_reader: Some(log_reader),
            events,
            seen: Vec::new(),
            log,
        }
    }

    /// Writes one command line to the script.
    pub async fn command(&mut self, command: Value) {
        let line = format!("{command}\n");
        if let Err(error) = self.stdin.write_all(line.as_bytes()).await {
            let failure = format!("writing {command} to Baileys' stdin: {error}");
            self.fail(&failure).await;
        }
    }

    /// The first event named `name` that `accept` takes, skipping others. Fails the test
    /// after `timeout`, on an `error` event, or when the script exits.
    pub async fn expect(
        &mut self,
        step: &str,
        name: &str,
        timeout: Duration,
        mut accept: impl FnMut(&Value) -> bool,
    ) -> Value {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let event = match tokio::time::timeout_at(deadline, self.events.recv()).await {
                Ok(Some(event)) => event,
                Ok(None) => {
                    let status = self.child.wait().await;
                    self.fail(&format!(
                        "{step}: Baileys exited ({status:?}) before `{name}`"
                    ))
                    .await
                }
                Err(_) => {
                    self.fail(&format!("{step}: no `{name}` event within {timeout:?}"))
                        .await
                }
            };
            self.seen.push(event.clone());
            let event_name = event["event"].as_str().unwrap_or_default();
            if event_name == "error" {
                self.fail(&format!("{step}: Baileys reported an error: {event}"))
                    .await;
            }
            if event_name == name && accept(&event) {
                return event;
            }
        }
    }

    /// Events read since `since` (an index into everything seen).
    pub fn seen_since(&self, since: usize) -> &[Value] {
        &self.seen[since.min(self.seen.len())..]
    }

    pub fn seen_count(&self) -> usize {
        self.seen.len()
    }

    /// Fails the test with the events seen and the tail of Baileys' log.
    pub async fn fail(&mut self, message: &str) -> ! {
        // Stop the script and read its log to the end, so the tail is complete.
        let _ = self.child.start_kill();
        if let Some(reader) = self.log_reader.take() {
            let _ = tokio::time::timeout(Duration::from_secs(2), reader).await;
        }
        let events: Vec<String> = self
            .seen
            .iter()
            .skip(self.seen.len().saturating_sub(20))
            .map(Value::to_string)
            .collect();
        panic!(
            "{message}\n--- last events from the script:\n{}\n--- tail of Baileys' log:\n{}",
            events.join("\n"),
            self.log.render()
        );
    }

    /// Asks the script to exit and waits for it.
    pub async fn exit(mut self) {
        self.command(serde_json::json!({"cmd": "exit"})).await;
        let _ = tokio::time::timeout(Duration::from_secs(5), self.child.wait()).await;
    }
}

impl Drop for Baileys {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.script);
    }
}
