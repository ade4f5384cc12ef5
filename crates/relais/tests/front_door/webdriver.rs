//! A small WebDriver client (the W3C protocol: JSON over HTTP) for the status page test: Debian's
//! `chromedriver` on a free port driving headless Chromium. Nothing is downloaded: both come from
//! the `chromium` and `chromium-driver` packages (scripts/deps.sh). The session is ended (which
//! closes Chromium) and chromedriver stopped by its PID when the [`Browser`] is dropped.

use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};

use super::support::http;
use crate::common::process::{Daemon, require};
use crate::common::wait::{free_port, wait_until};

/// How long one wait for the page may take.
pub const PAGE_TIMEOUT: Duration = Duration::from_secs(20);

/// Chromium's switches: headless, as root in a container, nothing fetched on its own.
const CHROMIUM_ARGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--no-first-run",
    "--window-size=1300,2600",
];

/// The key under which WebDriver names an element.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A Chromium session through chromedriver.
pub struct Browser {
    /// The WebDriver session id.
    session: String,
    /// chromedriver's port on 127.0.0.1.
    port: u16,
    /// chromedriver, stopped by its PID once the session has ended (see Drop).
    driver: Option<Daemon>,
}

impl Browser {
    /// Starts chromedriver on a free port and opens a session.
    pub fn start() -> Browser {
        require(
            "chromedriver",
            &["--version"],
            "apt-get install chromium chromium-driver (scripts/deps.sh)",
        );
        let port = free_port();
        let mut cmd = Command::new("chromedriver");
        cmd.arg(format!("--port={port}"));
        let driver = Daemon::start("chromedriver", cmd, 0, PAGE_TIMEOUT);
        wait_until("chromedriver to answer", PAGE_TIMEOUT, || {
            std::net::TcpStream::connect(("127.0.0.1", port))
                .ok()
                .map(|_| ())
        });
        let capabilities = json!({
            "capabilities": { "alwaysMatch": {
                "browserName": "chrome",
                "goog:chromeOptions": { "binary": "/usr/bin/chromium", "args": CHROMIUM_ARGS },
            }}
        });
        let mut browser = Browser {
            session: String::new(),
            port,
            driver: Some(driver),
        };
        let answer = browser.call("POST", "/session", Some(capabilities));
        browser.session = answer["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {answer}"))
            .to_string();
        browser
    }

    /// One command; its `value`. Panics on a WebDriver error.
    #[track_caller]
    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        match self.try_call(method, path, body) {
            Ok(v) => v,
            Err(e) => panic!("WebDriver {method} {path}: {e}"),
        }
    }

    fn try_call(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, String> {
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let extra = if body.is_empty() {
            ""
        } else {
            "Content-Type: application/json\r\n"
        };
        let r = http(self.port, method, path, extra, &body);
        let v: Value =
            serde_json::from_str(&r.body).map_err(|e| format!("{e}: {} {}", r.status, r.body))?;
        if r.status != 200 {
            return Err(format!("{}: {}", r.status, v["value"]));
        }
        Ok(v["value"].clone())
    }

    fn at(&self, path: &str) -> String {
        format!("/session/{}{path}", self.session)
    }

    /// Opens a page.
    pub fn go(&self, url: &str) {
        self.call("POST", &self.at("/url"), Some(json!({ "url": url })));
    }

    /// The element a CSS selector finds, if any.
    fn find(&self, css: &str) -> Option<String> {
        let v = self
            .try_call(
                "POST",
                &self.at("/element"),
                Some(json!({ "using": "css selector", "value": css })),
            )
            .ok()?;
        v[ELEMENT].as_str().map(str::to_string)
    }

    /// Runs a command on the element a CSS selector finds, waiting for it; again when the page
    /// replaced the element in between (the queue is redrawn every few seconds).
    #[track_caller]
    fn on_element(&self, css: &str, method: &str, command: &str, body: Option<Value>) -> Value {
        wait_until(&format!("{css} in the page"), PAGE_TIMEOUT, || {
            let e = self.find(css)?;
            let path = self.at(&format!("/element/{e}{command}"));
            self.try_call(method, &path, body.clone()).ok()
        })
    }

    /// Clicks the element a CSS selector finds (waiting for it).
    #[track_caller]
    pub fn click(&self, css: &str) {
        self.on_element(css, "POST", "/click", Some(json!({})));
    }

    /// Replaces the text of an input.
    pub fn type_into(&self, css: &str, text: &str) {
        self.on_element(css, "POST", "/clear", Some(json!({})));
        self.on_element(css, "POST", "/value", Some(json!({ "text": text })));
    }

    /// The visible text of the element a CSS selector finds (waiting for it).
    pub fn text(&self, css: &str) -> String {
        self.on_element(css, "GET", "/text", None)
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Runs a script in the page; what it returns.
    pub fn script(&self, script: &str) -> Value {
        self.call(
            "POST",
            &self.at("/execute/sync"),
            Some(json!({ "script": script, "args": [] })),
        )
    }

    /// Waits until a script returns `true`.
    #[track_caller]
    pub fn wait_true(&self, what: &str, script: &str) {
        wait_until(what, PAGE_TIMEOUT, || {
            (self.script(script) == Value::Bool(true)).then_some(())
        });
    }

    /// A PNG of the window.
    pub fn screenshot(&self) -> Vec<u8> {
        use base64::Engine;
        let v = self.call("GET", &self.at("/screenshot"), None);
        base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap_or_default())
            .expect("a base64 PNG")
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Ending the session closes Chromium; then chromedriver is stopped by its PID.
        if !self.session.is_empty() {
            let _ = self.try_call("DELETE", &format!("/session/{}", self.session), None);
        }
        drop(self.driver.take());
    }
}
