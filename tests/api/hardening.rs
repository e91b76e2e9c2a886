//! What an attacker or a careless client does to a node: slow and idle connections, a flood of
//! connections, password bursts, hostile input, guessing — and what the node must still do.

use std::{
    io::{BufRead, BufReader},
    process::{Child, Stdio},
    time::{Duration, Instant},
};

use reqwest::Method;
use serde_json::{Value, json};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use crate::helpers::{PASSWORD, TestApp, error_code, spawn_app, spawn_app_with};

fn host(app: &TestApp) -> String {
    app.address.trim_start_matches("http://").to_owned()
}

/// Reads until the node closes the connection: what it said, and how long it took.
async fn read_until_closed(stream: &mut TcpStream, within: Duration) -> (String, Duration) {
    let started = Instant::now();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(within, stream.read_to_end(&mut answer)).await;
    assert!(read.is_ok(), "still open after {within:?}");
    (
        String::from_utf8_lossy(&answer).into_owned(),
        started.elapsed(),
    )
}

async fn raw_exchange(app: &TestApp, request: &str) -> String {
    let mut stream = TcpStream::connect(host(app)).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    read_until_closed(&mut stream, Duration::from_secs(5))
        .await
        .0
}

fn json_body_of(answer: &str) -> Value {
    let body = answer.split("\r\n\r\n").nth(1).unwrap_or_default();
    serde_json::from_str(body).unwrap_or_else(|_| panic!("not a JSON answer: {answer}"))
}

#[tokio::test]
async fn slow_silent_and_idle_connections_are_closed_within_their_timeouts() {
    let app = spawn_app_with(|settings| {
        settings.http.header_read_timeout_secs = 1;
        settings.http.body_read_timeout_secs = 1;
        settings.http.keep_alive_timeout_secs = 2;
    })
    .await;
    let limit = Duration::from_millis(3500);

    // Connects and sends nothing.
    let mut silent = TcpStream::connect(host(&app)).await.unwrap();
    // Sends half a request head, then nothing.
    let mut partial = TcpStream::connect(host(&app)).await.unwrap();
    partial
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    // Promises 1000 bytes of body and sends 10.
    let mut slow_body = TcpStream::connect(host(&app)).await.unwrap();
    slow_body
        .write_all(
            b"POST /api/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
              Content-Length: 1000\r\n\r\n{\"email\":",
        )
        .await
        .unwrap();
    // Asks once, then keeps the connection open without asking again.
    let mut idle = TcpStream::connect(host(&app)).await.unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();

    let (said, waited) = read_until_closed(&mut silent, limit).await;
    assert!(
        said.is_empty() && waited >= Duration::from_secs(1),
        "{waited:?} {said}"
    );
    let (_, waited) = read_until_closed(&mut partial, limit).await;
    assert!(waited < limit);
    let (said, _) = read_until_closed(&mut slow_body, limit).await;
    assert!(said.starts_with("HTTP/1.1 408"), "{said}");
    assert_eq!(json_body_of(&said)["error"]["code"], "request_timeout");
    let (said, _) = read_until_closed(&mut idle, limit).await;
    assert!(said.starts_with("HTTP/1.1 200"), "{said}");
}

#[tokio::test]
async fn a_header_trickle_does_not_keep_a_connection_open() {
    let app = spawn_app_with(|settings| settings.http.header_read_timeout_secs = 1).await;
    let mut stream = TcpStream::connect(host(&app)).await.unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    // One header every 300 ms: each is progress, but the head as a whole must arrive in 1 s.
    while started.elapsed() < Duration::from_secs(4) {
        tokio::time::sleep(Duration::from_millis(300)).await;
        if stream.write_all(b"X-Trickle: 1\r\n").await.is_err() {
            break;
        }
        // Anything but "nothing to read yet" means the node closed the connection.
        let mut byte = [0u8; 1];
        if tokio::time::timeout(Duration::from_millis(1), stream.read(&mut byte))
            .await
            .is_ok()
        {
            break;
        }
    }
    assert!(
        started.elapsed() < Duration::from_millis(2500),
        "open for {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn with_the_cap_full_of_idle_connections_healthz_still_answers_at_once() {
    let app = spawn_app_with(|settings| {
        settings.http.max_connections = 50;
        settings.http.max_connections_per_ip = 50;
    })
    .await;
    let mut idle = Vec::new();
    for _ in 0..60 {
        idle.push(TcpStream::connect(host(&app)).await.unwrap());
    }
    let started = Instant::now();
    let fresh = reqwest::Client::new();
    let response = fresh
        .get(format!("{}/healthz", app.address))
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .expect("healthz answers");
    assert_eq!(response.status(), 200);
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn the_connection_cap_per_address_answers_503_json_when_every_connection_is_busy() {
    let app = spawn_app_with(|settings| {
        settings.http.max_connections_per_ip = 2;
        settings.http.body_read_timeout_secs = 5;
    })
    .await;
    // Two requests whose bodies are still on their way: busy, not idle.
    let mut busy = Vec::new();
    for _ in 0..2 {
        let mut stream = TcpStream::connect(host(&app)).await.unwrap();
        stream
            .write_all(
                b"POST /api/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
                  Content-Length: 100\r\n\r\n{",
            )
            .await
            .unwrap();
        busy.push(stream);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let answer = raw_exchange(&app, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.to_lowercase().contains("retry-after: 1"), "{answer}");
    assert_eq!(json_body_of(&answer)["error"]["code"], "overloaded");
}

#[tokio::test]
async fn requests_hyper_cannot_parse_get_json_errors() {
    let app = spawn_app().await;
    let big = "a".repeat(20_000);
    let answer = raw_exchange(
        &app,
        &format!("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: {big}\r\n\r\n"),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");
    assert_eq!(json_body_of(&answer)["error"]["code"], "headers_too_large");

    let answer = raw_exchange(&app, &format!("GET /{big} HTTP/1.1\r\nHost: x\r\n\r\n")).await;
    assert!(
        answer.starts_with("HTTP/1.1 431") || answer.starts_with("HTTP/1.1 414"),
        "{answer}"
    );
    json_body_of(&answer);

    let answer = raw_exchange(
        &app,
        "POST /api/auth/login HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert_eq!(json_body_of(&answer)["error"]["code"], "bad_request");
}

#[tokio::test]
async fn hostile_input_is_400_json_not_500_or_a_dropped_connection() {
    let app = spawn_app().await;
    let admin = app.new_admin().await;
    for path in [
        "/api/admin/analytics?until=-262143-01-01",
        "/api/admin/analytics?until=0001-01-01",
        "/api/admin/analytics?from=+99999-01-01",
        "/api/messages?from=-4714-01-01",
        "/api/messages?until=0001-01-01T00:00:00Z",
        "/api/admin/users?search=%00",
        "/api/admin/audit?limit=%00",
        "/api/messages?status=%00",
    ] {
        let response = app.api(Method::GET, path, &admin.token, None).await;
        assert_eq!(response.status(), 400, "{path}");
        assert_eq!(error_code(response).await, "validation_failed", "{path}");
    }
    for (path, body) in [
        (
            "/api/messages/send",
            json!({ "to": "15559990001", "text": "a\u{0}b" }),
        ),
        ("/api/keys", json!({ "name": "k\u{0}" })),
        (
            "/api/admin/users",
            json!({ "email": "x\u{0}@example.com", "password": PASSWORD }),
        ),
    ] {
        let response = app.api(Method::POST, path, &admin.token, Some(body)).await;
        assert_eq!(response.status(), 400, "{path}");
        let answer: Value = response.json().await.unwrap();
        assert_eq!(answer["error"]["code"], "validation_failed", "{path}");
        assert!(answer["error"]["field"].is_string(), "{answer}");
    }
    // Nothing was stored on the way.
    let keys: Value = app
        .api(Method::GET, "/api/keys", &admin.token, None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(keys["keys"], json!([]));
}

#[tokio::test]
async fn json_routes_take_only_json_and_answers_are_not_cached_or_sniffed() {
    let app = spawn_app().await;
    for content_type in [
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        None,
    ] {
        let mut request = app
            .request(Method::POST, "/api/auth/login")
            .body(r#"{"email":"a@example.com","password":"x"}"#);
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 415, "{content_type:?}");
        assert_eq!(error_code(response).await, "unsupported_media_type");
    }
    let with_charset = app
        .request(Method::POST, "/api/auth/login")
        .header("content-type", "application/json; charset=utf-8")
        .body(r#"{"email":"a@example.com","password":"x"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(with_charset.status(), 401);

    let user = app.new_account().await;
    let me = app
        .request(Method::GET, "/api/auth/me")
        .header("authorization", format!("BEARER {}", user.token))
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 200, "auth schemes are case-insensitive");
    assert_eq!(me.headers()["cache-control"], "no-store");
    assert_eq!(me.headers()["x-content-type-options"], "nosniff");
    let page = app.request(Method::GET, "/").send().await.unwrap();
    assert_eq!(page.headers()["x-content-type-options"], "nosniff");
    let missing = app.request(Method::GET, "/api/nope").send().await.unwrap();
    assert_eq!(missing.headers()["cache-control"], "no-store");
}

/// A node behind a proxy, so that a test can speak from several client addresses.
async fn behind_proxy() -> TestApp {
    spawn_app_with(|settings| settings.http.trust_forwarded_for = true).await
}

async fn login_from(app: &TestApp, address: &str, email: &str, password: &str) -> u16 {
    app.request(Method::POST, "/api/auth/login")
        .header("x-forwarded-for", address)
        .json(&json!({ "email": email, "password": password }))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn a_guesser_cannot_lock_the_owner_out_from_elsewhere() {
    let app = behind_proxy().await;
    let user = app.new_account().await;
    let mut answers = Vec::new();
    for _ in 0..6 {
        answers.push(login_from(&app, "203.0.113.9", &user.email, "Wrong-Guess-1").await);
    }
    assert_eq!(answers, [401, 401, 401, 401, 401, 429]);
    // The right password from the guesser's address is also held back…
    assert_eq!(
        login_from(&app, "203.0.113.9", &user.email, PASSWORD).await,
        429
    );
    // …but the owner, elsewhere, logs in.
    assert_eq!(
        login_from(&app, "198.51.100.7", &user.email, PASSWORD).await,
        200
    );
}

#[tokio::test]
async fn many_guessers_only_slow_an_account_down() {
    let app = behind_proxy().await;
    let user = app.new_account().await;
    // Past the free failures per account (20), spread over addresses so no address is capped.
    for n in 0..21 {
        let status = login_from(
            &app,
            &format!("203.0.113.{n}"),
            &user.email,
            "Wrong-Guess-1",
        )
        .await;
        assert_eq!(status, 401, "guess {n}");
    }
    assert_eq!(
        login_from(&app, "198.51.100.7", &user.email, PASSWORD).await,
        429
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(
        login_from(&app, "198.51.100.7", &user.email, PASSWORD).await,
        200,
        "a delay, not a lock-out"
    );
}

#[tokio::test]
async fn the_current_password_check_is_limited_like_a_login() {
    let app = spawn_app().await;
    let user = app.new_account().await;
    let mut answers = Vec::new();
    for _ in 0..6 {
        let response = app
            .api(
                Method::POST,
                "/api/auth/password",
                &user.token,
                Some(json!({ "current_password": "Wrong-Guess-1", "new_password": "Another-Horse-43" })),
            )
            .await;
        answers.push(response.status().as_u16());
    }
    assert_eq!(answers, [400, 400, 400, 400, 400, 429]);
}

#[tokio::test]
async fn a_password_change_offers_to_revoke_api_keys_and_an_admin_reset_revokes_them() {
    let app = spawn_app().await;
    let user = app.new_account().await;
    let kept = app.create_api_key(&user).await;
    let kept_body = app
        .change_password(&user.token, PASSWORD, "Another-Horse-43")
        .await;
    assert_eq!(kept_body["api_keys_revoked"], 0);
    assert_eq!(kept_body["api_keys_active"], 1);
    assert_eq!(app.me(&kept).await.status(), 200);

    let token = kept_body["token"].as_str().unwrap().to_owned();
    let response = app
        .api(
            Method::POST,
            "/api/auth/password",
            &token,
            Some(json!({
                "current_password": "Another-Horse-43",
                "new_password": "Third-Horse-44",
                "revoke_api_keys": true,
            })),
        )
        .await;
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        (
            body["api_keys_revoked"].clone(),
            body["api_keys_active"].clone()
        ),
        (json!(1), json!(0))
    );
    assert_eq!(app.me(&kept).await.status(), 401);

    let admin = app.new_admin().await;
    let user = crate::helpers::Account {
        token: body["token"].as_str().unwrap().to_owned(),
        ..user
    };
    let key = app.create_api_key(&user).await;
    assert_eq!(app.me(&key).await.status(), 200);
    app.admin_post(
        &format!("/api/admin/users/{}/password", user.id),
        &admin.token,
        Some(json!({ "password": "Reset-By-Admin-9" })),
    )
    .await;
    assert_eq!(app.me(&key).await.status(), 401, "a reset revokes the keys");
}

#[tokio::test]
async fn lookalike_emails_are_refused_and_variants_are_the_same_account() {
    let app = spawn_app().await;
    assert_eq!(
        app.register("bob@example.com", PASSWORD).await.status(),
        201
    );
    for lookalike in [
        "bob\u{200d}@example.com",
        "b\u{043e}b@example.com",
        "bob@ex\u{0430}mple.com",
    ] {
        let response = app.register(lookalike, PASSWORD).await;
        assert_eq!(response.status(), 400, "{lookalike:?}");
        assert_eq!(error_code(response).await, "validation_failed");
    }
    for variant in ["BOB@example.com", "\u{ff42}ob@example.com"] {
        assert_eq!(
            app.register(variant, PASSWORD).await.status(),
            409,
            "{variant:?}"
        );
    }
}

/// A `botwave serve` process of its own, so that its memory is measured alone.
struct NodeProcess {
    child: Child,
    address: String,
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl NodeProcess {
    fn start(app: &TestApp, env: &[(&str, &str)]) -> Self {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_botwave"));
        command
            .arg("serve")
            .env("BOTWAVE_DATABASE_URL", &app.db.url)
            .env("BOTWAVE_LISTEN", "127.0.0.1:0")
            .env(
                "BOTWAVE_DATA_DIR",
                std::env::temp_dir().join(format!("botwave-proc-{}", uuid::Uuid::new_v4())),
            )
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (name, value) in env {
            command.env(name, value);
        }
        let mut child = command.spawn().expect("botwave serve starts");
        let stderr = child.stderr.take().unwrap();
        let (found, address) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut found = Some(found);
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let line = without_colours(&line);
                if let Some(at) = line.find("addr=")
                    && let Some(sender) = found.take()
                {
                    let address = line[at + 5..].split_whitespace().next().unwrap_or("");
                    let _ = sender.send(address.to_owned());
                }
            }
        });
        let address = address
            .recv_timeout(Duration::from_secs(60))
            .expect("the node says where it listens");
        Self {
            child,
            address: format!("http://{address}"),
        }
    }
}

/// `line` without the terminal colour codes the log may carry.
fn without_colours(line: &str) -> String {
    let mut plain = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            plain.push(c);
        }
    }
    plain
}

impl NodeProcess {
    /// Peak resident memory so far, in KiB.
    fn peak_rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmHWM:"))
            .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmHWM")
    }
}

#[tokio::test]
async fn a_burst_of_500_logins_stays_within_bounded_memory_and_every_one_is_answered() {
    let app = spawn_app().await;
    let user = app.new_account().await;
    let node = NodeProcess::start(
        &app,
        &[
            ("BOTWAVE_LOGIN_ATTEMPTS_PER_IP", "100000"),
            ("BOTWAVE_LOGIN_ATTEMPTS_PER_EMAIL", "100000"),
            ("BOTWAVE_MAX_CONNECTIONS_PER_IP", "2000"),
        ],
    );
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let attempts = (0..500).map(|n| {
        let client = client.clone();
        let url = format!("{}/api/auth/login", node.address);
        let email = if n % 2 == 0 {
            user.email.clone()
        } else {
            format!("nobody-{n}@example.com")
        };
        async move {
            let response = client
                .post(url)
                .json(&json!({ "email": email, "password": "Wrong-Guess-1" }))
                .send()
                .await
                .expect("answered, not dropped");
            let status = response.status().as_u16();
            let retry_after = response.headers().contains_key("retry-after");
            let body: Value = response.json().await.expect("a JSON answer");
            (
                status,
                retry_after,
                body["error"]["code"].as_str().map(str::to_owned),
            )
        }
    });
    let answers = futures_util::future::join_all(attempts).await;
    let refused = answers
        .iter()
        .filter(|(status, _, _)| *status == 401)
        .count();
    let busy = answers
        .iter()
        .filter(|(status, retry, code)| *status == 503 && *retry && code.as_deref() == Some("busy"))
        .count();
    // Half the guesses name a real account: once more than its free failures got through the
    // pool, its guessing backoff answers 429 (how many do depends on timing).
    let limited = answers
        .iter()
        .filter(|(status, retry, code)| {
            *status == 429 && *retry && code.as_deref() == Some("rate_limited")
        })
        .count();
    assert_eq!(refused + busy + limited, 500, "{answers:?}");
    assert!(refused > 0);
    let peak = node.peak_rss_kib();
    eprintln!(
        "500 logins: {refused} answered 401, {busy} answered 503, {limited} answered 429; peak resident {peak} KiB"
    );
    assert!(peak < 300 * 1024, "peak resident memory {peak} KiB");
    // The node is fine afterwards.
    let health = client
        .get(format!("{}/healthz", node.address))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
}
