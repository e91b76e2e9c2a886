//! The WhatsApp simulator in a process of its own, as WhatsApp is to a real cluster: the
//! test binary starts itself again, running only [`simulator_process`], and drives that
//! process through its control API. Killing and freezing nodes then cannot touch it, and
//! what it saw is what a separate WhatsApp would have seen.

use std::process::Stdio;

use botwave_wa_sim::SimConfig;
use botwave_wa_sim::remote::{RemoteSim, serve_until_stdin_closes};
use tokio::process::Command;

/// Set in the environment of the test binary started as the simulator.
const CHILD: &str = "BOTWAVE_CLUSTER_SIMULATOR_CHILD";

/// Starts the simulator process; it ends when the returned value is dropped.
pub async fn start() -> RemoteSim {
    let exe = std::env::current_exe().expect("the test binary's path");
    let mut command = Command::new(exe);
    command
        .args([
            "sim_process::simulator_process",
            "--exact",
            "--ignored",
            "--nocapture",
        ])
        .env(CHILD, "1")
        .env("RUST_LOG", "warn")
        .stderr(Stdio::inherit());
    RemoteSim::spawn(command)
        .await
        .expect("the simulator process starts")
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "the body of the simulator process that `start` runs, not a test of its own"]
async fn simulator_process() {
    assert!(
        std::env::var_os(CHILD).is_some(),
        "only the cluster harness runs this, as the simulator's process"
    );
    serve_until_stdin_closes(SimConfig::default())
        .await
        .expect("the simulator serves");
}
