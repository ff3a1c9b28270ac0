//! `kubectl mutu certificate status|renew NS/NAME`: a mutu Certificate
//! (certificates.hosting.imio.be, not cert-manager's) on one screen, and a
//! renewal now, as cert-manager's `cmctl renew`: the annotation
//! `hosting.imio.be/renew-requested` with the time of the request, which the
//! certificate operator honours once (it records it in the Certificate's
//! status, condition `RenewalRequested`). NAME may also be a PloneSite: its
//! Certificate is meant.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::time::Duration;

use anyhow::bail;
use clap::{Args, Subcommand};
use jiff::Timestamp;
use k8s_openapi::api::core::v1::Event;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::{Client, ResourceExt};
use mutu_api::{Certificate, PloneSite};
use mutu_certificate::{RENEW_REQUESTED_ANNOTATION, RENEWAL_REQUESTED, RenewRequest};
use serde::Serialize;
use serde_json::json;

use super::site::Output;
use super::{
    ConditionLine, EventLine, KubeArgs, Progress, condition, conditions_table, events_table,
    list_all, parse_timeout, poll, relative,
};

#[derive(Args)]
pub struct CertificateArgs {
    #[command(flatten)]
    kube: KubeArgs,
    #[command(subcommand)]
    command: CertificateCommand,
}

#[derive(Subcommand)]
enum CertificateCommand {
    /// A mutu Certificate (certificates.hosting.imio.be) on one screen: names, issuer,
    /// validity, renewal time, conditions, failures, a renewal asked for, recent Events.
    Status {
        /// The mutu Certificate as NS/NAME (or NAME with -n); a PloneSite's name means
        /// its Certificate.
        certificate: String,
        /// `text` for a person, `json` for a machine.
        #[arg(long, short, value_enum, default_value = "text")]
        output: Output,
    },
    /// Renew a mutu Certificate now, before its renewal time (as cert-manager's `cmctl
    /// renew`), and wait for the new certificate.
    Renew {
        /// The mutu Certificate as NS/NAME (or NAME with -n); a PloneSite's name means
        /// its Certificate.
        certificate: String,
        /// Ask for the renewal and return at once.
        #[arg(long)]
        no_wait: bool,
        /// How long to wait for the new certificate.
        #[arg(long, value_parser = parse_timeout, default_value = "10m")]
        timeout: Duration,
    },
}

pub async fn run(args: CertificateArgs) -> anyhow::Result<()> {
    let kube = args.kube.connect().await?;
    match args.command {
        CertificateCommand::Status {
            certificate,
            output,
        } => {
            let (ns, name) = kube.target(&certificate, "mutu Certificate")?;
            let cert = find(&kube.client, &ns, &name).await?;
            let names = BTreeSet::from([cert.name_any()]);
            let events = super::events_of(&kube.client, &ns, &names, 10).await?;
            let view = view(&cert, &events, Timestamp::now());
            match output {
                Output::Json => println!("{}", serde_json::to_string_pretty(&view)?),
                Output::Text => print!("{}", render(&view)),
            }
        }
        CertificateCommand::Renew {
            certificate,
            no_wait,
            timeout,
        } => {
            let (ns, name) = kube.target(&certificate, "mutu Certificate")?;
            let cert = find(&kube.client, &ns, &name).await?;
            renew(&kube.client, cert, no_wait, timeout).await?;
        }
    }
    Ok(())
}

/// The mutu Certificate `ns/name`, or the Certificate of the PloneSite `ns/name`.
async fn find(client: &Client, ns: &str, name: &str) -> anyhow::Result<Certificate> {
    let api: Api<Certificate> = Api::namespaced(client.clone(), ns);
    if let Some(cert) = api.get_opt(name).await? {
        return Ok(cert);
    }
    let sites: Api<PloneSite> = Api::namespaced(client.clone(), ns);
    if sites.get_opt(name).await?.is_some() {
        let of_site = list_all(
            api,
            ListParams::default().labels(&format!("{}={name}", mutu_api::common::SITE_LABEL)),
            "certificates.hosting.imio.be",
        )
        .await?;
        return match of_site.into_iter().next() {
            Some(cert) => Ok(cert),
            None => bail!(
                "PloneSite {ns}/{name} has no mutu Certificate yet (kubectl mutu site status {ns}/{name})"
            ),
        };
    }
    bail!(
        "no mutu Certificate (certificates.hosting.imio.be) nor PloneSite {ns}/{name} (kubectl get certificates.hosting.imio.be -n {ns})"
    )
}

/// Asks for a renewal of `cert` now and, unless `no_wait`, waits for the new
/// certificate; an issuance that fails or cannot start is an error.
async fn renew(
    client: &Client,
    cert: Certificate,
    no_wait: bool,
    timeout: Duration,
) -> anyhow::Result<()> {
    let ns = cert.namespace().unwrap_or_default();
    let name = cert.name_any();
    let value = Timestamp::now().to_string();
    let api: Api<Certificate> = Api::namespaced(client.clone(), &ns);
    let patch = json!({"metadata": {"annotations": {RENEW_REQUESTED_ANNOTATION: value}}});
    api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map_err(|e| {
            anyhow::anyhow!("cannot ask for the renewal of mutu Certificate {ns}/{name}: {e}")
        })?;
    println!(
        "renewal of mutu Certificate {ns}/{name} asked for ({RENEW_REQUESTED_ANNOTATION}={value})"
    );
    if no_wait {
        println!("follow it with: kubectl mutu certificate status {ns}/{name}");
        return Ok(());
    }
    let progress = Progress::default();
    let waiting = format!(
        "no new certificate for mutu Certificate {ns}/{name}; is mutu's certificate operator running, and recent enough to know {RENEW_REQUESTED_ANNOTATION}? (kubectl mutu certificate status {ns}/{name})"
    );
    let done = poll(timeout, Duration::from_secs(1), &waiting, || {
        let (api, name, value, ns, progress) = (api.clone(), &name, &value, &ns, &progress);
        async move {
            let cert = api.get(name).await?;
            let outcome = renewal_outcome(&cert, value);
            if let Some(line) = &outcome.progress {
                progress.show(line.clone());
            }
            match outcome.end {
                Some(Ok(msg)) => Ok(Some(msg)),
                Some(Err(msg)) => bail!("the renewal of mutu Certificate {ns}/{name}: {msg}"),
                None => Ok(None),
            }
        }
    })
    .await?;
    println!("renewed: {done}");
    Ok(())
}

/// Where a renewal asked for with `value` stands.
#[derive(Debug, PartialEq)]
pub struct Outcome {
    /// A line saying what happens now.
    pub progress: Option<String>,
    /// `Ok(message)` once renewed, `Err(why)` when it failed or cannot be done.
    pub end: Option<Result<String, String>>,
}

/// Where the renewal asked for with `value` stands on `cert`.
pub fn renewal_outcome(cert: &Certificate, value: &str) -> Outcome {
    let status = cert.status.clone().unwrap_or_default();
    let seen = match mutu_certificate::renew_request(cert.annotations(), &status.conditions) {
        RenewRequest::Done(v) if v == value => {
            let msg = condition(&status.conditions, RENEWAL_REQUESTED)
                .map(|c| c.message.clone())
                .unwrap_or_default();
            return Outcome {
                progress: None,
                end: Some(Ok(msg)),
            };
        }
        // Someone asked again meanwhile: that request replaces this one.
        RenewRequest::Done(v) | RenewRequest::Pending(v) if v != value => {
            return Outcome {
                progress: None,
                end: Some(Err(format!(
                    "another renewal was asked for meanwhile ({RENEW_REQUESTED_ANNOTATION}={v})"
                ))),
            };
        }
        RenewRequest::None | RenewRequest::Withdrawn => {
            return Outcome {
                progress: None,
                end: Some(Err(format!(
                    "the annotation {RENEW_REQUESTED_ANNOTATION} was removed"
                ))),
            };
        }
        // Pending: the operator has seen it once it records it.
        _ => condition(&status.conditions, RENEWAL_REQUESTED)
            .is_some_and(|c| c.status == "True" && c.message.contains(value)),
    };
    if !seen {
        return Outcome {
            progress: Some("waiting for the certificate operator to see the request".into()),
            end: None,
        };
    }
    match condition(&status.conditions, "Issuing") {
        Some(c) if c.status == "True" => Outcome {
            progress: Some(format!("issuing: {} ({})", c.message, c.reason)),
            end: None,
        },
        Some(c) => Outcome {
            progress: None,
            end: Some(Err(format!(
                "{}: {}; the request stays until a certificate is issued",
                c.reason, c.message
            ))),
        },
        None => Outcome {
            progress: Some("waiting for the certificate operator".into()),
            end: None,
        },
    }
}

/// The screen's data.
#[derive(Serialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CertificateView {
    pub namespace: String,
    pub name: String,
    pub dns_names: Vec<String>,
    pub issuer: String,
    pub secret_name: String,
    pub not_before: Option<String>,
    pub not_after: Option<String>,
    pub renewal_time: Option<String>,
    pub failed_attempts: Option<i32>,
    pub last_failure: Option<String>,
    pub last_failure_time: Option<String>,
    /// The ACME order in progress.
    pub order: Option<String>,
    /// The renewal asked for (`hosting.imio.be/renew-requested`): `pending` or `done`, and
    /// its value.
    pub renewal_request: Option<(String, String)>,
    pub conditions: Vec<ConditionLine>,
    pub events: Vec<EventLine>,
    pub generated_at: String,
}

/// The screen's data of `cert` with its `events`, at `now`.
pub fn view(cert: &Certificate, events: &[Event], now: Timestamp) -> CertificateView {
    let status = cert.status.clone().unwrap_or_default();
    let t = |t: &Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>| {
        t.as_ref().map(|t| t.0.to_string())
    };
    CertificateView {
        namespace: cert.namespace().unwrap_or_default(),
        name: cert.name_any(),
        dns_names: cert.spec.dns_names.clone(),
        issuer: cert.spec.issuer_ref.name.clone(),
        secret_name: cert.spec.secret_name.clone(),
        not_before: t(&status.not_before),
        not_after: t(&status.not_after),
        renewal_time: t(&status.renewal_time),
        failed_attempts: status.failed_attempts,
        last_failure: status.last_failure_message.clone(),
        last_failure_time: t(&status.last_failure_time),
        order: status.order.as_ref().map(|o| o.url.clone()),
        renewal_request: match mutu_certificate::renew_request(
            cert.annotations(),
            &status.conditions,
        ) {
            RenewRequest::None | RenewRequest::Withdrawn => None,
            RenewRequest::Pending(v) => Some(("pending".into(), v)),
            RenewRequest::Done(v) => Some(("done".into(), v)),
        },
        conditions: status
            .conditions
            .iter()
            .map(ConditionLine::from_condition)
            .collect(),
        events: events.iter().map(EventLine::from_event).collect(),
        generated_at: now.to_string(),
    }
}

/// The screen as text.
pub fn render(v: &CertificateView) -> String {
    let now: Timestamp = v.generated_at.parse().unwrap_or(Timestamp::UNIX_EPOCH);
    let when = |t: &Option<String>| {
        t.as_deref()
            .map(|t| format!("{t} ({})", relative(now, t)))
            .unwrap_or_else(|| "-".into())
    };
    let mut out = String::new();
    let ready = v.conditions.iter().find(|c| c.type_ == "Ready");
    let _ = writeln!(
        out,
        "mutu Certificate {}/{}: {}",
        v.namespace,
        v.name,
        match ready {
            Some(c) if c.status == "True" => "Ready".to_string(),
            Some(c) => format!("not Ready ({})", c.reason),
            None => "no status yet".into(),
        }
    );
    let _ = writeln!(out, "  names        {}", v.dns_names.join(", "));
    let _ = writeln!(out, "  issuer       CertificateIssuer {}", v.issuer);
    let _ = writeln!(out, "  Secret       {}", v.secret_name);
    let _ = writeln!(out, "  valid from   {}", when(&v.not_before));
    let _ = writeln!(out, "  expires      {}", when(&v.not_after));
    let _ = writeln!(out, "  renewal at   {}", when(&v.renewal_time));
    if let Some((state, value)) = &v.renewal_request {
        let _ = writeln!(out, "  renewal asked for at {value}: {state}");
    }
    if let Some(order) = &v.order {
        let _ = writeln!(out, "  ACME order   {order}");
    }
    if let Some(n) = v.failed_attempts.filter(|n| *n > 0) {
        let _ = writeln!(
            out,
            "  failures     {n} in a row, the last {}: {}",
            when(&v.last_failure_time),
            v.last_failure.as_deref().unwrap_or("")
        );
    }
    out.push_str("\nConditions\n");
    conditions_table(&mut out, now, &v.conditions);
    out.push_str("\nRecent Events (newest last)\n");
    events_table(&mut out, now, &v.events);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert(annotation: Option<&str>, conditions: &str) -> Certificate {
        let annotations = annotation
            .map(|v| format!("  annotations: {{{RENEW_REQUESTED_ANNOTATION}: \"{v}\"}}\n"))
            .unwrap_or_default();
        let text = format!(
            "apiVersion: hosting.imio.be/v1alpha1\nkind: Certificate\nmetadata:\n  name: delib-tls\n  namespace: tenant-mons\n{annotations}spec: {{dnsNames: [deliberations.mons.be], secretName: delib-tls, issuerRef: {{name: dev-ca}}}}\nstatus:\n  notBefore: \"2026-12-07T10:00:00Z\"\n  notAfter: \"2027-03-07T10:00:00Z\"\n  renewalTime: \"2027-02-05T10:00:00Z\"\n  conditions:\n{conditions}"
        );
        serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"))
    }

    const V: &str = "2026-12-07T12:00:00Z";

    fn cond(type_: &str, status: &str, reason: &str, message: &str) -> String {
        format!(
            "  - {{type: {type_}, status: \"{status}\", reason: {reason}, message: \"{message}\", lastTransitionTime: \"2026-12-07T12:00:00Z\"}}\n"
        )
    }

    #[test]
    fn a_renewal_is_followed_until_its_certificate_or_its_failure() {
        let ready = cond("Ready", "True", "Issued", "ok");
        // Not seen yet by the operator.
        let o = renewal_outcome(&cert(Some(V), &ready), V);
        assert_eq!(o.end, None);
        assert!(o.progress.is_some_and(|p| p.contains("to see the request")));
        // Seen, being issued.
        let issuing = format!(
            "{ready}{}{}",
            cond(
                "RenewalRequested",
                "True",
                "Pending",
                &format!("renewal requested at {V}: a new certificate is being issued")
            ),
            cond(
                "Issuing",
                "True",
                "Validating",
                "waiting for the ACME server"
            )
        );
        let o = renewal_outcome(&cert(Some(V), &issuing), V);
        assert_eq!(o.end, None);
        assert_eq!(
            o.progress.as_deref(),
            Some("issuing: waiting for the ACME server (Validating)")
        );
        // Issuance failed: backing off.
        let failing = format!(
            "{ready}{}{}",
            cond(
                "RenewalRequested",
                "True",
                "Pending",
                &format!("renewal requested at {V}: a new certificate is being issued")
            ),
            cond("Issuing", "False", "Backoff", "attempt 1 failed: refused")
        );
        let o = renewal_outcome(&cert(Some(V), &failing), V);
        assert!(
            matches!(&o.end, Some(Err(m)) if m.starts_with("Backoff: attempt 1 failed")),
            "{o:?}"
        );
        // Done: the operator recorded it.
        let done = format!(
            "{ready}{}",
            cond(
                "RenewalRequested",
                "False",
                "Renewed",
                &format!("renewal requested at {V} done: a new certificate, valid from a until b")
            ),
        );
        let o = renewal_outcome(&cert(Some(V), &done), V);
        assert!(
            matches!(&o.end, Some(Ok(m)) if m.contains("valid from a until b")),
            "{o:?}"
        );
        // Another request replaced it.
        let o = renewal_outcome(&cert(Some("later"), &done), V);
        assert!(
            matches!(&o.end, Some(Err(m)) if m.contains("another renewal")),
            "{o:?}"
        );
        let o = renewal_outcome(&cert(None, &done), V);
        assert!(
            matches!(&o.end, Some(Err(m)) if m.contains("removed")),
            "{o:?}"
        );
    }

    #[test]
    fn the_screen_shows_validity_renewal_and_requests() {
        let conditions = format!(
            "{}{}",
            cond(
                "Ready",
                "True",
                "Issued",
                "the Secret holds a valid certificate"
            ),
            cond(
                "RenewalRequested",
                "False",
                "Renewed",
                &format!("renewal requested at {V} done: a new certificate")
            )
        );
        let c = cert(Some(V), &conditions);
        let now: Timestamp = "2026-12-07T12:00:00Z"
            .parse()
            .unwrap_or(Timestamp::UNIX_EPOCH);
        let v = view(&c, &[], now);
        assert_eq!(v.renewal_request, Some(("done".into(), V.into())));
        let text = render(&v);
        for expected in [
            "mutu Certificate tenant-mons/delib-tls: Ready",
            "names        deliberations.mons.be",
            "issuer       CertificateIssuer dev-ca",
            "expires      2027-03-07T10:00:00Z (in 89d)",
            "renewal at   2027-02-05T10:00:00Z (in 59d)",
            "renewal asked for at 2026-12-07T12:00:00Z: done",
            "RenewalRequested  False   Renewed",
        ] {
            assert!(text.contains(expected), "missing {expected:?} in\n{text}");
        }
    }
}
