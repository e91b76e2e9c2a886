//! `botwave demo`: the page offers "Scan with the simulated phone", and that button alone links
//! the account, through the node's demo-scan endpoint.

use botwave::startup::Application;
use botwave_wa_sim::{SimConfig, Simulator};

use crate::{common::TestDatabase, page::Page};

/// The phone number the node's demo scan uses.
const DEMO_PHONE: &str = "15550001111";

#[tokio::test]
async fn in_demo_mode_the_simulated_phone_scans_from_the_page() {
    // A demo node: like the API suite's node, but built the way `botwave demo` builds it.
    let db = TestDatabase::create().await;
    let sim = Simulator::start(SimConfig::default()).await.unwrap();
    let settings = crate::helpers::node_settings(&db, &sim);
    let node = Application::build_demo(&settings, sim.control_url())
        .await
        .unwrap();
    let address = format!("http://{}", node.local_addr());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(node.run_until(async {
        let _ = stopped.await;
    }));

    let page = Page::open_url(&address).await;
    let email = format!("demo-{}@example.com", uuid::Uuid::new_v4().simple());
    page.register(&email, crate::flow::PASSWORD).await;
    page.wait_for_dashboard(&email).await;
    assert!(
        !page.is_displayed("#demo-scan-btn").await,
        "a scan button with nothing to scan"
    );
    page.click("#connect-btn").await;
    page.wait_for_qr(None).await;
    assert!(page.is_displayed("#demo-scan-btn").await);
    page.click("#demo-scan-btn").await;
    page.wait_for_text("#conn-state", "Connected").await;
    page.wait_for_text("#conn-phone", &format!("+{DEMO_PHONE}"))
        .await;
    assert!(!page.is_displayed("#demo-scan-btn").await);

    drop(page);
    let _ = stop.send(());
    running.await.unwrap();
}
