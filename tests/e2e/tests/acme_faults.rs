//! The ACME server refusing part of the requests while a batch of certificates is issued (it
//! runs beside the other end-to-end tests: it counts only the orders of its own issuer, and it
//! mostly waits for the retries).
//!
//! Pebble cannot refuse on purpose, so a real nginx (Debian's, which `tests/setup.sh`
//! installs) stands in front of it: it terminates TLS with a certificate the test makes (the
//! issuer's `caBundle` trusts only that), passes everything to Pebble with the client's Host
//! (Pebble builds its URLs from it and checks each JWS `url` against it), and answers, for a
//! fixed share of the POSTs to new-order, finalize and the challenges (`split_clients` on
//! `$request_id`: about 28 %, over some 110 such POSTs), an ACME problem of its own instead:
//! 429 `rateLimited` with `Retry-After: 2`, 500 or 503 `serverInternal`. Its refusals carry no
//! `Replay-Nonce` (the client fetches a fresh one from newNonce) and never reach Pebble, so no
//! order is ever placed for a refused request.
//!
//! Every certificate must be issued and verify, none may go into the long backoff
//! (`--certificate-retry-base`, an hour), the operator must place exactly one order per
//! certificate, and a request refused with 429 must not be sent again before its
//! `Retry-After`. nginx's access log (with `$msec` and the request body, which names the
//! identifiers of a new order) tells what it refused and when each refused request came back.
//! Pebble's own refusal of a share of the nonces (`badNonce`, 400, 5 % of the POSTs) stays on:
//! some must come, and be absorbed like the rest.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use mutu_api::{Certificate, CertificateIssuer};
use mutu_e2e::certs::{
    certificate_json, condition, create_certificate, openssl, pebble_root, scratch, secret_pems,
    verify,
};
use mutu_e2e::operator_metrics;
use mutu_runtime::metrics::sum_samples;
use mutu_runtime::testing::{self, unique_name};
use serde_json::json;

/// Certificates issued at once.
const CERTS: usize = 30;
/// How long the whole batch may take.
const TIMEOUT: Duration = Duration::from_secs(90);
/// The `Retry-After` of the injected 429s, in seconds.
const RETRY_AFTER: u64 = 2;
/// Slack on `Retry-After` for the time between nginx answering and logging.
const SLACK: f64 = 0.05;
/// The share of the POSTs to new-order, finalize and the challenges that nginx refuses:
/// 429 rateLimited, 500 serverInternal, 503 serverInternal.
const SHARES: [(&str, u32); 3] = [("rate", 12), ("internal", 8), ("unavailable", 8)];

/// The problem documents nginx answers with: (upstream name, status, type, extra header).
fn faults() -> [(&'static str, u16, &'static str, Option<String>); 3] {
    [
        (
            "rate",
            429,
            "rateLimited",
            Some(format!("Retry-After {RETRY_AFTER}")),
        ),
        ("internal", 500, "serverInternal", None),
        ("unavailable", 503, "serverInternal", None),
    ]
}

/// nginx as the fault injector, a child process of the test, killed when dropped.
struct Injector {
    child: Child,
    dir: PathBuf,
    port: u16,
    ca_pem: String,
}

impl Drop for Injector {
    fn drop(&mut self) {
        // `master_process off`: one process, no worker left behind.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Injector {
    fn directory_url(&self) -> String {
        format!("https://127.0.0.1:{}/dir", self.port)
    }

    fn access_log(&self) -> PathBuf {
        self.dir.join("access.log")
    }

    /// Starts nginx on a free loopback port in front of Pebble on `pebble_port`, with a
    /// certificate for 127.0.0.1 of a CA made here; a port taken meanwhile is replaced.
    fn start(dir: &Path, pebble_port: u16) -> anyhow::Result<Self> {
        let bin = nginx_bin()?;
        let ca_pem = make_certificates(dir)?;
        let mut last = String::new();
        for _ in 0..3 {
            let port = free_port()?;
            let conf = dir.join("nginx.conf");
            std::fs::write(&conf, config(dir, port, pebble_port))?;
            let error_log = dir.join("error.log");
            let _ = std::fs::remove_file(&error_log);
            let child = Command::new(&bin)
                .arg("-p")
                .arg(dir)
                .arg("-c")
                .arg(&conf)
                .arg("-e")
                .arg(&error_log)
                .args(["-g", "daemon off;"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(dir.join("nginx.stderr"))?)
                .spawn()?;
            let mut injector = Injector {
                child,
                dir: dir.to_path_buf(),
                port,
                ca_pem: ca_pem.clone(),
            };
            match injector.wait_serving()? {
                None => return Ok(injector),
                Some(why) => last = why,
            }
        }
        anyhow::bail!("nginx did not start: {last}")
    }

    /// Waits until Pebble's directory answers through nginx, naming nginx's own address;
    /// `Some(why)` when nginx exited (e.g. its port was taken meanwhile).
    fn wait_serving(&mut self) -> anyhow::Result<Option<String>> {
        let ca = self.dir.join("ca.pem");
        let url = self.directory_url();
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(status) = self.child.try_wait()? {
                let log = std::fs::read_to_string(self.dir.join("error.log")).unwrap_or_default();
                let err =
                    std::fs::read_to_string(self.dir.join("nginx.stderr")).unwrap_or_default();
                return Ok(Some(format!("nginx exited ({status}): {log}{err}")));
            }
            let out = Command::new("curl")
                .args(["-fsS", "--max-time", "2", "--cacert"])
                .arg(&ca)
                .arg(&url)
                .output()?;
            let body = String::from_utf8_lossy(&out.stdout);
            let own = format!("https://127.0.0.1:{}/order-plz", self.port);
            if out.status.success() {
                anyhow::ensure!(
                    body.contains(&own),
                    "Pebble's directory through nginx does not name nginx's address ({own}): {body}"
                );
                return Ok(None);
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "nginx does not serve {url}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// nginx: on PATH, else where Debian puts it.
fn nginx_bin() -> anyhow::Result<PathBuf> {
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .map(|d| d.join("nginx"))
        .find(|p| p.is_file());
    on_path
        .or_else(|| Some(PathBuf::from("/usr/sbin/nginx")).filter(|p| p.is_file()))
        .ok_or_else(|| {
            anyhow::anyhow!("nginx is not installed: tests/setup.sh installs Debian's nginx-light")
        })
}

/// A loopback port free at the time of asking.
fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// A CA and nginx's certificate for 127.0.0.1 signed by it, in `dir`; the CA's PEM.
fn make_certificates(dir: &Path) -> anyhow::Result<String> {
    let p = |f: &str| dir.join(f).display().to_string();
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut ca = vec![
        "req",
        "-x509",
        "-days",
        "1",
        "-subj",
        "/CN=mutu e2e acme faults CA",
    ];
    ca.extend(ec);
    let (ca_key, ca_pem) = (p("ca.key"), p("ca.pem"));
    ca.extend(["-keyout", &ca_key, "-out", &ca_pem]);
    ca.extend(["-addext", "basicConstraints=critical,CA:TRUE"]);
    ca.extend(["-addext", "keyUsage=critical,keyCertSign,cRLSign"]);
    openssl(&ca)?;
    let (key, csr, crt, ext) = (
        p("server.key"),
        p("server.csr"),
        p("server.pem"),
        p("server.ext"),
    );
    let mut req = vec![
        "req",
        "-new",
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        &key,
        "-out",
        &csr,
    ];
    req.extend(ec);
    openssl(&req)?;
    std::fs::write(
        &ext,
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=critical,CA:FALSE\n\
         keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
    )?;
    let serial = format!("{}", fastrand::u32(1..u32::MAX));
    openssl(&[
        "x509",
        "-req",
        "-in",
        &csr,
        "-CA",
        &ca_pem,
        "-CAkey",
        &ca_key,
        "-set_serial",
        &serial,
        "-days",
        "1",
        "-extfile",
        &ext,
        "-out",
        &crt,
    ])?;
    Ok(std::fs::read_to_string(&ca_pem)?)
}

/// nginx's configuration: TLS on 127.0.0.1:`port`, everything passed to Pebble on
/// `pebble_port` with the client's Host, except the share of [`SHARES`] of the POSTs to
/// new-order, finalize and the challenges, sent to servers of its own (on Unix sockets) that
/// answer a problem document. The access log, one JSON object a line, has the time each
/// request ended (`$msec`), its duration, where it went and its body.
fn config(dir: &Path, port: u16, pebble_port: u16) -> String {
    let d = dir.display();
    let shares: String = SHARES
        .iter()
        .map(|(name, pct)| format!("        {pct}% {name};\n"))
        .collect();
    let mut routes = String::new();
    let mut upstreams = String::new();
    let mut servers = String::new();
    for (name, status, kind, header) in faults() {
        routes.push_str(&format!(
            "        \"~^POST /(order-plz|finalize-order/[^ ]+|chalZ/[^ ]+) {name}$\" http://fault_{name};\n"
        ));
        upstreams.push_str(&format!(
            "    upstream fault_{name} {{ server unix:{d}/{name}.sock; }}\n"
        ));
        let header = header
            .map(|h| format!("            add_header {h} always;\n"))
            .unwrap_or_default();
        servers.push_str(&format!(
            r#"    server {{
        listen unix:{d}/{name}.sock;
        access_log off;
        default_type application/problem+json;
        location / {{
{header}            return {status} '{{"type":"urn:ietf:params:acme:error:{kind}","detail":"refused by the fault injector of the test ({status})","status":{status}}}';
        }}
    }}
"#
        ));
    }
    format!(
        r#"master_process off;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 512; }}
http {{
    log_format faults escape=json '{{"t":$msec,"rt":$request_time,"m":"$request_method","u":"$uri","s":$status,"to":"$target","b":"$request_body"}}';
    access_log {d}/access.log faults;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    # The bodies stay in memory, so that the log has them.
    client_body_buffer_size 64k;
    split_clients "${{request_id}}" $roll {{
{shares}        * pass;
    }}
    map "$request_method $uri $roll" $target {{
        default https://pebble;
{routes}    }}
    upstream pebble {{ server 127.0.0.1:{pebble_port}; }}
{upstreams}
    server {{
        listen 127.0.0.1:{port} ssl;
        ssl_certificate {d}/server.pem;
        ssl_certificate_key {d}/server.key;
        location / {{
            proxy_pass $target;
            proxy_set_header Host $http_host;
        }}
    }}
{servers}}}
"#
    )
}

/// One line of nginx's access log.
#[derive(Clone, Debug)]
struct Entry {
    /// When the answer was sent (Unix time, s).
    end: f64,
    /// When the request came.
    start: f64,
    method: String,
    status: u64,
    /// Answered by the injector rather than Pebble.
    injected: bool,
    /// new-order, finalize, challenge, or the path for anything else.
    kind: String,
    /// What makes a retry the same request: the names of a new order, the URL otherwise.
    identity: String,
}

/// The log's entries, oldest request first.
fn read_log(path: &Path) -> anyhow::Result<Vec<Entry>> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut entries = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value = serde_json::from_str(line)
            .map_err(|e| anyhow::anyhow!("nginx access log line {line:?}: {e}"))?;
        let end = v["t"].as_f64().unwrap_or_default();
        let uri = v["u"].as_str().unwrap_or_default().to_string();
        let kind = if uri == "/order-plz" {
            "new-order"
        } else if uri.starts_with("/finalize-order/") {
            "finalize"
        } else if uri.starts_with("/chalZ/") {
            "challenge"
        } else {
            "other"
        };
        let identity = if kind == "new-order" {
            format!(
                "new order for {}",
                order_names(v["b"].as_str().unwrap_or_default())
            )
        } else {
            uri.clone()
        };
        entries.push(Entry {
            end,
            start: end - v["rt"].as_f64().unwrap_or_default(),
            method: v["m"].as_str().unwrap_or_default().to_string(),
            status: v["s"].as_u64().unwrap_or_default(),
            injected: v["to"]
                .as_str()
                .unwrap_or_default()
                .starts_with("http://fault_"),
            kind: kind.to_string(),
            identity,
        });
    }
    entries.sort_by(|a, b| a.start.total_cmp(&b.start));
    Ok(entries)
}

/// The identifiers of a new-order request, from its JWS body (its payload, base64url).
fn order_names(jws: &str) -> String {
    let payload = serde_json::from_str::<serde_json::Value>(jws)
        .ok()
        .and_then(|v| v["payload"].as_str().map(str::to_string))
        .unwrap_or_default();
    let decoded = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok());
    match decoded {
        Some(order) => order["identifiers"]
            .as_array()
            .map(|ids| {
                ids.iter()
                    .filter_map(|i| i["value"].as_str())
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .unwrap_or_default(),
        // Unreadable: the body itself, so that two different ones never match.
        None => jws.to_string(),
    }
}

/// What nginx saw: requests, refusals by status and kind, and orders Pebble created.
#[derive(Debug, Default)]
struct Counts {
    requests: usize,
    /// POSTs to new-order, finalize and the challenges (the ones that may be refused).
    candidates: usize,
    /// (status, kind) -> refusals injected.
    injected: BTreeMap<(u64, String), usize>,
    /// New orders Pebble created (201 from Pebble).
    orders_created: usize,
    /// POSTs Pebble itself refused with 400: its `badNonce`, sent on purpose to a share (5 %)
    /// of the requests, which a client must retry with the nonce the answer carries.
    bad_nonces: usize,
}

impl Counts {
    fn of(entries: &[Entry]) -> Self {
        let mut c = Counts {
            requests: entries.len(),
            ..Default::default()
        };
        for e in entries {
            if e.method == "POST" && e.kind != "other" {
                c.candidates += 1;
            }
            if e.injected {
                *c.injected.entry((e.status, e.kind.clone())).or_default() += 1;
            } else if e.kind == "new-order" && e.status == 201 {
                c.orders_created += 1;
            } else if e.method == "POST" && e.status == 400 {
                c.bad_nonces += 1;
            }
        }
        c
    }

    fn with_status(&self, pick: impl Fn(u64) -> bool) -> usize {
        self.injected
            .iter()
            .filter(|((s, _), _)| pick(*s))
            .map(|(_, n)| n)
            .sum()
    }
}

impl std::fmt::Display for Counts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "nginx: {} requests, {} POSTs to new-order/finalize/challenges, refused: {} x 429, {} x 5xx",
            self.requests,
            self.candidates,
            self.with_status(|s| s == 429),
            self.with_status(|s| s >= 500),
        )?;
        for ((status, kind), n) in &self.injected {
            write!(f, "; {status} {kind}: {n}")?;
        }
        write!(
            f,
            "; orders created by Pebble: {}; refused by Pebble with 400 (badNonce): {}",
            self.orders_created, self.bad_nonces
        )
    }
}

/// For each injected 429, the first time the same request came again (seconds after the
/// refusal, from the start of the retry): (what, when refused, gap); `None` when it never did.
fn retries_after_429(entries: &[Entry]) -> Vec<(String, f64, Option<f64>)> {
    entries
        .iter()
        .enumerate()
        .filter(|(_, e)| e.injected && e.status == 429)
        .map(|(i, refused)| {
            let next = entries[i + 1..]
                .iter()
                .find(|e| e.method == "POST" && e.identity == refused.identity)
                .map(|e| e.start - refused.end);
            (
                format!("{} {}", refused.kind, refused.identity),
                refused.end,
                next,
            )
        })
        .collect()
}

/// A certificate that went into the long backoff (or recorded a failure), with why.
fn backed_off(c: &Certificate) -> Option<String> {
    let s = c.status.as_ref()?;
    let issuing = condition(c, "Issuing");
    let backoff = issuing.as_ref().is_some_and(|(_, r, _)| r == "Backoff");
    (backoff || s.failed_attempts.unwrap_or(0) > 0 || s.last_failure_time.is_some()).then(|| {
        format!(
            "{}: failedAttempts {:?}, lastFailureTime {:?}, lastFailureMessage {:?}, Issuing {:?}",
            c.metadata.name.as_deref().unwrap_or_default(),
            s.failed_attempts,
            s.last_failure_time.as_ref().map(|t| t.0.to_string()),
            s.last_failure_message,
            issuing
        )
    })
}

fn is_ready(c: &Certificate) -> bool {
    condition(c, "Ready").is_some_and(|(s, _, _)| s == "True")
}

#[tokio::test]
async fn acme_refusals_429_and_5xx_during_a_batch_issue_everything_without_backoff()
-> anyhow::Result<()> {
    let client = testing::client().await?;
    let issuers = Api::<CertificateIssuer>::all(client.clone());
    let dev = issuers.get("dev-acme").await?;
    let dev_acme = dev
        .spec
        .acme
        .ok_or_else(|| anyhow::anyhow!("dev-acme is not an ACME issuer"))?;
    let pebble_port: u16 = dev_acme
        .server
        .strip_prefix("https://127.0.0.1:")
        .and_then(|r| r.split('/').next())
        .and_then(|p| p.parse().ok())
        .ok_or_else(|| {
            anyhow::anyhow!(
                "dev-acme's server is not a local Pebble: {}",
                dev_acme.server
            )
        })?;

    let dir = scratch("acme-faults")?;
    let nginx = Injector::start(&dir, pebble_port)?;
    println!(
        "nginx in front of Pebble at {} (its files in {})",
        nginx.directory_url(),
        dir.display()
    );

    // An issuer of its own, through nginx, trusting only nginx's CA.
    let issuer = unique_name("acme-faults");
    let mut acme = serde_json::to_value(&dev_acme)?;
    acme["server"] = json!(nginx.directory_url());
    acme["caBundle"] = json!(nginx.ca_pem);
    acme["accountKeySecretRef"] = json!({"name": format!("{issuer}-account")});
    let issuer_obj: CertificateIssuer = serde_json::from_value(json!({
        "apiVersion": mutu_api::API_VERSION, "kind": "CertificateIssuer",
        "metadata": {"name": issuer}, "spec": {"acme": acme},
    }))?;
    issuers.create(&PostParams::default(), &issuer_obj).await?;
    let ns = testing::namespace(&client, "acme-faults").await?;

    let result = batch(&client, &ns, &issuer, &nginx).await;

    drop(nginx);
    let _ = issuers.delete(&issuer, &DeleteParams::default()).await;
    let _ = Api::<k8s_openapi::api::core::v1::Namespace>::all(client.clone())
        .delete(&ns, &DeleteParams::default())
        .await;
    if result.is_ok() {
        let _ = std::fs::remove_dir_all(&dir);
    } else {
        println!(
            "nginx's configuration and logs are kept in {}",
            dir.display()
        );
    }
    result
}

/// The batch through the injector, and every check; every broken promise is reported
/// together, with nginx's counts.
async fn batch(
    client: &kube::Client,
    ns: &str,
    issuer: &str,
    nginx: &Injector,
) -> anyhow::Result<()> {
    let domain = format!("{}.example.be", unique_name("faults"));
    let started = Instant::now();
    for i in 0..CERTS {
        let want = vec![format!("c{i:02}.{domain}")];
        create_certificate(
            client,
            certificate_json(ns, &format!("c{i:02}"), &want, issuer),
        )
        .await?;
    }
    let api: Api<Certificate> = Api::namespaced(client.clone(), ns);
    let deadline = started + TIMEOUT;
    // Until every certificate is Ready, or in the long backoff (which lasts an hour).
    let (all, backed) = loop {
        let list = api.list(&ListParams::default()).await?.items;
        let ready = list.iter().filter(|c| is_ready(c)).count();
        let backed: Vec<String> = list
            .iter()
            .filter(|c| !is_ready(c))
            .filter_map(backed_off)
            .collect();
        if ready + backed.len() == CERTS {
            break (list, backed);
        }
        if Instant::now() >= deadline {
            let waiting: Vec<String> = list
                .iter()
                .filter(|c| !is_ready(c))
                .map(|c| {
                    format!(
                        "{}: Issuing {:?}",
                        c.metadata.name.as_deref().unwrap_or_default(),
                        condition(c, "Issuing")
                    )
                })
                .collect();
            anyhow::bail!(
                "{ready}/{CERTS} certificates Ready after {TIMEOUT:?}; the others:\n{}\n{}",
                waiting.join("\n"),
                Counts::of(&read_log(&nginx.access_log())?)
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let took = started.elapsed();
    let issued: Vec<&Certificate> = all.iter().filter(|c| is_ready(c)).collect();

    let entries = read_log(&nginx.access_log())?;
    let counts = Counts::of(&entries);
    println!(
        "{} of {CERTS} certificates issued in {took:.1?}; {counts}",
        issued.len()
    );
    let mut problems = Vec::new();

    // nginx really refused, both ways; else this test proved nothing.
    let (limited, failed) = (
        counts.with_status(|s| s == 429),
        counts.with_status(|s| s >= 500),
    );
    if limited == 0 {
        problems.push("nginx injected no 429".to_string());
    }
    if failed == 0 {
        problems.push("nginx injected no 5xx".to_string());
    }
    // Pebble's own bad nonces (5 % of the POSTs) came too: absorbed like the rest.
    if counts.bad_nonces == 0 {
        problems.push("Pebble refused no nonce (is its nonce rejection off?)".to_string());
    }

    // None went into the long backoff: a 429 waits for its Retry-After, a 5xx is tried again
    // in seconds.
    if !backed.is_empty() {
        problems.push(format!(
            "{} certificate(s) went into the long backoff after the injected refusals \
             (a 429 must wait for its Retry-After, a 5xx be tried again in seconds):\n{}",
            backed.len(),
            backed.join("\n")
        ));
    }

    // Every certificate issued verifies up to Pebble's root with exactly its name, recorded
    // no failure, and has one order.
    let root = pebble_root(client).await?;
    for c in &issued {
        let name = c.metadata.name.as_deref().unwrap_or_default();
        let (crt, key, _) = secret_pems(client, ns, &c.spec.secret_name).await?;
        if let Err(e) = verify(&crt, &key, &root, &c.spec.dns_names) {
            problems.push(format!("{name}: {e}"));
        }
        if let Some(why) = backed_off(c) {
            problems.push(format!("issued after a recorded failure: {why}"));
        }
        let s = c.status.clone().unwrap_or_default();
        if s.recent_orders.len() != 1 || s.order.is_some() {
            problems.push(format!(
                "{name}: orders {:?}, in progress {:?}; one order, completed, expected",
                s.recent_orders, s.order
            ));
        }
    }

    // One order per certificate that got one: a refused new order never reached Pebble, so no
    // retry explains a second order.
    let metrics = operator_metrics().await?;
    let of_issuer = format!("issuer=\"{issuer}\"");
    let placed = sum_samples(&metrics, "mutu_acme_orders_total", &of_issuer);
    let issuance = |result: &str| {
        sum_samples(
            &metrics,
            "mutu_certificate_issuances_total",
            &format!("{of_issuer},type=\"ACME\",result=\"{result}\""),
        )
    };
    println!(
        "operator: {placed} orders placed, {} issued, {} failed",
        issuance("issued"),
        issuance("failed")
    );
    let ordered = CERTS - backed.len();
    if placed != ordered as u64 || counts.orders_created != ordered {
        problems.push(format!(
            "{placed} orders placed by the operator (mutu_acme_orders_total), {} created by \
             Pebble, for {ordered} certificates that got one",
            counts.orders_created
        ));
    }
    if issuance("issued") != issued.len() as u64 {
        problems.push(format!(
            "{} issuances counted for {} certificates issued",
            issuance("issued"),
            issued.len()
        ));
    }

    // Retry-After honoured: a refused request comes again no sooner than it says.
    let retries = retries_after_429(&entries);
    let early: Vec<String> = retries
        .iter()
        .filter_map(|(what, at, gap)| {
            gap.filter(|g| *g < RETRY_AFTER as f64 - SLACK)
                .map(|g| format!("{what} refused at {at:.3}, sent again {g:.3} s later"))
        })
        .collect();
    let gaps: Vec<f64> = retries.iter().filter_map(|(_, _, g)| *g).collect();
    let min = gaps.iter().copied().fold(f64::INFINITY, f64::min);
    println!(
        "429s: {} of {} sent again, the soonest {min:.3} s after its refusal (Retry-After: {RETRY_AFTER})",
        gaps.len(),
        retries.len()
    );
    if !early.is_empty() {
        problems.push(format!(
            "{} request(s) sent again before their Retry-After of {RETRY_AFTER} s:\n{}",
            early.len(),
            early.join("\n")
        ));
    }

    anyhow::ensure!(problems.is_empty(), "{}\n{counts}", problems.join("\n"));
    mutu_e2e::fault_scenario_passed(
        "ACME server answering 429 rateLimited with Retry-After to a share of a batch's requests: Retry-After honoured, no backoff, one order each",
    );
    mutu_e2e::fault_scenario_passed(
        "ACME server answering 5xx serverInternal to a share of a batch's requests: tried again in seconds, all issued, one order each",
    );
    mutu_e2e::fault_scenario_passed(
        "ACME server refusing a share of nonces (badNonce) during a batch: retried, no backoff, one order each",
    );
    Ok(())
}
