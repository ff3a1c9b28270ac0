//! The portal's HTTP side: its routes and, for each request, who is asking
//! (the proxy's headers, from the trusted proxy only), in which language
//! ([`layers::language`]), whether a form posted is the portal's own (same
//! site, with its user's token, checked before anything is read or
//! written), what to read or write as them ([`crate::cluster`]), and which
//! response to give: a page ([`crate::views`]), a redirection, or a refusal
//! with its status.

use std::collections::{BTreeSet, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::Router;
use axum::extract::rejection::FormRejection;
use axum::extract::{ConnectInfo, Extension, Form, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use kube::Client;
use mutu_api::provisioning::Decision;
use serde::Deserialize;

use crate::cluster::{self, CreateError, DecideError, Failure};
use crate::csrf::{self, BadToken};
use crate::form::{self, AskForm};
use crate::html::{self, Frame, Title, View};
use crate::i18n::Arg;
use crate::layers::Ui;
use crate::model::Member;
use crate::proxy::{GROUPS, USER};
use crate::{Clients, Identity, NoIdentity, layers, views};

/// What every handler shares.
pub struct App {
    pub trusted: BTreeSet<IpAddr>,
    pub clients: Clients,
    /// The portal's own client: only to list MemberTenants for the home page.
    pub own: Client,
    /// The key of the forms' tokens, for this run.
    pub key: csrf::Key,
}

type Shared = Arc<App>;

/// The page that answers instead, when a step refuses (boxed: a response is large).
pub struct Refused(Box<Response>);

impl From<Response> for Refused {
    fn from(response: Response) -> Self {
        Refused(Box::new(response))
    }
}

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        *self.0
    }
}

/// A handler's answer: its response, or the refusal of a step on the way.
type Answer = Result<Response, Refused>;

/// The routes, each response with the security headers and logged, each
/// request in its language.
pub fn router(app: Shared) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route(html::STYLESHEET, get(stylesheet))
        .route("/", get(home))
        .route("/membres/{tenant}/sites", get(sites))
        .route("/membres/{tenant}/demander", get(ask_form).post(ask))
        .route("/membres/{tenant}/demandes/{name}", get(request_page))
        .route("/approbations", get(approvals))
        .route("/approbations/{ns}/{name}", post(decide))
        .layer(middleware::from_fn(layers::language))
        .layer(middleware::from_fn(layers::secure))
        .layer(middleware::from_fn_with_state(app.clone(), layers::log))
        .with_state(app)
}

/// The pages' stylesheet (the same for everyone, so cached for an hour).
async fn stylesheet() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        html::STYLE,
    )
        .into_response()
}

/// A page in the request's language, titled `title`, never cached.
fn respond(
    status: StatusCode,
    ui: &Ui,
    who: Option<&Identity>,
    title: Title,
    view: View,
) -> Response {
    let frame = Frame {
        lang: ui.lang,
        switch_to: &ui.switch_to,
        title,
        who: who.map(|w| w.user.as_str()),
    };
    let (status, page) = match html::page(&frame, view) {
        Ok(page) => (status, page),
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "page not rendered");
            let text = ui.lang.tr("error-internal");
            let frame = Frame {
                title: Title("title-error"),
                ..frame
            };
            match html::page(&frame, views::refusal(text.clone())) {
                Ok(page) => (StatusCode::INTERNAL_SERVER_ERROR, page),
                Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, html::esc(&text)),
            }
        }
    };
    (status, [(header::CACHE_CONTROL, "no-store")], Html(page)).into_response()
}

/// An error page: `text`, and the way back home.
fn fail(
    status: StatusCode,
    ui: &Ui,
    who: Option<&Identity>,
    title: Title,
    text: String,
) -> Response {
    respond(status, ui, who, title, views::refusal(text))
}

/// The page saying why a read or write as `who` failed.
fn failure(e: &Failure, ui: &Ui, who: &Identity) -> Response {
    let lang = ui.lang;
    match e {
        Failure::Forbidden => fail(
            StatusCode::FORBIDDEN,
            ui,
            Some(who),
            Title("title-forbidden"),
            lang.tr("error-forbidden"),
        ),
        Failure::NotFound => fail(
            StatusCode::NOT_FOUND,
            ui,
            Some(who),
            Title("title-not-found"),
            lang.tr("error-not-found"),
        ),
        Failure::Unavailable(e) => {
            tracing::warn!(error = %e, user = %who.user, "Kubernetes call failed");
            fail(
                StatusCode::BAD_GATEWAY,
                ui,
                Some(who),
                Title("title-unavailable"),
                lang.tr("error-unavailable"),
            )
        }
    }
}

fn refused(e: Failure, ui: &Ui, who: &Identity) -> Refused {
    failure(&e, ui, who).into()
}

/// The caller, or the page that says why there is none.
fn who(app: &App, ui: &Ui, peer: SocketAddr, headers: &HeaderMap) -> Result<Identity, Refused> {
    crate::identity(&app.trusted, peer, headers).map_err(|e| no_identity(&e, ui).into())
}

/// The page saying why a request has no identity (logged unless there was
/// simply no user).
fn no_identity(e: &NoIdentity, ui: &Ui) -> Response {
    if *e != NoIdentity::NoUser {
        tracing::warn!(why = %e, "identity refused");
    }
    let lang = ui.lang;
    let header = |h: &str| {
        match h {
            USER => "X-Forwarded-User",
            GROUPS => "X-Forwarded-Groups",
            other => other,
        }
        .to_string()
    };
    match e {
        NoIdentity::Untrusted(_) | NoIdentity::NoUser => fail(
            StatusCode::UNAUTHORIZED,
            ui,
            None,
            Title("title-sign-in"),
            lang.tr("error-sign-in"),
        ),
        NoIdentity::Reserved(name) => fail(
            StatusCode::FORBIDDEN,
            ui,
            None,
            Title("title-identity-refused"),
            lang.tr_with("error-reserved-name", &[("name", name.into())]),
        ),
        NoIdentity::Repeated(h) => fail(
            StatusCode::BAD_REQUEST,
            ui,
            None,
            Title("title-identity-unreadable"),
            lang.tr_with("error-repeated-header", &[("header", header(h).into())]),
        ),
        NoIdentity::Invalid { header: h, name } => fail(
            StatusCode::BAD_REQUEST,
            ui,
            None,
            Title("title-identity-unreadable"),
            lang.tr_with(
                "error-invalid-name",
                &[
                    ("header", header(h).into()),
                    ("name", format!("{name:?}").into()),
                ],
            ),
        ),
    }
}

/// Refuses a form posted from another site (`Sec-Fetch-Site: cross-site`, or
/// `same-site`: another address of the same domain); browsers that do not
/// send the header are left to the form's token.
fn same_site(headers: &HeaderMap, ui: &Ui, id: &Identity) -> Result<(), Refused> {
    let site = headers
        .get("sec-fetch-site")
        .map(|v| v.as_bytes())
        .unwrap_or_default();
    if site == b"cross-site" || site == b"same-site" {
        tracing::warn!(user = %id.user, "form posted from another site refused");
        return Err(fail(
            StatusCode::FORBIDDEN,
            ui,
            Some(id),
            Title("title-form-refused"),
            ui.lang.tr("error-cross-site"),
        )
        .into());
    }
    Ok(())
}

/// Refuses a form without a valid token of `id` (`token`, if the form could
/// be read at all).
fn token(app: &App, ui: &Ui, id: &Identity, token: Option<&str>) -> Result<(), Refused> {
    app.key.check(&id.user, token).map_err(|bad| {
        tracing::warn!(user = %id.user, why = bad.reason(), "form refused");
        let lang = ui.lang;
        let text = match bad {
            BadToken::Missing => lang.tr("error-token-missing"),
            BadToken::Invalid => lang.tr("error-token-invalid"),
            BadToken::Expired => {
                let hours = i64::try_from(csrf::MAX_AGE / 3600).unwrap_or(i64::MAX);
                lang.tr_with("error-token-expired", &[("hours", Arg::Number(hours))])
            }
        };
        fail(
            StatusCode::FORBIDDEN,
            ui,
            Some(id),
            Title("title-form-refused"),
            text,
        )
        .into()
    })
}

/// A form posted by `id`, if it is the portal's own: from the portal's site,
/// readable, and with `id`'s token (`token_of` reads it). Checked before
/// anything is read or written.
fn posted<T>(
    app: &App,
    ui: &Ui,
    headers: &HeaderMap,
    id: &Identity,
    form: Result<Form<T>, FormRejection>,
    token_of: impl Fn(&T) -> Option<&str>,
) -> Result<T, Refused> {
    same_site(headers, ui, id)?;
    let form = form.ok().map(|Form(f)| f);
    token(app, ui, id, form.as_ref().and_then(&token_of))?;
    form.ok_or_else(|| {
        fail(
            StatusCode::BAD_REQUEST,
            ui,
            Some(id),
            Title("title-form-unreadable"),
            ui.lang.tr("error-form-unreadable"),
        )
        .into()
    })
}

/// A client acting as `id`.
fn client(app: &App, ui: &Ui, id: &Identity) -> Result<Client, Refused> {
    app.clients.get(id).map_err(|e| refused(e.into(), ui, id))
}

/// The caller, their client and the member `tenant`, read as the caller
/// (RBAC decides: another member's page is refused).
async fn member(
    app: &App,
    ui: &Ui,
    peer: SocketAddr,
    headers: &HeaderMap,
    tenant: &str,
) -> Result<(Identity, Client, Member), Refused> {
    let id = who(app, ui, peer, headers)?;
    let c = client(app, ui, &id)?;
    let member = cluster::member(&c, tenant)
        .await
        .map_err(|e| refused(e, ui, &id))?;
    Ok((id, c, member))
}

/// Home: the members the caller administers, and the approvals if they
/// decide; straight to the member's sites if that is all there is.
async fn home(
    State(app): State<Shared>,
    Extension(ui): Extension<Ui>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Answer {
    let id = who(&app, &ui, peer, &headers)?;
    let c = client(&app, &ui, &id)?;
    let members = cluster::members_of(&app.own, &id)
        .await
        .map_err(|e| refused(e, &ui, &id))?;
    let approver = cluster::may_decide(&c).await;
    if let [only] = members.as_slice()
        && !approver
    {
        return Ok(Redirect::to(&format!("/membres/{}/sites", only.name)).into_response());
    }
    let view = views::home(&members, approver);
    Ok(respond(
        StatusCode::OK,
        &ui,
        Some(&id),
        Title("title-home"),
        view,
    ))
}

/// "Mes sites": the member's sites, and its requests.
async fn sites(
    State(app): State<Shared>,
    Extension(ui): Extension<Ui>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(tenant): Path<String>,
) -> Answer {
    let (id, c, member) = member(&app, &ui, peer, &headers, &tenant).await?;
    let sites = cluster::sites(&c, &member.namespace)
        .await
        .map_err(|e| refused(e, &ui, &id))?;
    let names = cluster::product_names(&c).await;
    let requests = cluster::requests(&c, &member.namespace).await;
    let view = views::sites(ui.lang, &member, &sites, &names, &requests);
    Ok(respond(
        StatusCode::OK,
        &ui,
        Some(&id),
        Title("title-sites"),
        view,
    ))
}

/// "Demander un site": the form.
async fn ask_form(
    State(app): State<Shared>,
    Extension(ui): Extension<Ui>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(tenant): Path<String>,
) -> Answer {
    let (id, c, member) = member(&app, &ui, peer, &headers, &tenant).await?;
    let names = cluster::product_names(&c).await;
    let token = app.key.token(&id.user);
    let form = AskForm::default();
    let view = views::ask(&member, &names, &form, None, &token);
    Ok(respond(
        StatusCode::OK,
        &ui,
        Some(&id),
        Title("title-ask"),
        view,
    ))
}

/// The form sent: a ProvisioningRequest created as the agent, or the form
/// again saying what to correct.
async fn ask(
    State(app): State<Shared>,
    Extension(ui): Extension<Ui>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(tenant): Path<String>,
    form: Result<Form<AskForm>, FormRejection>,
) -> Answer {
    let id = who(&app, &ui, peer, &headers)?;
    let form = posted(&app, &ui, &headers, &id, form, |f: &AskForm| {
        f.jeton.as_deref()
    })?;
    let c = client(&app, &ui, &id)?;
    let member = cluster::member(&c, &tenant)
        .await
        .map_err(|e| refused(e, &ui, &id))?;
    let names = cluster::product_names(&c).await;
    let token = app.key.token(&id.user);
    let again = |error: &str| {
        let view = views::ask(&member, &names, &form, Some(error), &token);
        respond(
            StatusCode::UNPROCESSABLE_ENTITY,
            &ui,
            Some(&id),
            Title("title-ask"),
            view,
        )
    };
    let lang = ui.lang;
    let new = match form::new_request(&form) {
        Ok(new) => new,
        Err(invalid) => return Ok(again(&invalid.text(lang))),
    };
    let taken = cluster::taken_names(&c, &member.namespace).await;
    let name = form::free_name(&new.product, &taken);
    Ok(
        match cluster::create_request(&c, &member.namespace, &name, &new).await {
            Ok(()) => Redirect::to(&format!("/membres/{tenant}/demandes/{name}")).into_response(),
            Err(CreateError::Rejected(message)) => {
                again(&lang.tr_with("ask-rejected", &[("message", message.into())]))
            }
            Err(CreateError::NameTaken) => again(&lang.tr("ask-name-taken")),
            Err(CreateError::Failed(e)) => failure(&e, &ui, &id),
        },
    )
}

/// One request, its checks, decision and progress.
async fn request_page(
    State(app): State<Shared>,
    Extension(ui): Extension<Ui>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path((tenant, name)): Path<(String, String)>,
) -> Answer {
    let (id, c, member) = member(&app, &ui, peer, &headers, &tenant).await?;
    let r = cluster::request(&c, &member.namespace, &name)
        .await
        .map_err(|e| refused(e, &ui, &id))?;
    let view = views::request(ui.lang, &member, &r);
    Ok(respond(
        StatusCode::OK,
        &ui,
        Some(&id),
        Title("title-request"),
        view,
    ))
}

/// The approvers' page: every member's requests waiting for a decision, after
/// the confirmation of the one just taken (`fait` and `decision`).
async fn approvals(
    State(app): State<Shared>,
    Extension(ui): Extension<Ui>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Answer {
    let id = who(&app, &ui, peer, &headers)?;
    let c = client(&app, &ui, &id)?;
    let requests = match cluster::all_requests(&c).await {
        Ok(requests) => requests,
        Err(Failure::Forbidden) => {
            return Ok(fail(
                StatusCode::FORBIDDEN,
                &ui,
                Some(&id),
                Title("title-forbidden"),
                ui.lang.tr("error-approvers-only"),
            ));
        }
        Err(e) => return Err(refused(e, &ui, &id)),
    };
    let token = app.key.token(&id.user);
    let view = views::approvals(ui.lang, &requests, done(&query), &token);
    Ok(respond(
        StatusCode::OK,
        &ui,
        Some(&id),
        Title("title-approvals"),
        view,
    ))
}

/// The decision just taken, as the approvals page's query says it.
fn done(query: &HashMap<String, String>) -> Option<views::Done<'_>> {
    query.get("fait").map(|request| views::Done {
        request,
        denied: query.get("decision").map(String::as_str) == Some("refusee"),
    })
}

/// An approver's decision, sent from the approvals page.
#[derive(Deserialize, Default)]
pub struct DecideForm {
    #[serde(default)]
    action: Option<String>,
    #[serde(default)]
    raison: Option<String>,
    /// The token against cross-site forgery.
    #[serde(default)]
    jeton: Option<String>,
}

/// The decision a form's `action` asks for, and its word in the approvals
/// page's query.
fn chosen(action: Option<&str>) -> Option<(Decision, &'static str)> {
    match action {
        Some("approuver") => Some((Decision::Approved, "approuvee")),
        Some("refuser") => Some((Decision::Denied, "refusee")),
        _ => None,
    }
}

/// An approver's decision recorded, then back to the approvals.
async fn decide(
    State(app): State<Shared>,
    Extension(ui): Extension<Ui>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path((ns, name)): Path<(String, String)>,
    form: Result<Form<DecideForm>, FormRejection>,
) -> Answer {
    let id = who(&app, &ui, peer, &headers)?;
    let form = posted(&app, &ui, &headers, &id, form, |f: &DecideForm| {
        f.jeton.as_deref()
    })?;
    let c = client(&app, &ui, &id)?;
    let Some((decision, word)) = chosen(form.action.as_deref()) else {
        return Ok(fail(
            StatusCode::BAD_REQUEST,
            &ui,
            Some(&id),
            Title("title-decision"),
            ui.lang.tr("error-no-decision"),
        ));
    };
    Ok(
        match cluster::decide(&c, &ns, &name, decision, form.raison.clone()).await {
            Ok(()) => Redirect::to(&format!("/approbations?fait={ns}/{name}&decision={word}"))
                .into_response(),
            Err(e) => {
                let (status, text) = decision_failure(&ui, &e);
                respond(
                    status,
                    &ui,
                    Some(&id),
                    Title("title-decision"),
                    views::decision_refused(text),
                )
            }
        },
    )
}

/// The status and the words for a decision not recorded.
fn decision_failure(ui: &Ui, e: &DecideError) -> (StatusCode, String) {
    let lang = ui.lang;
    match e {
        DecideError::Forbidden => (StatusCode::FORBIDDEN, lang.tr("decision-forbidden")),
        DecideError::Changed => (StatusCode::CONFLICT, lang.tr("decision-changed")),
        DecideError::NotValid => (StatusCode::CONFLICT, lang.tr("decision-not-valid")),
        DecideError::NoReason => (
            StatusCode::UNPROCESSABLE_ENTITY,
            lang.tr("decision-no-reason"),
        ),
        DecideError::AlreadyDecided => (StatusCode::CONFLICT, lang.tr("decision-already")),
        DecideError::NotFound => (StatusCode::NOT_FOUND, lang.tr("decision-gone")),
        DecideError::Failed(why) => (
            StatusCode::BAD_GATEWAY,
            lang.tr_with("decision-failed", &[("why", why.into())]),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::i18n::Lang;
    use axum::http::HeaderValue;

    fn agent() -> Identity {
        Identity {
            user: "agent@ans.be".into(),
            groups: vec![],
        }
    }

    fn ui(lang: Lang) -> Ui {
        Ui {
            lang,
            switch_to: "/".into(),
        }
    }

    #[test]
    fn a_form_from_another_site_is_refused() {
        let mut headers = HeaderMap::new();
        assert!(same_site(&headers, &ui(Lang::Fr), &agent()).is_ok());
        headers.insert("sec-fetch-site", HeaderValue::from_static("same-origin"));
        assert!(same_site(&headers, &ui(Lang::Fr), &agent()).is_ok());
        headers.insert("sec-fetch-site", HeaderValue::from_static("none"));
        assert!(same_site(&headers, &ui(Lang::Fr), &agent()).is_ok());
        for site in ["cross-site", "same-site"] {
            headers.insert("sec-fetch-site", HeaderValue::from_static(site));
            let refused = same_site(&headers, &ui(Lang::Fr), &agent())
                .err()
                .map(IntoResponse::into_response);
            assert_eq!(
                refused.map(|r| r.status()),
                Some(StatusCode::FORBIDDEN),
                "{site}"
            );
        }
    }

    #[test]
    fn a_failure_is_a_status_and_a_page_that_is_not_cached() {
        let r = failure(&Failure::NotFound, &ui(Lang::De), &agent());
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
        assert_eq!(
            r.headers().get(header::CACHE_CONTROL),
            Some(&HeaderValue::from_static("no-store"))
        );
        assert_eq!(
            failure(&Failure::Forbidden, &ui(Lang::Fr), &agent()).status(),
            StatusCode::FORBIDDEN
        );
    }

    #[test]
    fn only_approving_and_denying_are_decisions() {
        assert_eq!(
            chosen(Some("approuver")),
            Some((Decision::Approved, "approuvee"))
        );
        assert_eq!(chosen(Some("refuser")), Some((Decision::Denied, "refusee")));
        assert_eq!(chosen(Some("x")), None);
        assert_eq!(chosen(None), None);
    }

    #[test]
    fn the_approvals_query_confirms_the_decision_taken() {
        let query = HashMap::from([
            ("fait".to_string(), "tenant-ans/web".to_string()),
            ("decision".to_string(), "refusee".to_string()),
        ]);
        assert_eq!(
            done(&query),
            Some(views::Done {
                request: "tenant-ans/web",
                denied: true
            })
        );
        assert_eq!(done(&HashMap::new()), None);
    }

    #[test]
    fn each_decision_failure_has_its_status() {
        let status = |e: DecideError| decision_failure(&ui(Lang::Fr), &e).0;
        assert_eq!(status(DecideError::Forbidden), StatusCode::FORBIDDEN);
        assert_eq!(status(DecideError::Changed), StatusCode::CONFLICT);
        assert_eq!(status(DecideError::NotValid), StatusCode::CONFLICT);
        assert_eq!(status(DecideError::AlreadyDecided), StatusCode::CONFLICT);
        assert_eq!(
            status(DecideError::NoReason),
            StatusCode::UNPROCESSABLE_ENTITY
        );
        assert_eq!(status(DecideError::NotFound), StatusCode::NOT_FOUND);
        let (status, text) = decision_failure(&ui(Lang::Fr), &DecideError::Failed("boom".into()));
        assert_eq!(status, StatusCode::BAD_GATEWAY);
        assert_eq!(text, "La décision n'a pas pu être enregistrée (boom).");
        let (_, text) = decision_failure(&ui(Lang::De), &DecideError::Failed("boom".into()));
        assert_eq!(
            text,
            "Die Entscheidung konnte nicht gespeichert werden (boom)."
        );
    }
}
