//! A real headless Chromium driven through its WebDriver server (Debian's
//! `chromium` and `chromium-driver`, installed by tests/setup.sh): just the
//! W3C WebDriver calls the portal's tests need (the keyboard through the
//! Actions API among them), Chrome's DevTools command to send the
//! authenticating proxy's headers with every request, and [`Browser::audit`],
//! which runs axe-core (`$MUTU_AXE_JS`, installed by tests/setup.sh) in a
//! page and fails on its serious or critical accessibility violations.

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
    /// axe-core's `axe.min.js`, injected in each page [`Browser::audit`]s.
    axe: String,
}

/// A key of the keyboard, as WebDriver names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Key {
    Tab,
    Enter,
}

impl Key {
    fn code(self) -> &'static str {
        match self {
            Key::Tab => "\u{E004}",
            Key::Enter => "\u{E007}",
        }
    }
}

/// axe-core's accessibility rules, from `$MUTU_AXE_JS`.
fn axe_source() -> anyhow::Result<String> {
    let path = std::env::var_os("MUTU_AXE_JS").context(
        "MUTU_AXE_JS is not set: run tests/setup.sh (it installs axe-core) and export \
         MUTU_AXE_JS=<its node_modules/axe-core/axe.min.js>, as tests/run.sh does",
    )?;
    std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read axe-core at {}", Path::new(&path).display()))
}

/// Runs axe-core (just injected) in the page and answers its serious and
/// critical violations: rule, impact, help and the elements' selectors.
const AXE_RUN: &str = r#"
const done = arguments[arguments.length - 1];
axe.run(document, {resultTypes: ['violations']}).then(
  (r) => done({violations: r.violations
    .filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .map((v) => ({id: v.id, impact: v.impact, help: v.help, helpUrl: v.helpUrl,
                  nodes: v.nodes.map((n) => JSON.stringify(n.target))}))}),
  (e) => done({error: String(e)}));
"#;

/// What the page says in `<html lang>`, and the first text without a
/// translation (the portal writes `⟦key⟧`) with what is around it, if any.
const LANG_AND_MISSING: &str = r#"
const html = document.documentElement.outerHTML;
const at = html.indexOf('\u27e6');
return {lang: document.documentElement.lang,
        missing: at < 0 ? null : html.slice(Math.max(0, at - 120), at + 120)};
"#;

/// The focused element: `#id`, or its tag and text.
const FOCUSED: &str = r#"
const e = document.activeElement;
if (!e || e === document.body) return 'body';
return e.id ? '#' + e.id : e.tagName.toLowerCase() + ':' + (e.textContent || '').trim();
"#;

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
    /// Starts chromedriver and a headless Chromium with a phone-sized window,
    /// asking for pages in French (Belgian first), as the members' agents do.
    pub async fn start() -> anyhow::Result<Self> {
        Self::start_in("fr-BE,fr").await
    }

    /// [`Browser::start`] asking for pages in `languages` (`Accept-Language`,
    /// e.g. `de-BE,de`: the browser gives them decreasing q-values).
    pub async fn start_in(languages: &str) -> anyhow::Result<Self> {
        let axe = axe_source()?;
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
            axe,
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
        let first = languages.split(',').next().unwrap_or_default();
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--window-size=412,915", format!("--lang={first}"), "--no-first-run",
                    format!("--user-data-dir={}", profile.display()),
                ],
                "prefs": {"intl.accept_languages": languages},
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

    /// Runs `script` in the page (WebDriver's execute) and answers its value.
    pub async fn script(&self, script: &str) -> anyhow::Result<Value> {
        self.call(
            "POST",
            &self.at("/execute/sync"),
            Some(json!({"script": script, "args": []})),
        )
        .await
    }

    /// Presses and releases `keys` one after the other (WebDriver's Actions).
    pub async fn press(&self, keys: &[Key]) -> anyhow::Result<()> {
        let codes: Vec<&str> = keys.iter().map(|k| k.code()).collect();
        self.key_actions(&codes).await
    }

    /// Types `text` into the focused element, a key at a time.
    pub async fn type_text(&self, text: &str) -> anyhow::Result<()> {
        let chars: Vec<String> = text.chars().map(String::from).collect();
        let codes: Vec<&str> = chars.iter().map(String::as_str).collect();
        self.key_actions(&codes).await
    }

    async fn key_actions(&self, keys: &[&str]) -> anyhow::Result<()> {
        let actions: Vec<Value> = keys
            .iter()
            .flat_map(|k| {
                [
                    json!({"type": "keyDown", "value": k}),
                    json!({"type": "keyUp", "value": k}),
                ]
            })
            .collect();
        self.call(
            "POST",
            &self.at("/actions"),
            Some(json!({"actions": [{"type": "key", "id": "keyboard", "actions": actions}]})),
        )
        .await?;
        Ok(())
    }

    /// The focused element: `#id` if it has one, else its tag and text
    /// (`a:Mes sites`), `body` if nothing is.
    pub async fn focused(&self) -> anyhow::Result<String> {
        Ok(self
            .script(FOCUSED)
            .await?
            .as_str()
            .unwrap_or_default()
            .to_string())
    }

    /// Presses Tab, and checks that the focus moved to `want` (see
    /// [`Browser::focused`]).
    pub async fn tab_to(&self, want: &str) -> anyhow::Result<()> {
        self.press(&[Key::Tab]).await?;
        let got = self.focused().await?;
        if got != want {
            bail!("Tab went to {got:?}, not {want:?}");
        }
        Ok(())
    }

    /// Keeps a screenshot of the page as `dir/name.png`, then checks it: in
    /// the language `lang` (`<html lang>`), with no text the portal has no
    /// translation for (`⟦key⟧`), and without any serious or critical
    /// violation of axe-core's accessibility rules (each named with its
    /// help, its impact and the elements concerned).
    pub async fn audit(&self, dir: &Path, name: &str, lang: &str) -> anyhow::Result<()> {
        self.screenshot(dir, name).await?;
        let page = self.url().await?;
        let found = self.script(LANG_AND_MISSING).await?;
        if found["lang"].as_str() != Some(lang) {
            bail!("{name} ({page}) is in {:?}, not {lang:?}", found["lang"]);
        }
        if let Some(around) = found["missing"].as_str() {
            bail!("{name} ({page}) shows a text without translation: …{around}…");
        }
        let script = format!("{}\n{AXE_RUN}", self.axe);
        let result = self
            .call(
                "POST",
                &self.at("/execute/async"),
                Some(json!({"script": script, "args": []})),
            )
            .await
            .with_context(|| format!("axe-core in {name} ({page})"))?;
        if let Some(e) = result["error"].as_str() {
            bail!("axe-core failed in {name} ({page}): {e}");
        }
        let violations = result["violations"].as_array().cloned().unwrap_or_default();
        if !violations.is_empty() {
            let report: Vec<String> = violations
                .iter()
                .map(|v| {
                    format!(
                        "- {} ({}): {} <{}>\n    {}",
                        v["id"].as_str().unwrap_or_default(),
                        v["impact"].as_str().unwrap_or_default(),
                        v["help"].as_str().unwrap_or_default(),
                        v["helpUrl"].as_str().unwrap_or_default(),
                        v["nodes"]
                            .as_array()
                            .map(|n| n
                                .iter()
                                .filter_map(Value::as_str)
                                .collect::<Vec<_>>()
                                .join("\n    "))
                            .unwrap_or_default(),
                    )
                })
                .collect();
            bail!(
                "axe-core finds {} serious or critical accessibility violation(s) in {name} ({page}):\n{}",
                violations.len(),
                report.join("\n")
            );
        }
        Ok(())
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
