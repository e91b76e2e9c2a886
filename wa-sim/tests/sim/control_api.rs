//! The HTTP control API: paths, JSON shapes, errors, and a pairing plus message round
//! trip driven only over HTTP.

use botwave_wa_sim::{ErrorBody, PhoneInfo, ScanResponse, SimConfig, StatsSnapshot};
use reqwest::StatusCode;
use serde_json::json;

use crate::common::{TestClient, eventually, pn, start_sim};

async fn error_code(response: reqwest::Response) -> (StatusCode, String) {
    let status = response.status();
    let body: ErrorBody = response.json().await.expect("JSON error body");
    (status, body.error.code)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn phones_scan_messages_receipts_and_errors_over_http() {
    let sim = start_sim(SimConfig::default()).await;
    let http = reqwest::Client::new();
    let control = sim.control_url();

    let created = http
        .post(format!("{control}/phones"))
        .json(&json!({"number": "15556660000", "devices": 2}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    let info: PhoneInfo = created.json().await.unwrap();
    assert_eq!((info.number.as_str(), info.devices), ("15556660000", 2));
    let again = http
        .post(format!("{control}/phones"))
        .json(&json!({"number": "15556660000", "devices": 2}))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::OK);

    let bad = http
        .post(format!("{control}/phones"))
        .json(&json!({"number": "not-a-number"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_code(bad).await,
        (StatusCode::BAD_REQUEST, "invalid_number".into())
    );
    let malformed = http
        .post(format!("{control}/phones"))
        .body("{")
        .header("content-type", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(malformed.status(), StatusCode::BAD_REQUEST);
    let missing = http.get(format!("{control}/nothing")).send().await.unwrap();
    assert_eq!(
        error_code(missing).await,
        (StatusCode::NOT_FOUND, "not_found".into())
    );
    let unknown_phone = http
        .get(format!("{control}/phones/15550009999/messages"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_code(unknown_phone).await,
        (StatusCode::NOT_FOUND, "unknown_phone".into())
    );
    let bad_qr = http
        .post(format!("{control}/scan"))
        .json(&json!({"phone": "15556661111", "qr": "garbage"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_code(bad_qr).await,
        (StatusCode::BAD_REQUEST, "invalid_qr".into())
    );

    // Pair over HTTP.
    let mut client = TestClient::start(&sim).await;
    let qr = client.next_qr().await;
    let scanned = http
        .post(format!("{control}/scan"))
        .json(&json!({"phone": "15556661111", "qr": qr}))
        .send()
        .await
        .unwrap();
    assert_eq!(scanned.status(), StatusCode::OK);
    let scanned: ScanResponse = scanned.json().await.unwrap();
    assert!(scanned.jid.starts_with("15556661111:"), "{scanned:?}");
    client.connected().await;
    let rescan = http
        .post(format!("{control}/scan"))
        .json(&json!({"phone": "15556661111", "qr": qr}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_code(rescan).await,
        (StatusCode::NOT_FOUND, "unknown_qr".into())
    );

    // Client → phone, read back over HTTP.
    let sent = client
        .client
        .send_text(pn("15556660000"), "over http")
        .await
        .unwrap();
    let url = format!("{control}/phones/15556660000/messages");
    let messages = eventually("messages over HTTP", || {
        let http = http.clone();
        let url = url.clone();
        let fetched = std::thread::spawn(move || {
            tokio::runtime::Runtime::new().ok()?.block_on(async move {
                http.get(url)
                    .send()
                    .await
                    .ok()?
                    .json::<Vec<serde_json::Value>>()
                    .await
                    .ok()
            })
        })
        .join()
        .ok()
        .flatten()?;
        (fetched.len() >= 2).then_some(fetched)
    })
    .await;
    assert!(messages.iter().all(|m| m["id"] == sent.message_id.as_str()
        && m["text"] == "over http"
        && m["from"] == "15556661111"
        && m["received_at"].is_u64()));

    // Phone → client over HTTP, and a receipt for an unknown message.
    let pushed = http
        .post(format!("{control}/phones/15556660000/send"))
        .json(&json!({"to": "15556661111", "text": "back at you"}))
        .send()
        .await
        .unwrap();
    assert_eq!(pushed.status(), StatusCode::OK);
    let nobody = http
        .post(format!("{control}/phones/15556660000/send"))
        .json(&json!({"to": "15550000000", "text": "?"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_code(nobody).await,
        (StatusCode::NOT_FOUND, "not_on_whatsapp".into())
    );
    let receipt = http
        .post(format!("{control}/phones/15556660000/receipts"))
        .json(&json!({"id": "NOPE", "type": "read"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_code(receipt).await,
        (StatusCode::NOT_FOUND, "unknown_message".into())
    );

    // Config, kick and stats.
    let config = http
        .put(format!("{control}/config"))
        .json(&json!({"receipts": {"mode": "manual"}, "latency_ms": 5}))
        .send()
        .await
        .unwrap();
    assert_eq!(config.status(), StatusCode::OK);
    let unknown_kick = http
        .post(format!(
            "{control}/devices/15550000000:3@s.whatsapp.net/kick"
        ))
        .json(&json!({"kind": "drop"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_code(unknown_kick).await,
        (StatusCode::NOT_FOUND, "unknown_device".into())
    );
    let kick = http
        .post(format!("{control}/devices/{}/kick", scanned.jid))
        .json(&json!({"kind": "drop"}))
        .send()
        .await
        .unwrap();
    assert_eq!(kick.status(), StatusCode::OK);
    let stats: StatsSnapshot = http
        .get(format!("{control}/stats"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(stats.connections.total >= 2);
    assert_eq!(stats.pairings, 1);
    assert_eq!(
        stats.messages_decrypted_by_recipients, 2,
        "one text, decrypted by both devices of the phone"
    );
    assert_eq!(stats.duplicate_messages, 0);
}
