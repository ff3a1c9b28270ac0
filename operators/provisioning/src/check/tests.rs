use std::collections::BTreeMap;

use mutu_api::{MemberTenant, ProductSpec};
use mutu_model::quota::Config as TenantConfig;

use super::*;

fn from_yaml<T: serde::de::DeserializeOwned>(yaml: &str) -> T {
    serde_saphyr::from_str(yaml).unwrap_or_else(|e| panic!("bad test object: {e}\n{yaml}"))
}

/// Ans: entitled to one delib and two web, domains ans.be; Ready.
fn tenant(extra: &str) -> MemberTenant {
    from_yaml(&format!(
        r#"
apiVersion: hosting.imio.be/v1alpha1
kind: MemberTenant
metadata: {{name: ans, generation: 1}}
spec:
  displayName: Commune d'Ans
  category: commune
  domains: [ans.be]
  entitlements: {{delib: 1, web: 2}}
{extra}
status:
  conditions:
  - {{type: Ready, status: "True", reason: Provisioned, message: ok, lastTransitionTime: "2026-01-01T00:00:00Z"}}
"#
    ))
}

fn product(name: &str, extra: &str) -> ProductSpec {
    let p: mutu_api::Product = from_yaml(&format!(
        r#"
apiVersion: hosting.imio.be/v1alpha1
kind: Product
metadata: {{name: {name}}}
spec:
  displayName: {name}
  engine: plone
  image: registry.imio.be/imio/{name}
  release: "1.0"
  replicas: 2
  resources: {{requests: {{cpu: 500m, memory: 1Gi}}}}
  storage: {{mode: zeo, size: 10Gi}}
{extra}
"#
    ));
    p.spec
}

fn catalog() -> BTreeMap<String, ProductSpec> {
    BTreeMap::from([
        ("delib".to_string(), product("delib", "")),
        ("web".to_string(), product("web", "")),
    ])
}

fn request(name: &str, spec: &str) -> ProvisioningRequest {
    from_yaml(&format!(
        r#"
apiVersion: hosting.imio.be/v1alpha1
kind: ProvisioningRequest
metadata: {{name: {name}, namespace: tenant-ans, generation: 1}}
spec:
{spec}
"#
    ))
}

fn site(ns: &str, name: &str, product: &str, hosts: &[&str], labels: &str) -> PloneSite {
    from_yaml(&format!(
        r#"
apiVersion: hosting.imio.be/v1alpha1
kind: PloneSite
metadata: {{name: {name}, namespace: {ns}, creationTimestamp: "2025-01-01T00:00:00Z", labels: {{{labels}}}}}
spec:
  product: {product}
  hostnames: [{}]
"#,
        hosts.join(", ")
    ))
}

fn config() -> TenantConfig {
    TenantConfig::default()
}

fn codes(problems: &[Problem]) -> Vec<&'static str> {
    problems.iter().map(|p| p.code).collect()
}

fn cond<'a>(o: &'a Outcome, type_: &str) -> &'a Cond<'static> {
    o.conditions
        .iter()
        .find(|c| c.type_ == type_)
        .unwrap_or_else(|| panic!("no condition {type_} in {:?}", o.conditions))
}

fn now() -> Timestamp {
    Timestamp::from_second(1_800_000_000).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn a_request_within_entitlements_and_domains_is_valid() {
    let t = tenant("");
    let cat = catalog();
    let cfg = config();
    let view = View {
        tenant: Some(&t),
        catalog: &cat,
        sites: &[],
        tenant_config: &cfg,
    };
    let r = request("web", "  product: web\n  hostnames: [www.ans.be]\n");
    assert_eq!(codes(&problems(&r, &view, None)), Vec::<&str>::new());
    let o = evaluate(&r, &view, now());
    assert!(cond(&o, VALIDATED).status);
    let approved = cond(&o, APPROVED);
    assert!(!approved.status);
    assert_eq!(approved.reason, "WaitingForApprover");
    assert_eq!(o.status.decision, Some(Decision::Pending));
    assert!(
        o.create.is_none(),
        "a manual request is not created before approval"
    );
    let yaml = o.status.rendered_site.unwrap_or_default();
    assert!(yaml.contains("www.ans.be"), "{yaml}");
    assert!(yaml.contains(REQUEST_LABEL), "{yaml}");
}

#[test]
fn every_reason_is_given_at_once() {
    let t = tenant("");
    let cat = catalog();
    let cfg = config();
    let theirs = site("tenant-awans", "web", "web", &["www.ans.be"], "");
    let sites = [&theirs];
    let view = View {
        tenant: Some(&t),
        catalog: &cat,
        sites: &sites,
        tenant_config: &cfg,
    };
    // Not entitled to docs (and docs is not in the catalog), a hostname of
    // another member, one already served elsewhere, 9 replicas.
    let r = request(
        "docs",
        "  product: docs\n  hostnames: [docs.awans.be]\n  options: {replicas: 9}\n",
    );
    assert_eq!(
        codes(&problems(&r, &view, None)),
        vec!["UnknownProduct", "NotEntitled", "ForeignHostname"]
    );
    let r = request(
        "web",
        "  product: web\n  hostnames: [www.ans.be, intranet.awans.be]\n  options: {replicas: 9}\n",
    );
    let found = problems(&r, &view, None);
    assert_eq!(
        codes(&found),
        vec![
            "ForeignHostname",
            "HostnameTaken",
            "ReplicasOutOfRange",
            "QuotaExceeded",
            "QuotaExceeded"
        ],
        "{found:#?}"
    );
    assert_eq!(found[0].subject.as_deref(), Some("intranet.awans.be"));
    assert_eq!(found[1].subject.as_deref(), Some("www.ans.be"));
    assert!(found[2].message.contains("1 to 2"), "{}", found[2].message);
    let o = evaluate(&r, &view, now());
    assert_eq!(o.status.reasons.len(), 5);
    assert!(!cond(&o, VALIDATED).status);
    assert_eq!(cond(&o, VALIDATED).reason, "ForeignHostname");
    assert!(o.status.rendered_site.is_none());
}

#[test]
fn a_used_entitlement_a_taken_name_and_a_bad_name_are_refused() {
    let t = tenant("");
    let cat = catalog();
    let cfg = config();
    let ours = site(
        "tenant-ans",
        "delib",
        "delib",
        &["deliberations.ans.be"],
        "",
    );
    let sites = [&ours];
    let view = View {
        tenant: Some(&t),
        catalog: &cat,
        sites: &sites,
        tenant_config: &cfg,
    };
    // A second delib, under another name: the one delib entitled is used.
    let r = request(
        "delib2",
        "  product: delib\n  siteName: delib2\n  hostnames: [delib2.ans.be]\n",
    );
    assert_eq!(codes(&problems(&r, &view, None)), vec!["OverEntitlement"]);
    // A web site named like the existing delib site.
    let r = request(
        "web",
        "  product: web\n  siteName: delib\n  hostnames: [www.ans.be]\n",
    );
    assert_eq!(
        codes(&problems(&r, &view, Some(&ours))),
        vec!["SiteNameTaken"]
    );
    let r = request(
        "web",
        "  product: web\n  siteName: Web_Site\n  hostnames: [www.ans.be]\n",
    );
    assert_eq!(codes(&problems(&r, &view, None)), vec!["InvalidSiteName"]);
}

#[test]
fn a_member_over_its_quota_is_refused_naming_the_resource() {
    let t = tenant("  quota: {sites: 1, cpu: \"2\"}\n");
    let cat = catalog();
    let cfg = config();
    let ours = site(
        "tenant-ans",
        "delib",
        "delib",
        &["deliberations.ans.be"],
        "",
    );
    let sites = [&ours];
    let view = View {
        tenant: Some(&t),
        catalog: &cat,
        sites: &sites,
        tenant_config: &cfg,
    };
    let r = request("web", "  product: web\n  hostnames: [www.ans.be]\n");
    let found = problems(&r, &view, None);
    assert_eq!(codes(&found), vec!["QuotaExceeded", "QuotaExceeded"]);
    assert_eq!(found[0].subject.as_deref(), Some("sites"));
    assert_eq!(found[1].subject.as_deref(), Some("CPU"));
    assert!(found[1].message.contains("2000m"), "{}", found[1].message);
}

#[test]
fn a_tenant_that_is_not_ready_or_missing_is_a_reason() {
    let mut t = tenant("");
    if let Some(s) = t.status.as_mut() {
        s.conditions[0].status = "False".to_string();
        s.conditions[0].message = "domain ans.be is claimed by MemberTenant awans".to_string();
    }
    let cat = catalog();
    let cfg = config();
    let view = View {
        tenant: Some(&t),
        catalog: &cat,
        sites: &[],
        tenant_config: &cfg,
    };
    let r = request("web", "  product: web\n  hostnames: [www.ans.be]\n");
    let found = problems(&r, &view, None);
    assert_eq!(codes(&found), vec!["TenantNotReady"]);
    assert!(
        found[0].message.contains("claimed by"),
        "{}",
        found[0].message
    );
    let view = View {
        tenant: None,
        ..view
    };
    assert_eq!(codes(&problems(&r, &view, None)), vec!["NoTenant"]);
}

#[test]
fn auto_approval_follows_the_tenant_then_the_product() {
    let cfg = config();
    let r = request("web", "  product: web\n  hostnames: [www.ans.be]\n");
    let mut cat = catalog();
    cat.insert(
        "web".to_string(),
        product("web", "  provisioning: {approval: Auto}\n"),
    );
    let t = tenant("");
    let view = View {
        tenant: Some(&t),
        catalog: &cat,
        sites: &[],
        tenant_config: &cfg,
    };
    let o = evaluate(&r, &view, now());
    assert_eq!(o.status.decision, Some(Decision::Approved));
    assert_eq!(o.status.decided_by.as_deref(), Some(AUTO_APPROVER));
    assert_eq!(o.status.decided_generation, Some(1));
    let created = o
        .create
        .unwrap_or_else(|| panic!("an approved request creates its site"));
    assert_eq!(created.name_any(), "web");
    assert_eq!(created.spec.hostnames, vec!["www.ans.be".to_string()]);
    assert_eq!(
        created.labels().get(REQUEST_LABEL).map(String::as_str),
        Some("web")
    );
    assert!(
        created.metadata.owner_references.is_none(),
        "the site outlives the request"
    );

    // The member's own setting wins over the product's.
    let manual = tenant("  provisioning: {approval: Manual}\n");
    let view = View {
        tenant: Some(&manual),
        ..view
    };
    let o = evaluate(&r, &view, now());
    assert_eq!(o.status.decision, Some(Decision::Pending));
    assert!(o.create.is_none());
}

#[test]
fn an_invalid_request_is_never_approved_automatically() {
    let cfg = config();
    let t = tenant("  provisioning: {approval: Auto}\n");
    let cat = catalog();
    let view = View {
        tenant: Some(&t),
        catalog: &cat,
        sites: &[],
        tenant_config: &cfg,
    };
    let r = request("web", "  product: web\n  hostnames: [www.awans.be]\n");
    let o = evaluate(&r, &view, now());
    assert_eq!(o.status.decision, Some(Decision::Pending));
    assert_eq!(cond(&o, APPROVED).reason, "NotValid");
    assert!(o.create.is_none());
}

fn decided(r: &mut ProvisioningRequest, decision: Decision, generation: i64, message: &str) {
    let status = r.status.get_or_insert_with(Default::default);
    status.decision = Some(decision);
    status.decided_by = Some("approver@imio.be".to_string());
    status.decided_generation = Some(generation);
    status.decision_message = Some(message.to_string());
}

#[test]
fn an_approval_covers_the_generation_it_saw_only() {
    let cfg = config();
    let t = tenant("");
    let cat = catalog();
    let view = View {
        tenant: Some(&t),
        catalog: &cat,
        sites: &[],
        tenant_config: &cfg,
    };
    let mut r = request("web", "  product: web\n  hostnames: [www.ans.be]\n");
    decided(&mut r, Decision::Approved, 1, "ok");
    let o = evaluate(&r, &view, now());
    assert!(cond(&o, APPROVED).status);
    assert!(o.create.is_some());

    // The member edits the request after the approval: back to Pending.
    r.metadata.generation = Some(2);
    let o = evaluate(&r, &view, now());
    assert_eq!(o.status.decision, Some(Decision::Pending));
    assert_eq!(o.status.decided_by, None);
    assert!(o.create.is_none());
}

#[test]
fn a_denied_request_says_who_and_why() {
    let cfg = config();
    let t = tenant("");
    let cat = catalog();
    let view = View {
        tenant: Some(&t),
        catalog: &cat,
        sites: &[],
        tenant_config: &cfg,
    };
    let mut r = request("web", "  product: web\n  hostnames: [www.ans.be]\n");
    decided(&mut r, Decision::Denied, 1, "le site actuel suffit");
    let o = evaluate(&r, &view, now());
    assert!(o.create.is_none());
    let last = o.status.reasons.last().cloned();
    assert_eq!(last.as_ref().map(|r| r.code.as_str()), Some("Denied"));
    assert!(
        last.is_some_and(|r| r.message.contains("le site actuel suffit")
            && r.message.contains("approver@imio.be"))
    );
    assert_eq!(cond(&o, FULFILLED).reason, "Denied");
}

#[test]
fn in_gitops_mode_an_approved_request_renders_and_waits_for_its_site() {
    let cfg = config();
    let t = tenant("  provisioning: {approval: Auto, fulfilment: GitOps}\n");
    let cat = catalog();
    let view = View {
        tenant: Some(&t),
        catalog: &cat,
        sites: &[],
        tenant_config: &cfg,
    };
    let r = request(
        "web",
        "  product: web\n  hostnames: [www.ans.be]\n  options: {language: de}\n",
    );
    let o = evaluate(&r, &view, now());
    assert_eq!(o.status.decision, Some(Decision::Approved));
    assert!(o.create.is_none(), "GitOps mode never creates the site");
    assert_eq!(cond(&o, FULFILLED).reason, "AwaitingGitOps");
    let yaml = o.status.rendered_site.clone().unwrap_or_default();
    let rendered: PloneSite = from_yaml(&yaml);
    assert_eq!(rendered.spec.language.map(|l| l.code()), Some("de"));
    assert_eq!(rendered.namespace().as_deref(), Some("tenant-ans"));

    // The repository's copy appears (here without the label): the request follows it.
    let mut applied = r.clone();
    applied.status = Some(o.status);
    let site = site("tenant-ans", "web", "web", &["www.ans.be"], "");
    let sites = [&site];
    let view = View {
        sites: &sites,
        ..view
    };
    let o = evaluate(&applied, &view, now());
    assert_eq!(o.status.site.as_deref(), Some("web"));
    assert_eq!(cond(&o, FULFILLED).reason, "SiteNotReady");
    assert!(o.status.reasons.is_empty());
}

#[test]
fn a_fulfilled_request_follows_its_site_and_never_recreates_it() {
    let cfg = config();
    let t = tenant("");
    let cat = catalog();
    let mut r = request("web", "  product: web\n  hostnames: [www.ans.be]\n");
    decided(&mut r, Decision::Approved, 1, "");
    let mut s = site(
        "tenant-ans",
        "web",
        "web",
        &["www.ans.be"],
        "hosting.imio.be/request: web",
    );
    s.status = Some(from_yaml(
        "conditions:\n- {type: Ready, status: \"True\", reason: Serving, message: ok, lastTransitionTime: \"2026-01-01T00:00:00Z\"}\nurl: https://www.ans.be/\n",
    ));
    let sites = [&s];
    let view = View {
        tenant: Some(&t),
        catalog: &cat,
        sites: &sites,
        tenant_config: &cfg,
    };
    let o = evaluate(&r, &view, now());
    assert!(cond(&o, FULFILLED).status);
    assert!(cond(&o, CONDITION_READY).status);
    assert!(cond(&o, FULFILLED).message.contains("https://www.ans.be/"));
    assert!(
        o.note.is_some(),
        "the first time it is Ready is worth an event"
    );
    assert!(o.create.is_none());

    // Its site deleted later: the request says so and creates nothing.
    r.status.get_or_insert_with(Default::default).site = Some("web".to_string());
    let view = View { sites: &[], ..view };
    let o = evaluate(&r, &view, now());
    assert!(o.create.is_none());
    assert_eq!(cond(&o, FULFILLED).reason, "SiteDeleted");
}
