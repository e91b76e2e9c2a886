//! Mutual TLS between nodes: two nodes with certificates of one CA route requests and
//! events to each other; a node whose certificate another CA signed gets no link, even
//! though it trusts theirs, so requests through it for sessions elsewhere fail;
//! unreadable TLS files stop a node at start. Certificates are made with the openssl CLI (scripts/test installs it).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::harness::Cluster;

/// What a node logs for a link whose TLS handshake failed (actors/src/cluster/tls.rs).
const HANDSHAKE_FAILED: &str = "cluster TLS handshake failed";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_links_carry_requests_and_events_and_keep_other_authorities_out() {
    let mut cluster = Cluster::start(0).await;
    let pki = cluster.scratch().join("pki");
    let ours = Authority::new(&pki.join("ours"), "botwave-test-cluster");
    let theirs = Authority::new(&pki.join("theirs"), "another-cluster");
    let a = cluster.add_node_with(&ours.node_env("a")).await;
    let b = cluster.add_node_with(&ours.node_env("b")).await;

    // A request through A for the session B runs crosses the TLS link, and so does the
    // event B publishes for a dashboard on A.
    let user = cluster.linked_user(b, "15556100001").await;
    assert_eq!(
        cluster.owner(&user).await.as_deref(),
        Some(cluster.nodes[b].name.as_str())
    );
    cluster
        .eventually("a request through A answered by B", || async {
            (cluster.try_initialize(a, &user).await.status() == 202).then_some(())
        })
        .await;
    cluster
        .sim
        .create_phone("15556100002", 1)
        .await
        .expect("recipient phone");
    let mut dashboard = cluster.dashboard(a, &user).await;
    let id = cluster.send(a, &user, "15556100002", "over tls").await;
    assert!(
        dashboard.delivered(&id, Duration::from_secs(60)).await,
        "no delivered event on A for the session on B"
    );
    assert_eq!(cluster.received("15556100002", "over tls").await, 1);

    // A node with a certificate of another CA, the right cookie and A and B as peers. It
    // trusts our CA, so only A's and B's check of the certificate it presents keeps it out.
    let mut env = theirs.node_env("c");
    set(&mut env, "BOTWAVE_CLUSTER_TLS_CA", ours.ca());
    let c = cluster.add_node_with(&env).await;
    let c_addr = format!("127.0.0.1:{}", cluster.nodes[c].cluster_port);
    // A dials every node it has no link to, once a second: each refusal of C's address
    // means A had no link to C at that moment. C's own dials come from other ports.
    let refusals = |dialed_by_a: bool| {
        cluster.nodes[a]
            .log()
            .lines()
            .filter(|line| line.contains(HANDSHAKE_FAILED) && line.contains("UnknownIssuer"))
            .filter(|line| mentions(line, &c_addr) == dialed_by_a)
            .count()
    };
    cluster
        .eventually("A refusing C's certificate both ways", || async {
            (refusals(true) >= 2 && refusals(false) >= 1).then_some(())
        })
        .await;
    let refused = refusals(true);

    let through_c = cluster.try_initialize(c, &user).await;
    assert_eq!(through_c.status(), 503, "C reached the session on B");
    let body: Value = through_c.json().await.expect("error JSON");
    assert_eq!(body["error"]["code"], "owner_unreachable", "{body}");

    cluster
        .eventually("A still refusing C afterwards", || async {
            (refusals(true) > refused).then_some(())
        })
        .await;
    // B is still linked to A: the foreign node did not break the cluster.
    assert_eq!(cluster.try_initialize(a, &user).await.status(), 202);

    // A node whose TLS files cannot be read does not start, and says which file.
    let mut env = ours.node_env("d");
    let missing = pki.join("missing-ca.pem");
    set(
        &mut env,
        "BOTWAVE_CLUSTER_TLS_CA",
        missing.display().to_string(),
    );
    let mut broken = cluster.spawn_node(&env);
    broken.wait_exit(Duration::from_secs(60)).await;
    let log = broken.log();
    assert!(
        log.contains("cluster.tls_ca") && log.contains(&missing.display().to_string()),
        "{log}"
    );
}

/// Sets variable `key` of `env` to `value`.
fn set(env: &mut Vec<(&'static str, String)>, key: &'static str, value: String) {
    env.retain(|(existing, _)| *existing != key);
    env.push((key, value));
}

/// Whether `line` names `addr`, not just an address it is a prefix of.
fn mentions(line: &str, addr: &str) -> bool {
    line.match_indices(addr).any(|(at, _)| {
        !line[at + addr.len()..]
            .chars()
            .next()
            .is_some_and(|next| next.is_ascii_digit())
    })
}

/// A throwaway certificate authority and the node certificates it signs, as the README's
/// "Running a cluster" makes them.
struct Authority {
    dir: PathBuf,
}

impl Authority {
    fn new(dir: &Path, name: &str) -> Self {
        std::fs::create_dir_all(dir).expect("CA directory");
        openssl(
            dir,
            &format!(
                "req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
                 -subj /CN={name} -keyout ca.key -out ca.pem"
            ),
        );
        Self {
            dir: dir.to_owned(),
        }
    }

    /// A certificate for a node at 127.0.0.1 (both ends of a link), and the variables
    /// that give it, its key and this CA to the node.
    fn node_env(&self, node: &str) -> Vec<(&'static str, String)> {
        let ext = format!("{node}.ext");
        std::fs::write(
            self.dir.join(&ext),
            "subjectAltName = IP:127.0.0.1\nextendedKeyUsage = serverAuth, clientAuth\n",
        )
        .expect("extensions file");
        openssl(
            &self.dir,
            &format!(
                "req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN={node} \
                 -keyout {node}.key -out {node}.csr"
            ),
        );
        openssl(
            &self.dir,
            &format!(
                "x509 -req -in {node}.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
                 -extfile {ext} -out {node}.pem"
            ),
        );
        let path = |file: &str| self.dir.join(file).display().to_string();
        vec![
            ("BOTWAVE_CLUSTER_TLS_CERT", path(&format!("{node}.pem"))),
            ("BOTWAVE_CLUSTER_TLS_KEY", path(&format!("{node}.key"))),
            ("BOTWAVE_CLUSTER_TLS_CA", self.ca()),
        ]
    }

    /// The CA's certificate file.
    fn ca(&self) -> String {
        self.dir.join("ca.pem").display().to_string()
    }
}

/// Runs `openssl` with `command` (arguments split at spaces) in `dir`; a missing openssl
/// fails the test rather than skipping it.
fn openssl(dir: &Path, command: &str) {
    let output = Command::new("openssl")
        .args(command.split_whitespace())
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("cannot run openssl ({e}); scripts/test installs it"));
    assert!(
        output.status.success(),
        "openssl {command}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}
