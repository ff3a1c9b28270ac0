//! `mutu maintenance-page`: the page the public sees while a site is in
//! maintenance. While a site is migrated or restored, mutu points its Ingress
//! at an ExternalName Service naming this server, which answers every request
//! with 503, `Retry-After` and a small page in French (and a line in English).
//! `/healthz` answers 200 for the probes of its Deployment.

use std::net::SocketAddr;

use anyhow::Context as _;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use clap::Args;
use mutu_portal::html::esc as escape;
use tracing::info;

#[derive(Args)]
pub struct MaintenanceArgs {
    /// Address the page is served on.
    #[arg(long, env = "MUTU_MAINTENANCE_LISTEN", default_value = "0.0.0.0:8080")]
    listen: SocketAddr,
    /// Seconds after which clients are told to try again (`Retry-After`).
    #[arg(long, value_name = "SECONDS", default_value_t = 600)]
    retry_after: u64,
}

/// Serves the maintenance page until SIGTERM or Ctrl-C.
pub async fn run(args: MaintenanceArgs) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let bound = listener.local_addr()?;
    info!(addr = %bound, retry_after = args.retry_after, "serving the maintenance page");
    axum::serve(listener, router(args.retry_after))
        .with_graceful_shutdown(crate::operator::shutdown_signal())
        .await
        .context("the maintenance page server stopped")?;
    info!("stopped cleanly");
    Ok(())
}

/// The server's routes: `/healthz` (GET and HEAD) answers 200 `ok`; every
/// other request, whatever its path or method, gets the maintenance page.
pub fn router(retry_after: u64) -> Router {
    Router::new()
        .route("/healthz", get(healthz).fallback(page))
        .fallback(page)
        .with_state(retry_after)
}

async fn healthz() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        "ok",
    )
        .into_response()
}

/// 503 with the page. For HEAD requests axum sends the headers only.
async fn page(State(retry_after): State<u64>, headers: HeaderMap) -> Response {
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(host_name)
        .filter(|h| !h.is_empty());
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [
            (header::RETRY_AFTER, HeaderValue::from(retry_after)),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            ),
        ],
        html(host),
    )
        .into_response()
}

/// The name part of a `Host` header: without its port, at most 253 characters
/// (the longest DNS name).
fn host_name(raw: &str) -> &str {
    let raw = raw.trim();
    let name = if raw.starts_with('[') {
        // An IPv6 literal, `[::1]:8080`: keep the brackets, drop the port.
        raw.find(']').map_or(raw, |i| &raw[..=i])
    } else {
        match raw.rsplit_once(':') {
            Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
            _ => raw,
        }
    };
    match name.char_indices().nth(253) {
        Some((i, _)) => &name[..i],
        None => name,
    }
}

/// The page: self-contained (no script, no external resource), system fonts,
/// readable on a phone and in dark mode.
fn html(host: Option<&str>) -> String {
    let (subject, subject_en) = match host {
        Some(h) => {
            let h = escape(h);
            (
                format!("Le site <strong>{h}</strong>"),
                format!("The site <strong>{h}</strong>"),
            )
        }
        None => ("Ce site".to_owned(), "This site".to_owned()),
    };
    format!(
        r#"<!DOCTYPE html>
<html lang="fr">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<title>Site en maintenance</title>
<style>
:root {{ color-scheme: light dark; }}
body {{
  margin: 0;
  padding: 1.5rem;
  font-family: system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
  font-size: 1.125rem;
  line-height: 1.6;
  color: #1a1a1a;
  background: #ffffff;
}}
main {{ max-width: 36rem; margin: 10vh auto 0; }}
h1 {{ font-size: 1.75rem; line-height: 1.25; margin: 0 0 1rem; }}
strong {{ overflow-wrap: anywhere; }}
.en {{ margin-top: 2rem; padding-top: 1rem; border-top: 1px solid #767676; color: #404040; font-size: 1rem; }}
@media (prefers-color-scheme: dark) {{
  body {{ color: #f0f0f0; background: #121212; }}
  .en {{ color: #c8c8c8; }}
}}
</style>
</head>
<body>
<main>
<h1>Site en maintenance</h1>
<p>{subject} est en cours de déplacement ou de mise à jour par la coopérative. Il sera de retour dans quelques minutes.</p>
<p>Merci de réessayer un peu plus tard.</p>
<p class="en" lang="en">{subject_en} is being moved or updated and will be back in a few minutes. Please try again later.</p>
</main>
</body>
</html>
"#
    )
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    struct Answer {
        status: u16,
        /// Header names in lower case.
        headers: Vec<(String, String)>,
        body: String,
    }

    impl Answer {
        fn header(&self, name: &str) -> Option<&str> {
            self.headers
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
        }
    }

    /// Serves the router on 127.0.0.1 and returns its address and task.
    async fn start(retry_after: u64) -> (SocketAddr, tokio::task::JoinHandle<()>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, router(retry_after)).await;
        });
        (addr, task)
    }

    /// Sends one raw HTTP/1.1 request (`Connection: close`) and reads the
    /// whole answer.
    async fn send(addr: SocketAddr, method: &str, path: &str, host: Option<&str>) -> Answer {
        let mut request = format!("{method} {path} HTTP/1.1\r\n");
        if let Some(h) = host {
            request.push_str(&format!("Host: {h}\r\n"));
        }
        request.push_str("Connection: close\r\n\r\n");
        let exchange = async {
            let mut stream = tokio::net::TcpStream::connect(addr).await?;
            stream.write_all(request.as_bytes()).await?;
            let mut raw = Vec::new();
            stream.read_to_end(&mut raw).await?;
            std::io::Result::Ok(raw)
        };
        let raw = tokio::time::timeout(Duration::from_secs(10), exchange)
            .await
            .unwrap_or_else(|_| panic!("no answer to {method} {path} within 10s"))
            .unwrap_or_else(|e| panic!("{e}"));
        let raw = String::from_utf8(raw).unwrap_or_else(|e| panic!("{e}"));
        let (head, body) = raw
            .split_once("\r\n\r\n")
            .unwrap_or_else(|| panic!("no end of headers in {raw:?}"));
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap_or_default();
        let status = status_line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        Answer {
            status,
            headers,
            body: body.to_owned(),
        }
    }

    #[tokio::test]
    async fn every_page_is_a_503_naming_the_site() {
        let (addr, task) = start(600).await;
        let a = send(addr, "GET", "/some/page", Some("deliberations.mons.be")).await;
        assert_eq!(a.status, 503);
        assert_eq!(a.header("retry-after"), Some("600"));
        assert_eq!(a.header("cache-control"), Some("no-store"));
        assert_eq!(a.header("content-type"), Some("text/html; charset=utf-8"));
        assert!(a.body.contains(r#"<html lang="fr">"#), "{}", a.body);
        assert!(a.body.contains("<title>Site en maintenance</title>"));
        assert!(a.body.contains("<h1>Site en maintenance</h1>"));
        assert!(a.body.contains(r#"name="viewport""#));
        assert!(a.body.contains("<strong>deliberations.mons.be</strong>"));
        assert!(!a.body.contains("<script"));

        // Any method, any path, the port of the Host left out.
        let a = send(addr, "POST", "/", Some("www.namur.be:8080")).await;
        assert_eq!(a.status, 503);
        assert!(a.body.contains("<strong>www.namur.be</strong>"));

        // Without a Host (HTTP/1.0 style), a generic sentence.
        let a = send(addr, "GET", "/", None).await;
        assert_eq!(a.status, 503);
        assert!(a.body.contains("Ce site est en cours"));
        task.abort();
    }

    #[tokio::test]
    async fn the_host_is_escaped() {
        let (addr, task) = start(600).await;
        let a = send(addr, "GET", "/", Some("<script>alert(1)</script>.be")).await;
        assert_eq!(a.status, 503);
        assert!(!a.body.contains("<script>"), "{}", a.body);
        assert!(a.body.contains("&lt;script&gt;alert(1)&lt;/script&gt;.be"));
        task.abort();
    }

    #[tokio::test]
    async fn head_has_the_headers_but_no_body() {
        let (addr, task) = start(120).await;
        let a = send(addr, "HEAD", "/some/page", Some("deliberations.mons.be")).await;
        assert_eq!(a.status, 503);
        assert_eq!(a.header("retry-after"), Some("120"));
        assert_eq!(a.header("cache-control"), Some("no-store"));
        assert_eq!(a.header("content-type"), Some("text/html; charset=utf-8"));
        assert_eq!(a.body, "");
        task.abort();
    }

    #[tokio::test]
    async fn healthz_is_ok() {
        let (addr, task) = start(600).await;
        let a = send(addr, "GET", "/healthz", Some("10.0.0.1:8080")).await;
        assert_eq!(a.status, 200);
        assert_eq!(a.body, "ok");
        let a = send(addr, "HEAD", "/healthz", None).await;
        assert_eq!(a.status, 200);
        assert_eq!(a.body, "");
        task.abort();
    }

    #[test]
    fn host_names_lose_their_port() {
        assert_eq!(host_name("mons.be"), "mons.be");
        assert_eq!(host_name("mons.be:443"), "mons.be");
        assert_eq!(host_name("[::1]:8080"), "[::1]");
        assert_eq!(host_name("[::1]"), "[::1]");
        assert_eq!(host_name(&"a".repeat(300)).len(), 253);
    }
}
