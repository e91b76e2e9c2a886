//! Admin analytics in a real browser: the figures shown for today are the messages the test
//! sent through the simulator, the charts are drawn, and the CSV export downloads.

use serde_json::{Value, json};

use crate::{
    helpers::{PASSWORD, spawn_app},
    page::Page,
};

const OWN_PHONE: &str = "15550004444";
const FRIEND: &str = "15559990004";

/// Catches the CSV the page hands to the browser, instead of letting it download.
const CATCH_DOWNLOADS: &str = "window.__csv = null;\
    const create = URL.createObjectURL;\
    URL.createObjectURL = blob => { blob.text().then(text => { window.__csv = text; }); return create(blob); };\
    const click = HTMLAnchorElement.prototype.click;\
    HTMLAnchorElement.prototype.click = function () { if (this.download) { window.__csvName = this.download; return; } return click.call(this); };";

#[tokio::test]
async fn analytics_for_today_show_the_messages_sent_and_delivered() {
    let app = spawn_app().await;
    app.create_phone(FRIEND).await;
    let admin = app.new_admin().await;
    let sender = app.new_account().await;
    app.link(&sender, OWN_PHONE).await;
    let key = app.create_api_key(&sender).await;

    // Three from the dashboard's API, one with an API key; all delivered.
    let mut ids = Vec::new();
    for n in 0..3 {
        let sent: Value = app
            .send_web(&sender.token, FRIEND, &format!("analytics {n}"))
            .await
            .json()
            .await
            .unwrap();
        ids.push(sent["id"].as_str().unwrap().to_owned());
    }
    let by_key: Value = app
        .send_with_key(&key, FRIEND, "analytics by key")
        .await
        .json()
        .await
        .unwrap();
    ids.push(by_key["id"].as_str().unwrap().to_owned());
    for id in &ids {
        app.wait_for_message_status(&sender.token, id, "delivered")
            .await;
    }

    let page = Page::open_with(&app, &[CATCH_DOWNLOADS]).await;
    page.login(&admin.email, PASSWORD).await;
    page.wait_for_dashboard(&admin.email).await;
    page.goto("#/admin/analytics").await;
    let today = chrono::Utc::now().date_naive().to_string();
    page.eval(&format!(
        "(() => {{ document.getElementById('admin-from').value = '{today}'; \
         document.getElementById('admin-until').value = '{today}'; }})()"
    ))
    .await;
    page.click("#admin-range button[type=submit]").await;
    page.wait_until(
        "today's report shows",
        &format!("document.querySelector('#admin-analytics [data-loaded]').dataset.loaded === '{today}/{today}'"),
    )
    .await;

    assert_eq!(page.text("#admin-total").await, "4");
    assert_eq!(page.text("#admin-delivered").await, "4");
    assert_eq!(page.text("#admin-failed").await, "0");
    assert_eq!(page.text("#admin-rate").await, "100.0 %");
    assert_ne!(
        page.text("#admin-median").await,
        "—",
        "no median delivery time"
    );
    let top = page
        .eval("[...document.querySelectorAll('#admin-top-body tr:first-child td')].map(td => td.textContent)")
        .await;
    assert_eq!(top, json!([sender.email, "4", "3", "1", "0", "100.0 %"]));
    assert_eq!(
        page.eval("document.querySelectorAll('#admin-top-body tr').length")
            .await,
        1
    );
    // Today's stacked bar is there, with the count in its title.
    let bars = page
        .eval("[...document.querySelectorAll('#chart-per-day rect title')].map(t => t.textContent)")
        .await;
    let bars: Vec<String> = serde_json::from_value(bars).unwrap();
    let delivered: u32 = bars
        .iter()
        .filter(|t| t.contains("Delivered") || t.contains("Read"))
        .map(|t| t.rsplit(": ").next().unwrap().parse::<u32>().unwrap())
        .sum();
    assert_eq!(delivered, 4, "{bars:?}");
    page.screenshot("admin-analytics").await;

    page.click("#admin-csv").await;
    let csv = page
        .wait_until("the CSV is handed over", "window.__csv")
        .await;
    let csv = csv.as_str().unwrap();
    let mut lines = csv.lines();
    assert!(lines.next().unwrap().starts_with("day,messages,"), "{csv}");
    assert!(
        lines.next().unwrap().starts_with(&format!("{today},4,")),
        "{csv}"
    );
    assert_eq!(
        page.eval("window.__csvName").await,
        json!(format!("botwave-{today}-{today}.csv"))
    );
    assert_eq!(page.csp_violations().await, json!([]));
}
