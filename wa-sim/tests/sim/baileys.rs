//! A second, independent client: Baileys 7 (Node) against the simulator, driven through
//! `tests/baileys/flow.mjs`. It pairs by QR, sends a text the phone decrypts, gets its
//! receipts, receives a text, reconnects without a QR and is logged out by the phone. Every
//! simulator interaction goes over the HTTP control API, as an outside harness would.
//!
//! Needs `node` (20+) and `npm`; the pinned package is installed once per lockfile under
//! the cargo target dir. Without them the test fails and says so.

mod driver;

use std::path::PathBuf;
use std::time::Duration;

use botwave_wa_sim::{
    KickResponse, NoiseRootKey, ReceivedText, ScanResponse, SentText, SimConfig, SimHandle,
    StatsSnapshot,
};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::start_sim;
use driver::{Baileys, installed_package};

/// Upper bound for each step of the flow.
const STEP: Duration = Duration::from_secs(15);
const OWN_NUMBER: &str = "15557770001";
const PEER_NUMBER: &str = "15557770002";

/// `proto.WebMessageInfo.Status` values Baileys reports in `messages.update`.
const DELIVERY_ACK: u64 = 3;
const READ: u64 = 4;

/// A fresh folder for Baileys' saved auth state, removed when dropped.
struct AuthDir(PathBuf);

impl AuthDir {
    fn new() -> Self {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!(
            "baileys-auth-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or_default()
        ));
        std::fs::create_dir_all(&dir).expect("create auth dir");
        Self(dir)
    }
}

impl Drop for AuthDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn status_of(event: &Value) -> Option<u64> {
    event["status"].as_u64()
}

struct Control {
    http: reqwest::Client,
    url: String,
}

impl Control {
    fn new(sim: &SimHandle) -> Self {
        Self {
            http: reqwest::Client::new(),
            url: sim.control_url(),
        }
    }

    async fn post(&self, path: &str, body: Value) -> reqwest::Response {
        self.http
            .post(format!("{}{path}", self.url))
            .json(&body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("POST {path}: {e}"))
    }

    async fn get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{path}", self.url))
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"))
    }

    async fn messages(&self, number: &str) -> Vec<ReceivedText> {
        let response = self.get(&format!("/phones/{number}/messages")).await;
        assert_eq!(response.status(), StatusCode::OK);
        response.json().await.expect("messages JSON")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn baileys_pairs_sends_receives_reconnects_and_is_logged_out() {
    let package = installed_package().await;
    let sim = start_sim(SimConfig::default()).await;
    let control = Control::new(&sim);
    let auth = AuthDir::new();
    let mut baileys = Baileys::start(&package, &sim, &auth.0).await;
    let ready = baileys
        .expect("script start", "ready", STEP, |_| true)
        .await;
    // Baileys verifies the Noise chain against the root key the simulator publishes.
    let root_key: NoiseRootKey = control
        .get("/root-key")
        .await
        .json()
        .await
        .expect("root key JSON");
    if ready["root_key"] != root_key.hex.as_str() {
        baileys
            .fail(&format!(
                "the script pinned another root key than {root_key:?}: {ready}"
            ))
            .await;
    }

    // Pairing: Baileys shows a QR, the phone scans it, the server asks for a restart (515)
    // and the new socket logs in.
    baileys.command(json!({"cmd": "connect"})).await;
    let qr = baileys.expect("pairing", "qr", STEP, |_| true).await;
    let qr = qr["qr"].as_str().unwrap_or_default().to_string();
    let scan = control
        .post("/scan", json!({"phone": OWN_NUMBER, "qr": qr}))
        .await;
    if scan.status() != StatusCode::OK {
        let body = scan.text().await.unwrap_or_default();
        baileys
            .fail(&format!("scanning Baileys' QR {qr:?} was refused: {body}"))
            .await;
    }
    let paired: ScanResponse = scan.json().await.expect("scan JSON");
    baileys
        .expect("restart after pairing", "close", STEP, |e| {
            status_of(e) == Some(515)
        })
        .await;
    let open = baileys
        .expect("login after pairing", "open", STEP, |_| true)
        .await;
    // Two sockets' Noise chains (intermediate and leaf each) and pair-success's account
    // signature, every one valid: an invalid one fails the step above as an `error` event.
    let checked = open["signatures_checked"].as_u64().unwrap_or_default();
    assert!(
        checked >= 5,
        "Baileys checked {checked} signatures; expected both chains and the account signature"
    );
    let me = open["me"].as_str().unwrap_or_default();
    assert!(
        me.starts_with(&format!("{OWN_NUMBER}:")),
        "Baileys logged in as {me:?}, expected a device of {OWN_NUMBER} ({})",
        paired.jid
    );

    // Sending: the phone decrypts the text, then answers with delivered and read receipts.
    let created = control
        .post("/phones", json!({"number": PEER_NUMBER, "devices": 1}))
        .await;
    assert!(created.status().is_success(), "create peer phone");
    let text = "hello from Baileys";
    baileys
        .command(json!({"cmd": "send", "to": PEER_NUMBER, "text": text}))
        .await;
    let sent = baileys.expect("send", "sent", STEP, |_| true).await;
    let id = sent["id"].as_str().unwrap_or_default().to_string();
    let delivered = baileys
        .expect("delivery receipt", "receipt", STEP, |e| {
            e["id"] == id.as_str() && status_of(e) >= Some(DELIVERY_ACK)
        })
        .await;
    let received = control.messages(PEER_NUMBER).await;
    let decrypted = received.iter().find(|m| m.id == id);
    let Some(decrypted) = decrypted else {
        baileys
            .fail(&format!(
                "the phone did not record message {id}: {received:?}"
            ))
            .await
    };
    assert_eq!(decrypted.text, text, "the phone decrypted another text");
    assert_eq!(decrypted.from, OWN_NUMBER);
    if status_of(&delivered) < Some(READ) {
        baileys
            .expect("read receipt", "receipt", STEP, |e| {
                e["id"] == id.as_str() && status_of(e) == Some(READ)
            })
            .await;
    }
    let stats: StatsSnapshot = control
        .get("/stats")
        .await
        .json()
        .await
        .expect("stats JSON");
    assert_eq!(
        (stats.receipts_sent, stats.decrypt_failures),
        (2, 0),
        "the phone sent exactly its delivered and read receipts: {stats:?}"
    );

    // Receiving: a text from the phone reaches Baileys as messages.upsert.
    let inbound = "hello from the phone";
    let pushed = control
        .post(
            &format!("/phones/{PEER_NUMBER}/send"),
            json!({"to": OWN_NUMBER, "text": inbound}),
        )
        .await;
    assert_eq!(pushed.status(), StatusCode::OK, "phone send");
    let pushed: SentText = pushed.json().await.expect("send JSON");
    assert_eq!(
        pushed.delivered,
        vec![paired.jid.clone()],
        "pushed live to the Baileys device"
    );
    baileys
        .expect("inbound text", "message", STEP, |e| {
            e["text"] == inbound && e["id"] == pushed.id.as_str()
        })
        .await;

    // Reconnect: a new socket on the saved auth state logs in without a QR.
    baileys.command(json!({"cmd": "end"})).await;
    baileys.expect("closing", "close", STEP, |_| true).await;
    let before_reconnect = baileys.seen_count();
    baileys.command(json!({"cmd": "connect"})).await;
    let reopened = baileys.expect("reconnect", "open", STEP, |_| true).await;
    if baileys
        .seen_since(before_reconnect)
        .iter()
        .any(|e| e["event"] == "qr")
    {
        baileys
            .fail("the reconnect showed a QR: the saved auth state was not accepted")
            .await;
    }
    // Baileys takes its own LID from <success>: it must still name this device.
    assert_eq!(
        reopened["lid"], paired.lid,
        "the login's LID is not the device LID pairing gave"
    );

    // Logout by the phone: Baileys reports loggedOut (401).
    let kicked = control
        .post(
            &format!("/devices/{}/kick", paired.jid),
            json!({"kind": "logout"}),
        )
        .await;
    assert_eq!(kicked.status(), StatusCode::OK, "kick");
    let kicked: KickResponse = kicked.json().await.expect("kick JSON");
    assert!(kicked.connected, "the kick found no live connection");
    let closed = baileys
        .expect("logout by the phone", "close", STEP, |_| true)
        .await;
    if status_of(&closed) != Some(401) {
        baileys
            .fail(&format!(
                "expected DisconnectReason.loggedOut (401), got {closed}"
            ))
            .await;
    }

    baileys.exit().await;
}
