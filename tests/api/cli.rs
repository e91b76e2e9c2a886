//! `botwave admin …` against the same database a running node uses.

use std::{io::Write, process::Stdio};

use serde_json::Value;

use crate::helpers::{PASSWORD, TestApp, spawn_app};

/// Runs the real binary with the node's database, feeding `stdin`.
pub fn botwave(
    app: &TestApp,
    args: &[&str],
    env_password: Option<&str>,
    stdin: &str,
) -> std::process::Output {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_botwave"));
    command
        .args(args)
        .env("BOTWAVE_DATABASE_URL", &app.db.url)
        .env(
            "BOTWAVE_DATA_DIR",
            std::env::temp_dir().join(format!("botwave-cli-{}", uuid::Uuid::new_v4())),
        )
        .env_remove("BOTWAVE_ADMIN_PASSWORD")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(password) = env_password {
        command.env("BOTWAVE_ADMIN_PASSWORD", password);
    }
    let mut child = command.spawn().expect("botwave binary runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

#[tokio::test]
async fn admin_create_and_reset_password_work_while_the_node_runs() {
    let app = spawn_app().await;

    let created = botwave(
        &app,
        &["admin", "create", "--email", "Root@Example.com"],
        Some(PASSWORD),
        "",
    );
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    let login = app.login("root@example.com", PASSWORD).await;
    assert_eq!(login.status(), 200);
    let body: Value = login.json().await.unwrap();
    assert_eq!(body["user"]["role"], "admin");

    let again = botwave(
        &app,
        &["admin", "create", "--email", "root@example.com"],
        Some(PASSWORD),
        "",
    );
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));

    let reset = botwave(
        &app,
        &["admin", "reset-password", "--email", "root@example.com"],
        None,
        "New-Root-Pass-9\n",
    );
    assert!(
        reset.status.success(),
        "{}",
        String::from_utf8_lossy(&reset.stderr)
    );
    assert_eq!(app.login("root@example.com", PASSWORD).await.status(), 401);
    assert_eq!(
        app.login("root@example.com", "New-Root-Pass-9")
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn admin_create_refuses_weak_passwords_and_bad_emails_and_creates_nothing() {
    let app = spawn_app().await;
    let weak = botwave(
        &app,
        &["admin", "create", "--email", "ops@example.com"],
        None,
        "password\n",
    );
    assert!(!weak.status.success());
    assert!(String::from_utf8_lossy(&weak.stderr).contains("password"));
    let bad_email = botwave(
        &app,
        &["admin", "create", "--email", "not-an-email"],
        Some(PASSWORD),
        "",
    );
    assert!(!bad_email.status.success());
    assert!(String::from_utf8_lossy(&bad_email.stderr).contains("email"));
    assert_eq!(app.login("ops@example.com", PASSWORD).await.status(), 401);
}
