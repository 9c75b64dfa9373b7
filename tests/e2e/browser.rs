//! A real headless Chromium (Debian's `chromium` and `chromium-driver`),
//! driven through chromedriver's W3C WebDriver HTTP API.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{json, Value};

use super::support;

/// The key WebDriver names an element reference by.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

pub struct Browser {
    driver: Child,
    http: reqwest::Client,
    base: String,
    session: String,
}

impl Browser {
    /// Starts chromedriver on a free port and opens one headless session.
    /// Chromium's own background traffic is switched off and every host
    /// but loopback resolves to nothing, so only the page can talk, and
    /// only to us.
    pub async fn start(profile: &Path) -> Browser {
        let port = support::free_port();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Its own group, so Drop can take Chromium down with it.
            .process_group(0)
            .spawn()
            .expect(
                "chromedriver runs (Debian package chromium-driver; scripts/setup.sh installs it)",
            );
        let http = crate::support::http_client();
        let base = format!("http://127.0.0.1:{port}");
        let started = Instant::now();
        while http.get(format!("{base}/status")).send().await.is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "chromedriver did not start"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu",
                    "--disable-dev-shm-usage", "--window-size=1400,1000",
                    "--disable-background-networking", "--disable-component-update",
                    "--disable-sync", "--disable-default-apps", "--no-first-run",
                    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
                    format!("--user-data-dir={}", profile.display()),
                ],
            },
            "goog:loggingPrefs": {"browser": "ALL", "performance": "ALL"},
        }}});
        let mut browser = Browser {
            driver,
            http,
            base,
            session: String::new(),
        };
        let created = browser.call("POST", "/session", capabilities).await;
        browser.session = created["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no WebDriver session: {created}"))
            .to_string();
        browser
    }

    async fn call(&self, method: &str, path: &str, body: Value) -> Value {
        let url = format!("{}{path}", self.base);
        let request = match method {
            "GET" => self.http.get(url),
            "DELETE" => self.http.delete(url),
            _ => self.http.post(url).json(&body),
        };
        let r = request.send().await.expect("chromedriver answers");
        let status = r.status();
        let body: Value = r.json().await.expect("WebDriver JSON");
        assert!(status.is_success(), "{method} {path}: {status} {body}");
        body["value"].clone()
    }

    fn session_path(&self, rest: &str) -> String {
        format!("/session/{}{rest}", self.session)
    }

    pub async fn goto(&self, url: &str) {
        self.call("POST", &self.session_path("/url"), json!({ "url": url }))
            .await;
    }

    /// Runs `script` (a function body; `arguments` holds `args`) in the page.
    pub async fn eval(&self, script: &str, args: Value) -> Value {
        self.call(
            "POST",
            &self.session_path("/execute/sync"),
            json!({ "script": script, "args": args }),
        )
        .await
    }

    /// Polls `script` until it returns something truthy; returns that.
    pub async fn wait_for(&self, what: &str, script: &str, timeout: Duration) -> Value {
        let started = Instant::now();
        loop {
            let v = self.eval(script, json!([])).await;
            let truthy =
                !matches!(&v, Value::Null | Value::Bool(false)) && v != json!(0) && v != json!("");
            if truthy {
                return v;
            }
            assert!(
                started.elapsed() < timeout,
                "timed out waiting for {what}; page: {}",
                self.eval("return document.body.innerText.slice(0, 2000)", json!([]))
                    .await
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn element(&self, css: &str) -> String {
        let found = self
            .call(
                "POST",
                &self.session_path("/element"),
                json!({ "using": "css selector", "value": css }),
            )
            .await;
        found[ELEMENT].as_str().unwrap().to_string()
    }

    /// A real click: WebDriver scrolls to the element and sends the events.
    pub async fn click(&self, css: &str) {
        let id = self.element(css).await;
        self.call(
            "POST",
            &self.session_path(&format!("/element/{id}/click")),
            json!({}),
        )
        .await;
    }

    pub async fn type_into(&self, css: &str, text: &str) {
        let id = self.element(css).await;
        self.call(
            "POST",
            &self.session_path(&format!("/element/{id}/value")),
            json!({ "text": text }),
        )
        .await;
    }

    /// Moves the mouse to (`x`, `y`) CSS pixels of the viewport, as a user
    /// would: the page gets real pointer and mouse events.
    pub async fn move_mouse(&self, x: i64, y: i64) {
        let actions = json!({"actions": [{
            "type": "pointer",
            "id": "mouse",
            "parameters": {"pointerType": "mouse"},
            "actions": [{"type": "pointerMove", "duration": 0, "origin": "viewport", "x": x, "y": y}],
        }]});
        self.call("POST", &self.session_path("/actions"), actions)
            .await;
    }

    /// Resizes the window (a taller one shows a whole page in a screenshot).
    pub async fn resize(&self, width: u32, height: u32) {
        self.call(
            "POST",
            &self.session_path("/window/rect"),
            json!({ "width": width, "height": height }),
        )
        .await;
    }

    pub async fn screenshot(&self, path: &Path) {
        let png = self
            .call("GET", &self.session_path("/screenshot"), json!(null))
            .await;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(png.as_str().unwrap())
            .unwrap();
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }

    /// Every (document, URL) requested since the last call (DevTools
    /// `Network.requestWillBeSent`, so blocked and failed requests count).
    pub async fn requests(&self) -> Vec<(String, String)> {
        let entries = self
            .call(
                "POST",
                &self.session_path("/se/log"),
                json!({ "type": "performance" }),
            )
            .await;
        let mut urls = Vec::new();
        for entry in entries.as_array().unwrap() {
            let message: Value = serde_json::from_str(entry["message"].as_str().unwrap()).unwrap();
            if message["message"]["method"] == "Network.requestWillBeSent" {
                let params = &message["message"]["params"];
                let text = |v: &Value| v.as_str().unwrap_or("").to_string();
                urls.push((
                    text(&params["documentURL"]),
                    text(&params["request"]["url"]),
                ));
            }
        }
        urls
    }

    /// The console since the last call: (level, message).
    pub async fn console(&self) -> Vec<(String, String)> {
        let entries = self
            .call(
                "POST",
                &self.session_path("/se/log"),
                json!({ "type": "browser" }),
            )
            .await;
        entries
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["level"].as_str().unwrap_or("").to_string(),
                    e["message"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect()
    }

    pub async fn close(self) {
        let path = self.session_path("");
        self.call("DELETE", &path, json!(null)).await;
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let group = nix::unistd::Pid::from_raw(-(self.driver.id() as i32));
        let _ = nix::sys::signal::kill(group, nix::sys::signal::Signal::SIGKILL);
        let _ = self.driver.wait();
    }
}
