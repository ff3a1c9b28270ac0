//! A real headless Chromium driven through its WebDriver server (Debian's
//! `chromium` and `chromium-driver`, installed by tests/setup.sh): just the
//! W3C WebDriver calls the portal's tests need, and Chrome's DevTools command
//! to send the authenticating proxy's headers with every request.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::{Value, json};

/// A chromedriver process and one browser session in it; both end on drop.
pub struct Browser {
    http: reqwest::Client,
    base: String,
    session: String,
    driver: Child,
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

fn find(names: &[&str]) -> anyhow::Result<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for name in names {
        for dir in std::env::split_paths(&path) {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return Ok(candidate);
            }
        }
    }
    bail!("none of {names:?} on PATH; tests/setup.sh installs chromium and chromium-driver")
}

impl Browser {
    /// Starts chromedriver and a headless Chromium with a phone-sized window.
    pub async fn start() -> anyhow::Result<Self> {
        let driver_bin = find(&["chromedriver"])?;
        let chromium = find(&["chromium", "chromium-browser"])?;
        let port = free_port()?;
        let driver = Command::new(driver_bin)
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("cannot start chromedriver")?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()?;
        let base = format!("http://127.0.0.1:{port}");
        let mut browser = Self {
            http,
            base,
            session: String::new(),
            driver,
        };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            match browser
                .http
                .get(format!("{}/status", browser.base))
                .send()
                .await
            {
                Ok(r) if r.status().is_success() => break,
                _ if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                _ => bail!("chromedriver did not answer on port {port}"),
            }
        }
        let profile = std::env::temp_dir().join(format!("mutu-chromium-{port}"));
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--window-size=412,915", "--lang=fr-BE", "--no-first-run",
                    format!("--user-data-dir={}", profile.display()),
                ],
            },
        }}});
        let created = browser.call("POST", "/session", Some(caps)).await?;
        browser.session = created["sessionId"]
            .as_str()
            .context("chromedriver returned no session")?
            .to_string();
        browser
            .devtools("Network.enable", json!({}))
            .await
            .context("cannot enable the DevTools network domain")?;
        Ok(browser)
    }

    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> anyhow::Result<Value> {
        let url = format!("{}{path}", self.base);
        let req = match method {
            "GET" => self.http.get(&url),
            "DELETE" => self.http.delete(&url),
            _ => self
                .http
                .post(&url)
                .json(&body.unwrap_or_else(|| json!({}))),
        };
        let resp = req
            .send()
            .await
            .with_context(|| format!("{method} {path}"))?;
        let status = resp.status();
        let value: Value = resp.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            bail!(
                "WebDriver {method} {path}: {status}: {}",
                value["value"]["message"]
            );
        }
        Ok(value["value"].clone())
    }

    fn at(&self, path: &str) -> String {
        format!("/session/{}{path}", self.session)
    }

    /// A Chrome DevTools command, through chromedriver.
    pub async fn devtools(&self, cmd: &str, params: Value) -> anyhow::Result<Value> {
        self.call(
            "POST",
            &self.at("/goog/cdp/execute"),
            Some(json!({"cmd": cmd, "params": params})),
        )
        .await
    }

    /// Sends these headers with every request from now on, as the
    /// authenticating proxy in front of the portal does.
    pub async fn identify(&self, user: &str, groups: &[&str]) -> anyhow::Result<()> {
        self.devtools(
            "Network.setExtraHTTPHeaders",
            json!({"headers": {"X-Forwarded-User": user, "X-Forwarded-Groups": groups.join(",")}}),
        )
        .await?;
        Ok(())
    }

    pub async fn goto(&self, url: &str) -> anyhow::Result<()> {
        self.call("POST", &self.at("/url"), Some(json!({"url": url})))
            .await?;
        Ok(())
    }

    pub async fn url(&self) -> anyhow::Result<String> {
        Ok(self
            .call("GET", &self.at("/url"), None)
            .await?
            .as_str()
            .unwrap_or_default()
            .to_string())
    }

    /// The page's visible text.
    pub async fn text(&self) -> anyhow::Result<String> {
        let body = self.element("body").await?;
        Ok(self
            .call("GET", &self.at(&format!("/element/{body}/text")), None)
            .await?
            .as_str()
            .unwrap_or_default()
            .to_string())
    }

    /// The id of the first element matching the CSS `selector`.
    pub async fn element(&self, selector: &str) -> anyhow::Result<String> {
        let found = self
            .call(
                "POST",
                &self.at("/element"),
                Some(json!({"using": "css selector", "value": selector})),
            )
            .await
            .with_context(|| format!("no element {selector}"))?;
        found
            .as_object()
            .and_then(|o| o.values().next())
            .and_then(Value::as_str)
            .map(str::to_string)
            .with_context(|| format!("no element {selector}"))
    }

    pub async fn fill(&self, selector: &str, text: &str) -> anyhow::Result<()> {
        let id = self.element(selector).await?;
        self.call("POST", &self.at(&format!("/element/{id}/clear")), None)
            .await?;
        self.call(
            "POST",
            &self.at(&format!("/element/{id}/value")),
            Some(json!({"text": text})),
        )
        .await?;
        Ok(())
    }

    pub async fn click(&self, selector: &str) -> anyhow::Result<()> {
        let id = self.element(selector).await?;
        self.call("POST", &self.at(&format!("/element/{id}/click")), None)
            .await?;
        Ok(())
    }

    /// Reloads the page until its text contains `want`, or fails after `timeout`.
    pub async fn wait_text(&self, want: &str, timeout: Duration) -> anyhow::Result<String> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let text = self.text().await.unwrap_or_default();
            if text.contains(want) {
                return Ok(text);
            }
            if tokio::time::Instant::now() >= deadline {
                bail!("the page never said {want:?} in {timeout:?}; it says:\n{text}");
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
            self.call("POST", &self.at("/refresh"), None).await?;
        }
    }

    /// Saves a PNG screenshot of the page to `dir/name.png`.
    pub async fn screenshot(&self, dir: &Path, name: &str) -> anyhow::Result<PathBuf> {
        use base64::Engine as _;
        let shot = self.call("GET", &self.at("/screenshot"), None).await?;
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot.as_str().unwrap_or_default())
            .context("the screenshot is not base64")?;
        std::fs::create_dir_all(dir)?;
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png)?;
        Ok(path)
    }
}

impl Browser {
    /// Ends the session (the browser quits), then the driver.
    pub async fn quit(self) {
        let _ = self.call("DELETE", &self.at(""), None).await;
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Best effort: the driver's death ends the browser too.
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
