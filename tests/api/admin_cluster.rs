//! The admin cluster API on a node that is a cluster of one: it lists itself with the
//! sessions it runs, and draining it stops them until it is undrained (then they come
//! back without a QR code).

use reqwest::Method;
use serde_json::Value;

use crate::helpers::{error_code, spawn_app};

const PHONE: &str = "15550007001";

#[tokio::test]
async fn the_node_lists_itself_and_draining_moves_its_sessions_off_it() {
    let app = spawn_app().await;
    let admin = app.new_admin().await;
    let user = app.new_account().await;
    app.link(&user, PHONE).await;

    let cluster = app.admin_get("/api/admin/cluster", &admin.token).await;
    let name = cluster["node"]
        .as_str()
        .expect("this node's name")
        .to_owned();
    let nodes = cluster["nodes"].as_array().expect("nodes");
    let me = nodes
        .iter()
        .find(|node| node["incarnation"] == cluster["incarnation"])
        .unwrap_or_else(|| panic!("this node is listed: {cluster}"));
    assert_eq!(me["name"], name.as_str());
    assert_eq!(me["alive"], true);
    assert_eq!(me["draining"], false);
    assert_eq!(me["sessions"], 1);
    assert!(me["started_at"].is_string() && me["last_heartbeat"].is_string());
    assert_eq!(
        app.admin_session(&admin, &user.id).await["owner_node"],
        name.as_str()
    );

    let (status, body) = app
        .admin_call(
            Method::POST,
            "/api/admin/cluster/nodes/no-such-node/drain",
            &admin.token,
            None,
        )
        .await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"]["code"], "not_found");

    let drained = app
        .admin_post(
            &format!("/api/admin/cluster/nodes/{name}/drain"),
            &admin.token,
            None,
        )
        .await;
    assert_eq!(drained["draining"], true);
    // With nowhere else to go, the session is only stopped: nobody runs it.
    app.wait_for_no_connections().await;
    // The lease goes back once the connection is down.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let session = app.admin_session(&admin, &user.id).await;
        if session["owner_node"] == Value::Null {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still owned: {session}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let listed = app.admin_get("/api/admin/cluster", &admin.token).await;
    assert!(
        listed["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|node| node["name"] == name.as_str() && node["draining"] == true),
        "{listed}"
    );

    let (status, _) = app
        .admin_call(
            Method::DELETE,
            &format!("/api/admin/cluster/nodes/{name}/drain"),
            &admin.token,
            None,
        )
        .await;
    assert_eq!(status, 200);
    app.wait_for_state(&user.token, "connected").await;
    assert_eq!(app.companions(PHONE).await.len(), 1, "no new pairing");

    let audit = app.admin_get("/api/admin/audit", &admin.token).await;
    let actions: Vec<&str> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|entry| entry["action"].as_str())
        .collect();
    assert!(actions.contains(&"cluster.drain") && actions.contains(&"cluster.undrain"));

    let normal = app
        .api(Method::GET, "/api/admin/cluster", &user.token, None)
        .await;
    assert_eq!(normal.status(), 403);
    assert_eq!(error_code(normal).await, "forbidden");
}
