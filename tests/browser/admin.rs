//! The admin area in a real browser: the sessions view following a user's session live and
//! disconnecting it (seen from the user's own page too), managing accounts, and the admin
//! navigation staying out of normal users' sight.

use serde_json::json;

use crate::{
    helpers::{PASSWORD, TestApp, spawn_app},
    page::Page,
};

const OWN_PHONE: &str = "15550003333";

/// A page logged in as `email`, live.
async fn logged_in(app: &TestApp, email: &str) -> Page {
    let page = Page::open(app).await;
    page.login(email, PASSWORD).await;
    page.wait_for_dashboard(email).await;
    page
}

/// Types `text` into the users search and waits until the list shows its answer (typing
/// sends a keystroke at a time, and earlier prefixes may answer first).
async fn search(page: &Page, text: &str) {
    page.fill("#admin-users-search", text).await;
    let text = serde_json::to_string(text).unwrap();
    page.wait_until(
        "the list shows the search's answer",
        &format!("document.getElementById('admin-users-body').dataset.search === {text}"),
    )
    .await;
}

#[tokio::test]
async fn an_admin_sees_a_session_connect_live_and_disconnects_it_from_the_sessions_view() {
    let app = spawn_app().await;
    let admin = app.new_admin().await;
    let user = app.new_account().await;

    let page = logged_in(&app, &admin.email).await;
    assert!(page.is_displayed("#nav-admin").await, "no admin link");
    page.click("#nav-admin").await;
    page.wait_until(
        "the sessions view shows",
        "document.getElementById('admin-sessions').offsetParent !== null",
    )
    .await;
    page.wait_for_text("#admin-sessions-empty", "No user").await;
    page.mark_no_reload().await;
    let users_page = logged_in(&app, &user.email).await;

    // The user starts linking: a row appears by itself, waiting for the scan.
    let row = format!("#admin-sessions-body tr[data-user-id='{}']", user.id);
    app.initialize(&user.token).await;
    let qr = app.wait_for_qr(&user.token, None).await;
    page.wait_for_text(&format!("{row} .state"), "Waiting for scan")
        .await;
    // The phone scans: the row turns Connected with the number and since when, without a
    // reload. (Linking passes through a reconnect, so wait for all three together.)
    app.scan(OWN_PHONE, qr["code"].as_str().unwrap()).await;
    page.wait_for_text(&format!("{row} .state"), "Connected")
        .await;
    page.wait_until(
        "the row shows the connected phone and since when",
        &format!(
            "(() => {{ const r = document.querySelector(\"{row}\"); \
             return r.dataset.state === 'connected' && r.cells[1].innerText === 'Connected' \
             && r.cells[2].innerText === '+{OWN_PHONE}' && r.cells[3].innerText !== ''; }})()"
        ),
    )
    .await;
    users_page.wait_for_text("#conn-state", "Connected").await;
    page.screenshot("admin-sessions").await;

    // Disconnect asks once more, then logs the device out.
    let disconnect = format!("{row} .row-actions button.danger");
    page.click(&disconnect).await;
    page.wait_for_text(&disconnect, "Log out?").await;
    assert_eq!(
        app.companions(OWN_PHONE).await.len(),
        1,
        "one click logged out"
    );
    page.click(&disconnect).await;
    // The state changes at once; the phone goes with the refetch that follows it.
    page.wait_until(
        "the row leaves Connected and no longer shows the phone",
        &format!(
            "(() => {{ const r = document.querySelector(\"{row}\"); \
             return r.dataset.state === 'idle' && r.cells[2].innerText === ''; }})()"
        ),
    )
    .await;
    assert!(
        app.companions(OWN_PHONE).await.is_empty(),
        "the device is still paired"
    );

    // The user's own page hears it too and offers to link again.
    users_page
        .wait_until(
            "the user's page shows the account unlinked",
            "['idle','disconnected'].includes(document.getElementById('conn-state').dataset.state)",
        )
        .await;
    assert!(users_page.is_displayed("#connect-btn").await);
    assert_eq!(users_page.text("#conn-phone").await, "");

    page.assert_not_reloaded().await;
    assert_eq!(page.csp_violations().await, json!([]));
    assert_eq!(
        page.eval("document.getElementById('admin-sessions-error').textContent")
            .await,
        ""
    );
}

#[tokio::test]
async fn a_normal_user_never_sees_the_admin_area() {
    let app = spawn_app().await;
    let user = app.new_account().await;
    let page = logged_in(&app, &user.email).await;
    assert!(!page.is_displayed("#nav-admin").await);
    assert!(!page.text("#nav").await.contains("Admin"));

    // Even typed by hand, the admin address shows the user's own dashboard.
    page.goto("#/admin/users").await;
    page.wait_for_dashboard(&user.email).await;
    assert!(page.is_displayed("#view-home").await);
    assert!(!page.is_displayed("#view-admin").await);
    assert_eq!(
        page.eval("document.getElementById('view-admin').children.length")
            .await,
        0
    );
}

#[tokio::test]
async fn an_admin_creates_searches_promotes_and_deletes_accounts_and_sees_refusals_inline() {
    let app = spawn_app().await;
    let admin = app.new_admin().await;
    for _ in 0..2 {
        app.new_account().await;
    }
    let page = logged_in(&app, &admin.email).await;
    page.goto("#/admin/users").await;
    page.wait_for_text("#admin-users-page", "3 accounts").await;

    // Create an account from the form.
    let email = format!(
        "made-by-admin-{}@example.com",
        uuid::Uuid::new_v4().simple()
    );
    page.fill("#admin-new-email", &email).await;
    page.fill("#admin-new-password", "Weak").await;
    page.click("#admin-user-form button[type=submit]").await;
    page.wait_for_any_text("#admin-new-password-error").await;
    page.fill("#admin-new-password", PASSWORD).await;
    page.click("#admin-user-form button[type=submit]").await;
    page.wait_for_text("#admin-new-result", &email).await;
    page.wait_for_text("#admin-users-page", "4 accounts").await;
    assert_eq!(
        app.login(&email, PASSWORD).await.status(),
        200,
        "the new account cannot log in"
    );

    // Search narrows the list to it; promote it.
    search(&page, "made-by-admin").await;
    page.wait_for_text("#admin-users-page", "1 account").await;
    page.wait_for_text("#admin-users-body tr:only-child .email", &email)
        .await;
    page.click("#admin-users-body tr button[aria-label^='Promote']")
        .await;
    page.wait_for_text("#admin-users-body tr .role", "Admin")
        .await;

    // With a second admin there, the first may step down (after confirming); the page then
    // starts over as a normal user's, without the admin area. The search is still on the new
    // account, so widen it to reach the first admin's row.
    search(&page, "example.com").await;
    page.wait_for_text("#admin-users-page", "4 accounts").await;
    page.screenshot("admin-users").await;
    let step_down = format!(
        "#admin-users-body tr[data-user-id='{}'] button[aria-label^='Demote']",
        admin.id
    );
    page.click(&step_down).await;
    page.wait_for_text(&step_down, "Drop your admin role?")
        .await;
    page.click(&step_down).await;
    page.wait_until(
        "the page starts over without the admin area",
        "document.getElementById('nav-admin').hidden \
         && document.getElementById('view-home').offsetParent !== null",
    )
    .await;
    let (status, _) = app
        .admin_call(reqwest::Method::GET, "/api/admin/users", &admin.token, None)
        .await;
    assert_eq!(status, 403);

    // The new admin demoting itself would leave nobody: refused, and said so in its row.
    let second = logged_in(&app, &email).await;
    second.goto("#/admin/users").await;
    search(&second, &email).await;
    second.wait_for_text("#admin-users-page", "1 account").await;
    let demote = "#admin-users-body tr button[aria-label^='Demote']";
    second.click(demote).await;
    second.wait_for_text(demote, "Drop your admin role?").await;
    second.click(demote).await;
    second
        .wait_for_any_text("#admin-users-body tr .row-error")
        .await;
    assert!(
        second
            .text("#admin-users-body tr .role")
            .await
            .contains("Admin"),
        "the last admin was demoted"
    );

    // Delete needs a second click.
    search(&second, &admin.email).await;
    second.wait_for_text("#admin-users-page", "1 account").await;
    let delete = "#admin-users-body tr button[aria-label^='Delete']";
    second.click(delete).await;
    second.wait_for_text(delete, "Delete for good?").await;
    assert_eq!(app.login(&admin.email, PASSWORD).await.status(), 200);
    second.click(delete).await;
    second
        .wait_for_text("#admin-users-page", "0 accounts")
        .await;
    assert_eq!(app.login(&admin.email, PASSWORD).await.status(), 401);

    // The audit log tells who did it to whom, newest first.
    second.goto("#/admin/audit").await;
    let newest = second
        .wait_for_text("#admin-audit-body tr:first-child", "user.delete")
        .await;
    assert!(
        newest.contains(&admin.email) && newest.contains(&email),
        "{newest}"
    );
    second.screenshot("admin-audit").await;
}
