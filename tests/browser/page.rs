//! The dashboard as a test sees it: one browser on one node, with the steps a person takes
//! (fill in, click, wait until something shows) and screenshots.

use std::{
    path::PathBuf,
    time::{Duration, Instant},
};

use serde_json::{Value, json};

use crate::{helpers::TestApp, webdriver::Browser, whatsapp_helpers::PATIENCE};

pub struct Page {
    pub browser: Browser,
    pub base: String,
}

/// Records Content-Security-Policy violations from the first line of every document on, so
/// a test can check that the page never needed anything the policy forbids.
const CSP_RECORDER: &str = "window.__cspViolations = [];\
    document.addEventListener('securitypolicyviolation', e => \
    window.__cspViolations.push(e.violatedDirective + ' ' + e.blockedURI));";

impl Page {
    pub async fn open(app: &TestApp) -> Page {
        Self::open_with(app, &[]).await
    }

    /// Opens the dashboard with `scripts` run before the page's own in every document.
    pub async fn open_with(app: &TestApp, scripts: &[&str]) -> Page {
        Self::open_url_with(&app.address, scripts).await
    }

    /// Opens the dashboard of the node at `address` (`http://host:port`).
    pub async fn open_url(address: &str) -> Page {
        Self::open_url_with(address, &[]).await
    }

    async fn open_url_with(address: &str, scripts: &[&str]) -> Page {
        let browser = Browser::start().await;
        for source in std::iter::once(&CSP_RECORDER).chain(scripts) {
            browser
                .cdp(
                    "Page.addScriptToEvaluateOnNewDocument",
                    json!({ "source": source }),
                )
                .await
                .expect("add an init script");
        }
        browser.goto(&format!("{address}/")).await;
        Page {
            browser,
            base: address.to_owned(),
        }
    }

    pub async fn goto(&self, hash: &str) {
        self.browser.goto(&format!("{}/{hash}", self.base)).await;
    }

    /// Evaluates the JS expression `condition` until it is truthy, and returns its value.
    pub async fn wait_until(&self, what: &str, condition: &str) -> Value {
        let script = format!("try {{ return ({condition}); }} catch (e) {{ return null; }}");
        let deadline = Instant::now() + PATIENCE;
        loop {
            let value = self
                .browser
                .execute(&script, vec![])
                .await
                .unwrap_or(Value::Null);
            let truthy = !matches!(&value, Value::Null | Value::Bool(false))
                && value != json!("")
                && value != json!(0);
            if truthy {
                return value;
            }
            if Instant::now() > deadline {
                self.screenshot("timeout").await;
                panic!("timed out waiting until {what} ({condition})");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Evaluates a JS expression once.
    pub async fn eval(&self, expression: &str) -> Value {
        self.browser
            .execute(&format!("return ({expression});"), vec![])
            .await
            .expect("script runs")
    }

    /// Types `text` into the input `css`, replacing what it held.
    pub async fn fill(&self, css: &str, text: &str) {
        let input = self.browser.find(css).await.expect(css);
        self.browser.clear(&input).await.unwrap();
        self.browser.send_keys(&input, text).await.unwrap();
    }

    /// Clicks the element `css`. Live views re-render: an element found just before its list
    /// was redrawn is stale, so the element is looked up afresh, as a person would.
    pub async fn click(&self, css: &str) {
        let mut attempts = 0;
        loop {
            let element = self.browser.find(css).await;
            let clicked = match &element {
                Ok(element) => self
                    .browser
                    .click(element)
                    .await
                    .map_err(|e| format!("{e:?}")),
                Err(error) => Err(format!("{error:?}")),
            };
            match clicked {
                Ok(()) => return,
                Err(error) if attempts >= 20 => panic!("cannot click {css}: {error}"),
                Err(_) => attempts += 1,
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The element's text as the user sees it (empty when hidden); looked up afresh if the
    /// page redrew it meanwhile.
    pub async fn text(&self, css: &str) -> String {
        let mut attempts = 0;
        loop {
            let element = self.browser.find(css).await;
            let text = match &element {
                Ok(element) => self
                    .browser
                    .text(element)
                    .await
                    .map_err(|e| format!("{e:?}")),
                Err(error) => Err(format!("{error:?}")),
            };
            match text {
                Ok(text) => return text,
                Err(error) if attempts >= 20 => panic!("cannot read {css}: {error}"),
                Err(_) => attempts += 1,
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until the element `css` shows text containing `expected`.
    pub async fn wait_for_text(&self, css: &str, expected: &str) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Ok(element) = self.browser.find(css).await
                && let Ok(text) = self.browser.text(&element).await
                && text.contains(expected)
            {
                return text;
            }
            if Instant::now() > deadline {
                self.screenshot("timeout").await;
                panic!("{css} never showed {expected:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until the element `css` shows any text, and returns it.
    pub async fn wait_for_any_text(&self, css: &str) -> String {
        let css_json = serde_json::to_string(css).unwrap();
        let text = self
            .wait_until(
                &format!("{css} shows text"),
                &format!("document.querySelector({css_json}).innerText.trim()"),
            )
            .await;
        text.as_str().unwrap_or_default().to_owned()
    }

    pub async fn is_displayed(&self, css: &str) -> bool {
        match self.browser.find(css).await {
            Ok(element) => self.browser.is_displayed(&element).await.unwrap_or(false),
            Err(_) => false,
        }
    }

    pub async fn register(&self, email: &str, password: &str) {
        self.goto("#/register").await;
        self.fill("#register-email", email).await;
        self.fill("#register-password", password).await;
        self.click("#register-form button[type=submit]").await;
    }

    pub async fn login(&self, email: &str, password: &str) {
        self.goto("#/login").await;
        self.fill("#login-email", email).await;
        self.fill("#login-password", password).await;
        self.click("#login-form button[type=submit]").await;
    }

    /// Waits until the logged-in dashboard shows, for `email`, with live updates connected.
    pub async fn wait_for_dashboard(&self, email: &str) {
        self.wait_for_text("#user-email", email).await;
        self.wait_until(
            "the websocket is live",
            "document.getElementById('live-mode').dataset.mode === 'live'",
        )
        .await;
    }

    /// Waits for a QR code image other than `previous` and returns the code it encodes.
    pub async fn wait_for_qr(&self, previous: Option<&str>) -> String {
        let previous = serde_json::to_string(&previous).unwrap();
        let code = self
            .wait_until(
                "a QR code shows",
                &format!(
                    "(() => {{ const qr = document.getElementById('qr'); \
                     return qr.offsetParent !== null && qr.querySelector('svg path') \
                     && qr.dataset.code !== {previous} && qr.dataset.code; }})()"
                ),
            )
            .await;
        code.as_str().unwrap().to_owned()
    }

    pub async fn state(&self) -> String {
        self.eval("document.getElementById('conn-state').dataset.state")
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// Sets a marker in the page's JS world: it survives anything but a reload.
    pub async fn mark_no_reload(&self) {
        self.eval("window.__noReload = true").await;
    }

    pub async fn assert_not_reloaded(&self) {
        assert_eq!(
            self.eval("window.__noReload === true").await,
            true,
            "the page reloaded"
        );
    }

    pub async fn csp_violations(&self) -> Value {
        self.eval("window.__cspViolations").await
    }

    /// Saves the viewport to `target/screenshots/<name>.png`.
    pub async fn screenshot(&self, name: &str) {
        self.browser.screenshot(&screenshot_path(name)).await;
    }
}

pub fn screenshot_path(name: &str) -> PathBuf {
    // Integration tests get `target/tmp`; the screenshots go beside it.
    let tmp = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let target = tmp.parent().map(PathBuf::from).unwrap_or(tmp);
    target.join("screenshots").join(format!("{name}.png"))
}
