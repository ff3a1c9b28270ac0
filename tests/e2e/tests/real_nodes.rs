//! Sites on real nodes (`mutu dev up --nodes real`, started by `make test`
//! after the kwok suites): real kubelets run the images built here from
//! examples/dev-catalog.yaml, kubelet probes them, Traefik routes the
//! Ingresses mutu writes, Pebble validates HTTP-01 through Traefik, and
//! kube-router enforces the tenants' NetworkPolicies.

use std::process::Command;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::api::{Api, ListParams, Patch, PatchParams};
use mutu_api::PloneSite;
use mutu_e2e::kubectl;
use mutu_e2e::real::{
    PloneContent, TIMEOUT, client, curl_https, env, member, pod_ready, pods, ready_site,
    scratch_file,
};
use mutu_runtime::testing::{eventually, unique_name};
use serde_json::json;

#[path = "real_nodes/bench.rs"]
mod bench;
#[path = "real_nodes/data.rs"]
mod data;
#[path = "real_nodes/search.rs"]
mod search;

#[tokio::test]
async fn a_zeo_plone_site_serves_plone_through_the_ingress_over_a_certificate_pebble_issued()
-> anyhow::Result<()> {
    let client = client().await?;
    let (_, ns, domain) = member(&client, "rn-zeo", json!({"dev-plone": 1})).await?;
    let host = format!("www.{domain}");
    ready_site(
        &client,
        &ns,
        "www",
        json!({"product": "dev-plone", "hostnames": [host], "tls": {"issuer": "dev-acme"}}),
    )
    .await?;

    // Its ZEO server and its instance run as real containers on frontend-1,
    // and the instance is Ready because kubelet's probe of /ok answered.
    for component in ["zeo", "instance"] {
        let list = pods(&client, &ns, "www", component).await?;
        anyhow::ensure!(!list.is_empty(), "no {component} pod");
        for pod in &list {
            let spec = pod.spec.clone().unwrap_or_default();
            assert_eq!(
                spec.node_name.as_deref(),
                Some("frontend-1"),
                "{}",
                pod.name_any()
            );
            assert!(pod_ready(pod), "{} is not Ready", pod.name_any());
            let statuses = pod
                .status
                .as_ref()
                .and_then(|s| s.container_statuses.clone())
                .unwrap_or_default();
            assert!(
                statuses.iter().all(|c| c.ready
                    && c.container_id
                        .as_deref()
                        .is_some_and(|id| id.starts_with("containerd://"))),
                "{}: {statuses:?}",
                pod.name_any()
            );
        }
    }
    let instance = pods(&client, &ns, "www", "instance").await?;
    let probe = instance[0]
        .spec
        .as_ref()
        .and_then(|s| s.containers[0].readiness_probe.clone())
        .and_then(|p| p.http_get)
        .and_then(|h| h.path);
    assert_eq!(probe.as_deref(), Some("/ok"));

    // The certificate came from Pebble (dev-acme), through an HTTP-01
    // challenge that Pebble fetched from the ingress controller: curl trusts
    // only Pebble's root.
    let root = mutu_e2e::certs::pebble_root(&client).await?;
    let ca = scratch_file(&format!("{ns}-pebble-root.pem"), &root)?;
    let (status, body) = eventually(TIMEOUT, "the site's page through the ingress", || {
        let host = host.clone();
        let ca = ca.clone();
        async move {
            let (status, body) = curl_https(&host, "/", &ca).ok()?;
            (status == 200).then_some((status, body))
        }
    })
    .await?;
    assert_eq!(status, 200);
    assert!(body.contains("Plone"), "not Plone's page:\n{body}");

    // Its administrator, from the Secret the operator wrote, creates a page
    // through plone.restapi, as a member's agent would; anonymous visitors
    // cannot.
    let content = PloneContent::of(&client, &ns, "www", &host).await?;
    content.wait_serving().await?;
    content
        .create_document("welcome", "<p>Bienvenue sur le site</p>")
        .await?;
    let text = content.document_text("welcome").await?;
    assert_eq!(text.as_deref(), Some("<p>Bienvenue sur le site</p>"));
    let (status, _) = curl_https(&host, "/Plone/welcome/edit", &ca)?;
    assert_ne!(status, 200, "an anonymous visitor may edit the page");
    mutu_e2e::real::free(&[&ns]);
    Ok(())
}

/// Runs `python3 -c CODE` in a pod's container; returns its output, or the
/// error output when it failed.
fn exec_python(ns: &str, pod: &str, code: &str) -> (bool, String) {
    let out = kubectl(["-n", ns, "exec", pod, "--", "python3", "-c", code]);
    (out.success, format!("{}{}", out.stdout, out.stderr))
}

/// Waits until `pod` (in `ns`) connects to host:port; panics with the last
/// error when it never does. kube-proxy programs a new Service's rules a
/// moment after its endpoints appear, so the first tries may be refused.
async fn reaches(ns: &str, pod: &str, host: &str, port: u16, what: &str) {
    let mut last = String::new();
    for _ in 0..30 {
        let (ok, out) = exec_python(ns, pod, &connect(host, port));
        if ok && out.contains("open") {
            return;
        }
        last = out;
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    panic!("{what} ({host}:{port}) is not reachable from {ns}/{pod}: {last}");
}

/// Python that connects to host:port over TCP within 3 s and prints "open".
fn connect(host: &str, port: u16) -> String {
    format!(
        "import socket; s = socket.create_connection(('{host}', {port}), timeout=3); print('open')"
    )
}

#[tokio::test]
async fn a_tenant_reaches_solr_dns_and_itself_but_nothing_of_another_tenant() -> anyhow::Result<()>
{
    let client = client().await?;
    let (_, ns_a, domain_a) = member(&client, "rn-net-a", json!({"dev-generic": 2})).await?;
    let (_, ns_b, domain_b) = member(
        &client,
        "rn-net-b",
        json!({"dev-generic": 1, "dev-plone": 1}),
    )
    .await?;
    let spec = |domain: &str, name: &str| json!({"product": "dev-generic", "hostnames": [format!("{name}.{domain}")]});
    ready_site(&client, &ns_a, "one", spec(&domain_a, "one")).await?;
    ready_site(&client, &ns_a, "two", spec(&domain_a, "two")).await?;
    ready_site(&client, &ns_b, "other", spec(&domain_b, "other")).await?;
    // And a Plone site whose ZEO server must stay out of another tenant's reach.
    ready_site(
        &client,
        &ns_b,
        "zsite",
        json!({"product": "dev-plone", "hostnames": [format!("zsite.{domain_b}")]}),
    )
    .await?;
    let a = pods(&client, &ns_a, "one", "instance").await?;
    let a_two = pods(&client, &ns_a, "two", "instance").await?;
    let b = pods(&client, &ns_b, "other", "instance").await?;
    let ip = |p: &Pod| {
        p.status
            .as_ref()
            .and_then(|s| s.pod_ip.clone())
            .unwrap_or_default()
    };
    let from = a[0].name_any();

    // Its own namespace: the other site, by Service name (so DNS and
    // kube-proxy too: the Service listens on 80) and by pod.
    let two = format!("two.{ns_a}.svc.cluster.local");
    reaches(&ns_a, &from, &two, 80, "its own site by name").await;
    reaches(&ns_a, &from, &ip(&a_two[0]), 8080, "its own site's pod").await;

    // Solr, through the address the operator gives the sites.
    let solr = env("MUTU_SOLR_URL")?;
    let authority = solr
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap_or_default()
        .to_string();
    let (solr_host, solr_port) = authority.rsplit_once(':').unwrap_or((&authority, "8983"));
    reaches(&ns_a, &from, solr_host, solr_port.parse()?, "Solr").await;

    // Another tenant's site: neither its pod nor its Service answers.
    for (target, port) in [
        (ip(&b[0]), 8080),
        (format!("other.{ns_b}.svc.cluster.local"), 80),
        (format!("zsite-zeo.{ns_b}.svc.cluster.local"), 8100),
    ] {
        let (ok, out) = exec_python(&ns_a, &from, &connect(&target, port));
        assert!(
            !ok && !out.contains("open"),
            "{ns_a} reached {target} of {ns_b}: {out}"
        );
    }
    // B's own pods reach B's ZEO server: the refusal above is the policy's.
    reaches(
        &ns_b,
        &b[0].name_any(),
        &format!("zsite-zeo.{ns_b}.svc.cluster.local"),
        8100,
        "its own ZEO server",
    )
    .await;
    // And the other way round.
    let (ok, out) = exec_python(&ns_b, &b[0].name_any(), &connect(&ip(&a[0]), 8080));
    assert!(!ok && !out.contains("open"), "{ns_b} reached {ns_a}: {out}");
    // Nothing outside the platform: the API server's own address is not a
    // tenant's business either.
    let (ok, out) = exec_python(
        &ns_a,
        &from,
        &connect("kubernetes.default.svc.cluster.local", 443),
    );
    assert!(
        !ok && !out.contains("open"),
        "a tenant reached the API server: {out}"
    );
    mutu_e2e::real::free(&[&ns_a, &ns_b]);
    Ok(())
}

#[tokio::test]
async fn a_generic_product_serves_its_page_and_keeps_its_data_across_a_pod_restart()
-> anyhow::Result<()> {
    let client = client().await?;
    let (_, ns, domain) = member(&client, "rn-gen", json!({"dev-generic": 1})).await?;
    let host = format!("notes.{domain}");
    ready_site(
        &client,
        &ns,
        "notes",
        json!({"product": "dev-generic", "hostnames": [host]}),
    )
    .await?;
    let before = pods(&client, &ns, "notes", "instance").await?;
    let pod = before[0].name_any();
    let note = unique_name("note");
    let write = format!(
        "import urllib.request as u; r = u.urlopen(u.Request('http://127.0.0.1:8080/notes', data=b'{note}', method='POST'), timeout=5); print(r.status)"
    );
    let (ok, out) = exec_python(&ns, &pod, &write);
    assert!(ok, "writing a note: {out}");

    // The pod goes; its Deployment's new pod mounts the same volume.
    let api: Api<Pod> = Api::namespaced(client.clone(), &ns);
    api.delete(&pod, &Default::default()).await?;
    let after = eventually(TIMEOUT, "a new Ready pod of the site", || async {
        let list = pods(&client, &ns, "notes", "instance").await.ok()?;
        list.into_iter().find(|p| {
            p.name_any() != pod && pod_ready(p) && p.metadata.deletion_timestamp.is_none()
        })
    })
    .await?;
    let read = "import urllib.request as u; print(u.urlopen('http://127.0.0.1:8080/notes', timeout=5).read().decode())";
    let (ok, out) = exec_python(&ns, &after.name_any(), read);
    assert!(
        ok && out.contains(&note),
        "the note is gone after the restart: {out}"
    );

    // Its page, through the ingress controller (plain HTTP here).
    let http = env("MUTU_INGRESS_HTTP")?;
    let out = Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "10",
            "-H",
            &format!("Host: {host}"),
            &format!("http://{http}/"),
        ])
        .output()?;
    let body = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && !body.is_empty(), "no page: {body}");
    mutu_e2e::real::free(&[&ns]);
    Ok(())
}

#[tokio::test]
async fn a_single_replica_site_with_a_volume_completes_a_release_change() -> anyhow::Result<()> {
    let client = client().await?;
    let (_, ns, domain) = member(&client, "rn-roll", json!({"dev-generic": 1})).await?;
    ready_site(
        &client,
        &ns,
        "app",
        json!({"product": "dev-generic", "release": "1.0", "hostnames": [format!("app.{domain}")]}),
    )
    .await?;
    let sites: Api<PloneSite> = Api::namespaced(client.clone(), &ns);
    sites
        .patch(
            "app",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"release": "1.1"}})),
        )
        .await?;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    eventually(TIMEOUT, "the release change to complete", || async {
        let list = pods(&client, &ns, "app", "instance").await.ok()?;
        let new: Vec<&Pod> = list
            .iter()
            .filter(|p| {
                p.spec.as_ref().is_some_and(|s| {
                    s.containers[0].image.as_deref() == Some("mutu.local/generic:1.1")
                })
            })
            .collect();
        let d = deployments
            .list(&ListParams::default().labels("hosting.imio.be/site=app"))
            .await
            .ok()?;
        let done = d.items.iter().all(|d| {
            let st = d.status.clone().unwrap_or_default();
            st.updated_replicas == Some(1) && st.ready_replicas == Some(1) && st.replicas == Some(1)
        });
        (done && new.len() == 1 && pod_ready(new[0])).then_some(())
    })
    .await?;
    mutu_e2e::real::free(&[&ns]);
    Ok(())
}

/// The release a generic site's page says it is (header X-Generic-Release),
/// through the ingress controller.
fn served_release(host: &str) -> anyhow::Result<String> {
    let http = env("MUTU_INGRESS_HTTP")?;
    let out = Command::new("curl")
        .args(["-sS", "-D", "-", "-o", "/dev/null", "--max-time", "10"])
        .args(["-H", &format!("Host: {host}"), &format!("http://{http}/")])
        .output()?;
    let headers = String::from_utf8_lossy(&out.stdout);
    Ok(headers
        .lines()
        .find_map(|l| l.strip_prefix("X-Generic-Release:"))
        .unwrap_or_default()
        .trim()
        .to_string())
}

#[tokio::test]
async fn a_release_whose_health_check_fails_stays_unready_and_the_previous_release_serves()
-> anyhow::Result<()> {
    let client = client().await?;
    let (_, ns, domain) = member(&client, "rn-bad", json!({"dev-generic-stateless": 1})).await?;
    let host = format!("app.{domain}");
    ready_site(
        &client,
        &ns,
        "app",
        json!({"product": "dev-generic-stateless", "release": "1.0", "hostnames": [host]}),
    )
    .await?;
    eventually(TIMEOUT, "release 1.0 through the ingress", || async {
        (served_release(&host).ok()? == "1.0").then_some(())
    })
    .await?;
    let sites: Api<PloneSite> = Api::namespaced(client.clone(), &ns);
    sites
        .patch(
            "app",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"release": "9.9-unhealthy"}})),
        )
        .await?;

    // The new pod runs (a real container) but kubelet's probe of /ok fails:
    // it is never Ready, and the Deployment keeps the previous pod.
    let image = "mutu.local/generic:9.9-unhealthy";
    let new_pod = eventually(TIMEOUT, "the new release's pod to run", || async {
        let list = pods(&client, &ns, "app", "instance").await.ok()?;
        list.into_iter().find(|p| {
            let running = p
                .status
                .as_ref()
                .and_then(|s| s.container_statuses.as_ref())
                .is_some_and(|c| {
                    c.iter()
                        .any(|c| c.state.as_ref().is_some_and(|s| s.running.is_some()))
                });
            running
                && p.spec
                    .as_ref()
                    .is_some_and(|s| s.containers[0].image.as_deref() == Some(image))
        })
    })
    .await?;
    eventually(TIMEOUT, "kubelet's failed readiness probe", || async {
        let out = kubectl([
            "-n",
            &ns,
            "get",
            "events",
            "--field-selector",
            &format!("involvedObject.name={}", new_pod.name_any()),
            "-o",
            "jsonpath={range .items[*]}{.reason}: {.message}{\"\\n\"}{end}",
        ]);
        let text = out.stdout;
        // The first tries may find nothing listening yet; then /ok answers
        // 503. The liveness probe reports the same status in its own event,
        // which may come first: wait for the readiness probe's.
        text.lines()
            .any(|l| l.contains("Readiness probe failed: HTTP probe failed with statuscode: 503"))
            .then_some(())
    })
    .await?;
    for _ in 0..5 {
        let list = pods(&client, &ns, "app", "instance").await?;
        let fresh = list.iter().find(|p| p.name_any() == new_pod.name_any());
        assert!(
            fresh.is_some_and(|p| !pod_ready(p)),
            "the unhealthy pod became Ready"
        );
        let old_ready = list.iter().any(|p| {
            pod_ready(p)
                && p.spec.as_ref().is_some_and(|s| {
                    s.containers[0].image.as_deref() == Some("mutu.local/generic:1.0")
                })
        });
        assert!(old_ready, "the previous release's pod is gone");
        assert_eq!(
            served_release(&host)?,
            "1.0",
            "the site stopped serving 1.0"
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    mutu_e2e::real::free(&[&ns]);
    mutu_e2e::fault_scenario_passed(
        "a release whose health check fails on real nodes: unready, the previous release serves",
    );
    Ok(())
}
