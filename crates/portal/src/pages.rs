//! The portal's pages. Each handler reads who is asking (the proxy's headers,
//! from the trusted proxy only), then reads and writes Kubernetes as them.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::Router;
use axum::extract::{ConnectInfo, Form, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, ListParams, PostParams};
use kube::{Client, ResourceExt};
use mutu_api::provisioning::Decision;
use mutu_api::{
    Certificate, MemberTenant, PloneSite, Product, ProvisioningRequest, tenant_namespace,
};
use mutu_provisioning::check::{FULFILLED, VALIDATED};
use mutu_provisioning::decision::{self, DecisionError};
use mutu_runtime::conditions;
use serde::Deserialize;
use serde_json::json;

use crate::form::{self, AskForm};
use crate::html::{self, esc};
use crate::{Clients, Identity, NoIdentity};

/// What every handler shares.
pub struct App {
    pub trusted: BTreeSet<IpAddr>,
    pub clients: Clients,
    /// The portal's own client: only to list MemberTenants for the home page.
    pub own: Client,
}

type Shared = Arc<App>;

/// The page that answers instead, when a step refuses (boxed: a response is large).
type Refused = Box<Response>;

pub fn router(app: Shared) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/", get(home))
        .route("/membres/{tenant}/sites", get(sites))
        .route("/membres/{tenant}/demander", get(ask_form).post(ask))
        .route("/membres/{tenant}/demandes/{name}", get(request_page))
        .route("/approbations", get(approvals))
        .route("/approbations/{ns}/{name}", axum::routing::post(decide))
        .with_state(app)
}

fn respond(status: StatusCode, who: Option<&Identity>, title: &str, body: &str) -> Response {
    let page = html::page(title, who.map(|w| w.user.as_str()), body, None);
    (status, [(header::CACHE_CONTROL, "no-store")], Html(page)).into_response()
}

fn fail(status: StatusCode, who: Option<&Identity>, title: &str, text: &str) -> Response {
    let body = format!(
        r#"{}<p><a href="/">Retour à l'accueil</a></p>"#,
        html::message(true, text)
    );
    respond(status, who, title, &body)
}

fn kube_fail(e: &kube::Error, who: &Identity) -> Response {
    match e {
        kube::Error::Api(s) if s.code == 403 => fail(
            StatusCode::FORBIDDEN,
            Some(who),
            "Accès refusé",
            "Vous n'avez pas accès à cette page. Si vous pensez que c'est une erreur, contactez le support de la coopérative.",
        ),
        kube::Error::Api(s) if s.code == 404 => fail(
            StatusCode::NOT_FOUND,
            Some(who),
            "Introuvable",
            "Cette page n'existe pas ou plus.",
        ),
        _ => {
            tracing::warn!(error = %e, user = %who.user, "Kubernetes call failed");
            fail(
                StatusCode::BAD_GATEWAY,
                Some(who),
                "Service indisponible",
                "Le service est momentanément indisponible ; réessayez dans un instant.",
            )
        }
    }
}

/// The caller, or the page that says why there is none.
fn who(app: &App, peer: SocketAddr, headers: &HeaderMap) -> Result<Identity, Refused> {
    crate::identity(&app.trusted, peer, headers).map_err(|e| {
        match &e {
            NoIdentity::Untrusted(ip) => {
                tracing::warn!(%ip, "identity headers from an untrusted address ignored");
            }
            NoIdentity::Reserved(name) => {
                tracing::warn!(%name, "the proxy named a user or group Kubernetes reserves; refused");
            }
            NoIdentity::NoUser => {}
        }
        Box::new(fail(
            StatusCode::UNAUTHORIZED,
            None,
            "Connexion requise",
            "Ce portail s'utilise au travers de la connexion de la coopérative : ouvrez-le depuis l'adresse habituelle.",
        ))
    })
}

/// Refuses a form posted from another site (`Sec-Fetch-Site: cross-site`).
fn same_site(headers: &HeaderMap, id: &Identity) -> Result<(), Refused> {
    let site = headers
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if site == "cross-site" {
        return Err(Box::new(fail(
            StatusCode::FORBIDDEN,
            Some(id),
            "Formulaire refusé",
            "Ce formulaire ne vient pas du portail ; recommencez depuis le portail.",
        )));
    }
    Ok(())
}

fn client(app: &App, id: &Identity) -> Result<Client, Refused> {
    app.clients.get(id).map_err(|e| Box::new(kube_fail(&e, id)))
}

fn day(t: &Time) -> String {
    t.0.strftime("%d/%m/%Y").to_string()
}

fn is_true(conds: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition], t: &str) -> bool {
    conditions::is_true(conds, t)
}

async fn is_approver(c: &Client) -> bool {
    let review = SelfSubjectAccessReview {
        spec: SelfSubjectAccessReviewSpec {
            resource_attributes: Some(ResourceAttributes {
                group: Some(mutu_api::GROUP.to_string()),
                resource: Some("provisioningrequests".to_string()),
                subresource: Some("status".to_string()),
                verb: Some("patch".to_string()),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    Api::<SelfSubjectAccessReview>::all(c.clone())
        .create(&PostParams::default(), &review)
        .await
        .ok()
        .and_then(|r| r.status)
        .is_some_and(|s| s.allowed)
}

/// Home: the members the caller administers, and the approvals if they decide.
async fn home(
    State(app): State<Shared>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    let id = match who(&app, peer, &headers) {
        Ok(id) => id,
        Err(r) => return *r,
    };
    let c = match client(&app, &id) {
        Ok(c) => c,
        Err(r) => return *r,
    };
    let tenants = match Api::<MemberTenant>::all(app.own.clone())
        .list(&ListParams::default())
        .await
    {
        Ok(list) => list.items,
        Err(e) => return kube_fail(&e, &id),
    };
    let mine: Vec<&MemberTenant> = tenants
        .iter()
        .filter(|t| {
            let admins = &t.spec.admins;
            admins.users.contains(&id.user) || admins.groups.iter().any(|g| id.groups.contains(g))
        })
        .collect();
    let approver = is_approver(&c).await;
    if let [only] = mine.as_slice()
        && !approver
    {
        return Redirect::to(&format!("/membres/{}/sites", only.name_any())).into_response();
    }
    let mut body = String::new();
    if !mine.is_empty() {
        body.push_str("<h2>Mes membres</h2><ul>");
        for t in &mine {
            body.push_str(&format!(
                r#"<li><a href="/membres/{name}/sites">{display}</a> — <a href="/membres/{name}/demander">demander un site</a></li>"#,
                name = esc(&t.name_any()),
                display = esc(&t.spec.display_name)
            ));
        }
        body.push_str("</ul>");
    }
    if approver {
        body.push_str(
            r#"<h2>Approbations</h2><p><a href="/approbations">Demandes à approuver</a></p>"#,
        );
    }
    if body.is_empty() {
        body = html::message(
            false,
            "Votre compte n'est administrateur d'aucun membre. Demandez l'accès au support de la coopérative.",
        );
    }
    respond(StatusCode::OK, Some(&id), "Accueil", &body)
}

/// The caller's client and the member `tenant`, read as the caller (RBAC
/// decides: another member's page is refused).
async fn member(
    app: &App,
    peer: SocketAddr,
    headers: &HeaderMap,
    tenant: &str,
) -> Result<(Identity, Client, MemberTenant, String), Refused> {
    let id = who(app, peer, headers)?;
    let c = client(app, &id)?;
    let t = Api::<MemberTenant>::all(c.clone())
        .get(tenant)
        .await
        .map_err(|e| Box::new(kube_fail(&e, &id)))?;
    let ns = t
        .status
        .as_ref()
        .and_then(|s| s.namespace.clone())
        .unwrap_or_else(|| tenant_namespace(tenant));
    Ok((id, c, t, ns))
}

async fn display_names(c: &Client) -> BTreeMap<String, String> {
    Api::<Product>::all(c.clone())
        .list(&ListParams::default())
        .await
        .map(|l| {
            l.items
                .into_iter()
                .map(|p| (p.name_any(), p.spec.display_name.clone()))
                .collect()
        })
        .unwrap_or_default()
}

fn member_nav(t: &str) -> String {
    format!(
        r#"<nav aria-label="Pages du membre"><p><a href="/membres/{t}/sites">Mes sites</a> · <a href="/membres/{t}/demander">Demander un site</a></p></nav>"#,
        t = esc(t)
    )
}

/// "Mes sites": the member's sites, and its requests.
async fn sites(
    State(app): State<Shared>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(tenant): Path<String>,
) -> Response {
    let (id, c, t, ns) = match member(&app, peer, &headers, &tenant).await {
        Ok(m) => m,
        Err(r) => return *r,
    };
    let mut sites = match Api::<PloneSite>::namespaced(c.clone(), &ns)
        .list(&ListParams::default())
        .await
    {
        Ok(l) => l.items,
        Err(e) => return kube_fail(&e, &id),
    };
    sites.sort_by_key(|s| s.name_any());
    let expiry: HashMap<String, Time> = Api::<Certificate>::namespaced(c.clone(), &ns)
        .list(&ListParams::default())
        .await
        .map(|l| {
            l.items
                .into_iter()
                .filter_map(|cert| {
                    let after = cert.status.as_ref()?.not_after.clone()?;
                    Some((cert.name_any(), after))
                })
                .collect()
        })
        .unwrap_or_default();
    let names = display_names(&c).await;
    let mut body = member_nav(&tenant);
    body.push_str(&format!("<p>{}</p>", esc(&t.spec.display_name)));
    if sites.is_empty() {
        body.push_str("<p>Votre membre n'a pas encore de site.</p>");
    } else {
        body.push_str(
            r#"<div class="table"><table><caption class="skip">Sites du membre</caption><thead><tr><th scope="col">Adresse</th><th scope="col">Produit</th><th scope="col">Version</th><th scope="col">État</th><th scope="col">Certificat</th><th scope="col">Dernière sauvegarde</th></tr></thead><tbody>"#,
        );
        for s in &sites {
            let status = s.status.clone().unwrap_or_default();
            let host = s.spec.hostnames.first().cloned().unwrap_or_default();
            let (class, state) = if is_true(&status.conditions, mutu_api::CONDITION_READY) {
                ("state-ok", "En ligne")
            } else if s.metadata.deletion_timestamp.is_some() {
                ("state-ko", "En suppression")
            } else {
                ("state-wait", "En préparation")
            };
            let cert = expiry
                .get(&format!("{}-tls", s.name_any()))
                .map(|t| format!("expire le {}", day(t)))
                .unwrap_or_else(|| "—".to_string());
            let backup = status
                .last_backup
                .as_ref()
                .map(day)
                .unwrap_or_else(|| "aucune".to_string());
            body.push_str(&format!(
                r#"<tr><td><a href="https://{host}/">{host}</a></td><td>{product}</td><td>{release}</td><td class="{class}">{state}</td><td>{cert}</td><td>{backup}</td></tr>"#,
                host = esc(&host),
                product = esc(names.get(&s.spec.product).unwrap_or(&s.spec.product)),
                release = esc(status.release.as_deref().unwrap_or("—")),
            ));
        }
        body.push_str("</tbody></table></div>");
    }
    let requests = Api::<ProvisioningRequest>::namespaced(c.clone(), &ns)
        .list(&ListParams::default())
        .await
        .map(|l| l.items)
        .unwrap_or_default();
    if !requests.is_empty() {
        body.push_str("<h2>Mes demandes</h2><ul>");
        for r in &requests {
            body.push_str(&format!(
                r#"<li><a href="/membres/{t}/demandes/{n}">{host}</a> — {state}</li>"#,
                t = esc(&tenant),
                n = esc(&r.name_any()),
                host = esc(r
                    .spec
                    .hostnames
                    .first()
                    .map(String::as_str)
                    .unwrap_or_default()),
                state = esc(request_state(r)),
            ));
        }
        body.push_str("</ul>");
    }
    respond(StatusCode::OK, Some(&id), "Mes sites", &body)
}

/// A request's state in a few words.
fn request_state(r: &ProvisioningRequest) -> &'static str {
    let status = r.status.clone().unwrap_or_default();
    if is_true(&status.conditions, mutu_api::CONDITION_READY) {
        return "site en ligne";
    }
    match decision::current_decision(r) {
        Decision::Denied => "refusée",
        Decision::Approved => "approuvée, mise en service en cours",
        Decision::Pending if !status.reasons.is_empty() => "à corriger",
        Decision::Pending => "en attente d'approbation",
    }
}

fn ask_body(
    tenant: &str,
    t: &MemberTenant,
    names: &BTreeMap<String, String>,
    form: &AskForm,
    error: Option<&str>,
) -> String {
    let used = t
        .status
        .as_ref()
        .map(|s| s.sites.clone())
        .unwrap_or_default();
    let mut options = String::new();
    for (product, entitled) in &t.spec.entitlements {
        let n = used.get(product).copied().unwrap_or(0);
        if n >= *entitled {
            continue;
        }
        let selected = if form.produit.as_deref() == Some(product.as_str()) {
            " selected"
        } else {
            ""
        };
        options.push_str(&format!(
            r#"<option value="{p}"{selected}>{d} ({n} sur {entitled} utilisés)</option>"#,
            p = esc(product),
            d = esc(names.get(product).unwrap_or(product)),
        ));
    }
    let mut body = member_nav(tenant);
    if let Some(e) = error {
        body.push_str(&html::message(true, e));
    }
    if options.is_empty() {
        body.push_str(&html::message(
            false,
            "Votre membre utilise déjà tous les sites prévus par son contrat ; contactez la coopérative pour en ajouter.",
        ));
        return body;
    }
    let domains = t.spec.domains.join(", ");
    let example = t
        .spec
        .domains
        .first()
        .map(|d| format!("www.{d}"))
        .unwrap_or_else(|| "www.commune.be".to_string());
    let lang = form.langue.as_deref().unwrap_or("fr");
    let lang_option = |code: &str, label: &str| {
        format!(
            r#"<option value="{code}"{}>{label}</option>"#,
            if lang == code { " selected" } else { "" }
        )
    };
    body.push_str(&format!(
        r#"<form method="post" action="/membres/{t}/demander">
<label for="produit">Produit</label>
<select id="produit" name="produit" required>{options}</select>
<label for="adresse">Adresse du site</label>
<p class="hint" id="adresse-aide">Une adresse sous les domaines de votre membre ({domains}), par exemple {example}.</p>
<input id="adresse" name="adresse" type="text" inputmode="url" autocomplete="off" required aria-describedby="adresse-aide" value="{adresse}">
<label for="alias">Autre adresse (facultatif)</label>
<input id="alias" name="alias" type="text" inputmode="url" autocomplete="off" value="{alias}">
<label for="langue">Langue du site</label>
<select id="langue" name="langue">{fr}{de}{nl}{en}</select>
<label for="commentaire">Pourquoi ce site ? (facultatif)</label>
<textarea id="commentaire" name="commentaire">{commentaire}</textarea>
<button type="submit">Envoyer la demande</button>
</form>"#,
        t = esc(tenant),
        domains = esc(&domains),
        example = esc(&example),
        adresse = esc(form.adresse.as_deref().unwrap_or_default()),
        alias = esc(form.alias.as_deref().unwrap_or_default()),
        commentaire = esc(form.commentaire.as_deref().unwrap_or_default()),
        fr = lang_option("fr", "Français"),
        de = lang_option("de", "Deutsch"),
        nl = lang_option("nl", "Nederlands"),
        en = lang_option("en", "English"),
    ));
    body
}

/// "Demander un site": the form.
async fn ask_form(
    State(app): State<Shared>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(tenant): Path<String>,
) -> Response {
    let (id, c, t, _) = match member(&app, peer, &headers, &tenant).await {
        Ok(m) => m,
        Err(r) => return *r,
    };
    let names = display_names(&c).await;
    let body = ask_body(&tenant, &t, &names, &AskForm::default(), None);
    respond(StatusCode::OK, Some(&id), "Demander un site", &body)
}

/// The form sent: a ProvisioningRequest created as the agent.
async fn ask(
    State(app): State<Shared>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(tenant): Path<String>,
    Form(form): Form<AskForm>,
) -> Response {
    let (id, c, t, ns) = match member(&app, peer, &headers, &tenant).await {
        Ok(m) => m,
        Err(r) => return *r,
    };
    if let Err(r) = same_site(&headers, &id) {
        return *r;
    }
    let names = display_names(&c).await;
    let again = |error: &str| {
        respond(
            StatusCode::UNPROCESSABLE_ENTITY,
            Some(&id),
            "Demander un site",
            &ask_body(&tenant, &t, &names, &form, Some(error)),
        )
    };
    let new = match form::new_request(&form) {
        Ok(new) => new,
        Err(invalid) => return again(&invalid.to_string()),
    };
    let mut taken = BTreeSet::new();
    if let Ok(l) = Api::<PloneSite>::namespaced(c.clone(), &ns)
        .list(&ListParams::default())
        .await
    {
        taken.extend(l.items.iter().map(|s| s.name_any()));
    }
    if let Ok(l) = Api::<ProvisioningRequest>::namespaced(c.clone(), &ns)
        .list(&ListParams::default())
        .await
    {
        taken.extend(l.items.iter().map(|r| r.name_any()));
    }
    let name = form::free_name(&new.product, &taken);
    let mut spec = json!({
        "product": new.product,
        "hostnames": new.hostnames,
        "siteName": name,
        "options": {"language": new.language},
    });
    if let Some(comment) = &new.comment {
        spec["comment"] = json!(comment);
    }
    let body = json!({
        "apiVersion": mutu_api::API_VERSION, "kind": "ProvisioningRequest",
        "metadata": {"name": name, "namespace": ns},
        "spec": spec,
    });
    let request: ProvisioningRequest = match serde_json::from_value(body) {
        Ok(r) => r,
        Err(_) => return again("Cette demande n'est pas complète ; vérifiez les champs."),
    };
    match Api::<ProvisioningRequest>::namespaced(c.clone(), &ns)
        .create(&PostParams::default(), &request)
        .await
    {
        Ok(_) => Redirect::to(&format!("/membres/{tenant}/demandes/{name}")).into_response(),
        Err(kube::Error::Api(s)) if s.code == 422 => again(&format!(
            "La demande a été refusée telle quelle : {}",
            s.message
        )),
        Err(kube::Error::Api(s)) if s.code == 409 => again(
            "Une demande du même nom vient d'être faite ; envoyez le formulaire une nouvelle fois.",
        ),
        Err(e) => kube_fail(&e, &id),
    }
}

/// One request, its checks, decision and progress; reloads itself until done.
async fn request_page(
    State(app): State<Shared>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path((tenant, name)): Path<(String, String)>,
) -> Response {
    let (id, c, t, ns) = match member(&app, peer, &headers, &tenant).await {
        Ok(m) => m,
        Err(r) => return *r,
    };
    let r = match Api::<ProvisioningRequest>::namespaced(c.clone(), &ns)
        .get(&name)
        .await
    {
        Ok(r) => r,
        Err(e) => return kube_fail(&e, &id),
    };
    let status = r.status.clone().unwrap_or_default();
    let conds = &status.conditions;
    let cond = |t: &str| conditions::find(conds, t);
    let decision = decision::current_decision(&r);
    let ready = is_true(conds, mutu_api::CONDITION_READY);
    let checked = cond(VALIDATED).is_some();
    let valid = is_true(conds, VALIDATED);
    let mut body = member_nav(&tenant);
    body.push_str(&format!(
        "<p>Demande de site pour <strong>{}</strong>.</p><ol class=\"steps\">",
        esc(&r.spec.hostnames.join(", "))
    ));
    // 1. The checks.
    body.push_str(&if !checked {
        r#"<li><strong>Vérification :</strong> <span class="state-wait">en cours…</span></li>"#
            .to_string()
    } else if valid {
        r#"<li><strong>Vérification :</strong> <span class="state-ok">conforme</span></li>"#
            .to_string()
    } else {
        r#"<li><strong>Vérification :</strong> <span class="state-ko">à corriger</span></li>"#
            .to_string()
    });
    // 2. The decision.
    let by = status.decided_by.clone().unwrap_or_default();
    let decided = match decision {
        Decision::Approved if by == mutu_provisioning::check::AUTO_APPROVER => {
            r#"<span class="state-ok">approuvée automatiquement</span>"#.to_string()
        }
        Decision::Approved => format!(
            r#"<span class="state-ok">approuvée par {}</span>"#,
            esc(&by)
        ),
        Decision::Denied => format!(r#"<span class="state-ko">refusée par {}</span>"#, esc(&by)),
        Decision::Pending if checked && valid => {
            r#"<span class="state-wait">en attente d'un approbateur</span>"#.to_string()
        }
        Decision::Pending => "—".to_string(),
    };
    body.push_str(&format!("<li><strong>Décision :</strong> {decided}</li>"));
    // 3. The site.
    let fulfilled = cond(FULFILLED)
        .map(|c| c.reason.as_str())
        .unwrap_or_default();
    let site = if ready {
        let url = format!(
            "https://{}/",
            r.spec
                .hostnames
                .first()
                .map(String::as_str)
                .unwrap_or_default()
        );
        format!(
            r#"<span class="state-ok">votre site est en ligne : <a href="{u}">{u}</a></span>"#,
            u = esc(&url)
        )
    } else {
        match fulfilled {
            "AwaitingGitOps" => r#"<span class="state-wait">la coopérative ajoute le site à sa configuration</span>"#.to_string(),
            "Creating" | "SiteNotReady" => r#"<span class="state-wait">création du site en cours…</span>"#.to_string(),
            "SiteDeleted" => r#"<span class="state-ko">le site a été supprimé depuis</span>"#.to_string(),
            _ => "—".to_string(),
        }
    };
    body.push_str(&format!(
        "<li><strong>Mise en service :</strong> {site}</li></ol>"
    ));
    if !status.reasons.is_empty() {
        body.push_str(r#"<h2 id="raisons">Pourquoi la demande ne peut pas aboutir</h2><ul aria-labelledby="raisons">"#);
        for reason in &status.reasons {
            body.push_str(&format!(
                "<li>{}</li>",
                esc(&html::reason(reason, &t.spec.domains))
            ));
        }
        body.push_str("</ul>");
        if decision != Decision::Denied {
            body.push_str(&format!(
                r#"<p><a href="/membres/{}/demander">Faire une nouvelle demande</a></p>"#,
                esc(&tenant)
            ));
        }
    }
    let done = ready || decision == Decision::Denied;
    let refresh = if done {
        None
    } else if checked && !valid {
        Some(10)
    } else {
        Some(5)
    };
    let page = html::page("Ma demande", Some(&id.user), &body, refresh);
    (
        StatusCode::OK,
        [(header::CACHE_CONTROL, "no-store")],
        Html(page),
    )
        .into_response()
}

/// The approvers' page: every member's requests waiting for a decision.
async fn approvals(
    State(app): State<Shared>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let id = match who(&app, peer, &headers) {
        Ok(id) => id,
        Err(r) => return *r,
    };
    let c = match client(&app, &id) {
        Ok(c) => c,
        Err(r) => return *r,
    };
    let requests = match Api::<ProvisioningRequest>::all(c.clone())
        .list(&ListParams::default())
        .await
    {
        Ok(l) => l.items,
        Err(kube::Error::Api(s)) if s.code == 403 => {
            return fail(
                StatusCode::FORBIDDEN,
                Some(&id),
                "Accès refusé",
                "Cette page est réservée aux approbateurs de la coopérative.",
            );
        }
        Err(e) => return kube_fail(&e, &id),
    };
    let mut body = String::new();
    if let Some(done) = query.get("fait") {
        let what = if query.get("decision").map(String::as_str) == Some("refusee") {
            "refusée"
        } else {
            "approuvée"
        };
        body.push_str(&html::message(false, &format!("Demande {done} {what}.")));
    }
    // Those an approver can approve first, then those that fail their checks.
    let mut pending: Vec<&ProvisioningRequest> = requests
        .iter()
        .filter(|r| decision::current_decision(r) == Decision::Pending)
        .collect();
    pending.sort_by_key(|r| {
        let valid = r
            .status
            .as_ref()
            .is_some_and(|s| is_true(&s.conditions, VALIDATED));
        (!valid, r.namespace().unwrap_or_default(), r.name_any())
    });
    if pending.is_empty() {
        body.push_str("<p>Aucune demande n'attend de décision.</p>");
    }
    for r in pending {
        let ns = r.namespace().unwrap_or_default();
        let name = r.name_any();
        let status = r.status.clone().unwrap_or_default();
        let valid = is_true(&status.conditions, VALIDATED);
        let key = format!("{ns}-{name}");
        body.push_str(&format!(
            r#"<section class="card" aria-labelledby="t-{key}"><h2 id="t-{key}">{ns}/{name}</h2><p>Produit : {product}<br>Adresses : {hosts}{comment}</p>"#,
            key = esc(&key),
            ns = esc(&ns),
            name = esc(&name),
            product = esc(&r.spec.product),
            hosts = esc(&r.spec.hostnames.join(", ")),
            comment = r
                .spec
                .comment
                .as_deref()
                .map(|c| format!("<br>Motif : {}", esc(c)))
                .unwrap_or_default(),
        ));
        if valid {
            body.push_str(&format!(
                r#"<form method="post" action="/approbations/{ns}/{name}"><input type="hidden" name="action" value="approuver"><button type="submit">Approuver {ns}/{name}</button></form>"#,
                ns = esc(&ns),
                name = esc(&name)
            ));
        } else {
            body.push_str("<p>Cette demande ne passe pas les vérifications :</p><ul>");
            for reason in &status.reasons {
                body.push_str(&format!("<li>{}</li>", esc(&html::reason(reason, &[]))));
            }
            body.push_str("</ul>");
        }
        body.push_str(&format!(
            r#"<form method="post" action="/approbations/{ns}/{name}"><input type="hidden" name="action" value="refuser"><label for="raison-{key}">Raison du refus (le membre la lira)</label><textarea id="raison-{key}" name="raison" required></textarea><button type="submit" class="deny">Refuser {ns}/{name}</button></form></section>"#,
            ns = esc(&ns),
            name = esc(&name),
            key = esc(&key)
        ));
    }
    respond(StatusCode::OK, Some(&id), "Demandes à approuver", &body)
}

/// An approver's decision, sent from the approvals page.
#[derive(Deserialize, Default)]
pub struct DecideForm {
    #[serde(default)]
    action: Option<String>,
    #[serde(default)]
    raison: Option<String>,
}

async fn decide(
    State(app): State<Shared>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path((ns, name)): Path<(String, String)>,
    Form(form): Form<DecideForm>,
) -> Response {
    let id = match who(&app, peer, &headers) {
        Ok(id) => id,
        Err(r) => return *r,
    };
    if let Err(r) = same_site(&headers, &id) {
        return *r;
    }
    let c = match client(&app, &id) {
        Ok(c) => c,
        Err(r) => return *r,
    };
    let (decision, word) = match form.action.as_deref() {
        Some("approuver") => (Decision::Approved, "approuvee"),
        Some("refuser") => (Decision::Denied, "refusee"),
        _ => {
            return fail(
                StatusCode::BAD_REQUEST,
                Some(&id),
                "Décision",
                "Choisissez d'approuver ou de refuser.",
            );
        }
    };
    match decision::decide(&c, &ns, &name, decision, form.raison.clone()).await {
        Ok(_) => {
            Redirect::to(&format!("/approbations?fait={ns}/{name}&decision={word}")).into_response()
        }
        Err(e) => {
            let (status, text) = match &e {
                DecisionError::Forbidden { .. } => (
                    StatusCode::FORBIDDEN,
                    "Vous n'êtes pas approbateur : seule la coopérative décide des demandes, et jamais un membre des siennes.".to_string(),
                ),
                DecisionError::Conflict(_) => (
                    StatusCode::CONFLICT,
                    "La demande a changé entre-temps (le membre l'a peut-être modifiée) ; relisez-la avant de décider.".to_string(),
                ),
                DecisionError::NotValid { .. } => (
                    StatusCode::CONFLICT,
                    "Cette demande ne peut pas être approuvée : elle ne passe pas les vérifications.".to_string(),
                ),
                DecisionError::NoReason => (
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "Indiquez la raison du refus : le membre la lira.".to_string(),
                ),
                DecisionError::AlreadyDecided { .. } => (
                    StatusCode::CONFLICT,
                    "Cette demande a déjà été décidée.".to_string(),
                ),
                DecisionError::NotFound(_) => (StatusCode::NOT_FOUND, "Cette demande n'existe plus.".to_string()),
                other => (
                    StatusCode::BAD_GATEWAY,
                    format!("La décision n'a pas pu être enregistrée ({other})."),
                ),
            };
            let body = format!(
                r#"{}<p><a href="/approbations">Retour aux demandes</a></p>"#,
                html::message(true, &text)
            );
            respond(status, Some(&id), "Décision", &body)
        }
    }
}
