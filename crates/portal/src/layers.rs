//! What every request and response gets, whatever answered it (a page, a
//! refusal, a redirection, axum's own 404 or 405): its language, the
//! security headers, and one log line naming the user.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::Response;

use crate::handlers::App;
use crate::i18n::{self, Lang};

/// The pages' Content-Security-Policy: nothing but the portal's own
/// stylesheet, no script at all, never in a frame, no `<base>`. (No
/// `form-action`: a form posted once the proxy's session has expired is
/// redirected to the identity provider, which it would block.)
pub const CSP: &str =
    "default-src 'none'; style-src 'self'; base-uri 'none'; frame-ancestors 'none'";

/// The headers every response carries.
const HEADERS: [(HeaderName, &str); 5] = [
    (header::CONTENT_SECURITY_POLICY, CSP),
    // For browsers that do not know `frame-ancestors`.
    (header::X_FRAME_OPTIONS, "DENY"),
    (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    (header::REFERRER_POLICY, "same-origin"),
    (
        HeaderName::from_static("cross-origin-resource-policy"),
        "same-origin",
    ),
];

/// Adds the security headers to the response.
pub async fn secure(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    for (name, value) in HEADERS {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

/// Logs one line per request: method, path (the URI's path, which holds no
/// control character), status, duration, the peer, and the user (or why
/// there is none, its names escaped). The health probe's only at debug level.
pub async fn log(State(app): State<Arc<App>>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0);
    let user = match peer {
        Some(peer) => {
            crate::identity(&app.trusted, peer, request.headers()).map_err(|e| e.to_string())
        }
        None => Err("no peer address".to_string()),
    };
    let response = next.run(request).await;
    let status = response.status().as_u16();
    let ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let peer = peer.map(|p| p.ip().to_string()).unwrap_or_default();
    if path == "/healthz" {
        tracing::debug!(%method, %path, status, ms, %peer, "request");
        return response;
    }
    match user {
        Ok(id) => tracing::info!(%method, %path, status, ms, %peer, user = %id.user, "request"),
        Err(why) => tracing::info!(%method, %path, status, ms, %peer, no_user = %why, "request"),
    }
    response
}

/// The name of the query parameter that switches the language (`?lang=de`,
/// the links of every page's language switch) and of the cookie that keeps it.
pub const LANG: &str = "lang";

/// How long the `lang` cookie keeps the language chosen: a year.
const LANG_MAX_AGE: u32 = 365 * 24 * 3600;

/// A request's language, and where its page's language switch points.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ui {
    pub lang: Lang,
    /// The path the switch's links add `?lang=..` to.
    pub switch_to: String,
}

/// The language of `?lang=..` in a query, if it is one the portal speaks.
fn query_lang(query: Option<&str>) -> Option<Lang> {
    query?
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(name, _)| *name == LANG)
        .and_then(|(_, code)| Lang::from_code(code))
}

/// The language of the first `lang` cookie the portal speaks.
fn cookie_lang(headers: &HeaderMap) -> Option<Lang> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .filter(|(name, _)| *name == LANG)
        .find_map(|(_, code)| Lang::from_code(code.trim()))
}

/// The language a request asks for: `?lang=..` on a page (a GET), else the
/// `lang` cookie, else `Accept-Language`, else French.
fn chosen_lang(method: &Method, query: Option<&str>, headers: &HeaderMap) -> (Lang, bool) {
    let asked = matches!(*method, Method::GET | Method::HEAD)
        .then(|| query_lang(query))
        .flatten();
    if let Some(lang) = asked {
        return (lang, true);
    }
    let lang = cookie_lang(headers).unwrap_or_else(|| {
        let accepted: Vec<&str> = headers
            .get_all(header::ACCEPT_LANGUAGE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        i18n::negotiate(Some(&accepted.join(",")))
    });
    (lang, false)
}

/// Where the language switch of the page answering `method` `path` points:
/// that page again, or, for a decision posted (whose address answers no
/// GET), the approvals. Never anything but a path of the portal (not
/// `//host`, which a browser would read as another site).
fn switch_to(method: &Method, path: &str) -> String {
    let own = path.starts_with('/') && !path[1..].starts_with(['/', '\\']);
    if !own {
        return "/".to_string();
    }
    if *method == Method::POST && path.starts_with("/approbations/") {
        return "/approbations".to_string();
    }
    path.to_string()
}

/// Chooses the request's language ([`Ui`], for the handlers). A language
/// chosen with the switch (`?lang=de` on a page) is kept in the `lang`
/// cookie: a preference only, read by nothing but the choice of words (not
/// an identity or a form's proof, which stay the proxy's headers and the
/// form's token), so `SameSite=Lax` and no `Secure` (the portal does not know
/// whether its proxy speaks TLS; the words of a page are no secret). Pages
/// say their language (`Content-Language`) and vary with what chose it.
pub async fn language(mut request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let (lang, switched) = chosen_lang(&method, request.uri().query(), request.headers());
    let ui = Ui {
        lang,
        switch_to: switch_to(&method, request.uri().path()),
    };
    request.extensions_mut().insert(ui);
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    let html = headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/html"));
    if html {
        headers.insert(
            header::CONTENT_LANGUAGE,
            HeaderValue::from_static(lang.code()),
        );
        headers.append(
            header::VARY,
            HeaderValue::from_static("Accept-Language, Cookie"),
        );
    }
    if switched {
        let cookie = format!(
            "{LANG}={}; Path=/; Max-Age={LANG_MAX_AGE}; SameSite=Lax; HttpOnly",
            lang.code()
        );
        if let Ok(cookie) = HeaderValue::from_str(&cookie) {
            headers.append(header::SET_COOKIE, cookie);
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(HeaderName, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (name, value) in pairs {
            h.append(
                name,
                HeaderValue::from_str(value).unwrap_or_else(|e| panic!("{e}")),
            );
        }
        h
    }

    #[test]
    fn the_switch_wins_then_the_cookie_then_accept_language() {
        let get = Method::GET;
        let german = headers(&[(header::ACCEPT_LANGUAGE, "de-BE,de;q=0.9")]);
        assert_eq!(
            chosen_lang(&get, None, &HeaderMap::new()),
            (Lang::Fr, false)
        );
        assert_eq!(chosen_lang(&get, None, &german), (Lang::De, false));
        assert_eq!(
            chosen_lang(&get, Some("fait=x&lang=en"), &german),
            (Lang::En, true)
        );
        // A language the portal does not speak, or another parameter, is no switch.
        assert_eq!(
            chosen_lang(&get, Some("lang=nl"), &german),
            (Lang::De, false)
        );
        assert_eq!(
            chosen_lang(&get, Some("xlang=en"), &german),
            (Lang::De, false)
        );
        let cookie = headers(&[
            (header::ACCEPT_LANGUAGE, "de"),
            (header::COOKIE, "_oauth2_proxy=abc; lang=en"),
        ]);
        assert_eq!(chosen_lang(&get, None, &cookie), (Lang::En, false));
        assert_eq!(
            chosen_lang(&get, Some("lang=fr"), &cookie),
            (Lang::Fr, true)
        );
        // Forms posted keep the cookie's language; a query does not switch them.
        assert_eq!(
            chosen_lang(&Method::POST, Some("lang=fr"), &cookie),
            (Lang::En, false)
        );
        let bad = headers(&[
            (header::ACCEPT_LANGUAGE, "en"),
            (header::COOKIE, "lang=xx"),
            (header::COOKIE, "lang=de"),
        ]);
        assert_eq!(chosen_lang(&get, None, &bad), (Lang::De, false));
        let several = headers(&[
            (header::ACCEPT_LANGUAGE, "nl"),
            (header::ACCEPT_LANGUAGE, "de;q=0.5, en;q=0.9"),
        ]);
        assert_eq!(chosen_lang(&get, None, &several), (Lang::En, false));
    }

    #[test]
    fn the_switch_points_back_to_the_page_or_to_the_approvals() {
        assert_eq!(
            switch_to(&Method::GET, "/membres/ans/sites"),
            "/membres/ans/sites"
        );
        assert_eq!(
            switch_to(&Method::POST, "/membres/ans/demander"),
            "/membres/ans/demander"
        );
        assert_eq!(
            switch_to(&Method::POST, "/approbations/tenant-ans/web"),
            "/approbations"
        );
        for other_site in ["//evil.example", "/\\evil.example", "evil", ""] {
            assert_eq!(switch_to(&Method::GET, other_site), "/", "{other_site}");
        }
    }
}
