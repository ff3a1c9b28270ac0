//! `mutu maintenance-page`: the page the public sees while a site is in
//! maintenance. While a site is migrated or restored, mutu points its Ingress
//! at an ExternalName Service naming this server, which answers every request
//! with 503, `Retry-After` and a small page in the visitor's language (French,
//! German or English from `Accept-Language`, French by default), with a line
//! in each other one. The page and its words are the portal crate's
//! (`mutu_portal::maintenance`, templates and translation files embedded in
//! the binary): nothing more to build or to ship. `/healthz` answers 200 for
//! the probes of its Deployment.

use std::net::SocketAddr;

use anyhow::Context as _;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use clap::Args;
use mutu_portal::i18n;
use tracing::{info, warn};

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

/// 503 with the page in the visitor's language. For HEAD requests axum
/// sends the headers only.
async fn page(State(retry_after): State<u64>, headers: HeaderMap) -> Response {
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(host_name)
        .filter(|h| !h.is_empty());
    let accepted: Vec<&str> = headers
        .get_all(header::ACCEPT_LANGUAGE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    let lang = i18n::negotiate(Some(&accepted.join(",")));
    let body = mutu_portal::maintenance::page(lang, host).unwrap_or_else(|e| {
        // Cannot happen with the embedded templates (the portal's tests render
        // them); the status and Retry-After still say it all.
        warn!(error = %e, "maintenance page not rendered");
        String::new()
    });
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [
            (header::RETRY_AFTER, HeaderValue::from(retry_after)),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            ),
            (
                header::CONTENT_LANGUAGE,
                HeaderValue::from_static(lang.code()),
            ),
            (header::VARY, HeaderValue::from_static("Accept-Language")),
        ],
        body,
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
        send_in(addr, method, path, host, None).await
    }

    /// [`send`] with an `Accept-Language` header.
    async fn send_in(
        addr: SocketAddr,
        method: &str,
        path: &str,
        host: Option<&str>,
        accept_language: Option<&str>,
    ) -> Answer {
        let mut request = format!("{method} {path} HTTP/1.1\r\n");
        if let Some(h) = host {
            request.push_str(&format!("Host: {h}\r\n"));
        }
        if let Some(l) = accept_language {
            request.push_str(&format!("Accept-Language: {l}\r\n"));
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
        assert_eq!(a.header("content-language"), Some("fr"));
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
    async fn the_page_speaks_the_visitors_language_with_a_line_in_the_others() {
        let (addr, task) = start(600).await;
        let a = send_in(
            addr,
            "GET",
            "/",
            Some("www.eupen.be"),
            Some("de-BE,de;q=0.9,fr;q=0.8,en;q=0.5"),
        )
        .await;
        assert_eq!(a.status, 503);
        assert_eq!(a.header("retry-after"), Some("600"));
        assert_eq!(a.header("content-language"), Some("de"));
        assert_eq!(a.header("vary"), Some("Accept-Language"));
        assert!(a.body.contains(r#"<html lang="de">"#), "{}", a.body);
        assert!(a.body.contains("<h1>Website in Wartung</h1>"), "{}", a.body);
        assert!(
            a.body
                .contains("Die Website <strong>www.eupen.be</strong> wird gerade"),
            "{}",
            a.body
        );
        assert!(
            a.body
                .contains(r#"<p lang="fr">Le site <strong>www.eupen.be</strong>"#),
            "{}",
            a.body
        );
        assert!(
            a.body
                .contains(r#"<p lang="en">The site <strong>www.eupen.be</strong>"#),
            "{}",
            a.body
        );
        // English by q-value; a language it does not speak is passed over.
        let a = send_in(addr, "GET", "/", None, Some("nl-BE, en;q=0.7, fr;q=0.6")).await;
        assert!(a.body.contains(r#"<html lang="en">"#), "{}", a.body);
        assert!(a.body.contains("<p>This site is being moved"), "{}", a.body);
        assert!(!a.body.contains('⟦'), "{}", a.body);
        task.abort();
    }

    #[tokio::test]
    async fn the_host_is_escaped() {
        let (addr, task) = start(600).await;
        let a = send(addr, "GET", "/", Some("<script>alert(1)</script>.be")).await;
        assert_eq!(a.status, 503);
        assert!(!a.body.contains("<script>"), "{}", a.body);
        assert!(a.body.contains("&lt;script&gt;alert(1)&lt;/script&gt;.be"));
        // In every language's line too.
        assert_eq!(
            a.body
                .matches("&lt;script&gt;alert(1)&lt;/script&gt;.be")
                .count(),
            3,
            "{}",
            a.body
        );
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
