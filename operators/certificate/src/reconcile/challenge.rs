//! The HTTP-01 challenges of a certificate's ACME order: the tokens the
//! operator answers and the Ingress that routes the ACME server to it.

use k8s_openapi::api::networking::v1::Ingress;
use kube::runtime::reflector::ObjectRef;

use super::context::{Ctx, Error};
use crate::solver;

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
