//! Admin › Cluster in a real browser, with a second real node on the same database: the
//! table follows a node joining, draining (its session moving to the other node) and
//! stopping, without a reload; the sessions view names the node running each session.

use serde_json::{Value, json};

use crate::{
    helpers::{Account, PASSWORD, TestApp, spawn_app_with},
    page::Page,
};

const FIRST: &str = "node-one";
const SECOND: &str = "node-two";
const OWN_PHONE: &str = "15550005555";

/// The cluster table's row of the node called `name`.
fn node_row(name: &str) -> String {
    format!("#admin-cluster-body tr[data-name='{name}']")
}

/// Waits until the row of `name` shows `state` (`alive`, `draining`, `stopped`, …) and
/// `sessions` sessions.
async fn wait_for_node(page: &Page, name: &str, state: &str, sessions: u32) {
    let row = node_row(name);
    page.wait_until(
        &format!("{name} shows {state} with {sessions} sessions"),
        &format!(
            "(() => {{ const r = document.querySelector(\"{row}\"); \
             return r.dataset.state === '{state}' \
             && r.querySelector('.sessions').innerText === '{sessions}'; }})()"
        ),
    )
    .await;
}

/// The node called `name` as `GET /api/admin/cluster` lists it.
async fn listed(app: &TestApp, admin: &Account, name: &str) -> Value {
    let cluster = app.admin_get("/api/admin/cluster", &admin.token).await;
    cluster["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|node| node["name"] == name)
        .cloned()
        .unwrap_or_else(|| panic!("{name} is not listed: {cluster}"))
}

#[tokio::test]
async fn the_cluster_view_follows_a_node_joining_draining_and_stopping_live() {
    let app = spawn_app_with(|settings| settings.cluster.node_name = Some(FIRST.to_owned())).await;
    let admin = app.new_admin().await;
    let user = app.new_account().await;
    app.link(&user, OWN_PHONE).await;

    let page = Page::open(&app).await;
    page.login(&admin.email, PASSWORD).await;
    page.wait_for_dashboard(&admin.email).await;

    // The sessions view names the node that runs the session.
    page.click("#nav-admin").await;
    let session = format!("#admin-sessions-body tr[data-user-id='{}']", user.id);
    page.wait_for_text(&format!("{session} .owner-node"), FIRST)
        .await;

    // The cluster view lists this node, alive, with that session.
    page.click("#admin-tab-cluster").await;
    let first = node_row(FIRST);
    page.wait_for_text(&format!("{first} .name"), "this node")
        .await;
    wait_for_node(&page, FIRST, "alive", 1).await;
    assert!(
        page.text(&format!("{first} .address"))
            .await
            .contains(app.address.trim_start_matches("http://")),
        "the row shows where the node listens"
    );
    page.mark_no_reload().await;

    // A second node starts on the same database: its row appears by itself.
    let second = app.spawn_peer(SECOND).await;
    wait_for_node(&page, SECOND, "alive", 0).await;
    assert_eq!(
        page.text(&format!("{} .state", node_row(SECOND))).await,
        "Alive"
    );
    assert!(
        !page
            .text(&format!("{} .name", node_row(SECOND)))
            .await
            .contains("this node")
    );

    // Draining the first node asks once more; then the row says so, the API agrees, and
    // the session moves to the second node without a new pairing.
    let action = format!("{first} .row-actions button");
    page.click(&action).await;
    page.wait_for_text(&action, "Move its sessions?").await;
    assert_eq!(
        listed(&app, &admin, FIRST).await["draining"],
        false,
        "one click drained"
    );
    page.click(&action).await;
    page.wait_for_text(&format!("{first} .state"), "Draining")
        .await;
    assert_eq!(listed(&app, &admin, FIRST).await["draining"], true);
    wait_for_node(&page, SECOND, "alive", 1).await;
    wait_for_node(&page, FIRST, "draining", 0).await;
    let moved = app
        .wait_for_admin_state(&admin, &user.id, "connected")
        .await;
    assert_eq!(moved["owner_node"], SECOND, "{moved}");
    assert_eq!(app.companions(OWN_PHONE).await.len(), 1, "no new pairing");
    page.screenshot("admin-cluster").await;

    // Undrain takes one click.
    page.wait_for_text(&action, "Undrain").await;
    page.click(&action).await;
    wait_for_node(&page, FIRST, "alive", 0).await;
    assert_eq!(listed(&app, &admin, FIRST).await["draining"], false);

    // Draining the second node sends the session back.
    let second_action = format!("{} .row-actions button", node_row(SECOND));
    page.click(&second_action).await;
    page.wait_for_text(&second_action, "Move its sessions?")
        .await;
    page.click(&second_action).await;
    wait_for_node(&page, SECOND, "draining", 0).await;
    wait_for_node(&page, FIRST, "alive", 1).await;
    page.wait_for_text(&second_action, "Undrain").await;
    page.click(&second_action).await;
    wait_for_node(&page, SECOND, "alive", 0).await;

    // A drain confirmed after the node stopped is refused, and the page says so. (The
    // armed button outlives the refreshes; the node has no session to hand over, so it
    // stops well within the five seconds the button stays armed.)
    page.click(&second_action).await;
    page.wait_for_text(&second_action, "Move its sessions?")
        .await;
    second.stop().await;
    page.click(&second_action).await;
    page.wait_for_text("#admin-cluster-action-error", SECOND)
        .await;

    // The stopped node is shown so, with nothing left to drain.
    wait_for_node(&page, SECOND, "stopped", 0).await;
    assert_eq!(
        page.text(&format!("{} .state", node_row(SECOND))).await,
        "Stopped"
    );
    assert_eq!(
        page.eval(&format!(
            "document.querySelectorAll(\"{} .row-actions button\").length",
            node_row(SECOND)
        ))
        .await,
        0
    );
    let stopped = listed(&app, &admin, SECOND).await;
    assert_eq!(stopped["alive"], false, "{stopped}");
    wait_for_node(&page, FIRST, "alive", 1).await;
    assert_eq!(
        app.admin_session(&admin, &user.id).await["owner_node"],
        FIRST
    );

    page.assert_not_reloaded().await;
    assert_eq!(page.csp_violations().await, json!([]));
    assert_eq!(
        page.eval("document.getElementById('admin-cluster-error').textContent")
            .await,
        ""
    );
}
