//! Hostile requests to the members' portal, in plain HTTP against `mutu portal`
//! on 127.0.0.1 (trusting 127.0.0.1, as it trusts the authenticating proxy)
//! and the real control plane: identities smuggling the approvers' group,
//! forms from another site or without their user's token. Each is refused
//! with a page that says why, nothing is created or decided, and the same
//! form sent honestly afterwards goes through.

use std::time::Duration;

use kube::Client;
use kube::api::{Api, PostParams};
use mutu_api::ProvisioningRequest;
use mutu_api::provisioning::Decision;
use mutu_e2e::member_entitled_to_one;
use mutu_runtime::testing::{self, eventually, unique_name};
use reqwest::StatusCode;
use serde_json::json;

use crate::count;

const APPROVERS: &str = "mutu-approvers";

/// `mutu portal` (see [`mutu_e2e::portal::Portal`]), with an HTTP client that does not
/// follow redirects.
struct Portal {
    /// Kept for its drop, which stops the portal.
    _process: mutu_e2e::portal::Portal,
    url: String,
    http: reqwest::Client,
}

impl Portal {
    async fn start() -> anyhow::Result<Self> {
        let process = mutu_e2e::portal::Portal::start().await?;
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(30))
            .build()?;
        Ok(Self {
            url: process.url.clone(),
            _process: process,
            http,
        })
    }

    /// A request to `path` as the proxy sends it for `user` in `groups`
    /// (one `X-Forwarded-Groups` header per entry of `groups`).
    fn as_user(
        &self,
        method: reqwest::Method,
        path: &str,
        user: &str,
        groups: &[&str],
    ) -> reqwest::RequestBuilder {
        let mut r = self
            .http
            .request(method, format!("{}{path}", self.url))
            .header("X-Forwarded-User", user);
        for g in groups {
            r = r.header("X-Forwarded-Groups", *g);
        }
        r
    }

    /// The page at `path` for `user` in `groups`.
    async fn get(&self, path: &str, user: &str, groups: &[&str]) -> anyhow::Result<Answer> {
        Answer::of(self.as_user(reqwest::Method::GET, path, user, groups)).await
    }

    /// `form` posted to `path` from the portal's own page by `user` in `groups`.
    async fn post(
        &self,
        path: &str,
        user: &str,
        groups: &[&str],
        form: &[(&str, &str)],
    ) -> anyhow::Result<Answer> {
        Answer::of(
            self.as_user(reqwest::Method::POST, path, user, groups)
                .header("Sec-Fetch-Site", "same-origin")
                .form(form),
        )
        .await
    }
}

/// A response: status, headers and page.
struct Answer {
    status: StatusCode,
    headers: reqwest::header::HeaderMap,
    page: String,
}

impl Answer {
    async fn of(request: reqwest::RequestBuilder) -> anyhow::Result<Self> {
        let response = request.send().await?;
        Ok(Self {
            status: response.status(),
            headers: response.headers().clone(),
            page: response.text().await?,
        })
    }

    /// The form token in the page.
    fn token(&self) -> anyhow::Result<String> {
        self.page
            .split_once(r#"name="jeton" value=""#)
            .and_then(|(_, rest)| rest.split_once('"'))
            .map(|(t, _)| t.to_string())
            .ok_or_else(|| anyhow::anyhow!("no form token in {}", self.page))
    }

    /// The text of the page's alert.
    fn alert(&self) -> String {
        self.page
            .split_once(r#"role="alert">"#)
            .and_then(|(_, rest)| rest.split_once("</div>"))
            .map(|(t, _)| t.to_string())
            .unwrap_or_else(|| self.page.clone())
    }

    /// Checks that the portal refused `case` with `status` and a page saying
    /// `says`, with its security headers, and counts it.
    fn refused(&self, case: &str, status: StatusCode, says: &str) {
        assert_eq!(self.status, status, "{case}: {}", self.page);
        assert!(
            self.page.contains(says),
            "{case}: {says:?} not in {}",
            self.page
        );
        framed_never(case, &self.headers);
        count(case, &self.alert());
    }
}

/// Checks the headers that keep a page out of other sites' frames and scripts.
fn framed_never(what: &str, headers: &reqwest::header::HeaderMap) {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let csp = header("content-security-policy");
    assert!(csp.contains("frame-ancestors 'none'"), "{what}: {csp:?}");
    assert!(csp.contains("default-src 'none'"), "{what}: {csp:?}");
    assert_eq!(header("x-frame-options"), "DENY", "{what}");
    assert_eq!(header("x-content-type-options"), "nosniff", "{what}");
    assert_eq!(header("referrer-policy"), "same-origin", "{what}");
}

/// The requests of namespace `ns`.
async fn requests_in(client: &Client, ns: &str) -> anyhow::Result<Vec<ProvisioningRequest>> {
    Ok(Api::<ProvisioningRequest>::namespaced(client.clone(), ns)
        .list(&Default::default())
        .await?
        .items)
}

pub async fn forged_identities_and_forms_are_refused_by_the_portal_and_change_nothing()
-> anyhow::Result<()> {
    let client = testing::client().await?;
    let (a, ns_a, product, domain) =
        member_entitled_to_one(&client, "hportal-a", json!({}), json!({})).await?;
    let (b, _, _, _) = member_entitled_to_one(&client, "hportal-b", json!({}), json!({})).await?;
    let portal = Portal::start().await?;
    let agent = format!("agent@{a}.test");
    let group = format!("{a}-admins");
    let agent_b = format!("agent@{b}.test");
    let group_b = format!("{b}-admins");
    let form_path = format!("/membres/{a}/demander");
    let host = format!("www.{domain}");

    // The form, as the agent sees it: with its token and the security headers.
    let form = portal.get(&form_path, &agent, &[&group]).await?;
    assert_eq!(form.status, StatusCode::OK, "{}", form.page);
    framed_never("the request form", &form.headers);
    let token = form.token()?;
    let fields = |token: Option<&str>| {
        let mut f = vec![("produit", product.clone()), ("adresse", host.clone())];
        if let Some(t) = token {
            f.push(("jeton", t.to_string()));
        }
        f
    };
    let post = |token: Option<&str>| {
        let fields = fields(token);
        let form_path = form_path.clone();
        let agent = agent.clone();
        let group = group.clone();
        let portal = &portal;
        async move {
            let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
            portal.post(&form_path, &agent, &[&group], &fields).await
        }
    };

    // Smuggled identities: the approvers' group hidden in the groups header.
    for (case, groups, status, says) in [
        (
            "a group smuggled after a semicolon",
            vec![format!("{group};{APPROVERS}")],
            StatusCode::BAD_REQUEST,
            "pas un nom accepté",
        ),
        (
            "a group smuggled after a space",
            vec![format!("{group} {APPROVERS}")],
            StatusCode::BAD_REQUEST,
            "pas un nom accepté",
        ),
        (
            "a quoted group list",
            vec![format!("\"{group},{APPROVERS}\"")],
            StatusCode::BAD_REQUEST,
            "pas un nom accepté",
        ),
        (
            "the groups header sent twice",
            vec![group.clone(), APPROVERS.to_string()],
            StatusCode::BAD_REQUEST,
            "X-Forwarded-Groups plusieurs fois",
        ),
        (
            "a group Kubernetes reserves",
            vec![format!("{group},system:masters")],
            StatusCode::FORBIDDEN,
            "que Kubernetes se réserve",
        ),
    ] {
        let groups: Vec<&str> = groups.iter().map(String::as_str).collect();
        portal.get("/approbations", &agent, &groups).await?.refused(
            &format!("portal approvals page with {case}"),
            status,
            says,
        );
        portal
            .post(
                &form_path,
                &agent,
                &groups,
                &[
                    ("produit", product.as_str()),
                    ("adresse", host.as_str()),
                    ("jeton", token.as_str()),
                ],
            )
            .await?
            .refused(&format!("portal request form with {case}"), status, says);
    }
    // The user header carrying groups.
    portal
        .get(&form_path, &format!("{agent},{APPROVERS}"), &[&group])
        .await?
        .refused(
            "portal user header carrying a group",
            StatusCode::BAD_REQUEST,
            "X-Forwarded-User",
        );

    // Forms that are not the agent's own.
    let other = portal
        .get(&format!("/membres/{b}/demander"), &agent_b, &[&group_b])
        .await?
        .token()?;
    let forged = format!(
        "{}.{}",
        token.split('.').next().unwrap_or("0"),
        "0".repeat(64)
    );
    post(None).await?.refused(
        "portal request form without a token",
        StatusCode::FORBIDDEN,
        "pas de jeton de sécurité",
    );
    post(Some(&forged)).await?.refused(
        "portal request form with a forged token",
        StatusCode::FORBIDDEN,
        "pas été préparé pour vous",
    );
    post(Some(&other)).await?.refused(
        "portal request form with another member's agent's token",
        StatusCode::FORBIDDEN,
        "pas été préparé pour vous",
    );
    let fields_with_token = fields(Some(&token));
    let fields_with_token: Vec<(&str, &str)> = fields_with_token
        .iter()
        .map(|(k, v)| (*k, v.as_str()))
        .collect();
    Answer::of(
        portal
            .as_user(reqwest::Method::POST, &form_path, &agent, &[&group])
            .header("Sec-Fetch-Site", "cross-site")
            .header("Origin", "https://attaquant.example")
            .form(&fields_with_token),
    )
    .await?
    .refused(
        "portal request form posted from another site",
        StatusCode::FORBIDDEN,
        "ne vient pas du portail",
    );
    Answer::of(
        portal
            .as_user(reqwest::Method::POST, &form_path, &agent, &[&group])
            .header("Content-Type", "text/plain")
            .body(format!("produit={product}&adresse={host}")),
    )
    .await?
    .refused(
        "portal request form sent as text/plain (a cross-site form's encoding)",
        StatusCode::FORBIDDEN,
        "Formulaire refusé",
    );
    // No identity at all: the error page has the headers too.
    let anonymous = Answer::of(portal.http.get(format!("{}{form_path}", portal.url))).await?;
    assert_eq!(
        anonymous.status,
        StatusCode::UNAUTHORIZED,
        "{}",
        anonymous.page
    );
    framed_never("the page without identity", &anonymous.headers);

    // Nothing was created; the same form, honestly sent, creates the request.
    assert!(
        requests_in(&client, &ns_a).await?.is_empty(),
        "a refused form created a request"
    );
    let honest = post(Some(&token)).await?;
    assert_eq!(honest.status, StatusCode::SEE_OTHER, "{}", honest.page);
    assert_eq!(requests_in(&client, &ns_a).await?.len(), 1);
    Ok(())
}

pub async fn forged_decisions_are_refused_by_the_portal_and_the_request_stays_pending()
-> anyhow::Result<()> {
    let client = testing::client().await?;
    let (a, ns, product, domain) =
        member_entitled_to_one(&client, "hportal-m", json!({}), json!({})).await?;
    let requests: Api<ProvisioningRequest> = Api::namespaced(client.clone(), &ns);
    let body = json!({
        "apiVersion": "hosting.imio.be/v1alpha1", "kind": "ProvisioningRequest",
        "metadata": {"name": "delib", "namespace": ns},
        "spec": {"product": product, "hostnames": [format!("d.{domain}")]},
    });
    requests
        .create(&PostParams::default(), &serde_json::from_value(body)?)
        .await?;
    eventually(
        Duration::from_secs(30),
        "the request to wait for an approver",
        || {
            let requests = requests.clone();
            async move {
                let r = requests.get("delib").await.ok()?;
                let status = r.status?;
                mutu_runtime::conditions::is_true(&status.conditions, "Validated").then_some(())
            }
        },
    )
    .await?;

    let portal = Portal::start().await?;
    let approver = unique_name("approbateur");
    let agent = format!("agent@{a}.test");
    let group = format!("{a}-admins");
    let decide = format!("/approbations/{ns}/delib");
    let page = portal.get("/approbations", &approver, &[APPROVERS]).await?;
    assert_eq!(page.status, StatusCode::OK, "{}", page.page);
    framed_never("the approvals page", &page.headers);
    let token = page.token()?;
    // The member's agent has a token of their own, for their own forms.
    let agents_token = portal
        .get(&format!("/membres/{a}/demander"), &agent, &[&group])
        .await?
        .token()?;
    let forged = format!(
        "{}.{}",
        token.split('.').next().unwrap_or("0"),
        "f".repeat(64)
    );
    let approve = |token: &str| {
        [
            ("action", "approuver".to_string()),
            ("jeton", token.to_string()),
        ]
    };

    for (case, fields, says) in [
        (
            "portal approval without a token",
            vec![("action", "approuver".to_string())],
            "pas de jeton de sécurité",
        ),
        (
            "portal approval with a forged token",
            approve(&forged).to_vec(),
            "pas été préparé pour vous",
        ),
        (
            "portal approval with the member's agent's token (a forged cross-site form)",
            approve(&agents_token).to_vec(),
            "pas été préparé pour vous",
        ),
    ] {
        let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
        portal
            .post(&decide, &approver, &[APPROVERS], &fields)
            .await?
            .refused(case, StatusCode::FORBIDDEN, says);
    }
    let fields = approve(&token);
    let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
    Answer::of(
        portal
            .as_user(reqwest::Method::POST, &decide, &approver, &[APPROVERS])
            .header("Sec-Fetch-Site", "cross-site")
            .form(&fields),
    )
    .await?
    .refused(
        "portal approval posted from another site",
        StatusCode::FORBIDDEN,
        "ne vient pas du portail",
    );
    // The member's agent, claiming the approvers' group in a second header
    // with their own valid token.
    let agent_fields = approve(&agents_token);
    let agent_fields: Vec<(&str, &str)> =
        agent_fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
    portal
        .post(&decide, &agent, &[&group, APPROVERS], &agent_fields)
        .await?
        .refused(
            "portal approval by a member's agent repeating the groups header",
            StatusCode::BAD_REQUEST,
            "plusieurs fois",
        );
    portal
        .post(
            &decide,
            &agent,
            &[&format!("{group};{APPROVERS}")],
            &agent_fields,
        )
        .await?
        .refused(
            "portal approval by a member's agent smuggling the approvers' group",
            StatusCode::BAD_REQUEST,
            "pas un nom accepté",
        );

    // Still pending; the approver's own form decides.
    let status = requests.get("delib").await?.status.unwrap_or_default();
    assert_eq!(
        status.decided_by, None,
        "a refused form decided: {status:?}"
    );
    assert_ne!(status.decision, Some(Decision::Approved));
    let honest = portal
        .post(&decide, &approver, &[APPROVERS], &fields)
        .await?;
    assert_eq!(honest.status, StatusCode::SEE_OTHER, "{}", honest.page);
    let status = requests.get("delib").await?.status.unwrap_or_default();
    assert_eq!(status.decision, Some(Decision::Approved));
    assert_eq!(status.decided_by.as_deref(), Some(approver.as_str()));
    Ok(())
}
