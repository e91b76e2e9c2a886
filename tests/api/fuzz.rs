//! A fuzz run over every route: random and boundary values in paths, query strings, headers
//! and JSON bodies, sent with every kind of credential. Whatever arrives, the node answers —
//! never a 5xx, never a dropped connection, every error in the JSON shape — and an ordinary
//! user's answers never carry another user's data.
//!
//! The run is seeded: `BOTWAVE_FUZZ_SEED` replays one (the seed is printed), and
//! `BOTWAVE_FUZZ_REQUESTS` sets its length.

use std::time::Duration;

use rand::{RngExt, SeedableRng, rngs::StdRng};
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{Account, PASSWORD, TestApp, spawn_app_with};

/// What a place in a request takes, so that the fuzzer can send near-misses of it.
#[derive(Clone, Copy)]
enum Kind {
    Email,
    Password,
    Text,
    Phone,
    Date,
    Number,
    Bool,
    Role,
}

struct Route {
    method: Method,
    /// `{}` stands for a path parameter.
    path: &'static str,
    query: &'static [(&'static str, Kind)],
    body: &'static [(&'static str, Kind)],
}

const fn route(
    method: Method,
    path: &'static str,
    query: &'static [(&'static str, Kind)],
    body: &'static [(&'static str, Kind)],
) -> Route {
    Route {
        method,
        path,
        query,
        body,
    }
}

fn routes() -> Vec<Route> {
    use Kind::*;
    vec![
        route(Method::GET, "/healthz", &[], &[]),
        route(Method::GET, "/readyz", &[], &[]),
        route(
            Method::POST,
            "/api/auth/register",
            &[],
            &[("email", Email), ("password", Password)],
        ),
        route(
            Method::POST,
            "/api/auth/login",
            &[],
            &[("email", Email), ("password", Password)],
        ),
        route(Method::GET, "/api/auth/me", &[], &[]),
        route(
            Method::POST,
            "/api/auth/forgot-password",
            &[],
            &[("email", Email)],
        ),
        route(
            Method::POST,
            "/api/auth/reset-password",
            &[],
            &[("token", Text), ("new_password", Password)],
        ),
        route(
            Method::POST,
            "/api/auth/password",
            &[],
            &[
                ("current_password", Password),
                ("new_password", Password),
                ("revoke_api_keys", Bool),
            ],
        ),
        route(
            Method::POST,
            "/api/keys",
            &[],
            &[("name", Text), ("scopes", Text), ("rate_limit", Number)],
        ),
        route(Method::GET, "/api/keys", &[], &[]),
        route(
            Method::PATCH,
            "/api/keys/{}",
            &[],
            &[("scopes", Text), ("rate_limit", Number)],
        ),
        route(Method::DELETE, "/api/keys/{}", &[], &[]),
        route(Method::POST, "/api/whatsapp/initialize", &[], &[]),
        route(Method::GET, "/api/whatsapp/status", &[], &[]),
        route(Method::GET, "/api/whatsapp/qr", &[("format", Text)], &[]),
        route(Method::POST, "/api/whatsapp/disconnect", &[], &[]),
        route(
            Method::POST,
            "/api/messages/send",
            &[],
            &[("to", Phone), ("text", Text)],
        ),
        route(
            Method::POST,
            "/api/send",
            &[],
            &[("to", Phone), ("text", Text)],
        ),
        route(
            Method::GET,
            "/api/send",
            &[("to", Phone), ("text", Text), ("api_key", Text)],
            &[],
        ),
        route(
            Method::GET,
            "/api/messages",
            &[
                ("status", Text),
                ("source", Text),
                ("recipient", Phone),
                ("from", Date),
                ("until", Date),
                ("limit", Number),
                ("cursor", Text),
            ],
            &[],
        ),
        route(Method::GET, "/api/messages/{}", &[], &[]),
        route(Method::GET, "/api/dashboard/config", &[], &[]),
        route(
            Method::POST,
            "/api/dashboard/demo-scan",
            &[],
            &[("phone", Phone)],
        ),
        route(
            Method::GET,
            "/api/admin/users",
            &[("search", Text), ("page", Number), ("per_page", Number)],
            &[],
        ),
        route(
            Method::POST,
            "/api/admin/users",
            &[],
            &[("email", Email), ("password", Password), ("role", Role)],
        ),
        route(Method::POST, "/api/admin/users/{}/disable", &[], &[]),
        route(Method::POST, "/api/admin/users/{}/enable", &[], &[]),
        route(
            Method::POST,
            "/api/admin/users/{}/role",
            &[],
            &[("role", Role)],
        ),
        route(
            Method::POST,
            "/api/admin/users/{}/password",
            &[],
            &[("password", Password)],
        ),
        route(Method::DELETE, "/api/admin/users/{}", &[], &[]),
        route(Method::GET, "/api/admin/sessions", &[("state", Text)], &[]),
        route(Method::POST, "/api/admin/sessions/{}/restart", &[], &[]),
        route(Method::POST, "/api/admin/sessions/{}/stop", &[], &[]),
        route(Method::POST, "/api/admin/sessions/{}/disconnect", &[], &[]),
        route(
            Method::GET,
            "/api/admin/analytics",
            &[("from", Date), ("until", Date), ("format", Text)],
            &[],
        ),
        route(
            Method::GET,
            "/api/admin/analytics.csv",
            &[("from", Date), ("until", Date)],
            &[],
        ),
        route(
            Method::GET,
            "/api/admin/audit",
            &[("limit", Number), ("cursor", Text)],
            &[],
        ),
        route(Method::GET, "/ws", &[], &[]),
        route(Method::GET, "/", &[], &[]),
        route(Method::GET, "/assets/{}", &[], &[]),
    ]
}

/// Strings that have broken servers before.
const NASTY: &[&str] = &[
    "",
    " ",
    "\u{0}",
    "a\u{0}b",
    "%00",
    "'; DROP TABLE users; --",
    "\" OR 1=1 --",
    "<script>alert(1)</script>",
    "../../../../etc/passwd",
    "..%2f..%2f",
    "\u{202e}evil",
    "\u{200d}",
    "😀🔥",
    "\u{fffd}",
    "-1",
    "0",
    "2147483648",
    "-9223372036854775809",
    "99999999999999999999999",
    "1e400",
    "NaN",
    "null",
    "true",
    "[]",
    "{}",
    "-262143-01-01",
    "+262142-12-31",
    "0000-00-00",
    "2026-02-30",
    "9999-12-31T23:59:60Z",
    "1970-01-01",
    "+1 555 999 0001",
    "0015559990001",
    "12345678901234567890",
    "x@y",
    "admin@",
    "ADMIN@EXAMPLE.COM",
    "%",
    "%zz",
];

fn text(rng: &mut StdRng) -> String {
    match rng.random_range(0..10) {
        0..=4 => NASTY[rng.random_range(0..NASTY.len())].to_owned(),
        5 => "x".repeat(rng.random_range(4000..70_000)),
        6 => (0..rng.random_range(1..40))
            .map(|_| char::from_u32(rng.random_range(0..0x11_0000)).unwrap_or('?'))
            .collect(),
        _ => (0..rng.random_range(1..20))
            .map(|_| char::from(rng.random_range(b'!'..=b'~')))
            .collect(),
    }
}

fn value(rng: &mut StdRng, kind: Kind) -> Value {
    // One in four: the wrong type altogether.
    if rng.random_range(0..4) == 0 {
        return match rng.random_range(0..6) {
            0 => Value::Null,
            1 => json!(rng.random_range(-1_000_000_000i64..1_000_000_000)),
            2 => json!(1e300),
            3 => json!(true),
            4 => json!([text(rng), 1, null]),
            _ => json!({ "nested": { "deeper": [text(rng)] } }),
        };
    }
    let plausible = rng.random_bool(0.5);
    match kind {
        Kind::Email if plausible => json!(format!("fuzz-{}@example.com", rng.random_range(0..50))),
        Kind::Password if plausible => json!(PASSWORD),
        Kind::Phone if plausible => json!(format!("1555{:07}", rng.random_range(0..10_000_000))),
        Kind::Date if plausible => json!(format!(
            "{:04}-{:02}-{:02}",
            rng.random_range(1960..2100),
            rng.random_range(0..14),
            rng.random_range(0..33)
        )),
        Kind::Number if plausible => json!(rng.random_range(-5i64..300).to_string()),
        Kind::Bool => json!(rng.random_bool(0.5)),
        Kind::Role if plausible => json!(["user", "admin", "root"][rng.random_range(0..3)]),
        _ => json!(text(rng)),
    }
}

/// What goes into a URL: at most 2,000 characters, since a request head beyond the node's
/// limit is refused (431) and closed before the client has finished sending it.
fn as_query_text(value: &Value) -> String {
    let text = match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    };
    text.chars().take(2000).collect()
}

/// The path with its parameter filled: mostly real ids, sometimes anything.
fn path_param(rng: &mut StdRng, known: &[String]) -> String {
    let raw = match rng.random_range(0..4) {
        0 | 1 if !known.is_empty() => known[rng.random_range(0..known.len())].clone(),
        2 => uuid::Uuid::new_v4().to_string(),
        _ => as_query_text(&json!(text(rng))),
    };
    raw.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

const SECRET: &str = "fuzz-run-secret-0123456789abcdefghijkl";

/// A valid login token for `id`, issued as any node with the secret would: logging in again
/// may be held back by the guessing delay the run itself provoked.
async fn fresh_token(app: &TestApp, id: &str) -> String {
    let user = botwave::users::find_by_id(&app.db.pool, id.parse().unwrap())
        .await
        .unwrap()
        .expect("the account exists");
    botwave::auth::jwt::TokenKeys::new(SECRET, Duration::from_secs(3600))
        .issue(user.id, user.role, user.token_version)
        .unwrap()
        .token
}

#[tokio::test]
async fn every_route_survives_random_and_boundary_input() {
    let seed = std::env::var("BOTWAVE_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random::<u64>);
    let requests: usize = std::env::var("BOTWAVE_FUZZ_REQUESTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1500);
    eprintln!("fuzz seed {seed} ({requests} requests); replay with BOTWAVE_FUZZ_SEED={seed}");
    let mut rng = StdRng::seed_from_u64(seed);

    // Reset links go to a real relay, so the forgot-password route does its whole job.
    let smtp = crate::smtp_sink::SmtpSink::start().await;
    let smtp_url = smtp.url.clone();
    let app = spawn_app_with(|settings| {
        settings.smtp.url = Some(smtp_url);
        settings.smtp.from = Some("botwave <noreply@example.com>".into());
        settings.auth.jwt_secret = Some(SECRET.into());
        // Guessing limits would turn most of the run into 429s.
        settings.auth.login_attempts_per_ip = 1_000_000;
        settings.auth.login_attempts_per_email = 1_000_000;
    })
    .await;
    let admin = app.new_admin().await;
    let mut alice = app.new_account().await;
    let bob = app.new_account().await;
    let mut alice_key = app.create_api_key(&alice).await;
    let bob_secret_key_name = format!("bob-private-{}", uuid::Uuid::new_v4().simple());
    app.api(
        Method::POST,
        "/api/keys",
        &bob.token,
        Some(json!({ "name": bob_secret_key_name })),
    )
    .await;
    // The admin's own id is left out: resetting its own password or role would only end the
    // run's admin coverage (the last-admin rules have their own tests).
    let known = vec![
        alice.id.clone(),
        bob.id.clone(),
        uuid::Uuid::nil().to_string(),
    ];
    // Alice's answers may not mention Bob in any way.
    let bobs_marks = [
        bob.email.clone(),
        bob.id.clone(),
        bob_secret_key_name.clone(),
    ];

    enum As<'a> {
        Token(&'a Account),
        Key(&'a str),
        Nobody,
        Garbage,
    }
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let routes = routes();
    let mut statuses = std::collections::BTreeMap::<u16, usize>::new();
    for n in 0..requests {
        // The run itself disables Alice, resets her password and revokes her keys now and
        // then; bring her back regularly so that most requests get past authentication.
        if n % 50 == 49 {
            let enable = format!("/api/admin/users/{}/enable", alice.id);
            let (status, _) = app
                .admin_call(Method::POST, &enable, &admin.token, None)
                .await;
            if status == 404 {
                // Deleted: a new Alice.
                alice = app.new_account().await;
            } else {
                app.admin_post(
                    &format!("/api/admin/users/{}/password", alice.id),
                    &admin.token,
                    Some(json!({ "password": PASSWORD })),
                )
                .await;
                alice.token = fresh_token(&app, &alice.id).await;
            }
            alice_key = app.create_api_key(&alice).await;
        }
        let route = &routes[rng.random_range(0..routes.len())];
        let who = match rng.random_range(0..10) {
            0..=2 => As::Token(&alice),
            3 => As::Key(&alice_key),
            // The admin does not change its own password (see `known`).
            4..=6 if route.path != "/api/auth/password" => As::Token(&admin),
            4..=6 => As::Token(&alice),
            7 => As::Nobody,
            _ => As::Garbage,
        };
        let path = if route.path.contains("{}") {
            route.path.replace("{}", &path_param(&mut rng, &known))
        } else {
            route.path.to_owned()
        };
        let mut query: Vec<(String, String)> = Vec::new();
        for (name, kind) in route.query {
            if rng.random_bool(0.6) {
                let text = as_query_text(&value(&mut rng, *kind));
                query.push((name.to_string(), text));
            }
        }
        let mut request = client
            .request(route.method.clone(), format!("{}{path}", app.address))
            .query(&query);
        request = match &who {
            As::Token(account) => request.bearer_auth(&account.token),
            As::Key(key) => request.header("x-api-key", *key),
            As::Nobody => request,
            // A header value can carry only visible ASCII (and the client refuses to send more).
            As::Garbage => request.header(
                "authorization",
                text(&mut rng)
                    .chars()
                    .filter(|c| c.is_ascii_graphic() || *c == ' ')
                    .take(2000)
                    .collect::<String>(),
            ),
        };
        let body_kind = rng.random_range(0..10);
        if !route.body.is_empty() || body_kind == 0 {
            let mut body = serde_json::Map::new();
            for (name, kind) in route.body {
                if rng.random_bool(0.9) {
                    body.insert(name.to_string(), value(&mut rng, *kind));
                }
            }
            request = match body_kind {
                0 => request
                    .header("content-type", "application/json")
                    .body(text(&mut rng)),
                1 => request
                    .header("content-type", "text/plain")
                    .body(Value::Object(body).to_string()),
                2 => request.json(&value(&mut rng, Kind::Text)),
                _ => request.json(&Value::Object(body)),
            };
        }
        let described: String = format!("#{n} {} {path} {query:?}", route.method)
            .chars()
            .take(300)
            .collect();
        let response = request
            .send()
            .await
            .unwrap_or_else(|error| panic!("{described}: no answer ({error}); seed {seed}"));
        let status = response.status();
        *statuses.entry(status.as_u16()).or_default() += 1;
        if status.is_success() && path == format!("/api/admin/users/{}/role", alice.id) {
            // An admin may see Bob: whatever role the run gave her, Alice is a user again.
            app.admin_call(
                Method::POST,
                &path,
                &admin.token,
                Some(json!({ "role": "user" })),
            )
            .await;
        }
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let headers = format!("{:?}", response.headers());
        let bytes = response.bytes().await.unwrap_or_else(|error| {
            panic!("{described}: {status} {headers} answer cut off ({error:?}); seed {seed}")
        });
        let body = String::from_utf8_lossy(&bytes);
        let shown: String = body.chars().take(500).collect();
        assert!(
            !status.is_server_error(),
            "{described}: {status} {shown}; seed {seed}"
        );
        if status.is_client_error() {
            let error: Value = serde_json::from_slice(&bytes).unwrap_or_else(|_| {
                panic!("{described}: {status} is not JSON: {shown}; seed {seed}")
            });
            assert!(
                error["error"]["code"].is_string() && error["error"]["message"].is_string(),
                "{described}: {status} {shown}; seed {seed}"
            );
        } else if path.starts_with("/api/") && status != 204 {
            assert!(
                content_type.starts_with("application/json")
                    || content_type.starts_with("text/csv")
                    || content_type.starts_with("image/"),
                "{described}: {status} as {content_type}; seed {seed}"
            );
        }
        if matches!(who, As::Token(account) if account.id == alice.id) || matches!(who, As::Key(_))
        {
            // An error that echoes Alice's own path or query back shows her nothing of Bob's.
            let asked = format!("{path} {query:?}");
            for mark in bobs_marks
                .iter()
                .filter(|mark| !asked.contains(mark.as_str()))
            {
                assert!(
                    !body.contains(mark.as_str()),
                    "{described}: Alice was shown Bob's data: {shown}; seed {seed}"
                );
            }
        }
    }
    eprintln!("answers by status: {statuses:?}");
    // After all of it, the node still serves.
    assert_eq!(app.me(&admin.token).await.status(), 200);
}
