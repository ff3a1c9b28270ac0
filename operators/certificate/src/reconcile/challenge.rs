//! The HTTP-01 challenges of a certificate's ACME order: the tokens the
//! operator answers and the Ingress that routes the ACME server to it.

use std::time::Instant;

use k8s_openapi::api::networking::v1::Ingress;
use kube::ResourceExt;
use kube::runtime::reflector::ObjectRef;

use super::Target;
use super::context::{Ctx, Error};
use crate::acme::Token;
use crate::solver;

/// Answers the order's challenges and routes the ACME server for
/// `hostnames` to the operator through the challenge Ingress; returns when
/// they were first published in this process.
pub(super) async fn publish_challenges(
    t: &Target<'_>,
    tokens: Vec<Token>,
    hostnames: &[String],
    ingress_class: Option<&str>,
) -> Result<Instant, Error> {
    let ctx = t.ctx;
    ctx.data.tokens.set(&t.key, tokens);
    let ingress = solver::ingress(
        &ctx.data.config.route,
        &t.ns,
        &t.name,
        &t.cert.uid().unwrap_or_default(),
        hostnames,
        ingress_class,
    );
    ctx.applier.apply(&ctx.data.ingresses, ingress).await?;
    let since = *ctx
        .data
        .presented
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .entry(t.key.clone())
        .or_insert_with(Instant::now);
    Ok(since)
}

/// Stops answering the certificate's challenges and removes its challenge Ingress.
pub(super) async fn cleanup_challenge(
    ctx: &Ctx,
    ns: &str,
    name: &str,
    key: &str,
) -> Result<(), Error> {
    ctx.data.tokens.clear(key);
    ctx.data
        .presented
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(key);
    let route_ns = &ctx.data.config.route.namespace;
    let ingress = solver::ingress_name(ns, name);
    if ctx
        .data
        .ingresses
        .get(&ObjectRef::new(&ingress).within(route_ns))
        .is_some()
    {
        ctx.applier
            .delete::<Ingress>(Some(route_ns), &ingress)
            .await?;
    }
    Ok(())
}
