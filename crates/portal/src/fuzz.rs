//! Fuzzing of what the portal reads from a request (inside the crate: its
//! forms, pages and router are its own): form bodies as the agent's browser
//! sends them, the pages shown with what members wrote in their resources,
//! and whole requests (method, path, query, identity headers, cookies,
//! languages, form and token) through the router, against a fake Kubernetes
//! API server serving resources full of markup. Nothing panics, no page
//! carries markup of its own values, no page answers with an internal error,
//! and no forged or foreign form writes anything.
//!
//! Each target runs its corpus (`tests/fuzz-corpus/<target>/`) first, then
//! `MUTU_FUZZ_CASES` random cases.

#[path = "../../../tests/fuzz-corpus/harness.rs"]
mod harness;
#[path = "../../../tests/fuzz-corpus/resources.rs"]
mod resources;

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, OnceLock};

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Form, FromRequest};
use axum::http::{HeaderValue, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use mutu_api::common::is_dns_name;
use mutu_api::provisioning::{Language, RequestReason};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::csrf::Key;
use crate::form::{self, AskForm, Invalid};
use crate::handlers::{self, App};
use crate::html::{self, Frame, Title};
use crate::i18n::Lang;
use crate::layers::CSP;
use crate::model::{
    Checks, Fulfilment, Member, MemberLink, ProductNames, Request as Asked, Site, SiteState,
    Verdict,
};
use crate::proxy::{GROUPS, USER};
use crate::{Clients, maintenance, views};
use harness::{corpus_lines, fuzz};
use resources::{pick, weird};

/// What a member or a visitor may write to break a page out of its markup.
const HOSTILE: &[&str] = &[
    "<script>alert(1)</script>",
    "\"><img src=x onerror=alert(1)>",
    "' onfocus='alert(1)' autofocus='",
    "x onmouseover=alert(1)",
    "javascript:alert(1)",
    "</textarea><script>alert(1)</script>",
    "</title><script>alert(1)</script>",
    "<!--",
    "-->",
    "<![CDATA[x]]>",
    "<svg/onload=alert(1)>",
    "<a href=//evil.example>x</a>",
    "{{ 7 * 7 }}",
    "{% include 'layout.html' %}",
    "{ $user }",
    "&lt;script&gt;",
    "&#60;script&#62;",
    "\u{0}",
    "\u{202e}evil",
    "\r\nSet-Cookie: lang=de",
    "//evil.example",
    "/\\evil.example",
    "..",
    "ans.be\"",
    "agent@ans.be",
    "system:masters",
];

fn hostile() -> BoxedStrategy<String> {
    prop_oneof![3 => pick(HOSTILE), 2 => weird()].boxed()
}

// ---------------------------------------------------------------------------
// Markup: what the templates write, and nothing a value brings.

struct Markup {
    tags: BTreeSet<String>,
    attributes: BTreeSet<String>,
}

/// The tags and attributes of the templates' own markup.
fn markup() -> &'static Markup {
    static MARKUP: OnceLock<Markup> = OnceLock::new();
    MARKUP.get_or_init(|| {
        let mut tags = BTreeSet::new();
        let mut attributes = BTreeSet::new();
        for (_, source) in html::TEMPLATES {
            for (i, _) in source.match_indices('<') {
                let name: String = source[i + 1..]
                    .trim_start_matches('/')
                    .chars()
                    .take_while(char::is_ascii_alphanumeric)
                    .collect();
                if !name.is_empty() {
                    tags.insert(name.to_ascii_lowercase());
                }
            }
            for (i, _) in source.match_indices("=\"") {
                let name: String = source[..i]
                    .chars()
                    .rev()
                    .take_while(|c| c.is_ascii_lowercase() || *c == '-')
                    .collect();
                attributes.insert(name.chars().rev().collect());
            }
        }
        attributes.extend(["selected", "required", "checked"].map(String::from));
        Markup { tags, attributes }
    })
}

/// Whether a link or form target stays on the portal (or is a site's https URL).
fn own_target(value: &str) -> bool {
    (value.starts_with('/') && !value[1..].starts_with(['/', '\\']))
        || value.starts_with('#')
        || value.starts_with('?')
        || value.starts_with("https://")
}

/// `page` has only the templates' tags and attributes, every attribute value
/// quoted, no event handler, and links and forms that stay on the portal.
fn check_html(page: &str) -> Result<(), TestCaseError> {
    let m = markup();
    let bytes = page.as_bytes();
    let mut i = 0;
    while let Some(at) = page[i..].find('<') {
        let start = i + at;
        let rest = &page[start + 1..];
        if rest.starts_with('!') {
            // The doctype; a comment would be a value's.
            prop_assert!(
                rest.to_ascii_lowercase().starts_with("!doctype html>"),
                "markup declaration in the page: {}",
                &page[start..(start + 40).min(page.len())]
            );
            i = start + 1;
            continue;
        }
        let closing = rest.starts_with('/');
        let name: String = rest
            .trim_start_matches('/')
            .chars()
            .take_while(char::is_ascii_alphanumeric)
            .collect();
        prop_assert!(
            m.tags.contains(&name.to_ascii_lowercase()),
            "tag {name:?} in the page: {}",
            &page[start..(start + 60).min(page.len())]
        );
        let mut j = start + 1 + usize::from(closing) + name.len();
        // Attributes, up to the end of the tag.
        loop {
            while j < bytes.len() && bytes[j].is_ascii_whitespace() {
                j += 1;
            }
            prop_assert!(j < bytes.len(), "tag {name} not closed");
            if bytes[j] == b'>' {
                j += 1;
                break;
            }
            let attr_start = j;
            while j < bytes.len() && !b" \t\n=>".contains(&bytes[j]) {
                j += 1;
            }
            let attr = &page[attr_start..j];
            prop_assert!(
                m.attributes.contains(attr) && !attr.starts_with("on"),
                "attribute {attr:?} of {name}"
            );
            if j < bytes.len() && bytes[j] == b'=' {
                prop_assert!(bytes.get(j + 1) == Some(&b'"'), "{attr} of {name} unquoted");
                let end = page[j + 2..]
                    .find('"')
                    .map(|e| j + 2 + e)
                    .ok_or_else(|| TestCaseError::fail(format!("{attr} of {name} not closed")))?;
                let value = &page[j + 2..end];
                if matches!(attr, "href" | "action") {
                    prop_assert!(own_target(value), "{attr}={value:?} leaves the portal");
                }
                j = end + 1;
            }
        }
        // The stylesheet of the maintenance page is the template's own text.
        if name == "style" && !closing {
            j = page[j..].find("</style>").map_or(page.len(), |e| j + e);
        }
        i = j;
    }
    Ok(())
}

fn assert_secure(headers: &axum::http::HeaderMap) -> Result<(), TestCaseError> {
    for (name, value) in [
        (header::CONTENT_SECURITY_POLICY, CSP),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "same-origin"),
    ] {
        prop_assert_eq!(headers.get(&name), Some(&HeaderValue::from_static(value)));
    }
    Ok(())
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("a runtime: {e}"))
}

// ---------------------------------------------------------------------------
// Form bodies.

const FIELDS: &[&str] = &[
    "produit",
    "adresse",
    "alias",
    "langue",
    "commentaire",
    "jeton",
    "action",
    "raison",
];

const VALUES: &[&str] = &[
    "web",
    "delib",
    "www.ans.be",
    " WWW.Ans.be ",
    "alias.ans.be",
    "bad_name",
    "fr",
    "de",
    "nl",
    "en",
    "xx",
    "pour la fête",
    "",
];

/// `text` percent-encoded as a form field: all of it, or only what must be.
fn encode(text: &str, all: bool) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(char::from(b))
            }
            b' ' if !all => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// A form body: fields as a browser encodes them (or not quite), or any bytes.
fn body() -> BoxedStrategy<Vec<u8>> {
    let field = (
        prop_oneof![6 => pick(FIELDS), 1 => hostile()],
        prop_oneof![3 => pick(VALUES), 2 => hostile()],
        0u8..3,
    );
    prop_oneof![
        6 => vec(field, 0..8).prop_map(|fields| {
            fields
                .iter()
                .map(|(k, v, how)| match how {
                    0 => format!("{}={}", encode(k, true), encode(v, true)),
                    1 => format!("{}={}", encode(k, false), encode(v, false)),
                    _ => format!("{k}={v}"),
                })
                .collect::<Vec<_>>()
                .join("&")
                .into_bytes()
        }),
        1 => vec(any::<u8>(), 0..200),
        1 => hostile().prop_map(String::into_bytes),
    ]
    .boxed()
}

fn member() -> Member {
    Member {
        name: "ans".into(),
        display_name: "Commune d'Ans".into(),
        namespace: "tenant-ans".into(),
        domains: vec!["ans.be".into()],
        entitlements: BTreeMap::from([("web".into(), 2), ("delib".into(), 1)]),
        used: BTreeMap::from([("delib".into(), 1)]),
    }
}

fn normalized(field: &Option<String>) -> String {
    field.as_deref().unwrap_or_default().trim().to_lowercase()
}

fn check_form(rt: &tokio::runtime::Runtime, bytes: Vec<u8>) -> Result<(), TestCaseError> {
    let request = Request::builder()
        .method("POST")
        .uri("/membres/ans/demander")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(bytes))
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    let Ok(Form(sent)) = rt.block_on(Form::<AskForm>::from_request(request, &())) else {
        return Ok(());
    };
    let (adresse, alias) = (normalized(&sent.adresse), normalized(&sent.alias));
    let error = match form::new_request(&sent) {
        Ok(new) => {
            prop_assert_eq!(Some(&new.product), sent.produit.as_ref());
            prop_assert!(!new.product.is_empty());
            prop_assert!((1..=2).contains(&new.hostnames.len()));
            for h in &new.hostnames {
                prop_assert!(is_dns_name(h) && *h == h.to_lowercase(), "{h:?}");
                prop_assert!(*h == adresse || *h == alias, "{h:?} was not sent");
            }
            prop_assert!(new.hostnames.len() == 1 || new.hostnames[0] != new.hostnames[1]);
            let code = match new.language {
                Language::Fr => "fr",
                Language::De => "de",
                Language::Nl => "nl",
                Language::En => "en",
            };
            prop_assert!(sent.langue.as_deref() == Some(code) || new.language == Language::Fr);
            match &new.comment {
                Some(c) => prop_assert!(!c.is_empty() && c.trim() == c),
                None => prop_assert!(normalized(&sent.commentaire).is_empty()),
            }
            None
        }
        Err(Invalid::NoProduct) => {
            prop_assert!(sent.produit.as_deref().unwrap_or_default().is_empty());
            Some(Invalid::NoProduct.text(Lang::Fr))
        }
        Err(Invalid::Hostname(h)) => {
            prop_assert!(!h.is_empty() && !is_dns_name(&h) && (h == adresse || h == alias));
            Some(Invalid::Hostname(h).text(Lang::De))
        }
        Err(Invalid::NoHostname) => {
            prop_assert!(adresse.is_empty() && alias.is_empty());
            Some(Invalid::NoHostname.text(Lang::En))
        }
    };
    // The form shown again shows what was sent, as text.
    let names = ProductNames::from([("web".to_string(), "Site web".to_string())]);
    let frame = Frame {
        lang: Lang::Fr,
        switch_to: "/membres/ans/demander",
        title: Title("title-ask"),
        who: Some("agent@ans.be"),
    };
    let page = html::page(
        &frame,
        views::ask(&member(), &names, &sent, error.as_deref(), "1.ab"),
    )
    .map_err(|e| TestCaseError::fail(format!("page not rendered: {e:#}")))?;
    check_html(&page)?;
    for sent in [&sent.adresse, &sent.alias, &sent.commentaire]
        .into_iter()
        .flatten()
    {
        prop_assert!(page.contains(&html::esc(sent)), "{sent:?} not shown again");
    }
    // The request takes the first name no site or request of the member uses.
    if let Ok(new) = form::new_request(&sent) {
        let taken: BTreeSet<String> = [new.product.clone(), format!("{}-2", new.product)].into();
        let name = form::free_name(&new.product, &taken);
        prop_assert_eq!(name, format!("{}-3", new.product));
        prop_assert_eq!(form::free_name(&new.product, &BTreeSet::new()), new.product);
    }
    Ok(())
}

#[test]
fn fuzz_portal_form() {
    let rt = runtime();
    let seeds = corpus_lines("portal-form")
        .into_iter()
        .map(|(at, line)| (at, line.into_bytes()))
        .collect();
    fuzz("portal-form", seeds, body(), |bytes| check_form(&rt, bytes));
}

// ---------------------------------------------------------------------------
// Pages, with what members wrote.

#[derive(Clone, Debug)]
struct Written {
    texts: Vec<String>,
    lang: usize,
    who: Option<String>,
    query_done: Option<String>,
}

fn written() -> BoxedStrategy<Written> {
    (
        vec(hostile(), 8),
        0..Lang::ALL.len(),
        prop::option::of(hostile()),
        prop::option::of(hostile()),
    )
        .prop_map(|(texts, lang, who, query_done)| Written {
            texts,
            lang,
            who,
            query_done,
        })
        .boxed()
}

fn check_pages(w: Written) -> Result<(), TestCaseError> {
    let t = |i: usize| w.texts[i % w.texts.len()].clone();
    let lang = Lang::ALL[w.lang];
    let member = Member {
        name: t(0),
        display_name: t(1),
        namespace: format!("tenant-{}", t(0)),
        domains: vec![t(2), "ans.be".into()],
        entitlements: BTreeMap::from([(t(3), 2), ("web".into(), 1)]),
        used: BTreeMap::from([(t(3), 1)]),
    };
    let names = ProductNames::from([(t(3), t(4))]);
    let reasons = [
        "NoTenant",
        "UnknownProduct",
        "ForeignHostname",
        "HostnameTaken",
        "QuotaExceeded",
        "Denied",
    ]
    .iter()
    .map(|code| RequestReason {
        code: code.to_string(),
        subject: Some(t(5)),
        message: format!("denied by {}: {}", t(6), t(7)),
    })
    .chain([RequestReason {
        code: t(6),
        subject: None,
        message: t(7),
    }])
    .collect();
    let requests: Vec<Asked> = [
        Verdict::Pending,
        Verdict::ApprovedAutomatically,
        Verdict::Approved { by: t(6) },
        Verdict::Denied { by: t(6) },
    ]
    .into_iter()
    .enumerate()
    .map(|(i, verdict)| Asked {
        namespace: member.namespace.clone(),
        name: t(i),
        product: t(3),
        hostnames: vec![t(5), t(2)],
        comment: Some(t(7)),
        checks: [Checks::Running, Checks::Passed, Checks::Failed][i % 3],
        verdict,
        fulfilment: [
            Fulfilment::AwaitingGitOps,
            Fulfilment::Creating,
            Fulfilment::SiteDeleted,
            Fulfilment::Unknown,
        ][i],
        ready: i == 1,
        reasons: if i == 0 {
            Vec::new()
        } else {
            Vec::clone(&reasons)
        },
    })
    .collect();
    let day = Time(k8s_openapi::jiff::Timestamp::from_second(1_750_000_000).unwrap_or_default());
    let sites = vec![
        Site {
            host: t(5),
            product: t(3),
            release: Some(t(6)),
            state: SiteState::Online,
            certificate_expiry: Some(day.clone()),
            last_backup: Some(day),
        },
        Site {
            host: t(2),
            product: "web".into(),
            release: None,
            state: SiteState::Preparing,
            certificate_expiry: None,
            last_backup: None,
        },
    ];
    let form = AskForm {
        produit: Some(t(3)),
        adresse: Some(t(5)),
        alias: Some(t(2)),
        langue: Some(t(6)),
        commentaire: Some(t(7)),
        jeton: Some(t(1)),
    };
    let done = w.query_done.as_deref().map(|request| views::Done {
        request,
        denied: request.len() % 2 == 0,
    });
    let links = vec![MemberLink {
        name: t(0),
        display_name: t(1),
    }];
    let switch_to = format!("/membres/{}/sites", t(0));
    let pages = [
        (Title("title-home"), views::home(&links, true)),
        (
            Title("title-sites"),
            views::sites(lang, &member, &sites, &names, &requests),
        ),
        (
            Title("title-ask"),
            views::ask(&member, &names, &form, Some(&t(4)), &t(1)),
        ),
        (
            Title("title-request"),
            views::request(lang, &member, &requests[1]),
        ),
        (
            Title("title-request"),
            views::request(lang, &member, &requests[3]),
        ),
        (
            Title("title-approvals"),
            views::approvals(lang, &requests, done, &t(1)),
        ),
        (Title("title-error"), views::refusal(t(7))),
        (Title("title-decision"), views::decision_refused(t(7))),
    ];
    for (title, view) in pages {
        let frame = Frame {
            lang,
            switch_to: &switch_to,
            title,
            who: w.who.as_deref(),
        };
        let page = html::page(&frame, view)
            .map_err(|e| TestCaseError::fail(format!("{} not rendered: {e:#}", title.0)))?;
        check_html(&page)?;
    }
    // The maintenance page names the host the visitor asked for, as text.
    for host in [None, Some(t(5).as_str())] {
        let page = maintenance::page(lang, host)
            .map_err(|e| TestCaseError::fail(format!("maintenance page: {e:#}")))?;
        check_html(&page)?;
        if let Some(h) = host {
            prop_assert!(page.contains(&html::esc(h)));
        }
    }
    Ok(())
}

#[test]
fn fuzz_portal_pages() {
    let seeds = corpus_lines("portal-text")
        .into_iter()
        .map(|(at, line)| {
            (
                at,
                Written {
                    texts: vec![line.clone()],
                    lang: 0,
                    who: Some(line.clone()),
                    query_done: Some(line),
                },
            )
        })
        .collect();
    fuzz("portal-pages", seeds, written(), check_pages);
}

// ---------------------------------------------------------------------------
// Whole requests through the router, against a fake API server.

const AGENT: &str = "agent@ans.be";

/// What the fake API server serves: the member's resources, with its texts.
#[derive(Clone, Debug, Default)]
struct Fixture {
    texts: Vec<String>,
}

impl Fixture {
    fn t(&self, i: usize) -> String {
        self.texts
            .get(i % self.texts.len().max(1))
            .cloned()
            .unwrap_or_default()
    }

    fn tenant(&self) -> Value {
        json!({
            "apiVersion": mutu_api::API_VERSION, "kind": "MemberTenant",
            "metadata": {"name": "ans"},
            "spec": {"displayName": self.t(0), "category": "commune",
                     "domains": [self.t(1), "ans.be"],
                     "admins": {"groups": ["ans-admins"], "users": [AGENT]},
                     "entitlements": {self.t(2): 2, "web": 2}},
            "status": {"namespace": "tenant-ans", "sites": {self.t(2): 1}},
        })
    }

    fn request(&self) -> Value {
        let cond = |type_: &str, status: &str, reason: &str| {
            json!({"type": type_, "status": status, "reason": reason, "message": self.t(3),
                   "lastTransitionTime": "2025-06-07T08:00:00Z"})
        };
        json!({
            "apiVersion": mutu_api::API_VERSION, "kind": "ProvisioningRequest",
            "metadata": {"name": "web", "namespace": "tenant-ans", "generation": 1,
                         "resourceVersion": "1"},
            "spec": {"product": self.t(2), "hostnames": [self.t(4), "www.ans.be"],
                     "comment": self.t(5)},
            "status": {"observedGeneration": 1,
                       "conditions": [cond("Validated", "True", "Valid"),
                                      cond("Fulfilled", "False", &self.t(6))],
                       "reasons": [
                           {"code": "ForeignHostname", "subject": self.t(4), "message": self.t(3)},
                           {"code": "Denied", "subject": self.t(0),
                            "message": format!("denied by {}: {}", self.t(6), self.t(5))},
                           {"code": self.t(6), "message": self.t(3)},
                       ]},
        })
    }

    fn list(kind: &str, items: Vec<Value>) -> Value {
        json!({"apiVersion": mutu_api::API_VERSION, "kind": format!("{kind}List"),
               "metadata": {}, "items": items})
    }
}

/// The fake API server's state: its fixture, and the calls and writes it had.
#[derive(Default)]
struct Api {
    fixture: Fixture,
    calls: Vec<String>,
    writes: Vec<String>,
}

type Shared = Arc<Mutex<Api>>;

fn reply(status: StatusCode, value: &Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        value.to_string(),
    )
        .into_response()
}

fn not_found() -> Response {
    reply(
        StatusCode::NOT_FOUND,
        &json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                "message": "not found", "reason": "NotFound", "code": 404}),
    )
}

/// The fake API server: reads what the portal reads, and takes writes of
/// objects with valid names (as the API server checks them).
async fn answer(api: Shared, request: axum::extract::Request) -> Response {
    let method = request.method().to_string();
    let path = request.uri().path().to_string();
    let fixture = {
        let Ok(mut api) = api.lock() else {
            return not_found();
        };
        api.calls.push(format!("{method} {path}"));
        api.fixture.clone()
    };
    let body = axum::body::to_bytes(request.into_body(), 1 << 20)
        .await
        .unwrap_or_default();
    const G: &str = "/apis/hosting.imio.be/v1alpha1";
    let ns = format!("{G}/namespaces/tenant-ans");
    let p = path.as_str();
    let write = |what: String| {
        if let Ok(mut api) = api.lock() {
            api.writes.push(what);
        }
    };
    match method.as_str() {
        "GET" if p == format!("{G}/membertenants") => reply(
            StatusCode::OK,
            &Fixture::list("MemberTenant", vec![fixture.tenant()]),
        ),
        "GET" if p == format!("{G}/membertenants/ans") => reply(StatusCode::OK, &fixture.tenant()),
        "GET" if p == format!("{G}/products") => {
            let product = json!({"apiVersion": mutu_api::API_VERSION, "kind": "Product",
                "metadata": {"name": fixture.t(2)},
                "spec": {"displayName": fixture.t(0), "engine": "plone", "image": "r/p", "release": "1"}});
            reply(StatusCode::OK, &Fixture::list("Product", vec![product]))
        }
        "GET" if p == format!("{ns}/plonesites") => {
            let site = json!({"apiVersion": mutu_api::API_VERSION, "kind": "PloneSite",
                "metadata": {"name": "web", "namespace": "tenant-ans"},
                "spec": {"product": fixture.t(2), "hostnames": [fixture.t(4)]},
                "status": {"release": fixture.t(5)}});
            reply(StatusCode::OK, &Fixture::list("PloneSite", vec![site]))
        }
        "GET" if p == format!("{ns}/certificates") => {
            reply(StatusCode::OK, &Fixture::list("Certificate", vec![]))
        }
        "GET"
            if p == format!("{ns}/provisioningrequests")
                || p == format!("{G}/provisioningrequests") =>
        {
            reply(
                StatusCode::OK,
                &Fixture::list("ProvisioningRequest", vec![fixture.request()]),
            )
        }
        "GET" if p == format!("{ns}/provisioningrequests/web") => {
            reply(StatusCode::OK, &fixture.request())
        }
        "POST" if p.ends_with("/selfsubjectaccessreviews") => reply(
            StatusCode::CREATED,
            &json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
                    "spec": {}, "status": {"allowed": true}}),
        ),
        "POST" if p.ends_with("/selfsubjectreviews") => reply(
            StatusCode::CREATED,
            &json!({"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview",
                    "status": {"userInfo": {"username": AGENT}}}),
        ),
        "POST" if p == format!("{ns}/provisioningrequests") => {
            let object: Value = serde_json::from_slice(&body).unwrap_or_default();
            let name = object["metadata"]["name"].as_str().unwrap_or_default();
            if !is_dns_name(name) {
                return reply(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    &json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                            "message": format!("metadata.name: Invalid value: {name:?}"),
                            "reason": "Invalid", "code": 422}),
                );
            }
            write(format!("create {name}"));
            reply(StatusCode::CREATED, &object)
        }
        "PATCH" if p == format!("{ns}/provisioningrequests/web/status") => {
            write("decide web".to_string());
            reply(StatusCode::OK, &fixture.request())
        }
        _ => not_found(),
    }
}

/// The portal's router against the fake API server (on this runtime).
fn portal(rt: &tokio::runtime::Runtime) -> (Router, Arc<App>, Shared) {
    let api: Shared = Arc::default();
    let state = api.clone();
    let fake = Router::new().fallback(move |r: axum::extract::Request| answer(state.clone(), r));
    let addr = rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
        tokio::spawn(async move { axum::serve(listener, fake).await });
        addr
    });
    let config = kube::Config::new(
        format!("http://{addr}")
            .parse()
            .unwrap_or_else(|e| panic!("{e}")),
    );
    let app = rt.block_on(async {
        Arc::new(App {
            trusted: BTreeSet::from([IpAddr::from([127, 0, 0, 1])]),
            clients: Clients::new(config.clone()),
            own: kube::Client::try_from(config).unwrap_or_else(|e| panic!("{e}")),
            key: Key::random().unwrap_or_else(|e| panic!("{e}")),
        })
    });
    (handlers::router(app.clone()), app, api)
}

/// How a form's token comes: the user's own, a forged one, or none.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Token {
    Own,
    Forged,
    Absent,
}

/// One request to the portal.
#[derive(Clone, Debug)]
struct Call {
    method: &'static str,
    /// The path's template, its segments filled in (encoded) from `segments`:
    /// the member, its namespace and the request.
    path: String,
    segments: Vec<String>,
    query: Vec<(String, String)>,
    trusted: bool,
    user: Option<String>,
    groups: Option<String>,
    cookie: Option<String>,
    accept_language: Option<String>,
    fetch_site: Option<&'static str>,
    form: Vec<(String, String)>,
    token: Token,
    fixture: Vec<String>,
}

/// The portal's routes, each with its method; `{tenant}`, `{ns}` and
/// `{name}` are segments of the path.
const ROUTES: &[(&str, &str)] = &[
    ("GET", "/"),
    ("GET", "/healthz"),
    ("GET", "/style.css"),
    ("GET", "/membres/{tenant}/sites"),
    ("GET", "/membres/{tenant}/demander"),
    ("POST", "/membres/{tenant}/demander"),
    ("GET", "/membres/{tenant}/demandes/{name}"),
    ("GET", "/approbations"),
    ("POST", "/approbations/{ns}/{name}"),
    ("GET", "/{name}"),
    ("GET", "//{tenant}"),
];

const METHODS: &[&str] = &["GET", "POST", "HEAD", "PUT", "DELETE"];

fn call() -> BoxedStrategy<Call> {
    // The member, its namespace and the request: theirs mostly.
    let segment = |theirs: &'static [&'static str]| prop_oneof![6 => pick(theirs), 1 => pick(&["autre"]), 2 => hostile()];
    let segments = (
        segment(&["ans"]),
        segment(&["tenant-ans"]),
        segment(&["web"]),
    )
        .prop_map(|(t, ns, n)| vec![t, ns, n]);
    let posts: Vec<(&str, &str)> = ROUTES
        .iter()
        .copied()
        .filter(|(m, _)| *m == "POST")
        .collect();
    let route = prop_oneof![
        5 => prop::sample::select(ROUTES.to_vec()),
        3 => prop::sample::select(posts),
        1 => (prop::sample::select(METHODS.to_vec()), prop::sample::select(ROUTES.to_vec()))
            .prop_map(|(m, (_, p))| (m, p)),
    ];
    let text = || prop_oneof![4 => pick(VALUES), 1 => hostile()];
    let query = vec(
        (
            prop_oneof![pick(&["lang", "fait", "decision"]), hostile()],
            prop_oneof![
                pick(&["de", "en", "fr", "xx", "refusee", "tenant-ans/web"]),
                hostile()
            ],
        ),
        0..3,
    );
    let headers = (
        any::<u8>().prop_map(|n| n % 10 != 0),
        prop::option::weighted(
            0.95,
            prop_oneof![9 => Just(AGENT.to_string()), 1 => hostile()],
        ),
        prop::option::weighted(
            0.9,
            prop_oneof![
                9 => pick(&["ans-admins", "mutu-approvers", "ans-admins,mutu-approvers", ""]),
                1 => hostile(),
            ],
        ),
        prop::option::weighted(
            0.3,
            prop_oneof![
                pick(&["lang=de", "lang=xx; lang=en", "a=b;lang=fr"]),
                hostile()
            ],
        ),
        prop::option::weighted(
            0.5,
            prop_oneof![
                pick(&["de-BE,de;q=0.9", "en;q=0.5, fr;q=0.4", "*"]),
                hostile()
            ],
        ),
        prop::option::of(prop::sample::select(vec![
            "same-origin",
            "cross-site",
            "same-site",
            "none",
        ])),
    );
    // The request form, an approver's decision, or any fields (each once).
    let pairs = |fields: Vec<(&str, String)>| -> Vec<(String, String)> {
        fields
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect()
    };
    let fields = prop_oneof![
        3 => (text(), text(), text(), text(), text()).prop_map(move |(p, a, al, l, c)| {
            pairs(vec![("produit", p), ("adresse", a), ("alias", al), ("langue", l), ("commentaire", c)])
        }),
        2 => (pick(&["approuver", "refuser", "autre"]), text())
            .prop_map(move |(a, r)| pairs(vec![("action", a), ("raison", r)])),
        1 => proptest::collection::btree_map(
            prop_oneof![3 => pick(&FIELDS[..5]), 1 => hostile()],
            text(),
            0..6,
        )
        .prop_map(|m| m.into_iter().collect::<Vec<_>>()),
    ];
    let form = (
        fields,
        prop::sample::select(vec![Token::Own, Token::Own, Token::Forged, Token::Absent]),
    );
    (route, segments, query, headers, form, vec(hostile(), 7))
        .prop_map(
            |((method, path), segments, query, headers, (form, token), fixture)| {
                let (trusted, user, groups, cookie, accept_language, fetch_site) = headers;
                Call {
                    method,
                    path: path.to_string(),
                    segments,
                    query,
                    trusted,
                    user,
                    groups,
                    cookie,
                    accept_language,
                    fetch_site,
                    form,
                    token,
                    fixture,
                }
            },
        )
        .boxed()
}

impl Call {
    fn uri(&self) -> String {
        let mut path = self.path.clone();
        for (slot, s) in ["{tenant}", "{ns}", "{name}"].iter().zip(&self.segments) {
            path = path.replace(slot, &encode(s, true));
        }
        if self.query.is_empty() {
            path
        } else {
            let query: Vec<String> = self
                .query
                .iter()
                .map(|(k, v)| format!("{}={}", encode(k, true), encode(v, true)))
                .collect();
            format!("{path}?{}", query.join("&"))
        }
    }

    fn request(&self, key: &Key) -> Option<Request<Body>> {
        let peer = if self.trusted {
            SocketAddr::from(([127, 0, 0, 1], 40000))
        } else {
            SocketAddr::from(([10, 0, 0, 9], 40000))
        };
        let mut b = Request::builder()
            .method(self.method)
            .uri(self.uri())
            .extension(ConnectInfo(peer));
        for (name, value) in [
            (USER, &self.user),
            (GROUPS, &self.groups),
            ("cookie", &self.cookie),
            ("accept-language", &self.accept_language),
        ] {
            if let Some(v) = value.as_ref().and_then(|v| HeaderValue::from_str(v).ok()) {
                b = b.header(name, v);
            }
        }
        if let Some(site) = self.fetch_site {
            b = b.header("sec-fetch-site", site);
        }
        let mut fields: Vec<String> = self
            .form
            .iter()
            .map(|(k, v)| format!("{}={}", encode(k, true), encode(v, false)))
            .collect();
        let user = self.user.as_deref().unwrap_or_default();
        match self.token {
            Token::Own => fields.push(format!("jeton={}", encode(&key.token(user), true))),
            Token::Forged => fields.push(format!("jeton={}", encode(&key.token("marie"), true))),
            Token::Absent => {}
        }
        if self.method == "POST" {
            b = b.header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        }
        b.body(Body::from(fields.join("&"))).ok()
    }
}

fn check_call(
    rt: &tokio::runtime::Runtime,
    portal: &(Router, Arc<App>, Shared),
    call: Call,
) -> Result<(), TestCaseError> {
    let (router, app, api) = portal;
    if let Ok(mut api) = api.lock() {
        *api = Api {
            fixture: Fixture {
                texts: call.fixture.clone(),
            },
            ..Api::default()
        };
    }
    let Some(request) = call.request(&app.key) else {
        return Ok(());
    };
    let (status, headers, body) = rt.block_on(async {
        let response = router
            .clone()
            .oneshot(request)
            .await
            .unwrap_or_else(|e| match e {});
        let status = response.status();
        let headers = response.headers().clone();
        let body = axum::body::to_bytes(response.into_body(), 1 << 22)
            .await
            .unwrap_or_default();
        (status, headers, String::from_utf8_lossy(&body).into_owned())
    });
    let (calls, writes) = api
        .lock()
        .map(|a| (a.calls.clone(), a.writes.clone()))
        .unwrap_or_default();

    prop_assert_ne!(status, StatusCode::INTERNAL_SERVER_ERROR, "{}", body);
    assert_secure(&headers)?;
    let html = headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/html"));
    if html {
        check_html(&body)?;
        let lang = headers
            .get(header::CONTENT_LANGUAGE)
            .and_then(|v| v.to_str().ok());
        prop_assert!(
            lang.and_then(Lang::from_code).is_some(),
            "Content-Language {lang:?}"
        );
    }
    // The language cookie: set by a page asked for with `?lang=`, nothing else.
    for cookie in headers.get_all(header::SET_COOKIE) {
        let cookie = cookie.to_str().unwrap_or_default();
        prop_assert!(
            matches!(call.method, "GET" | "HEAD"),
            "{cookie} set by {}",
            call.method
        );
        let code = cookie
            .strip_prefix("lang=")
            .and_then(|c| c.split_once(';'))
            .map(|(c, _)| c)
            .unwrap_or_default();
        prop_assert!(Lang::from_code(code).is_some(), "cookie {cookie:?}");
        prop_assert!(
            call.query.iter().any(|(k, v)| k == "lang" && v == code),
            "{cookie}"
        );
    }
    if let Some(location) = headers.get(header::LOCATION) {
        let location = location.to_str().unwrap_or_default();
        prop_assert!(
            own_target(location) && location.starts_with('/'),
            "to {location:?}"
        );
    }
    // Nobody's identity is believed from elsewhere than the proxy, and
    // nothing is written without the user's own token, from the portal's own pages.
    if !call.trusted {
        prop_assert!(calls.is_empty(), "asked {calls:?} for an untrusted peer");
    }
    if !writes.is_empty() {
        prop_assert!(
            call.method == "POST"
                && call.trusted
                && call.token == Token::Own
                && !matches!(call.fetch_site, Some("cross-site" | "same-site")),
            "{writes:?} written by {call:?}"
        );
    }
    Ok(())
}

#[test]
fn fuzz_portal_requests() {
    let rt = runtime();
    let portal = portal(&rt);
    let seeds = corpus_lines("portal-request")
        .into_iter()
        .map(|(at, line)| {
            // METHOD PATH [FORM]: the agent's, with its token.
            let mut parts = line.splitn(3, ' ');
            let method = match parts.next().unwrap_or_default() {
                "POST" => "POST",
                _ => "GET",
            };
            let target = parts.next().unwrap_or("/").to_string();
            let (path, query) = target.split_once('?').unwrap_or((&target, ""));
            let pairs = |text: &str| -> Vec<(String, String)> {
                text.split('&')
                    .filter_map(|p| p.split_once('='))
                    .map(|(k, v)| (k.to_string(), v.replace('+', " ")))
                    .collect()
            };
            let call = Call {
                method,
                path: path.to_string(),
                segments: Vec::new(),
                query: pairs(query),
                trusted: true,
                user: Some(AGENT.into()),
                groups: Some("ans-admins,mutu-approvers".into()),
                cookie: None,
                accept_language: Some("fr".into()),
                fetch_site: Some("same-origin"),
                form: pairs(parts.next().unwrap_or_default()),
                token: Token::Own,
                fixture: HOSTILE.iter().map(|s| s.to_string()).collect(),
            };
            (at, call)
        })
        .collect();
    fuzz("portal-requests", seeds, call(), |c| {
        check_call(&rt, &portal, c)
    });
}
