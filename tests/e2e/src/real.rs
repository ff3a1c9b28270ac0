//! Helpers of the tests on real nodes (`mutu dev up --nodes real`): the
//! catalog of images built here, members and their sites, their pods, the
//! ingress controller, and a site's content through plone.restapi, as a
//! member's agent reaches it.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::Client;
use kube::api::{Api, ListParams};
use mutu_api::PloneSite;
use mutu_runtime::testing::{eventually, unique_name};
use serde_json::{Value, json};

use crate::{create_site, create_tenant_with, kubectl, repo_root, wait_ready};

/// Plone on two cores: the ZEO server, the site's creation, then Zope's start.
pub const TIMEOUT: Duration = Duration::from_secs(600);

pub async fn client() -> anyhow::Result<Client> {
    Ok(Client::try_default().await?)
}

pub fn env(name: &str) -> anyhow::Result<String> {
    std::env::var(name).map_err(|_| {
        anyhow::anyhow!("{name} is not set: run through `make test` (mutu dev env of real nodes)")
    })
}

/// Whether this process applied the catalog already: the tests run in
/// parallel, and two `kubectl apply` creating the same Product race.
static CATALOG: std::sync::Mutex<bool> = std::sync::Mutex::new(false);

/// The catalog of images built here, applied once per test process.
pub fn apply_catalog() -> anyhow::Result<()> {
    let mut applied = CATALOG.lock().unwrap_or_else(|e| e.into_inner());
    if *applied {
        return Ok(());
    }
    let file = repo_root().join("examples/dev-catalog.yaml");
    let out = kubectl(["apply", "-f", &file.display().to_string()]);
    anyhow::ensure!(
        out.success,
        "kubectl apply {}: {}",
        file.display(),
        out.stderr
    );
    *applied = true;
    Ok(())
}

/// A new member entitled to `entitlements`, Ready; returns (tenant, namespace, domain).
pub async fn member(
    client: &Client,
    prefix: &str,
    entitlements: serde_json::Value,
) -> anyhow::Result<(String, String, String)> {
    apply_catalog()?;
    let tenant = unique_name(prefix);
    let domain = format!("{tenant}.test");
    create_tenant_with(client, &tenant, std::slice::from_ref(&domain), entitlements).await?;
    wait_ready(client, &tenant).await?;
    Ok((tenant.clone(), format!("tenant-{tenant}"), domain))
}

/// Creates a site and waits until it is Ready; returns it.
pub async fn ready_site(
    client: &Client,
    ns: &str,
    name: &str,
    spec: serde_json::Value,
) -> anyhow::Result<PloneSite> {
    create_site(
        client,
        json!({
            "apiVersion": "hosting.imio.be/v1alpha1", "kind": "PloneSite",
            "metadata": {"name": name, "namespace": ns},
            "spec": spec,
        }),
    )
    .await?;
    site_ready(client, ns, name).await
}

/// Waits until site `name` is Ready; returns it, or fails with the site and
/// the pods of its namespace.
pub async fn site_ready(client: &Client, ns: &str, name: &str) -> anyhow::Result<PloneSite> {
    let api: Api<PloneSite> = Api::namespaced(client.clone(), ns);
    let site = eventually(
        TIMEOUT,
        &format!("site {ns}/{name} to be Ready"),
        || async {
            let s = api.get(name).await.ok()?;
            let ready = s
                .status
                .as_ref()
                .is_some_and(|st| mutu_runtime::conditions::is_true(&st.conditions, "Ready"));
            ready.then_some(s)
        },
    )
    .await;
    match site {
        Ok(site) => Ok(site),
        Err(e) => {
            let described = kubectl(["-n", ns, "describe", "pods"]);
            let site = kubectl(["-n", ns, "get", "plonesite", name, "-o", "yaml"]);
            anyhow::bail!(
                "{e}\n--- site:\n{}\n--- pods:\n{}",
                site.stdout,
                described.stdout
            )
        }
    }
}

/// Deletes a test's namespaces without waiting, so that the two cores of the
/// real nodes go to the tests that come next (a failed test keeps its own,
/// to be looked at).
pub fn free(namespaces: &[&str]) {
    for ns in namespaces {
        let out = kubectl(["delete", "namespace", ns, "--wait=false"]);
        if !out.success {
            eprintln!("deleting namespace {ns}: {}", out.stderr);
        }
    }
}

/// The pods of a site's component (`instance`, `zeo`).
pub async fn pods(
    client: &Client,
    ns: &str,
    site: &str,
    component: &str,
) -> anyhow::Result<Vec<Pod>> {
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    let selector = format!("hosting.imio.be/site={site},app.kubernetes.io/component={component}");
    Ok(api
        .list(&ListParams::default().labels(&selector))
        .await?
        .items)
}

pub fn pod_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// `curl` through the ingress controller's HTTPS entry, for `host`, trusting
/// `ca` (a PEM file); returns (status, body).
pub fn curl_https(host: &str, path: &str, ca: &std::path::Path) -> anyhow::Result<(u16, String)> {
    let https = env("MUTU_INGRESS_HTTPS")?;
    let (_, port) = https.rsplit_once(':').unwrap_or(("", "443"));
    let out = Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "20",
            "--cacert",
            &ca.display().to_string(),
            "--resolve",
            &format!("{host}:{port}:127.0.0.1"),
            "-w",
            "\n%{http_code}",
            &format!("https://{host}:{port}{path}"),
        ])
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    anyhow::ensure!(
        out.status.success(),
        "curl https://{host}{path}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
    Ok((code.trim().parse()?, body.to_string()))
}

pub fn scratch_file(name: &str, content: &str) -> anyhow::Result<PathBuf> {
    let dir = repo_root().join(".mutu/test-real-nodes");
    std::fs::create_dir_all(&dir)?;
    let path = dir.join(name);
    std::fs::write(&path, content)?;
    Ok(path)
}

/// A Plone site's content through the ingress controller (plain HTTP, the
/// Host header naming the site) and plone.restapi, as its administrator: the
/// credentials of the Secret the site operator writes.
pub struct PloneContent {
    host: String,
    ingress: String,
    user: String,
    password: String,
    http: reqwest::Client,
}

/// What plone.restapi answered: the HTTP status and the body.
pub struct Answer {
    pub status: u16,
    pub body: Vec<u8>,
}

impl Answer {
    /// The body as JSON (null when it is not).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

impl PloneContent {
    /// The content of site `site` of namespace `ns`, served for `host`.
    pub async fn of(client: &Client, ns: &str, site: &str, host: &str) -> anyhow::Result<Self> {
        let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
        let name = format!("{site}-admin");
        let secret = secrets.get(&name).await?;
        let data = secret.data.unwrap_or_default();
        let key = |k: &str| -> anyhow::Result<String> {
            let v = data
                .get(k)
                .ok_or_else(|| anyhow::anyhow!("Secret {ns}/{name} has no {k}"))?;
            Ok(String::from_utf8(v.0.clone())?)
        };
        Ok(Self {
            host: host.to_string(),
            ingress: env("MUTU_INGRESS_HTTP")?,
            user: key("username")?,
            password: key("password")?,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()?,
        })
    }

    /// `method` on the Plone site's `path` (below `/Plone`), with a JSON body.
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<Answer> {
        let url = format!("http://{}/Plone{path}", self.ingress);
        let mut request = self
            .http
            .request(method, &url)
            .header("Host", &self.host)
            .header("Accept", "application/json")
            .basic_auth(&self.user, Some(&self.password));
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await?;
        let status = response.status().as_u16();
        let body = response.bytes().await?.to_vec();
        Ok(Answer { status, body })
    }

    /// Waits until the site answers its REST API as its administrator.
    pub async fn wait_serving(&self) -> anyhow::Result<()> {
        eventually(TIMEOUT, "the site's REST API", || async {
            let a = self.call(reqwest::Method::GET, "", None).await.ok()?;
            (a.status == 200 && a.json()["@type"] == "Plone Site").then_some(())
        })
        .await?;
        Ok(())
    }

    /// Creates a Document `id` with `text` (HTML) at the site's root.
    pub async fn create_document(&self, id: &str, text: &str) -> anyhow::Result<()> {
        let body = json!({
            "@type": "Document", "id": id, "title": id,
            "text": {"content-type": "text/html", "encoding": "utf-8", "data": text},
        });
        let a = self.call(reqwest::Method::POST, "", Some(&body)).await?;
        anyhow::ensure!(
            a.status == 201,
            "creating {id}: {} {}",
            a.status,
            String::from_utf8_lossy(&a.body)
        );
        Ok(())
    }

    /// Creates a File `id` holding `bytes` (a blob in the ZODB's blob storage).
    pub async fn create_file(&self, id: &str, bytes: &[u8]) -> anyhow::Result<()> {
        use base64::Engine as _;
        let body = json!({
            "@type": "File", "id": id, "title": id,
            "file": {
                "data": base64::engine::general_purpose::STANDARD.encode(bytes),
                "encoding": "base64", "filename": format!("{id}.bin"),
                "content-type": "application/octet-stream",
            },
        });
        let a = self.call(reqwest::Method::POST, "", Some(&body)).await?;
        anyhow::ensure!(
            a.status == 201,
            "creating {id}: {} {}",
            a.status,
            String::from_utf8_lossy(&a.body)
        );
        Ok(())
    }

    /// The text of Document `id`, or None when the site has no such object.
    pub async fn document_text(&self, id: &str) -> anyhow::Result<Option<String>> {
        let a = self
            .call(reqwest::Method::GET, &format!("/{id}"), None)
            .await?;
        match a.status {
            404 => Ok(None),
            200 => Ok(a.json()["text"]["data"].as_str().map(str::to_string)),
            s => anyhow::bail!("reading {id}: {s} {}", String::from_utf8_lossy(&a.body)),
        }
    }

    /// The bytes of File `id`, or None when the site has no such object.
    pub async fn file_bytes(&self, id: &str) -> anyhow::Result<Option<Vec<u8>>> {
        let a = self
            .call(
                reqwest::Method::GET,
                &format!("/{id}/@@download/file"),
                None,
            )
            .await?;
        match a.status {
            404 => Ok(None),
            200 => Ok(Some(a.body)),
            s => anyhow::bail!("downloading {id}: {s}"),
        }
    }

    /// Replaces the text of Document `id`.
    pub async fn set_text(&self, id: &str, text: &str) -> anyhow::Result<()> {
        let body =
            json!({"text": {"content-type": "text/html", "encoding": "utf-8", "data": text}});
        let a = self
            .call(reqwest::Method::PATCH, &format!("/{id}"), Some(&body))
            .await?;
        anyhow::ensure!(a.status == 204, "changing {id}: {}", a.status);
        Ok(())
    }

    /// Deletes object `id`.
    pub async fn delete(&self, id: &str) -> anyhow::Result<()> {
        let a = self
            .call(reqwest::Method::DELETE, &format!("/{id}"), None)
            .await?;
        anyhow::ensure!(a.status == 204, "deleting {id}: {}", a.status);
        Ok(())
    }
}

/// A member's agent that keeps writing pages into a site while an operation
/// runs: page `w-N` holds text `N`, one after the other; a write the site
/// refuses (maintenance page, a connection refused) is tried again a second
/// later. [`Writer::stop`] says which pages the site acknowledged (201).
pub struct Writer {
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<Vec<String>>,
}

impl Writer {
    /// Starts writing into `site`.
    pub fn start(site: std::sync::Arc<PloneContent>, prefix: &str) -> Self {
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        let prefix = prefix.to_string();
        let task = tokio::spawn(async move {
            let mut acknowledged = Vec::new();
            let mut n = 0;
            while !*stopped.borrow() {
                let id = format!("{prefix}-{n}");
                match site.create_document(&id, &format!("<p>{id}</p>")).await {
                    Ok(()) => {
                        acknowledged.push(id);
                        n += 1;
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                    Err(_) => {
                        // Written after all, its answer lost: on to the next.
                        if matches!(site.document_text(&id).await, Ok(Some(_))) {
                            n += 1;
                            continue;
                        }
                        let _ =
                            tokio::time::timeout(Duration::from_secs(1), stopped.changed()).await;
                    }
                }
            }
            acknowledged
        });
        Self { stop, task }
    }

    /// Stops writing; the pages the site acknowledged, in order.
    pub async fn stop(self) -> anyhow::Result<Vec<String>> {
        let _ = self.stop.send(true);
        Ok(self.task.await?)
    }
}

/// `len` bytes that differ from one call to the next (a file's content).
pub fn random_bytes(len: usize) -> Vec<u8> {
    (0..len).map(|_| fastrand::u8(..)).collect()
}

/// Every page the writer says the site acknowledged is there, with its text,
/// after `what`; the site serves.
pub async fn all_there(
    site: &PloneContent,
    acknowledged: &[String],
    what: &str,
) -> anyhow::Result<()> {
    site.wait_serving().await?;
    assert!(
        acknowledged.len() >= 2,
        "the writer wrote: {acknowledged:?}"
    );
    let mut lost = Vec::new();
    for id in acknowledged {
        if site.document_text(id).await?.as_deref() != Some(&format!("<p>{id}</p>")) {
            lost.push(id.clone());
        }
    }
    assert!(
        lost.is_empty(),
        "acknowledged, then lost by {what}: {lost:?}"
    );
    Ok(())
}
