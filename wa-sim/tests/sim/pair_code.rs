//! Linking by code ("link with phone number"): the real client's `pair_with_code`, a
//! simulated phone typing the code, the pairing that follows; wrong and expired codes.

use std::time::Duration;

use botwave_wa_sim::{ErrorBody, PairCodeError, SimConfig, SimHandle};
use reqwest::StatusCode;
use serde_json::json;
use whatsapp_rust::pair_code::PairCodeOptions;
use whatsapp_rust::types::events::Event;

use crate::common::{TestClient, eventually, pn, start_sim};

/// A fresh client, asked for a link code for `number` once its socket is up (its
/// first QR code shows it is).
async fn client_with_code(sim: &SimHandle, number: &str) -> (TestClient, String) {
    let mut client = TestClient::start(sim).await;
    client.next_qr().await;
    let code = client
        .client
        .pair_with_code(PairCodeOptions {
            phone_number: number.to_owned(),
            ..Default::default()
        })
        .await
        .expect("the server answers companion_hello with a ref");
    (client, code)
}

/// A valid code that is not `code`.
fn other_code(code: &str) -> String {
    let replacement = if code.starts_with('2') { "3" } else { "2" };
    format!("{replacement}{}", &code[1..])
}

async fn error_code(response: reqwest::Response) -> (StatusCode, String) {
    let status = response.status();
    let body: ErrorBody = response.json().await.expect("JSON error body");
    (status, body.error.code)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_right_code_links_the_client_which_then_logs_in_and_sends() {
    let sim = start_sim(SimConfig::default()).await;
    let (mut client, code) = client_with_code(&sim, "15553330001").await;
    assert_eq!(code.len(), 8, "{code}");

    // The phone's user types it the way the companion shows it, in two halves.
    let typed = format!("{}-{}", &code[..4], &code[4..]).to_lowercase();
    let paired = sim
        .enter_pair_code("15553330001", &typed)
        .await
        .expect("the right code links");
    assert_eq!(paired.jid.user, "15553330001");
    let success = client
        .events
        .wait("PairSuccess", |e| match e {
            Event::PairSuccess(success) => Some(success.id.clone()),
            _ => None,
        })
        .await;
    assert_eq!(success, paired.jid);
    client.connected().await;
    assert!(sim.is_connected("15553330001", paired.jid.device));

    sim.create_phone("15553330002", 1).unwrap();
    let sent = client
        .client
        .send_text(pn("15553330002"), "linked by code")
        .await
        .expect("a code-linked client sends");
    let received = eventually("the text decrypted", || {
        sim.messages("15553330002")
            .into_iter()
            .find(|m| m.id == sent.message_id)
    })
    .await;
    assert_eq!(received.text, "linked by code");

    // The request is used up: typing the code again finds nothing to link.
    assert!(matches!(
        sim.enter_pair_code("15553330001", &code).await,
        Err(PairCodeError::NoRequest)
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_code_is_refused_without_linking_and_the_right_one_still_works() {
    let sim = start_sim(SimConfig::default()).await;
    let (mut client, code) = client_with_code(&sim, "15553330011").await;

    let wrong = reqwest::Client::new()
        .post(format!("{}/pair-code", sim.control_url()))
        .json(&json!({"phone": "15553330011", "code": other_code(&code)}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_code(wrong).await,
        (StatusCode::UNPROCESSABLE_ENTITY, "wrong_code".into())
    );
    assert_eq!(sim.stats().pairings, 0, "a wrong code links nothing");
    let early = client
        .events
        .wait_for(Duration::from_millis(300), "no pairing", &mut |e| {
            matches!(e, Event::PairSuccess(_)).then_some(())
        })
        .await;
    assert!(
        early.is_none(),
        "the client must not be paired by a wrong code"
    );

    // WhatsApp lets the user type again (the client accepts 3 attempts per code).
    let paired = sim
        .enter_pair_code("15553330011", &code)
        .await
        .expect("the right code after a wrong one links");
    client.connected().await;
    assert!(sim.is_connected("15553330011", paired.jid.device));
    assert_eq!(sim.stats().pairings, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_code_is_refused_over_http_and_bad_requests_get_their_errors() {
    let ttl = Duration::from_millis(500);
    let sim = start_sim(SimConfig {
        pair_code_ttl: ttl,
        ..SimConfig::default()
    })
    .await;
    let http = reqwest::Client::new();
    let url = format!("{}/pair-code", sim.control_url());
    let post = |body: serde_json::Value| http.post(&url).json(&body).send();

    let none = post(json!({"phone": "15553330021", "code": "ABCD2345"}))
        .await
        .unwrap();
    assert_eq!(
        error_code(none).await,
        (StatusCode::NOT_FOUND, "no_pending_code".into())
    );

    let (client, code) = client_with_code(&sim, "15553330021").await;
    let malformed = post(json!({"phone": "15553330021", "code": "ABC0"}))
        .await
        .unwrap();
    assert_eq!(
        error_code(malformed).await,
        (StatusCode::BAD_REQUEST, "invalid_code".into())
    );
    let bad_number = post(json!({"phone": "+1 555", "code": code}))
        .await
        .unwrap();
    assert_eq!(bad_number.status(), StatusCode::BAD_REQUEST);

    // Time passing is the point here: the code outlives its TTL on the phone's screen.
    tokio::time::sleep(ttl + Duration::from_millis(200)).await;
    let expired = post(json!({"phone": "15553330021", "code": code}))
        .await
        .unwrap();
    assert_eq!(
        error_code(expired).await,
        (StatusCode::GONE, "code_expired".into())
    );
    assert_eq!(sim.stats().pairings, 0);
    drop(client);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_three_wrong_codes_the_request_is_spent_and_nothing_links() {
    let sim = start_sim(SimConfig::default()).await;
    let (client, code) = client_with_code(&sim, "15553330041").await;
    let wrong = other_code(&code);
    for attempt in 1..=3 {
        let refused = sim.enter_pair_code("15553330041", &wrong).await;
        assert!(
            matches!(refused, Err(PairCodeError::WrongCode)),
            "attempt {attempt}: {refused:?}"
        );
    }
    // The client also gives a code up after three primary_hellos: the right one comes too late.
    assert!(matches!(
        sim.enter_pair_code("15553330041", &code).await,
        Err(PairCodeError::TooManyAttempts)
    ));
    let over_http = reqwest::Client::new()
        .post(format!("{}/pair-code", sim.control_url()))
        .json(&json!({"phone": "15553330041", "code": code}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_code(over_http).await,
        (StatusCode::TOO_MANY_REQUESTS, "too_many_attempts".into())
    );
    assert_eq!(sim.stats().pairings, 0);
    drop(client);
}
