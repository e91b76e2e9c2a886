//! Forgot password: the link arrives by real SMTP, works once, voids what the old password
//! opened, and nobody learns from the answer whether an account exists.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{PASSWORD, TestApp, error_code, spawn_app, spawn_app_with};
use crate::smtp_sink::SmtpSink;

const NEW_PASSWORD: &str = "Battery-Staple-77";

/// A node that sends its email to a local SMTP sink.
pub async fn app_with_mail() -> (TestApp, SmtpSink) {
    let sink = SmtpSink::start().await;
    let url = sink.url.clone();
    let app = spawn_app_with(|settings| {
        settings.smtp.url = Some(url);
        settings.smtp.from = Some("botwave <noreply@example.com>".into());
    })
    .await;
    (app, sink)
}

async fn forgot(app: &TestApp, email: &str) -> reqwest::Response {
    app.post_json("/api/auth/forgot-password", &json!({ "email": email }))
        .await
}

async fn reset(app: &TestApp, token: &str, new_password: &str) -> reqwest::Response {
    app.post_json(
        "/api/auth/reset-password",
        &json!({ "token": token, "new_password": new_password }),
    )
    .await
}

/// The link in a reset email, checked to point at this node's reset page.
fn link_in(app: &TestApp, body: &str) -> String {
    let prefix = format!("{}/reset-password?token=", app.address);
    body.split_whitespace()
        .find(|word| word.starts_with(&prefix))
        .unwrap_or_else(|| panic!("no reset link in the email: {body}"))
        .to_owned()
}

fn token_of(link: &str) -> String {
    link.split_once("token=").unwrap().1.to_owned()
}

#[tokio::test]
async fn a_forgotten_password_is_reset_through_the_emailed_link() {
    let (app, mut sink) = app_with_mail().await;
    let account = app.new_account().await;

    let asked = forgot(&app, &account.email).await;
    assert_eq!(asked.status(), 202);
    let email = sink
        .next(Duration::from_secs(10))
        .await
        .expect("the reset email arrives");
    assert_eq!(email.to, std::slice::from_ref(&account.email));
    assert!(email.subject.contains("password"), "{}", email.subject);
    let link = link_in(&app, &email.body);

    // The link opens the dashboard's reset page.
    let page = app.client.get(&link).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("<html"));

    let token = token_of(&link);
    let done = reset(&app, &token, NEW_PASSWORD).await;
    assert_eq!(done.status(), 200);

    assert_eq!(app.login(&account.email, NEW_PASSWORD).await.status(), 200);
    let old_password = app.login(&account.email, PASSWORD).await;
    assert_eq!(old_password.status(), 401);
    let old_token = app.me(&account.token).await;
    assert_eq!(old_token.status(), 401);
    assert_eq!(error_code(old_token).await, "token_revoked");
    let again = reset(&app, &token, "Another-Pass-99").await;
    assert_eq!(again.status(), 400);
    assert_eq!(error_code(again).await, "invalid_reset_token");
    assert_eq!(app.login(&account.email, NEW_PASSWORD).await.status(), 200);
}

#[tokio::test]
async fn unknown_and_disabled_accounts_get_the_same_answer_and_no_email() {
    let (app, mut sink) = app_with_mail().await;
    let known = app.new_account().await;
    let disabled = app.new_account().await;
    botwave::users::set_disabled(&app.db.pool, disabled.id.parse().unwrap(), true)
        .await
        .unwrap();

    let unknown_answer = forgot(&app, "nobody-here@example.com").await;
    let disabled_answer = forgot(&app, &disabled.email).await;
    let known_answer = forgot(&app, &known.email).await;
    let answers: Vec<(u16, Value)> = futures_util::future::join_all(
        [unknown_answer, disabled_answer, known_answer]
            .into_iter()
            .map(|r| async move { (r.status().as_u16(), r.json::<Value>().await.unwrap()) }),
    )
    .await;
    assert!(
        answers.iter().all(|answer| *answer == answers[2]),
        "the answers differ: {answers:?}"
    );
    assert_eq!(answers[2].0, 202);

    let only = sink.next(Duration::from_secs(10)).await.expect("one email");
    assert_eq!(only.to, std::slice::from_ref(&known.email));
    assert!(
        sink.next(Duration::from_secs(2)).await.is_none(),
        "an email for an unknown or disabled account"
    );
}

#[tokio::test]
async fn using_a_link_voids_the_accounts_other_links_and_an_expired_one_does_not_work() {
    let (app, mut sink) = app_with_mail().await;
    let account = app.new_account().await;
    for _ in 0..2 {
        assert_eq!(forgot(&app, &account.email).await.status(), 202);
    }
    let first = token_of(&link_in(
        &app,
        &sink.next(Duration::from_secs(10)).await.unwrap().body,
    ));
    let second = token_of(&link_in(
        &app,
        &sink.next(Duration::from_secs(10)).await.unwrap().body,
    ));
    assert_ne!(first, second);

    assert_eq!(reset(&app, &second, NEW_PASSWORD).await.status(), 200);
    let voided = reset(&app, &first, "Another-Pass-99").await;
    assert_eq!(voided.status(), 400);
    assert_eq!(error_code(voided).await, "invalid_reset_token");

    assert_eq!(forgot(&app, &account.email).await.status(), 202);
    let third = token_of(&link_in(
        &app,
        &sink.next(Duration::from_secs(10)).await.unwrap().body,
    ));
    let conn = app.db.pool.get().await.unwrap();
    conn.execute(
        "UPDATE password_resets SET expires_at = now() - interval '1 second' WHERE used_at IS NULL",
        &[],
    )
    .await
    .unwrap();
    let expired = reset(&app, &third, "Another-Pass-99").await;
    assert_eq!(expired.status(), 400);
    assert_eq!(error_code(expired).await, "invalid_reset_token");
    assert_eq!(app.login(&account.email, NEW_PASSWORD).await.status(), 200);
}

#[tokio::test]
async fn bad_reset_requests_get_clear_errors_and_change_nothing() {
    let (app, mut sink) = app_with_mail().await;
    let account = app.new_account().await;
    assert_eq!(forgot(&app, &account.email).await.status(), 202);
    let token = token_of(&link_in(
        &app,
        &sink.next(Duration::from_secs(10)).await.unwrap().body,
    ));

    let not_an_email = forgot(&app, "not an email").await;
    assert_eq!(not_an_email.status(), 400);
    assert_eq!(error_code(not_an_email).await, "validation_failed");

    let weak = reset(&app, &token, "short").await;
    assert_eq!(weak.status(), 400);
    let body: Value = weak.json().await.unwrap();
    assert_eq!(body["error"]["field"], "new_password");

    for wrong in ["", "not-a-token", &"x".repeat(5000)] {
        let refused = reset(&app, wrong, NEW_PASSWORD).await;
        assert_eq!(refused.status(), 400, "token {wrong:.20}");
        assert_eq!(error_code(refused).await, "invalid_reset_token");
    }
    let extra_field = app
        .post_json(
            "/api/auth/reset-password",
            &json!({ "token": token, "new_password": NEW_PASSWORD, "email": account.email }),
        )
        .await;
    assert_eq!(extra_field.status(), 400);
    let missing = app
        .post_json("/api/auth/reset-password", &json!({ "token": token }))
        .await;
    assert_eq!(missing.status(), 400);

    // Nothing above used the link or changed the password.
    assert_eq!(app.login(&account.email, PASSWORD).await.status(), 200);
    assert_eq!(reset(&app, &token, NEW_PASSWORD).await.status(), 200);
}

#[tokio::test]
async fn asking_again_and_again_for_one_address_is_limited() {
    let (app, mut sink) = app_with_mail().await;
    let account = app.new_account().await;
    for _ in 0..3 {
        assert_eq!(forgot(&app, &account.email).await.status(), 202);
    }
    let limited = forgot(&app, &account.email).await;
    assert_eq!(limited.status(), 429);
    assert!(limited.headers().contains_key("retry-after"));
    assert_eq!(error_code(limited).await, "rate_limited");
    for _ in 0..3 {
        assert!(sink.next(Duration::from_secs(10)).await.is_some());
    }
    assert!(sink.next(Duration::from_secs(1)).await.is_none());
}

#[tokio::test]
async fn without_an_smtp_relay_the_route_says_so() {
    let app = spawn_app().await;
    let account = app.new_account().await;
    let answer = app
        .request(Method::POST, "/api/auth/forgot-password")
        .json(&json!({ "email": account.email }))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 503);
    assert_eq!(error_code(answer).await, "password_reset_unavailable");
}

/// `botwave demo` has no SMTP relay: the reset email goes to its log, and the link there
/// works. The real binary, as a user starts it (on the test's database, any free port).
#[tokio::test]
async fn the_demo_logs_the_reset_email_and_its_link_resets_the_password() {
    use tokio::io::{AsyncBufReadExt, BufReader};

    let db = crate::common::TestDatabase::create().await;
    let mut demo = tokio::process::Command::new(env!("CARGO_BIN_EXE_botwave"))
        .arg("demo")
        .env("BOTWAVE_DATABASE_URL", &db.url)
        .env("BOTWAVE_LISTEN", "127.0.0.1:0")
        .env(
            "BOTWAVE_DATA_DIR",
            std::env::temp_dir().join(format!("botwave-demo-{}", uuid::Uuid::new_v4())),
        )
        .env("RUST_LOG", "botwave=info,warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("botwave demo starts");
    let (lines, mut read) = tokio::sync::mpsc::unbounded_channel::<String>();
    for stream in [
        Box::new(demo.stdout.take().unwrap()) as Box<dyn tokio::io::AsyncRead + Unpin + Send>,
        Box::new(demo.stderr.take().unwrap()),
    ] {
        let lines = lines.clone();
        tokio::spawn(async move {
            let mut stream = BufReader::new(stream).lines();
            while let Ok(Some(line)) = stream.next_line().await {
                let _ = lines.send(line);
            }
        });
    }
    let mut next_line_with = async |needle: &str| -> String {
        tokio::time::timeout(Duration::from_secs(90), async {
            loop {
                let line = read.recv().await.expect("the demo runs");
                if line.contains(needle) {
                    return line;
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("the demo never printed {needle:?}"))
    };
    let running = next_line_with("botwave demo is running at ").await;
    let address = running
        .split_whitespace()
        .find(|word| word.starts_with("http://"))
        .expect("the demo's address")
        .to_owned();
    let http = reqwest::Client::new();
    let asked = http
        .post(format!("{address}/api/auth/forgot-password"))
        .json(&json!({ "email": "admin@demo.botwave.local" }))
        .send()
        .await
        .unwrap();
    assert_eq!(asked.status(), 202);

    let logged = next_line_with("/reset-password?token=").await;
    let token: String = logged
        .split("/reset-password?token=")
        .nth(1)
        .expect("a token after the link")
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect();
    assert!(token.len() >= 20, "a token in {logged:?}");
    let reset = http
        .post(format!("{address}/api/auth/reset-password"))
        .json(&json!({ "token": token, "new_password": NEW_PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(reset.status(), 200, "{}", reset.text().await.unwrap());
    let login = http
        .post(format!("{address}/api/auth/login"))
        .json(&json!({ "email": "admin@demo.botwave.local", "password": NEW_PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 200);
    demo.start_kill().unwrap();
}
