//! The portal's router as the proxy and browsers reach it, against a fake
//! Kubernetes API server on 127.0.0.1 that records every call: forms carry
//! their user's token and bring it back; forged, foreign, expired or absent
//! tokens, forms from other sites and smuggled identities are refused before
//! Kubernetes is asked anything; every response has the security headers;
//! every request is logged with its user.

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderValue, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::csrf::{Key, MAX_AGE};
use crate::handlers::{self, App};
use crate::layers::CSP;
use crate::proxy::{GROUPS, USER};
use crate::{Clients, csrf};

const AGENT: &str = "agent@ans.be";
const FORM: &str = "/membres/ans/demander";
const DECIDE: &str = "/approbations/tenant-ans/web";

/// What the fake API server was asked: `METHOD PATH as USER`.
type Seen = Arc<Mutex<Vec<String>>>;

fn tenant() -> Value {
    json!({
        "apiVersion": "hosting.imio.be/v1alpha1", "kind": "MemberTenant",
        "metadata": {"name": "ans"},
        "spec": {"displayName": "Commune d'Ans", "category": "commune", "domains": ["ans.be"],
                 "admins": {"groups": ["ans-admins"]}, "entitlements": {"web": 2}},
        "status": {"namespace": "tenant-ans"},
    })
}

fn pending_request() -> Value {
    json!({
        "apiVersion": "hosting.imio.be/v1alpha1", "kind": "ProvisioningRequestList",
        "metadata": {},
        "items": [{
            "apiVersion": "hosting.imio.be/v1alpha1", "kind": "ProvisioningRequest",
            "metadata": {"name": "web", "namespace": "tenant-ans", "generation": 1},
            "spec": {"product": "web", "hostnames": ["www.ans.be"]},
            "status": {"observedGeneration": 1, "conditions": [{
                "type": "Validated", "status": "True", "reason": "Valid", "message": "",
                "lastTransitionTime": "2025-06-07T08:00:00Z"}]},
        }],
    })
}

/// `value` as a JSON response with `status`.
fn json_response(status: StatusCode, value: &Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        value.to_string(),
    )
        .into_response()
}

/// The fake API server's answer to `request`, recorded in `seen`.
async fn answer(seen: Seen, request: axum::extract::Request) -> Response {
    let method = request.method().to_string();
    let path = request.uri().path().to_string();
    let user = request
        .headers()
        .get("impersonate-user")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-")
        .to_string();
    if let Ok(mut seen) = seen.lock() {
        seen.push(format!("{method} {path} as {user}"));
    }
    let body = axum::body::to_bytes(request.into_body(), 1 << 20)
        .await
        .unwrap_or_default();
    match (method.as_str(), path.as_str()) {
        ("GET", "/apis/hosting.imio.be/v1alpha1/membertenants/ans") => {
            json_response(StatusCode::OK, &tenant())
        }
        ("GET", "/apis/hosting.imio.be/v1alpha1/provisioningrequests") => {
            json_response(StatusCode::OK, &pending_request())
        }
        ("POST", "/apis/hosting.imio.be/v1alpha1/namespaces/tenant-ans/provisioningrequests") => (
            StatusCode::CREATED,
            [(header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response(),
        _ => json_response(
            StatusCode::NOT_FOUND,
            &json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                    "message": "not found", "reason": "NotFound", "code": 404}),
        ),
    }
}

/// The portal's router against a fake API server, and what that server saw.
async fn portal() -> (Router, Arc<App>, Seen) {
    let seen: Seen = Arc::default();
    let record = seen.clone();
    let api = Router::new().fallback(move |r: axum::extract::Request| answer(record.clone(), r));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
    tokio::spawn(async move { axum::serve(listener, api).await });
    let config = kube::Config::new(
        format!("http://{addr}")
            .parse()
            .unwrap_or_else(|e| panic!("{e}")),
    );
    let app = Arc::new(App {
        trusted: BTreeSet::from([IpAddr::from([127, 0, 0, 1])]),
        clients: Clients::new(config.clone()),
        own: kube::Client::try_from(config).unwrap_or_else(|e| panic!("{e}")),
        key: Key::random().unwrap_or_else(|e| panic!("{e}")),
    });
    (handlers::router(app.clone()), app, seen)
}

fn proxy() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 40000))
}

/// A request from the proxy for `user` in `groups` (no identity headers if `None`).
fn request(method: &str, path: &str, who: Option<(&str, &str)>) -> axum::http::request::Builder {
    let mut b = Request::builder()
        .method(method)
        .uri(path)
        .extension(ConnectInfo(proxy()));
    if let Some((user, groups)) = who {
        b = b.header(USER, user).header(GROUPS, groups);
    }
    b
}

/// A form posted from the portal's own pages by the agent.
fn post(path: &str, body: &str) -> Request<Body> {
    request("POST", path, Some((AGENT, "ans-admins")))
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header("sec-fetch-site", "same-origin")
        .body(Body::from(body.to_string()))
        .unwrap_or_else(|e| panic!("{e}"))
}

fn get(path: &str, who: Option<(&str, &str)>) -> Request<Body> {
    request("GET", path, who)
        .body(Body::empty())
        .unwrap_or_else(|e| panic!("{e}"))
}

/// The response of `router` to `request`: its status, headers and text.
async fn send(
    router: &Router,
    request: Request<Body>,
) -> (StatusCode, axum::http::HeaderMap, String) {
    let response = router
        .clone()
        .oneshot(request)
        .await
        .unwrap_or_else(|e| match e {});
    let status = response.status();
    let headers = response.headers().clone();
    let body = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap_or_default();
    (status, headers, String::from_utf8_lossy(&body).into_owned())
}

fn seen(s: &Seen) -> Vec<String> {
    s.lock().map(|s| s.clone()).unwrap_or_default()
}

/// The first form token in `page`.
fn token_in(page: &str) -> String {
    let start = r#"name="jeton" value=""#;
    page.split_once(start)
        .and_then(|(_, rest)| rest.split_once('"'))
        .map(|(token, _)| token.to_string())
        .unwrap_or_else(|| panic!("no token in {page}"))
}

fn assert_secure(what: &str, headers: &axum::http::HeaderMap) {
    for (name, value) in [
        (header::CONTENT_SECURITY_POLICY, CSP),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "same-origin"),
    ] {
        assert_eq!(
            headers.get(&name),
            Some(&HeaderValue::from_static(value)),
            "{what}: {name}"
        );
    }
    assert!(CSP.contains("frame-ancestors 'none'") && CSP.contains("default-src 'none'"));
    assert!(!CSP.contains("unsafe-inline") && !CSP.contains("script-src"));
}

#[tokio::test]
async fn the_request_form_carries_its_users_token_and_posting_it_creates_the_request() {
    let (router, app, api) = portal().await;
    let (status, headers, page) = send(&router, get(FORM, Some((AGENT, "ans-admins")))).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_secure("the form", &headers);
    let token = token_in(&page);
    assert_eq!(app.key.check(AGENT, Some(&token)), Ok(()));
    assert_eq!(
        app.key.check("marie@imio.be", Some(&token)),
        Err(csrf::BadToken::Invalid)
    );

    let (status, headers, page) = send(
        &router,
        post(
            FORM,
            &format!("produit=web&adresse=www.ans.be&jeton={token}"),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{page}");
    assert_eq!(
        headers.get(header::LOCATION),
        Some(&HeaderValue::from_static("/membres/ans/demandes/web"))
    );
    assert_secure("the redirection", &headers);
    let created = "POST /apis/hosting.imio.be/v1alpha1/namespaces/tenant-ans/provisioningrequests as agent@ans.be";
    assert!(seen(&api).iter().any(|s| s == created), "{:?}", seen(&api));
}

#[tokio::test]
async fn a_form_sent_again_to_correct_carries_a_token_again() {
    let (router, app, _) = portal().await;
    let token = app.key.token(AGENT);
    let (status, _, page) = send(
        &router,
        post(FORM, &format!("produit=web&adresse=bad_name&jeton={token}")),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{page}");
    assert!(page.contains("n&#39;est pas une adresse valide"), "{page}");
    assert_eq!(app.key.check(AGENT, Some(&token_in(&page))), Ok(()));
}

#[tokio::test]
async fn the_approvals_forms_carry_the_approvers_token() {
    let (router, app, _) = portal().await;
    let approver = ("marie@imio.be", "mutu-approvers");
    let (status, headers, page) = send(&router, get("/approbations", Some(approver))).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_secure("the approvals", &headers);
    assert_eq!(page.matches("<form").count(), 2, "{page}");
    assert_eq!(page.matches(r#"name="jeton""#).count(), 2, "{page}");
    assert_eq!(
        app.key.check("marie@imio.be", Some(&token_in(&page))),
        Ok(())
    );
}

/// Forms whose token is not a valid one of the agent, with what the refusal says.
fn bad_tokens(app: &App) -> Vec<(&'static str, String, &'static str)> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    let other_run = Key::random().unwrap_or_else(|e| panic!("{e}"));
    vec![
        ("no token", String::new(), "il n&#39;a pas de jeton"),
        (
            "an empty token",
            "jeton=".to_string(),
            "il n&#39;a pas de jeton",
        ),
        (
            "another user's token",
            format!("jeton={}", app.key.token("marie@imio.be")),
            "pas été préparé pour vous",
        ),
        (
            "an expired token",
            format!("jeton={}", app.key.token_at(AGENT, now - MAX_AGE - 10)),
            "a expiré",
        ),
        (
            "a token of another run of the portal",
            format!("jeton={}", other_run.token(AGENT)),
            "pas été préparé pour vous",
        ),
        (
            "a forged token",
            format!("jeton={now}.{}", "0".repeat(64)),
            "pas été préparé pour vous",
        ),
    ]
}

#[tokio::test]
async fn a_request_form_without_a_valid_token_is_refused_before_kubernetes_is_asked() {
    let (router, app, api) = portal().await;
    for (case, token, says) in bad_tokens(&app) {
        let (status, headers, page) = send(
            &router,
            post(FORM, &format!("produit=web&adresse=www.ans.be&{token}")),
        )
        .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{case}: {page}");
        assert!(page.contains("Formulaire refusé"), "{case}: {page}");
        assert!(page.contains(says), "{case}: {page}");
        assert_secure(case, &headers);
    }
    assert_eq!(seen(&api), Vec::<String>::new());
}

#[tokio::test]
async fn a_decision_without_a_valid_token_is_refused_before_kubernetes_is_asked() {
    let (router, app, api) = portal().await;
    for (case, token, says) in bad_tokens(&app) {
        let (status, _, page) =
            send(&router, post(DECIDE, &format!("action=approuver&{token}"))).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{case}: {page}");
        assert!(page.contains(says), "{case}: {page}");
    }
    assert_eq!(seen(&api), Vec::<String>::new());
    // With the agent's token, the decision goes to Kubernetes (which knows no such request).
    let (status, _, page) = send(
        &router,
        post(
            DECIDE,
            &format!("action=approuver&jeton={}", app.key.token(AGENT)),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{page}");
    assert!(page.contains("Cette demande n&#39;existe plus"), "{page}");
    assert!(!seen(&api).is_empty());
}

#[tokio::test]
async fn a_form_from_another_site_or_not_a_form_is_refused_even_with_a_token() {
    let (router, app, api) = portal().await;
    let body = format!("action=approuver&jeton={}", app.key.token(AGENT));
    for site in ["cross-site", "same-site"] {
        let mut r = post(DECIDE, &body);
        r.headers_mut()
            .insert("sec-fetch-site", HeaderValue::from_static(site));
        let (status, _, page) = send(&router, r).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{site}: {page}");
        assert!(page.contains("ne vient pas du portail"), "{site}: {page}");
    }
    // A cross-site `enctype="text/plain"` form, read by no one.
    let mut r = post(DECIDE, &body);
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    let (status, headers, page) = send(&router, r).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{page}");
    assert!(page.contains("Formulaire refusé"), "{page}");
    assert_secure("a text/plain form", &headers);
    assert_eq!(seen(&api), Vec::<String>::new());
}

#[tokio::test]
async fn smuggled_identities_are_refused_with_a_page_that_says_why() {
    let (router, _, api) = portal().await;
    let repeated = {
        let mut r = get(FORM, Some((AGENT, "ans-admins")));
        r.headers_mut()
            .append(GROUPS, HeaderValue::from_static("mutu-approvers"));
        r
    };
    let cases = [
        (
            "a repeated groups header",
            repeated,
            StatusCode::BAD_REQUEST,
            "X-Forwarded-Groups plusieurs fois",
        ),
        (
            "a group smuggled after a semicolon",
            get(FORM, Some((AGENT, "ans-admins;mutu-approvers"))),
            StatusCode::BAD_REQUEST,
            "le nom &quot;ans-admins;mutu-approvers&quot;",
        ),
        (
            "a group smuggled after a space",
            get(FORM, Some((AGENT, "ans-admins mutu-approvers"))),
            StatusCode::BAD_REQUEST,
            "n&#39;est pas un nom accepté",
        ),
        (
            "a group in quotes",
            get(FORM, Some((AGENT, "\"mutu-approvers\""))),
            StatusCode::BAD_REQUEST,
            "n&#39;est pas un nom accepté",
        ),
        (
            "groups in the user header",
            get(FORM, Some(("agent@ans.be,mutu-approvers", ""))),
            StatusCode::BAD_REQUEST,
            "X-Forwarded-User",
        ),
        (
            "a group Kubernetes reserves",
            get(FORM, Some((AGENT, "ans-admins,system:masters"))),
            StatusCode::FORBIDDEN,
            "« system:masters », que Kubernetes se réserve",
        ),
        (
            "no identity",
            get(FORM, None),
            StatusCode::UNAUTHORIZED,
            "connexion de la coopérative",
        ),
    ];
    for (case, r, status, says) in cases {
        let (got, headers, page) = send(&router, r).await;
        assert_eq!(got, status, "{case}: {page}");
        assert!(page.contains(says), "{case}: {page}");
        assert_secure(case, &headers);
    }
    assert_eq!(seen(&api), Vec::<String>::new());
}

#[tokio::test]
async fn every_response_has_the_security_headers() {
    let (router, _, _) = portal().await;
    let (status, headers, _) = send(&router, get("/healthz", None)).await;
    assert_eq!(status, StatusCode::OK);
    assert_secure("/healthz", &headers);
    let (status, headers, _) = send(&router, get("/nulle-part", Some((AGENT, "")))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_secure("a page that does not exist", &headers);
    let (status, headers, _) = send(&router, get(DECIDE, Some((AGENT, "")))).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_secure("a method not allowed", &headers);
    let (status, headers, css) = send(&router, get("/style.css", None)).await;
    assert_eq!(status, StatusCode::OK);
    assert_secure("the stylesheet", &headers);
    assert_eq!(
        headers.get(header::CONTENT_TYPE),
        Some(&HeaderValue::from_static("text/css; charset=utf-8"))
    );
    assert!(css.contains("outline:3px solid"), "{css}");
}

#[tokio::test]
async fn pages_speak_the_language_asked_and_the_switch_keeps_it() {
    let (router, app, api) = portal().await;
    let german = |path: &str| {
        let mut r = get(path, Some((AGENT, "ans-admins")));
        r.headers_mut().insert(
            header::ACCEPT_LANGUAGE,
            HeaderValue::from_static("de-BE,de;q=0.9,fr;q=0.8"),
        );
        r
    };
    // Accept-Language, q-values honoured.
    let (status, headers, page) = send(&router, german(FORM)).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(page.contains(r#"<html lang="de">"#), "{page}");
    assert!(page.contains("<h1>Website beantragen</h1>"), "{page}");
    assert!(
        page.contains(r#"<label for="adresse">Adresse der Website</label>"#),
        "{page}"
    );
    assert!(!page.contains('⟦'), "{page}");
    assert_eq!(
        headers.get(header::CONTENT_LANGUAGE),
        Some(&HeaderValue::from_static("de"))
    );
    assert!(headers.get(header::SET_COOKIE).is_none());
    assert_secure("a German page", &headers);
    // Its form's token is the agent's, whatever the language.
    assert_eq!(app.key.check(AGENT, Some(&token_in(&page))), Ok(()));
    // The switch: the same page in English, the choice kept in a cookie.
    assert!(
        page.contains(
            r#"<a href="/membres/ans/demander?lang=en" hreflang="en" lang="en">English</a>"#
        ),
        "{page}"
    );
    let (status, headers, page) = send(&router, german(&format!("{FORM}?lang=en"))).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(page.contains(r#"<html lang="en">"#), "{page}");
    assert!(page.contains("<h1>Request a site</h1>"), "{page}");
    assert_eq!(
        headers.get(header::SET_COOKIE),
        Some(&HeaderValue::from_static(
            "lang=en; Path=/; Max-Age=31536000; SameSite=Lax; HttpOnly"
        ))
    );
    // The cookie then wins over Accept-Language, on pages and on forms posted.
    let mut r = german("/approbations");
    r.headers_mut()
        .insert(header::COOKIE, HeaderValue::from_static("lang=en"));
    let (_, _, page) = send(&router, r).await;
    assert!(page.contains("<h1>Requests to approve</h1>"), "{page}");
    let mut r = post(FORM, "produit=web&adresse=www.ans.be");
    r.headers_mut()
        .insert(header::COOKIE, HeaderValue::from_static("lang=de"));
    let (status, _, page) = send(&router, r).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{page}");
    assert!(page.contains("<h1>Formular abgelehnt</h1>"), "{page}");
    assert!(page.contains("kein Sicherheitstoken"), "{page}");
    assert_eq!(
        seen(&api).iter().filter(|s| s.starts_with("POST")).count(),
        0
    );
    // Without anything asked: French.
    let (_, headers, page) = send(&router, get(FORM, Some((AGENT, "ans-admins")))).await;
    assert!(page.contains(r#"<html lang="fr">"#), "{page}");
    assert_eq!(
        headers.get(header::CONTENT_LANGUAGE),
        Some(&HeaderValue::from_static("fr"))
    );
}

#[tokio::test]
async fn a_script_in_what_is_sent_is_escaped() {
    let (router, app, api) = portal().await;
    let script = "%3Cscript%3Ealert(1)%3C%2Fscript%3E";
    let (status, _, page) = send(
        &router,
        post(
            FORM,
            &format!(
                "produit=web&adresse={script}&alias={script}&commentaire={script}&jeton={}",
                app.key.token(AGENT)
            ),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{page}");
    assert!(!page.contains("<script"), "{page}");
    // In the error, and in the three fields sent back.
    assert_eq!(
        page.matches("&lt;script&gt;alert(1)&lt;/script&gt;")
            .count(),
        4,
        "{page}"
    );
    let (status, _, page) = send(
        &router,
        get(FORM, Some((AGENT, "<script>alert(1)</script>"))),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{page}");
    assert!(!page.contains("<script"), "{page}");
    assert!(
        page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{page}"
    );
    assert!(!seen(&api).iter().any(|s| s.starts_with("POST")));
}

/// Every log line of the test binary (a global subscriber: a scoped one would
/// miss the lines whose call sites other tests' threads saw first).
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut logs) = self.0.lock() {
            logs.extend_from_slice(buf);
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Logs {
    type Writer = Logs;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// The test binary's logs, captured from the first call on.
fn logs() -> &'static Logs {
    static LOGS: std::sync::OnceLock<Logs> = std::sync::OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = Logs::default();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(logs.clone())
            .with_ansi(false)
            .with_max_level(tracing::Level::INFO)
            .finish();
        tracing::subscriber::set_global_default(subscriber).unwrap_or_else(|e| panic!("{e}"));
        logs
    })
}

impl Logs {
    /// The lines holding every one of `words`.
    fn lines(&self, words: &[&str]) -> Vec<String> {
        let text = self
            .0
            .lock()
            .map(|l| String::from_utf8_lossy(&l).into_owned())
            .unwrap_or_default();
        text.lines()
            .filter(|l| words.iter().all(|w| l.contains(w)))
            .map(str::to_string)
            .collect()
    }
}

#[tokio::test]
async fn every_request_is_logged_once_with_its_user_or_why_there_is_none() {
    let logs = logs();
    let (router, _, _) = portal().await;
    // Paths and users of this test only: other tests log at the same time.
    send(&router, get(FORM, Some(("journal@ans.be", "ans-admins")))).await;
    send(&router, get("/membres/journal-1/sites", None)).await;
    let mut smuggled = get("/membres/journal-2/sites", Some((AGENT, "a")));
    smuggled
        .headers_mut()
        .append(GROUPS, HeaderValue::from_static("mutu-approvers"));
    send(&router, smuggled).await;
    for want in [
        [
            " request ",
            "method=GET",
            "path=/membres/ans/demander",
            "status=200",
            "user=journal@ans.be",
        ],
        [
            " request ",
            "method=GET",
            "path=/membres/journal-1/sites",
            "status=401",
            "no_user=no x-forwarded-user header",
        ],
        [
            " request ",
            "method=GET",
            "path=/membres/journal-2/sites",
            "status=400",
            "no_user=x-forwarded-groups sent more than once",
        ],
    ] {
        let lines = logs.lines(&want);
        assert_eq!(lines.len(), 1, "{want:?} in {lines:#?}");
        assert!(lines[0].contains(" ms="), "{}", lines[0]);
        assert!(lines[0].contains("peer=127.0.0.1"), "{}", lines[0]);
    }
}
