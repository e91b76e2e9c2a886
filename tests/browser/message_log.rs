//! The message log pages with "Load more" and filters by source and status.

use reqwest::Method;
use serde_json::{Value, json};

use crate::{helpers::spawn_app, page::Page};

const OWN_PHONE: &str = "15550005555";
const FRIEND: &str = "15559990005";
/// One more than the page's page size, and some: two pages.
const FROM_THE_WEB: usize = 22;
const FROM_THE_API: usize = 3;

#[tokio::test]
async fn the_log_pages_with_load_more_and_filters_by_source_and_status() {
    let app = spawn_app().await;
    app.create_phone(FRIEND).await;
    let account = app.new_account().await;
    app.link(&account, OWN_PHONE).await;
    let key = &app.create_api_key(&account).await;
    let mut last = String::new();
    for n in 0..FROM_THE_WEB {
        let sent: Value = app
            .send_web(&account.token, FRIEND, &format!("web message {n}"))
            .await
            .json()
            .await
            .unwrap();
        last = sent["id"].as_str().unwrap().to_owned();
    }
    for n in 0..FROM_THE_API {
        let sent = app
            .request(Method::POST, "/api/send")
            .header("X-Api-Key", key)
            .json(&json!({ "to": FRIEND, "text": format!("api message {n}") }))
            .send()
            .await
            .unwrap();
        assert_eq!(sent.status(), 202);
    }
    app.wait_for_message_status(&account.token, &last, "read")
        .await;

    let page = Page::open(&app).await;
    page.login(&account.email, crate::helpers::PASSWORD).await;
    page.wait_for_dashboard(&account.email).await;
    let rows = "document.querySelectorAll('#log-body tr').length";
    page.wait_until("the first page shows", &format!("{rows} === 20"))
        .await;
    assert_eq!(
        page.text("#log-body tr:first-child .body").await,
        "api message 2"
    );
    assert!(page.is_displayed("#log-more").await);
    page.click("#log-more").await;
    page.wait_until(
        "the second page is added below",
        &format!("{rows} === {}", FROM_THE_WEB + FROM_THE_API),
    )
    .await;
    assert_eq!(
        page.text("#log-body tr:last-child .body").await,
        "web message 0"
    );
    page.wait_until(
        "no more pages",
        "document.getElementById('log-more').hidden",
    )
    .await;

    page.click("#log-source option[value=api]").await;
    page.wait_until(
        "only API messages show",
        &format!("{rows} === {FROM_THE_API}"),
    )
    .await;
    let sources = page
        .eval("[...document.querySelectorAll('#log-body .source')].map(c => c.textContent)")
        .await;
    assert_eq!(sources, json!(["API", "API", "API"]));

    page.click("#log-source option[value='']").await;
    page.click("#log-status option[value=failed]").await;
    page.wait_until(
        "the log says nothing failed",
        &format!("{rows} === 0 && !document.getElementById('log-empty').hidden"),
    )
    .await;
    page.click("#log-status option[value=read]").await;
    page.wait_until("read messages show again", &format!("{rows} === 20"))
        .await;
}
