//! The Helm chart (charts/mutu), with a real Helm built by
//! tests/cluster/tool.sh helm: it lints, renders every option, refuses bad values
//! naming the key, installs into a control plane of its own (not the one the
//! other tests share: the chart's operator runs there under the chart's
//! ServiceAccount, with all its controllers) and upgrades with a changed value.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ListParams};
use kube::{Client, ResourceExt};
use mutu_api::{BackupPolicy, CertificateIssuer};
use mutu_e2e::plane::{Killed, Plane, mutu_bin, run};
use mutu_e2e::{member_with_site, repo_root, scrape};
use mutu_runtime::conditions;
use mutu_runtime::testing::eventually;

const NS: &str = "mutu-chart";
const RELEASE: &str = "chart";
/// The API port of this test's own control plane; the ports derived from it
/// (API port - 1442 up to + 8557) miss those of the shared one (16443).
const API_PORT: u16 = 19443;
const TIMEOUT: Duration = Duration::from_secs(120);
/// The cluster version `helm template` and `helm lint` render for (the local
/// control plane's; without a cluster Helm assumes an old one).
const KUBE_VERSION: &str = "v1.37.2";

/// A Go tool of the test bed (`tests/cluster/tool.sh NAME`), built once and
/// cached; `make test` passes its path in `env`.
fn tool(name: &str, env: &str) -> anyhow::Result<PathBuf> {
    if let Ok(path) = std::env::var(env) {
        return Ok(PathBuf::from(path));
    }
    let out = Command::new("bash")
        .arg(repo_root().join("tests/cluster/tool.sh"))
        .arg(name)
        .stderr(Stdio::inherit())
        .output()?;
    anyhow::ensure!(out.status.success(), "tests/cluster/tool.sh {name} failed");
    let text = String::from_utf8(out.stdout)?;
    Ok(PathBuf::from(
        text.lines().last().unwrap_or_default().trim().to_string(),
    ))
}

fn helm_bin() -> anyhow::Result<PathBuf> {
    tool("helm", "MUTU_HELM")
}

fn promtool() -> anyhow::Result<PathBuf> {
    tool("promtool", "MUTU_PROMTOOL")
}

fn helm(args: &[&str], kubeconfig: Option<&Path>) -> anyhow::Result<String> {
    let r = run(&helm_bin()?, args, kubeconfig)?;
    anyhow::ensure!(
        r.success,
        "helm {} failed:\n{}{}",
        args.join(" "),
        r.stdout,
        r.stderr
    );
    Ok(r.stdout)
}

/// The chart rendered with these values, as YAML documents.
fn render(extra: &[&str]) -> anyhow::Result<Vec<serde_json::Value>> {
    let mut args = vec![
        "template",
        RELEASE,
        "charts/mutu",
        "--namespace",
        NS,
        "--kube-version",
        KUBE_VERSION,
    ];
    args.extend_from_slice(extra);
    let text = helm(&args, None)?;
    let mut docs = Vec::new();
    for doc in text.split("\n---") {
        let body: String = doc
            .lines()
            .filter(|l| !l.trim_start().starts_with('#'))
            .collect::<Vec<_>>()
            .join("\n");
        if body.trim().is_empty() {
            continue;
        }
        let value: serde_json::Value = serde_saphyr::from_str(&body)?;
        if !value.is_null() {
            docs.push(value);
        }
    }
    Ok(docs)
}

fn kinds(docs: &[serde_json::Value]) -> Vec<String> {
    let mut k: Vec<String> = docs
        .iter()
        .map(|d| d["kind"].as_str().unwrap_or_default().to_string())
        .collect();
    k.sort();
    k.dedup();
    k
}

#[test]
fn the_chart_lints_and_renders_every_option() -> anyhow::Result<()> {
    helm(
        &[
            "lint",
            "--strict",
            "charts/mutu",
            "--kube-version",
            KUBE_VERSION,
        ],
        None,
    )?;
    let all = [
        "--set",
        "serviceMonitor.enabled=true,prometheusRule.enabled=true,grafanaDashboard.enabled=true",
        "--set",
        "networkPolicy.enabled=true,networkPolicy.apiServer.cidrs={10.0.0.1/32}",
        "--set",
        "issuers[0].name=internal,issuers[0].spec.ca.secretName=internal-ca",
        "--set",
        "backupPolicies[0].name=nightly,backupPolicies[0].spec.default=true",
    ];
    let mut lint = vec![
        "lint",
        "--strict",
        "charts/mutu",
        "--kube-version",
        KUBE_VERSION,
    ];
    lint.extend_from_slice(&all);
    helm(&lint, None)?;

    let defaults = kinds(&render(&[])?);
    for kind in [
        "ClusterRole",
        "ClusterRoleBinding",
        "Deployment",
        "Role",
        "RoleBinding",
    ] {
        assert!(
            defaults.contains(&kind.to_string()),
            "{kind} missing: {defaults:?}"
        );
    }
    for kind in [
        "ServiceMonitor",
        "PrometheusRule",
        "NetworkPolicy",
        "CertificateIssuer",
    ] {
        assert!(
            !defaults.contains(&kind.to_string()),
            "{kind} is optional: {defaults:?}"
        );
    }
    let docs = render(&all)?;
    let every = kinds(&docs);
    for kind in [
        "ServiceMonitor",
        "PrometheusRule",
        "NetworkPolicy",
        "CertificateIssuer",
        "BackupPolicy",
        "ConfigMap",
    ] {
        assert!(
            every.contains(&kind.to_string()),
            "{kind} missing: {every:?}"
        );
    }

    // Least privilege: no wildcard anywhere in the rules.
    for d in docs
        .iter()
        .filter(|d| d["kind"] == "ClusterRole" || d["kind"] == "Role")
    {
        let rules = d["rules"].as_array().cloned().unwrap_or_default();
        assert!(!rules.is_empty(), "{} has no rules", d["metadata"]["name"]);
        for rule in rules {
            for key in ["verbs", "resources", "apiGroups"] {
                let wild = rule[key].as_array().is_some_and(|v| {
                    v.iter()
                        .any(|x| x.as_str().is_some_and(|s| s.contains('*')))
                });
                assert!(!wild, "wildcard {key} in {}: {rule}", d["metadata"]["name"]);
            }
        }
    }
    // Every rule says why it is there: a comment right above it.
    for file in ["rbac-operator.yaml", "rbac-portal.yaml"] {
        let text = std::fs::read_to_string(repo_root().join("charts/mutu/templates").join(file))?;
        let lines: Vec<&str> = text.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            if line.trim_start().starts_with("- apiGroups:") {
                let above = lines[..i]
                    .iter()
                    .rev()
                    .find(|l| !l.trim().is_empty())
                    .copied()
                    .unwrap_or_default();
                assert!(
                    above.trim_start().starts_with('#'),
                    "{file}:{}: a rule without a comment saying why",
                    i + 1
                );
            }
        }
    }

    // The pods meet the restricted Pod Security Standard.
    for d in docs.iter().filter(|d| d["kind"] == "Deployment") {
        let spec = &d["spec"]["template"]["spec"];
        assert_eq!(
            spec["securityContext"]["runAsNonRoot"], true,
            "{}",
            d["metadata"]["name"]
        );
        for c in spec["containers"].as_array().cloned().unwrap_or_default() {
            let sc = &c["securityContext"];
            assert_eq!(sc["allowPrivilegeEscalation"], false, "{}", c["name"]);
            assert_eq!(sc["capabilities"]["drop"][0], "ALL", "{}", c["name"]);
            assert_eq!(
                sc["seccompProfile"]["type"], "RuntimeDefault",
                "{}",
                c["name"]
            );
            assert!(
                c["resources"]["requests"].is_object(),
                "{} has no requests",
                c["name"]
            );
            assert!(
                c["readinessProbe"].is_object(),
                "{} has no readiness probe",
                c["name"]
            );
        }
    }

    // What the members' pods may reach is passed to the operator as its
    // environment: DNS always, Solr derived from its URL unless given, the
    // database and the mail relay only when given.
    let docs = render(&["--set", "operator.tenantEgress.mailRelay={10.0.0.25:25}"])?;
    let operator = docs
        .iter()
        .find(|d| {
            d["kind"] == "Deployment"
                && d["metadata"]["name"]
                    .as_str()
                    .is_some_and(|n| n.ends_with("-operator"))
        })
        .ok_or_else(|| anyhow::anyhow!("no operator Deployment"))?;
    let env: std::collections::BTreeMap<String, String> =
        operator["spec"]["template"]["spec"]["containers"][0]["env"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .filter_map(|e| {
                Some((
                    e["name"].as_str()?.to_string(),
                    e["value"].as_str()?.to_string(),
                ))
            })
            .collect();
    assert_eq!(env["MUTU_DNS_EGRESS"], "namespace/kube-system:53");
    assert_eq!(env["MUTU_MAIL_RELAY"], "10.0.0.25:25");
    assert!(!env.contains_key("MUTU_SOLR_EGRESS"), "{env:?}");
    assert!(!env.contains_key("MUTU_DATABASE_EGRESS"), "{env:?}");

    Ok(())
}

#[test]
fn bad_values_are_refused_naming_the_setting() -> anyhow::Result<()> {
    let helm = helm_bin()?;
    let cases: [(&[&str], &str); 8] = [
        (&["--set", "portal.replicas=2"], "replicas"),
        (
            &["--set", "operator.replicas=2,operator.leaderElection=false"],
            "leaderElection",
        ),
        (&["--set", "operator.concurrency=0"], "concurrency"),
        (&["--set", "operator.replicsa=2"], "replicsa"),
        (&["--set", "operator.waveTick=5 seconds"], "waveTick"),
        (&["--set", "operator.solr.url=solr:8983"], "url"),
        (
            &[
                "--set",
                "operator.tenantEgress.mailRelay={smtp.example.org}",
            ],
            "mailRelay",
        ),
        (
            &["--set", "networkPolicy.enabled=true"],
            "networkPolicy.apiServer.cidrs",
        ),
    ];
    for (extra, setting) in cases {
        let mut args = vec![
            "template",
            RELEASE,
            "charts/mutu",
            "--kube-version",
            KUBE_VERSION,
        ];
        args.extend_from_slice(extra);
        let r = run(&helm, &args, None)?;
        assert!(!r.success, "helm template {extra:?} was accepted");
        assert!(
            r.stderr.contains(setting),
            "helm template {extra:?}: the error does not name {setting}:\n{}",
            r.stderr
        );
    }
    Ok(())
}

async fn deployments_available(client: &Client, names: &[String]) -> anyhow::Result<()> {
    let api: Api<Deployment> = Api::namespaced(client.clone(), NS);
    for name in names {
        eventually(TIMEOUT, &format!("Deployment {name} available"), || {
            let api = api.clone();
            async move {
                let d = api.get(name).await.ok()?;
                let st = d.status.as_ref()?;
                (st.observed_generation == d.metadata.generation
                    && st.updated_replicas == d.spec.replicas
                    && st.available_replicas == d.spec.replicas)
                    .then_some(())
            }
        })
        .await?;
    }
    Ok(())
}

/// Checks that `attempt` was refused (403) with a message holding `says`, and prints it.
fn refused<T: std::fmt::Debug>(case: &str, attempt: Result<T, kube::Error>, says: &str) {
    match attempt {
        Err(kube::Error::Api(status)) => {
            assert_eq!(status.code, 403, "{case}: {}", status.message);
            assert!(
                status.message.contains(says),
                "{case}: {says:?} not in {:?}",
                status.message
            );
            println!("operator token refused: {case}: {}", status.message);
        }
        other => panic!("{case}: not refused: {other:?}"),
    }
}

/// What the chart refuses to the operator's own token (`sa`; `admin` is the platform), with what it allows in the
/// member's namespace `tenant_ns` beside: its RBAC (no pod made, no exec, no admission
/// policy touched, no role escalated) and its confinement policy (Secrets, Jobs and
/// RoleBindings only in tenant namespaces, no namespace labelled or deleted that is not a
/// tenant's).
async fn the_operators_token_writes_only_in_tenant_namespaces(
    admin: &kube::Client,
    sa: &kube::Client,
    tenant_ns: &str,
) -> anyhow::Result<()> {
    use k8s_openapi::api::batch::v1::Job;
    use k8s_openapi::api::core::v1::{Namespace, Pod};
    use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, RoleBinding};
    use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
    let secret = |name: &str| -> anyhow::Result<Secret> {
        Ok(serde_json::from_value(serde_json::json!({
            "apiVersion": "v1", "kind": "Secret", "metadata": {"name": name},
            "stringData": {"k": "v"},
        }))?)
    };
    let pp = PostParams::default();
    let confined = "only in tenant namespaces";
    // Allowed where it works: a Secret in the member's namespace.
    let own: Api<Secret> = Api::namespaced(sa.clone(), tenant_ns);
    own.create(&pp, &secret("operator-may")?).await?;
    own.delete("operator-may", &DeleteParams::default()).await?;
    for ns in ["default", "kube-system"] {
        let secrets: Api<Secret> = Api::namespaced(sa.clone(), ns);
        refused(
            &format!("a Secret in {ns}"),
            secrets.create(&pp, &secret("stolen")?).await,
            confined,
        );
    }
    let job: Job = serde_json::from_value(serde_json::json!({
        "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "stolen"},
        "spec": {"template": {"spec": {"restartPolicy": "Never",
            "containers": [{"name": "c", "image": "busybox"}]}}},
    }))?;
    refused(
        "a Job in default",
        Api::<Job>::namespaced(sa.clone(), "default")
            .create(&pp, &job)
            .await,
        confined,
    );
    let binding: RoleBinding = serde_json::from_value(serde_json::json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": "stolen"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                    "name": "mutu:tenant-admin"},
        "subjects": [{"kind": "User", "name": "intruder", "apiGroup": "rbac.authorization.k8s.io"}],
    }))?;
    refused(
        "a RoleBinding in kube-system",
        Api::<RoleBinding>::namespaced(sa.clone(), "kube-system")
            .create(&pp, &binding)
            .await,
        confined,
    );
    let namespaces: Api<Namespace> = Api::all(sa.clone());
    let not_a_tenant = "only tenant namespaces";
    refused(
        "labelling default as a tenant's namespace",
        namespaces
            .patch(
                "default",
                &PatchParams::default(),
                &Patch::Merge(
                    &serde_json::json!({"metadata": {"labels": {mutu_api::TENANT_LABEL: "x"}}}),
                ),
            )
            .await,
        not_a_tenant,
    );
    let evil: Namespace = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": "not-a-tenant", "labels": {mutu_api::TENANT_LABEL: "x"}},
    }))?;
    refused(
        "a namespace not named tenant-*",
        namespaces.create(&pp, &evil).await,
        not_a_tenant,
    );
    let bystander: Namespace = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "bystander"},
    }))?;
    Api::<Namespace>::all(admin.clone())
        .create(&pp, &bystander)
        .await?;
    refused(
        "deleting a namespace that is not a tenant's",
        namespaces
            .delete("bystander", &DeleteParams::default())
            .await,
        not_a_tenant,
    );
    let kept = Api::<Namespace>::all(admin.clone())
        .get("bystander")
        .await?;
    assert!(kept.metadata.deletion_timestamp.is_none());
    // What its RBAC never gave it.
    let pod: Pod = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "stolen"},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]},
    }))?;
    refused(
        "a pod in the member's namespace",
        Api::<Pod>::namespaced(sa.clone(), tenant_ns)
            .create(&pp, &pod)
            .await,
        "cannot create resource \"pods\"",
    );
    let admin: ClusterRoleBinding = serde_json::from_value(serde_json::json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
        "metadata": {"name": "stolen-admin"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                    "name": "cluster-admin"},
        "subjects": [{"kind": "User", "name": "intruder", "apiGroup": "rbac.authorization.k8s.io"}],
    }))?;
    refused(
        "binding cluster-admin",
        Api::<ClusterRoleBinding>::all(sa.clone())
            .create(&pp, &admin)
            .await,
        "forbidden",
    );
    let policies: Api<
        k8s_openapi::api::admissionregistration::v1::ValidatingAdmissionPolicyBinding,
    > = Api::all(sa.clone());
    refused(
        "deleting its own confinement",
        policies
            .delete(
                &format!("{RELEASE}-mutu-operator-confinement"),
                &DeleteParams::default(),
            )
            .await,
        "cannot delete resource",
    );
    Ok(())
}

#[tokio::test]
async fn the_chart_installs_its_operator_works_under_its_rbac_and_upgrades() -> anyhow::Result<()> {
    let plane = Plane::up("test-chart", API_PORT)?;
    let kc = plane.kubeconfig.as_path();
    let client = plane.client().await?;
    let kubectl = PathBuf::from("kubectl");

    // A namespace that enforces the restricted Pod Security Standard: a pod
    // of the chart that asked for more would be refused.
    let r = run(&kubectl, &["create", "namespace", NS], Some(kc))?;
    anyhow::ensure!(r.success, "{}", r.stderr);
    let r = run(
        &kubectl,
        &[
            "label",
            "namespace",
            NS,
            "pod-security.kubernetes.io/enforce=restricted",
        ],
        Some(kc),
    )?;
    anyhow::ensure!(r.success, "{}", r.stderr);

    let values = plane.dir.join("values.yaml");
    std::fs::write(
        &values,
        "issuers:\n  - name: chart-self-signed\n    spec:\n      selfSigned: {}\n\
         backupPolicies:\n  - name: chart-nightly\n    spec:\n      window: {start: \"22:00\", end: \"05:00\"}\n      maxConcurrent: 4\n\
         operator:\n  defaultIssuer: chart-self-signed\n",
    )?;
    let values_arg = values.display().to_string();
    helm(
        &[
            "install",
            RELEASE,
            "charts/mutu",
            "--namespace",
            NS,
            "--values",
            &values_arg,
            "--wait",
            "--timeout",
            "180s",
        ],
        Some(kc),
    )?;
    let fullname = format!("{RELEASE}-mutu");
    let deployments = ["operator", "portal", "maintenance"].map(|c| format!("{fullname}-{c}"));
    deployments_available(&client, &deployments).await?;
    Api::<CertificateIssuer>::all(client.clone())
        .get("chart-self-signed")
        .await?;
    Api::<BackupPolicy>::all(client.clone())
        .get("chart-nightly")
        .await?;

    // The operator, as the chart's ServiceAccount (a real token): every
    // controller reconciles a member, its site and the site's certificate.
    let sa = format!("{fullname}-operator");
    let r = run(
        &kubectl,
        &["create", "token", &sa, "-n", NS, "--duration", "1h"],
        Some(kc),
    )?;
    anyhow::ensure!(r.success, "kubectl create token: {}", r.stderr);
    let token = r.stdout.trim().to_string();
    let admin = std::fs::read_to_string(kc)?;
    let mut config: serde_json::Value = serde_saphyr::from_str(&admin)?;
    config["users"] = serde_json::json!([{"name": "operator", "user": {"token": token}}]);
    if let Some(ctx) = config["contexts"][0]["context"].as_object_mut() {
        ctx.insert("user".into(), "operator".into());
    }
    let sa_kubeconfig = plane.dir.join("operator.kubeconfig");
    std::fs::write(&sa_kubeconfig, serde_json::to_string(&config)?)?;
    let log_path = plane.dir.join("chart-operator.log");
    let log = std::fs::File::create(&log_path)?;
    let metrics = format!("127.0.0.1:{}", API_PORT + 10);
    let _operator = Killed(
        Command::new(mutu_bin()?)
            .args(["operator", "run", "--metrics-addr", &metrics])
            .env("KUBECONFIG", &sa_kubeconfig)
            .env("MUTU_NAMESPACE", NS)
            .env("MUTU_DEFAULT_ISSUER", "chart-self-signed")
            .env("MUTU_ACME_SOLVER_ADDR", "off")
            .env("MUTU_ACME_SERVER_ALLOW", "https://127.0.0.1:")
            .env("MUTU_LOG_FORMAT", "json")
            .env("MUTU_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?,
    );
    let ready = format!("http://{metrics}/readyz");
    eventually(TIMEOUT, "the chart's operator to be ready", || {
        let url = ready.clone();
        async move { scrape(&url).await.ok().filter(|b| b.trim() == "ready") }
    })
    .await?;
    // The log level, changed while the operator runs: what each child apply
    // does is logged at debug level.
    let http = reqwest::Client::new();
    let level_url = format!("http://{metrics}/log-level");
    let put = http
        .put(&level_url)
        .body("info,mutu_runtime=debug")
        .send()
        .await?;
    assert_eq!(put.status(), 200, "{}", put.text().await?);
    assert_eq!(
        http.get(&level_url).send().await?.text().await?.trim(),
        "info,mutu_runtime=debug"
    );
    let bad = http.put(&level_url).body("info,=[").send().await?;
    assert_eq!(bad.status(), 400, "a filter that does not parse is refused");

    let (ns, _) = member_with_site(&client, "chart", serde_json::json!({}), TIMEOUT).await?;
    let site: mutu_api::PloneSite = Api::namespaced(client.clone(), &ns).get("delib").await?;
    let st = site.status.unwrap_or_default();
    assert!(
        conditions::is_true(&st.conditions, "Ready"),
        "{:?}",
        st.conditions
    );
    // The site's certificate was issued into its Secret.
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    let tls = secrets
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter(|s| s.type_.as_deref() == Some("kubernetes.io/tls"))
        .count();
    assert!(tls >= 1, "no TLS Secret in {ns}");
    let text = std::fs::read_to_string(&log_path)?;
    // JSON lines; those logged in a reconcile name its object and carry its id.
    let mut site_lines = 0;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value = serde_json::from_str(line)
            .map_err(|e| anyhow::anyhow!("not a JSON log line ({e}): {line}"))?;
        assert!(
            v["level"].is_string() && v["timestamp"].is_string(),
            "{line}"
        );
        let span = &v["span"];
        if span["controller"] == "site" && span["namespace"] == ns.as_str() {
            assert_eq!(span["object"], "delib", "{line}");
            assert!(
                span["reconcile_id"]
                    .as_str()
                    .is_some_and(|id| !id.is_empty()),
                "{line}"
            );
            site_lines += 1;
        }
    }
    assert!(
        site_lines > 0,
        "no debug line from the site's reconciles after the level changed"
    );
    let denied: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("forbidden") || l.contains("Forbidden"))
        .collect();
    assert!(
        denied.is_empty(),
        "the chart's RBAC refused the operator:\n{}",
        denied.join("\n")
    );
    let sa_config = kube::config::Kubeconfig::read_from(&sa_kubeconfig)?;
    let config = kube::Config::from_custom_kubeconfig(
        sa_config,
        &kube::config::KubeConfigOptions::default(),
    )
    .await?;
    let sa = kube::Client::try_from(config)?;
    the_operators_token_writes_only_in_tenant_namespaces(&client, &sa, &ns).await?;

    // Every metric the dashboard and the alerts use is one the operator exposes.
    let exposed = scrape(&format!("http://{metrics}/metrics")).await?;
    let families: std::collections::BTreeSet<String> = exposed
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .map(String::from)
        .collect();
    // A family with no sample yet is not in the exposition: the registered
    // names are read from the code, and checked against what is exposed.
    let registered = registered_metrics()?;
    for name in &families {
        assert!(
            registered.contains(name),
            "{name} is exposed but not found registered in the code: {registered:?}"
        );
    }
    for name in metrics_used()? {
        assert!(
            registered.contains(&name),
            "the dashboard or an alert uses {name}, which the operator does not register: {registered:?}"
        );
    }

    // An upgrade with a changed value rolls the operator out.
    let operators: Api<Deployment> = Api::namespaced(client.clone(), NS);
    let before = operators.get(&deployments[0]).await?;
    helm(
        &[
            "upgrade",
            RELEASE,
            "charts/mutu",
            "--namespace",
            NS,
            "--reuse-values",
            "--set",
            "operator.concurrency=4",
            "--wait",
            "--timeout",
            "180s",
        ],
        Some(kc),
    )?;
    let after = operators.get(&deployments[0]).await?;
    assert!(
        after.metadata.generation > before.metadata.generation,
        "the upgrade did not change the operator's Deployment"
    );
    let env = after
        .spec
        .template
        .spec
        .as_ref()
        .map(|p| p.containers[0].env.clone().unwrap_or_default())
        .unwrap_or_default();
    assert!(
        env.iter()
            .any(|e| e.name == "MUTU_CONCURRENCY" && e.value.as_deref() == Some("4")),
        "{env:?}"
    );
    deployments_available(&client, &deployments[..1]).await?;
    let rs: Api<k8s_openapi::api::apps::v1::ReplicaSet> = Api::namespaced(client.clone(), NS);
    let sets = rs
        .list(&ListParams::default().labels("app.kubernetes.io/component=operator"))
        .await?
        .items;
    assert_eq!(
        sets.len(),
        2,
        "one ReplicaSet per revision: {:?}",
        sets.iter().map(|s| s.name_any()).collect::<Vec<_>>()
    );

    // Uninstalling keeps the issuers and backup policies it installed.
    helm(
        &["uninstall", RELEASE, "--namespace", NS, "--wait"],
        Some(kc),
    )?;
    Api::<CertificateIssuer>::all(client.clone())
        .get("chart-self-signed")
        .await?;
    Api::<BackupPolicy>::all(client.clone())
        .get("chart-nightly")
        .await?;
    Ok(())
}

/// The alert rules as the chart renders them: Prometheus accepts them
/// (`promtool check rules`), and each alert fires on the series it watches,
/// and only then (`promtool test rules`, on synthetic series).
#[test]
fn the_alert_rules_are_valid_and_fire_on_what_they_watch() -> anyhow::Result<()> {
    let docs = render(&["--set", "prometheusRule.enabled=true"])?;
    let rule = docs
        .iter()
        .find(|d| d["kind"] == "PrometheusRule")
        .ok_or_else(|| anyhow::anyhow!("no PrometheusRule rendered"))?;
    let dir = std::env::temp_dir().join(format!("mutu-rules-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let rules = dir.join("rules.json");
    std::fs::write(&rules, serde_json::to_string_pretty(&rule["spec"])?)?;
    let promtool = promtool()?;
    let check = run(
        &promtool,
        &["check", "rules", &rules.display().to_string()],
        None,
    )?;
    assert!(
        check.success,
        "promtool check rules:\n{}{}",
        check.stdout, check.stderr
    );

    // The unit tests compare labels; the annotations are checked above.
    let mut bare = rule["spec"].clone();
    for group in bare["groups"].as_array_mut().into_iter().flatten() {
        for r in group["rules"].as_array_mut().into_iter().flatten() {
            if let Some(o) = r.as_object_mut() {
                o.remove("annotations");
            }
        }
    }
    let bare_rules = dir.join("rules-bare.json");
    std::fs::write(&bare_rules, serde_json::to_string_pretty(&bare)?)?;
    let job = format!("{RELEASE}-mutu-operator-metrics");
    let tests = serde_json::json!({
        "rule_files": [bare_rules.display().to_string()],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [
                    {"series": format!("up{{job=\"{job}\"}}"), "values": "1x60"},
                    // A site not Ready since time 0, and a suspended one.
                    {"series": format!("mutu_site_not_ready_since_timestamp_seconds{{job=\"{job}\",namespace=\"tenant-a\",name=\"web\",reason=\"Starting\"}}"), "values": "0x60"},
                    {"series": format!("mutu_site_not_ready_since_timestamp_seconds{{job=\"{job}\",namespace=\"tenant-a\",name=\"old\",reason=\"Suspended\"}}"), "values": "0x60"},
                    // A certificate expiring in 10 days.
                    {"series": format!("mutu_certificate_expiry_timestamp_seconds{{job=\"{job}\",namespace=\"tenant-a\",name=\"web\",issuer=\"letsencrypt\"}}"), "values": "864000x60"},
                    // A broken watch.
                    {"series": format!("mutu_watch_broken{{job=\"{job}\",watch=\"plonesites\"}}"), "values": "1x60"},
                    // Half of the site controller's reconciles fail.
                    {"series": format!("mutu_reconciles_total{{job=\"{job}\",controller=\"site\",result=\"ok\"}}"), "values": "0+10x60"},
                    {"series": format!("mutu_reconcile_errors_total{{job=\"{job}\",controller=\"site\",reason=\"ApplyFailed\"}}"), "values": "0+10x60"},
                ],
                "alert_rule_test": [
                    {"eval_time": "5m", "alertname": "MutuSiteNotReady", "exp_alerts": []},
                    {"eval_time": "13m", "alertname": "MutuSiteNotReady", "exp_alerts": [
                        {"exp_labels": {"severity": "warning", "job": job, "namespace": "tenant-a", "name": "web", "reason": "Starting"}},
                    ]},
                    {"eval_time": "5m", "alertname": "MutuCertificateExpiringSoon", "exp_alerts": []},
                    {"eval_time": "16m", "alertname": "MutuCertificateExpiringSoon", "exp_alerts": [
                        {"exp_labels": {"severity": "warning", "job": job, "namespace": "tenant-a", "name": "web", "issuer": "letsencrypt"}},
                    ]},
                    {"eval_time": "12m", "alertname": "MutuWatchBroken", "exp_alerts": [
                        {"exp_labels": {"severity": "warning", "job": job, "watch": "plonesites"}},
                    ]},
                    {"eval_time": "35m", "alertname": "MutuReconcileErrors", "exp_alerts": [
                        {"exp_labels": {"severity": "warning", "job": job, "controller": "site"}},
                    ]},
                    {"eval_time": "30m", "alertname": "MutuOperatorDown", "exp_alerts": []},
                ],
            },
            {
                // Nothing scraped: the operator is down.
                "interval": "1m",
                "input_series": [],
                "alert_rule_test": [
                    {"eval_time": "3m", "alertname": "MutuOperatorDown", "exp_alerts": []},
                    {"eval_time": "7m", "alertname": "MutuOperatorDown", "exp_alerts": [
                        {"exp_labels": {"severity": "critical", "job": job}},
                    ]},
                ],
            },
            {
                // Backups: one site's last success at time 0, another's suspended.
                "interval": "1m",
                "input_series": [
                    {"series": format!("mutu_backup_last_success_timestamp_seconds{{job=\"{job}\",namespace=\"tenant-a\",site=\"web\"}}"), "values": "0x1700"},
                    {"series": format!("mutu_backup_last_success_timestamp_seconds{{job=\"{job}\",namespace=\"tenant-a\",site=\"paused\"}}"), "values": "0x1700"},
                    {"series": format!("mutu_backup_suspended{{job=\"{job}\",namespace=\"tenant-a\",site=\"paused\"}}"), "values": "1x1700"},
                ],
                "alert_rule_test": [
                    {"eval_time": "25h", "alertname": "MutuBackupStale", "exp_alerts": []},
                    {"eval_time": "27h", "alertname": "MutuBackupStale", "exp_alerts": [
                        {"exp_labels": {"severity": "warning", "job": job, "namespace": "tenant-a", "site": "web"}},
                    ]},
                ],
            },
        ],
    });
    let test_file = dir.join("rules-test.json");
    std::fs::write(&test_file, serde_json::to_string_pretty(&tests)?)?;
    let test = run(
        &promtool,
        &["test", "rules", &test_file.display().to_string()],
        None,
    )?;
    assert!(
        test.success,
        "promtool test rules:\n{}{}",
        test.stdout, test.stderr
    );
    Ok(())
}

/// Every metric the dashboard and the alert rules use, from the chart's files.
fn metrics_used() -> anyhow::Result<std::collections::BTreeSet<String>> {
    let mut text = std::fs::read_to_string(repo_root().join("charts/mutu/dashboards/mutu.json"))?;
    text.push_str(&std::fs::read_to_string(
        repo_root().join("charts/mutu/templates/prometheusrule.yaml"),
    )?);
    let mut names = std::collections::BTreeSet::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while let Some(at) = text[i..].find("mutu_") {
        let start = i + at;
        let before_ok =
            start == 0 || !(bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_');
        let end = text[start..]
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .map(|e| start + e)
            .unwrap_or(text.len());
        if before_ok {
            let mut name = text[start..end].to_string();
            for suffix in ["_total", "_bucket", "_sum", "_count"] {
                if let Some(stem) = name.strip_suffix(suffix) {
                    name = stem.to_string();
                }
            }
            names.insert(name);
        }
        i = end;
    }
    Ok(names)
}

/// The names of every metric the code registers (`register("name", ...)`),
/// with the `mutu_` prefix of the registry.
fn registered_metrics() -> anyhow::Result<std::collections::BTreeSet<String>> {
    let mut names = std::collections::BTreeSet::new();
    let mut dirs = vec![repo_root().join("crates"), repo_root().join("operators")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let path = entry?.path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path)?;
                let mut rest = text.as_str();
                while let Some(at) = rest.find("register(") {
                    rest = &rest[at + "register(".len()..];
                    let trimmed = rest.trim_start();
                    if let Some(lit) = trimmed.strip_prefix('"')
                        && let Some(end) = lit.find('"')
                    {
                        let name = &lit[..end];
                        if name.chars().all(|c| c.is_ascii_lowercase() || c == '_') {
                            names.insert(format!("mutu_{name}"));
                        }
                    }
                }
            }
        }
    }
    Ok(names)
}
