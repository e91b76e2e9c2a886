//! The admin API: who may call it, account management, the last-admin rule, sessions and
//! the audit log. Analytics are in `admin_analytics`.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{PASSWORD, error_code, spawn_app};

const OWN_PHONE: &str = "15550001111";
const FRIEND: &str = "15559990001";

/// Every admin route, with a body that would be valid, aimed at `target`.
fn admin_routes(target: &str) -> Vec<(Method, String, Option<Value>)> {
    let user = |action: &str| format!("/api/admin/users/{target}/{action}");
    let session = |action: &str| format!("/api/admin/sessions/{target}/{action}");
    vec![
        (Method::GET, "/api/admin/users".into(), None),
        (
            Method::POST,
            "/api/admin/users".into(),
            Some(json!({ "email": "new@example.com", "password": PASSWORD, "role": "user" })),
        ),
        (Method::POST, user("disable"), None),
        (Method::POST, user("enable"), None),
        (Method::POST, user("role"), Some(json!({ "role": "admin" }))),
        (
            Method::POST,
            user("password"),
            Some(json!({ "password": "Another-Horse-43" })),
        ),
        (Method::DELETE, format!("/api/admin/users/{target}"), None),
        (Method::GET, "/api/admin/sessions".into(), None),
        (Method::POST, session("stop"), None),
        (Method::POST, session("restart"), None),
        (Method::POST, session("disconnect"), None),
        (Method::GET, "/api/admin/analytics".into(), None),
        (Method::GET, "/api/admin/analytics?format=csv".into(), None),
        (Method::GET, "/api/admin/analytics.csv".into(), None),
        (Method::GET, "/api/admin/audit".into(), None),
        (Method::GET, "/api/admin/cluster".into(), None),
        (
            Method::POST,
            "/api/admin/cluster/nodes/somewhere/drain".into(),
            None,
        ),
        (
            Method::DELETE,
            "/api/admin/cluster/nodes/somewhere/drain".into(),
            None,
        ),
    ]
}

#[tokio::test]
async fn every_admin_route_refuses_anonymous_callers_normal_users_and_api_keys() {
    let app = spawn_app().await;
    let user = app.new_account().await;
    let admin = app.new_admin().await;
    let admin_key = app.create_api_key(&admin).await;
    for (method, path, body) in admin_routes(&user.id) {
        let mut anonymous = app.request(method.clone(), &path);
        if let Some(body) = &body {
            anonymous = anonymous.json(body);
        }
        let anonymous = anonymous.send().await.unwrap();
        assert_eq!(
            anonymous.status(),
            401,
            "{method} {path} without credentials"
        );
        assert_eq!(error_code(anonymous).await, "missing_credentials");

        let (status, answer) = app
            .admin_call(method.clone(), &path, &user.token, body.clone())
            .await;
        assert_eq!(status, 403, "{method} {path} as a normal user: {answer}");
        assert_eq!(answer["error"]["code"], "forbidden", "{answer}");

        let mut with_key = app
            .request(method.clone(), &path)
            .header("X-Api-Key", &admin_key);
        if let Some(body) = &body {
            with_key = with_key.json(body);
        }
        let with_key = with_key.send().await.unwrap();
        assert_eq!(
            with_key.status(),
            403,
            "{method} {path} with an admin's API key"
        );
    }
    // Nothing above changed the user: still enabled, still a user, same password.
    assert_eq!(app.login(&user.email, PASSWORD).await.status(), 200);
    let me: Value = app.me(&user.token).await.json().await.unwrap();
    assert_eq!(me["user"]["role"], "user");
}

#[tokio::test]
async fn an_admin_demoted_in_the_database_loses_access_with_the_token_they_hold() {
    let app = spawn_app().await;
    let admin = app.new_admin().await;
    let other = app.new_admin().await;
    app.admin_get("/api/admin/users", &admin.token).await;
    app.admin_post(
        &format!("/api/admin/users/{}/role", admin.id),
        &other.token,
        Some(json!({ "role": "user" })),
    )
    .await;
    // The token still says admin; the database no longer does.
    let (status, _) = app
        .admin_call(Method::GET, "/api/admin/users", &admin.token, None)
        .await;
    assert_eq!(status, 403);
}

#[tokio::test]
async fn users_are_listed_with_search_paging_and_their_figures() {
    let app = spawn_app().await;
    let admin = app.new_admin().await;
    let mut created = Vec::new();
    for n in 0..3 {
        let email = format!("Team-{n}@Paging.example");
        let (status, body) = app
            .admin_call(
                Method::POST,
                "/api/admin/users",
                &admin.token,
                Some(json!({ "email": email, "password": PASSWORD })),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        assert_eq!(body["user"]["role"], "user");
        created.push(body["user"]["id"].as_str().unwrap().to_owned());
    }

    let all = app.admin_get("/api/admin/users", &admin.token).await;
    assert_eq!(all["total"], 4);
    let first = &all["users"][0];
    assert_eq!(first["id"], admin.id.as_str());
    assert_eq!(first["role"], "admin");
    assert_eq!(first["disabled"], false);
    assert!(first["created_at"].is_string());
    assert_eq!(first["session"], Value::Null);
    assert_eq!(first["messages"]["total"], 0);

    // Search is a case-insensitive substring of the email; paging keeps the total.
    let page1 = app
        .admin_get("/api/admin/users?search=PAGING&per_page=2", &admin.token)
        .await;
    assert_eq!(page1["total"], 3);
    let ids = |page: &Value| -> Vec<String> {
        page["users"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u["id"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(ids(&page1), created[..2]);
    let page2 = app
        .admin_get(
            "/api/admin/users?search=paging&per_page=2&page=2",
            &admin.token,
        )
        .await;
    assert_eq!(ids(&page2), created[2..]);
    let none = app
        .admin_get("/api/admin/users?search=nobody-here", &admin.token)
        .await;
    assert_eq!(none["total"], 0);
    assert_eq!(none["users"], json!([]));

    let (status, body) = app
        .admin_call(
            Method::GET,
            "/api/admin/users?per_page=1000",
            &admin.token,
            None,
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["field"], "per_page");
}

#[tokio::test]
async fn created_accounts_log_in_and_bad_creations_are_refused() {
    let app = spawn_app().await;
    let admin = app.new_admin().await;
    let body = app
        .admin_call(
            Method::POST,
            "/api/admin/users",
            &admin.token,
            Some(json!({ "email": "Ops@Example.com", "password": PASSWORD, "role": "admin" })),
        )
        .await;
    assert_eq!(body.0, 201, "{}", body.1);
    assert_eq!(body.1["user"]["email"], "ops@example.com");
    assert_eq!(body.1["user"]["role"], "admin");
    let token = app.token_of("ops@example.com").await;
    app.admin_get("/api/admin/users", &token).await;

    for (payload, status, code) in [
        (
            json!({ "email": "ops@example.com", "password": PASSWORD }),
            409,
            "email_taken",
        ),
        (
            json!({ "email": "not-an-email", "password": PASSWORD }),
            400,
            "validation_failed",
        ),
        (
            json!({ "email": "x@example.com", "password": "short" }),
            400,
            "validation_failed",
        ),
        (
            json!({ "email": "y@example.com", "password": PASSWORD, "role": "owner" }),
            400,
            "invalid_body",
        ),
    ] {
        let (got, answer) = app
            .admin_call(
                Method::POST,
                "/api/admin/users",
                &admin.token,
                Some(payload.clone()),
            )
            .await;
        assert_eq!(got, status, "{payload}: {answer}");
        assert_eq!(answer["error"]["code"], code, "{payload}: {answer}");
    }
}

#[tokio::test]
async fn disabling_stops_the_session_at_once_and_refuses_token_and_key_until_enabled() {
    let mut app = spawn_app().await;
    app.create_phone(FRIEND).await;
    let admin = app.new_admin().await;
    let user = app.new_account().await;
    app.link(&user, OWN_PHONE).await;
    let key = app.create_api_key(&user).await;
    assert_eq!(
        app.send_with_key(&key, FRIEND, "before").await.status(),
        202
    );
    let device = app.companions(OWN_PHONE).await;
    assert_eq!(device.len(), 1);

    let disabled = app
        .admin_post(
            &format!("/api/admin/users/{}/disable", user.id),
            &admin.token,
            None,
        )
        .await;
    assert_eq!(disabled["user"]["disabled"], true);
    assert_eq!(disabled["session_stopped"], true);

    // Stopped by the time the answer came: not connected, and the simulator lost it —
    // but the device was not logged out, so enabling can resume it.
    let session = app.admin_session(&admin, &user.id).await;
    assert_eq!(session["state"], "disconnected", "{session}");
    assert_eq!(session["user_disabled"], true);
    assert_eq!(session["phone"], OWN_PHONE);
    app.wait_for_no_connections().await;
    assert_eq!(app.companions(OWN_PHONE).await, device);

    let by_token = app.me(&user.token).await;
    assert_eq!(by_token.status(), 403);
    assert_eq!(error_code(by_token).await, "account_disabled");
    let by_key = app.send_with_key(&key, FRIEND, "while disabled").await;
    assert_eq!(by_key.status(), 403);
    assert_eq!(error_code(by_key).await, "account_disabled");
    assert_eq!(app.login(&user.email, PASSWORD).await.status(), 403);

    // A restarted node does not bring a disabled user's session back.
    app.restart_node().await;
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    assert_eq!(app.sim_stats().await["connections"]["current"], 0);
    let session = app.admin_session(&admin, &user.id).await;
    assert_ne!(session["state"], "connected", "{session}");

    let enabled = app
        .admin_post(
            &format!("/api/admin/users/{}/enable", user.id),
            &admin.token,
            None,
        )
        .await;
    assert_eq!(enabled["user"]["disabled"], false);
    assert_eq!(app.send_with_key(&key, FRIEND, "after").await.status(), 202);
    // Disabling voided the old token; a fresh login resumes the paired device, no QR code.
    let token = app.token_of(&user.email).await;
    app.initialize(&token).await;
    let status = app.wait_for_state(&token, "connected").await;
    assert_eq!(status["phone"], OWN_PHONE);
    app.wait_for_phone_text(FRIEND, "after").await;
}

#[tokio::test]
async fn the_last_enabled_admin_cannot_be_demoted_disabled_or_deleted() {
    let app = spawn_app().await;
    let admin = app.new_admin().await;
    let user = app.new_account().await;
    let me = |action: &str| format!("/api/admin/users/{}/{action}", admin.id);

    for (method, path, body) in [
        (Method::POST, me("role"), Some(json!({ "role": "user" }))),
        (Method::POST, me("disable"), None),
        (
            Method::DELETE,
            format!("/api/admin/users/{}", admin.id),
            None,
        ),
    ] {
        let (status, answer) = app
            .admin_call(method.clone(), &path, &admin.token, body)
            .await;
        assert_eq!(status, 409, "{method} {path}: {answer}");
        assert_eq!(answer["error"]["code"], "last_admin");
    }
    app.admin_get("/api/admin/users", &admin.token).await;

    // Promote someone else: now the first admin may step down, and the new one may not.
    let promoted = app
        .admin_post(
            &format!("/api/admin/users/{}/role", user.id),
            &admin.token,
            Some(json!({ "role": "admin" })),
        )
        .await;
    assert_eq!(promoted["user"]["role"], "admin");
    app.admin_get("/api/admin/users", &user.token).await;
    let demoted = app
        .admin_post(&me("role"), &user.token, Some(json!({ "role": "user" })))
        .await;
    assert_eq!(demoted["user"]["role"], "user");
    let (status, answer) = app
        .admin_call(
            Method::POST,
            &format!("/api/admin/users/{}/disable", user.id),
            &user.token,
            None,
        )
        .await;
    assert_eq!(status, 409, "{answer}");
    assert_eq!(answer["error"]["code"], "last_admin");

    // A disabled admin does not count: with the only other admin disabled, still refused.
    app.admin_post(&me("role"), &user.token, Some(json!({ "role": "admin" })))
        .await;
    app.admin_post(&me("disable"), &user.token, None).await;
    let (status, _) = app
        .admin_call(
            Method::POST,
            &format!("/api/admin/users/{}/role", user.id),
            &user.token,
            Some(json!({ "role": "user" })),
        )
        .await;
    assert_eq!(status, 409);
}

#[tokio::test]
async fn a_password_reset_voids_old_tokens_and_the_new_password_works() {
    let app = spawn_app().await;
    let admin = app.new_admin().await;
    let user = app.new_account().await;
    let new_password = "Reset-Battery-Staple-7";
    app.admin_post(
        &format!("/api/admin/users/{}/password", user.id),
        &admin.token,
        Some(json!({ "password": new_password })),
    )
    .await;
    let old = app.me(&user.token).await;
    assert_eq!(old.status(), 401);
    assert_eq!(error_code(old).await, "token_revoked");
    assert_eq!(app.login(&user.email, PASSWORD).await.status(), 401);
    assert_eq!(app.login(&user.email, new_password).await.status(), 200);

    let (status, answer) = app
        .admin_call(
            Method::POST,
            &format!("/api/admin/users/{}/password", user.id),
            &admin.token,
            Some(json!({ "password": "short" })),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(answer["error"]["field"], "password");
    let (status, _) = app
        .admin_call(
            Method::POST,
            &format!("/api/admin/users/{}/password", uuid::Uuid::new_v4()),
            &admin.token,
            Some(json!({ "password": new_password })),
        )
        .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn deleting_a_user_logs_out_their_whatsapp_and_removes_account_keys_and_messages() {
    let app = spawn_app().await;
    app.create_phone(FRIEND).await;
    let admin = app.new_admin().await;
    let user = app.new_account().await;
    app.link(&user, OWN_PHONE).await;
    let key = app.create_api_key(&user).await;
    let sent: Value = app
        .send_web(&user.token, FRIEND, "last words")
        .await
        .json()
        .await
        .unwrap();
    app.wait_for_message_status(&user.token, sent["id"].as_str().unwrap(), "delivered")
        .await;
    assert_eq!(app.companions(OWN_PHONE).await.len(), 1);

    let (status, deleted) = app
        .admin_call(
            Method::DELETE,
            &format!("/api/admin/users/{}", user.id),
            &admin.token,
            None,
        )
        .await;
    assert_eq!(status, 200, "{deleted}");
    assert_eq!(deleted["deleted"]["email"], user.email.as_str());
    assert_eq!(deleted["whatsapp_logged_out"], true);

    // Logged out on WhatsApp's side, not just dropped.
    assert!(app.companions(OWN_PHONE).await.is_empty());
    app.wait_for_no_connections().await;
    assert_eq!(app.login(&user.email, PASSWORD).await.status(), 401);
    assert_eq!(app.send_with_key(&key, FRIEND, "ghost").await.status(), 401);
    let conn = app.db.pool.get().await.unwrap();
    let uid: uuid::Uuid = user.id.parse().unwrap();
    for table in ["messages", "api_keys", "wa_sessions", "session_events"] {
        let left: i64 = conn
            .query_one(
                &format!("SELECT count(*) FROM {table} WHERE user_id = $1"),
                &[&uid],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(left, 0, "{table} rows left");
    }
    let sessions = app.admin_get("/api/admin/sessions", &admin.token).await;
    assert_eq!(sessions["sessions"], json!([]));

    // The audit log keeps who it was, and how much went with them.
    let audit = app
        .admin_get("/api/admin/audit?limit=1", &admin.token)
        .await;
    let entry = &audit["entries"][0];
    assert_eq!(entry["action"], "user.delete");
    assert_eq!(entry["target_id"], user.id.as_str());
    assert_eq!(entry["target_email"], user.email.as_str());
    assert_eq!(entry["details"]["messages_deleted"], 1);

    let (status, _) = app
        .admin_call(
            Method::DELETE,
            &format!("/api/admin/users/{}", user.id),
            &admin.token,
            None,
        )
        .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn sessions_are_listed_and_can_be_stopped_restarted_and_disconnected() {
    let app = spawn_app().await;
    let admin = app.new_admin().await;
    let waiting = app.new_account().await;
    let user = app.new_account().await;

    // A session showing its QR code reports how old the code is.
    app.initialize(&waiting.token).await;
    app.wait_for_qr(&waiting.token, None).await;
    let qr = app.admin_session(&admin, &waiting.id).await;
    assert_eq!(qr["state"], "qr");
    let age = qr["qr_age_seconds"].as_f64().expect("a QR age");
    assert!((0.0..60.0).contains(&age), "{qr}");
    // Stopping a session that waits for its scan takes the QR code away.
    let stopped = app
        .admin_post(
            &format!("/api/admin/sessions/{}/stop", waiting.id),
            &admin.token,
            None,
        )
        .await;
    assert_eq!(stopped["session"]["state"], "disconnected", "{stopped}");
    assert_eq!(stopped["session"]["qr_age_seconds"], Value::Null);
    app.wait_for_no_connections().await;

    app.link(&user, OWN_PHONE).await;
    let list = app.admin_get("/api/admin/sessions", &admin.token).await;
    let node = list["node"].as_str().unwrap();
    assert!(!node.is_empty());
    let session = app.admin_session(&admin, &user.id).await;
    assert_eq!(session["email"], user.email.as_str());
    assert_eq!(session["state"], "connected");
    assert_eq!(session["phone"], OWN_PHONE);
    assert_eq!(session["owner_node"], node);
    assert!(session["connected_since"].is_string());
    assert_eq!(session["restart_count"], 0);
    assert_eq!(session["qr_age_seconds"], Value::Null);
    assert_eq!(session["queued_messages"], 0);
    let device = app.companions(OWN_PHONE).await;
    assert_eq!(device.len(), 1);

    let path = |action: &str| format!("/api/admin/sessions/{}/{action}", user.id);
    let stopped = app.admin_post(&path("stop"), &admin.token, None).await;
    assert_eq!(stopped["session"]["state"], "disconnected", "{stopped}");
    app.wait_for_no_connections().await;
    assert_eq!(
        app.companions(OWN_PHONE).await,
        device,
        "stop does not log out"
    );

    // While stopped, sends wait in the outbox and the admin sees them queued.
    assert_eq!(
        app.send_web(&user.token, FRIEND, "queued while stopped")
            .await
            .status(),
        202
    );
    assert_eq!(
        app.admin_session(&admin, &user.id).await["queued_messages"],
        1
    );

    app.admin_post(&path("restart"), &admin.token, None).await;
    let back = app
        .wait_for_admin_state(&admin, &user.id, "connected")
        .await;
    assert_eq!(back["phone"], OWN_PHONE);
    assert_eq!(
        app.companions(OWN_PHONE).await,
        device,
        "restart reuses the device"
    );

    let disconnected = app
        .admin_post(&path("disconnect"), &admin.token, None)
        .await;
    assert_eq!(disconnected["session"]["state"], "idle", "{disconnected}");
    assert_eq!(disconnected["session"]["phone"], Value::Null);
    assert!(
        app.companions(OWN_PHONE).await.is_empty(),
        "disconnect logs out"
    );

    let (status, _) = app
        .admin_call(
            Method::POST,
            &format!("/api/admin/sessions/{}/stop", admin.id),
            &admin.token,
            None,
        )
        .await;
    assert_eq!(status, 404, "the admin never started a session");
}

#[tokio::test]
async fn the_audit_log_lists_admin_actions_newest_first_with_actor_and_target() {
    let app = spawn_app().await;
    let admin = app.new_admin().await;
    let user = app.new_account().await;
    let target = |action: &str| format!("/api/admin/users/{}/{action}", user.id);
    app.admin_post(
        &target("role"),
        &admin.token,
        Some(json!({ "role": "admin" })),
    )
    .await;
    app.admin_post(&target("disable"), &admin.token, None).await;
    app.admin_post(&target("enable"), &admin.token, None).await;
    // Refused actions change nothing and leave no entry.
    let (status, _) = app
        .admin_call(
            Method::POST,
            &format!("/api/admin/users/{}/role", uuid::Uuid::new_v4()),
            &admin.token,
            Some(json!({ "role": "user" })),
        )
        .await;
    assert_eq!(status, 404);

    let page1 = app
        .admin_get("/api/admin/audit?limit=2", &admin.token)
        .await;
    let cursor = page1["next_cursor"]
        .as_str()
        .expect("a next page")
        .to_owned();
    let page2 = app
        .admin_get(
            &format!("/api/admin/audit?limit=2&cursor={cursor}"),
            &admin.token,
        )
        .await;
    assert_eq!(page2["next_cursor"], Value::Null);
    let entries: Vec<&Value> = page1["entries"]
        .as_array()
        .unwrap()
        .iter()
        .chain(page2["entries"].as_array().unwrap())
        .collect();
    let actions: Vec<&str> = entries
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["user.enable", "user.disable", "user.role"]);
    for entry in &entries {
        assert_eq!(entry["actor_id"], admin.id.as_str());
        assert_eq!(entry["actor_email"], admin.email.as_str());
        assert_eq!(entry["target_id"], user.id.as_str());
        assert_eq!(entry["target_email"], user.email.as_str());
        assert!(entry["at"].is_string());
    }
    assert_eq!(
        entries[2]["details"],
        json!({ "from": "user", "to": "admin" })
    );

    let (status, answer) = app
        .admin_call(
            Method::GET,
            "/api/admin/audit?cursor=abc",
            &admin.token,
            None,
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(answer["error"]["field"], "cursor");
}
