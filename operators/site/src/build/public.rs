//! What the site's visitors reach: the Ingress for exactly its hostnames, the
//! Certificate of those names, and, while the site is offline, the Service of
//! the maintenance page the Ingress sends them to.

use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::api::networking::v1::{
    HTTPIngressPath, HTTPIngressRuleValue, Ingress, IngressBackend, IngressRule,
    IngressServiceBackend, IngressSpec, IngressTLS, ServiceBackendPort,
};
use kube::ResourceExt;
use mutu_api::certificate::{CertificateSpec, IssuerKind, IssuerRef};
use mutu_api::{Certificate, PloneSite};
use mutu_model::names;

use super::Plan;
use super::pod::meta;

/// The maintenance page server, as a Service of the site's namespace.
pub(super) fn offline_service(site: &PloneSite, plan: &Plan) -> Service {
    let (host, port) = &plan.maintenance_backend;
    Service {
        metadata: meta(
            site,
            &names::offline_service(&site.name_any()),
            "offline",
            true,
        ),
        spec: Some(ServiceSpec {
            type_: Some("ExternalName".to_string()),
            external_name: Some(host.clone()),
            ports: Some(vec![ServicePort {
                name: Some("http".to_string()),
                port: *port,
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Where the Ingress sends visitors: the instances' Service, or, offline, the
/// maintenance page (503 with Retry-After), not an error.
fn backend(site: &PloneSite, plan: &Plan) -> IngressBackend {
    let name = site.name_any();
    let service = if plan.offline {
        IngressServiceBackend {
            name: names::offline_service(&name),
            port: Some(ServiceBackendPort {
                number: Some(plan.maintenance_backend.1),
                ..Default::default()
            }),
        }
    } else {
        IngressServiceBackend {
            name,
            port: Some(ServiceBackendPort {
                name: Some("http".to_string()),
                ..Default::default()
            }),
        }
    };
    IngressBackend {
        service: Some(service),
        ..Default::default()
    }
}

/// The site's Ingress: each hostname to the backend, with TLS from the site's certificate.
pub(super) fn ingress(site: &PloneSite, plan: &Plan) -> Ingress {
    let backend = backend(site, plan);
    let rules = site
        .spec
        .hostnames
        .iter()
        .map(|host| IngressRule {
            host: Some(host.clone()),
            http: Some(HTTPIngressRuleValue {
                paths: vec![HTTPIngressPath {
                    path: Some("/".to_string()),
                    path_type: "Prefix".to_string(),
                    backend: backend.clone(),
                }],
            }),
        })
        .collect();
    Ingress {
        metadata: meta(site, &site.name_any(), "ingress", true),
        spec: Some(IngressSpec {
            ingress_class_name: Some(plan.ingress_class.clone()),
            tls: Some(vec![IngressTLS {
                hosts: Some(site.spec.hostnames.clone()),
                secret_name: Some(names::tls_secret(&site.name_any())),
            }]),
            rules: Some(rules),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The certificate of the site's hostnames, from the plan's issuer. Not owned:
/// with deletionPolicy Retain the certificate (and its key) outlive the site;
/// only Delete removes them, through the finalizer.
pub(super) fn certificate(site: &PloneSite, plan: &Plan) -> Certificate {
    let secret = names::tls_secret(&site.name_any());
    Certificate {
        metadata: meta(site, &secret, "certificate", false),
        spec: CertificateSpec {
            dns_names: site.spec.hostnames.clone(),
            secret_name: secret,
            issuer_ref: IssuerRef {
                name: plan.issuer.clone(),
                kind: IssuerKind::CertificateIssuer,
            },
            duration: None,
            renew_before: None,
            private_key: None,
        },
        status: None,
    }
}
