//! One reconcile of a ProvisioningRequest: check it against its tenant, the
//! catalog and the fleet (pure, in `check`), apply the decision (create the
//! site once, never update it), then write the status, only when it changed
//! and only over the version that was read, so that a decision an approver
//! wrote meanwhile is never overwritten.

use std::collections::BTreeMap;
use std::sync::Arc;

use kube::api::{Api, PostParams};
use kube::core::DeserializeGuard;
use kube::runtime::controller::Action;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Resource, ResourceExt};
use mutu_api::common::TENANT_NAMESPACE_PREFIX;
use mutu_api::{MemberTenant, PloneSite, Product, ProductSpec, ProvisioningRequest, REQUEST_LABEL};
use mutu_runtime::{Context, Reason};

use crate::check::{self, View};

/// The caches and settings of the provisioning controller.
pub struct Caches {
    pub tenant_config: mutu_model::quota::Config,
    pub requests: Store<DeserializeGuard<ProvisioningRequest>>,
    pub tenants: Store<DeserializeGuard<MemberTenant>>,
    pub products: Store<DeserializeGuard<Product>>,
    pub sites: Store<DeserializeGuard<PloneSite>>,
}

/// Why a request reconcile failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot create the PloneSite {namespace}/{name}: {source}")]
    Create {
        namespace: String,
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("cannot read the PloneSite {namespace}/{name}: {source}")]
    Read {
        namespace: String,
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error(
        "cannot create the PloneSite {namespace}/{name}: a site of that name appeared that was not made for this request"
    )]
    Taken { namespace: String, name: String },
    #[error("cannot write the ProvisioningRequest status: {0}")]
    Status(#[source] kube::Error),
}

impl Reason for Error {
    fn reason(&self) -> &'static str {
        match self {
            Error::Read { .. } => "ReadFailed",
            Error::Create { .. } => "CreateFailed",
            Error::Taken { .. } => "SiteNameTaken",
            Error::Status(_) => "StatusFailed",
        }
    }
}

type Ctx = Context<Caches>;

impl Caches {
    async fn ready(&self) -> bool {
        mutu_runtime::controller::caches_listed(async {
            let _ = self.requests.wait_until_ready().await;
            let _ = self.tenants.wait_until_ready().await;
            let _ = self.products.wait_until_ready().await;
            let _ = self.sites.wait_until_ready().await;
        })
        .await
    }
}

fn catalog(store: &Store<DeserializeGuard<Product>>) -> BTreeMap<String, ProductSpec> {
    store
        .state()
        .iter()
        .filter_map(|p| p.0.as_ref().ok())
        .map(|p| (p.name_any(), p.spec.clone()))
        .collect()
}

pub async fn reconcile(request: Arc<ProvisioningRequest>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    if !ctx.data.ready().await {
        return Ok(mutu_runtime::controller::not_listed_yet());
    }
    if request.meta().deletion_timestamp.is_some() {
        // Nothing of the request's is deleted with it: its site outlives it.
        return Ok(Action::await_change());
    }
    let ns = request.namespace().unwrap_or_default();
    let tenant = ns
        .strip_prefix(TENANT_NAMESPACE_PREFIX)
        .and_then(|name| ctx.data.tenants.get(&ObjectRef::new(name)));
    let tenant = tenant.as_ref().and_then(|t| t.0.as_ref().ok());
    let catalog = catalog(&ctx.data.products);
    let sites = ctx.data.sites.state();
    let mut sites: Vec<&PloneSite> = sites.iter().filter_map(|s| s.0.as_ref().ok()).collect();
    // The site this request created may not be in the cache yet: ask the API
    // server before believing it was deleted.
    let fetched = match request.status.as_ref().and_then(|s| s.site.as_deref()) {
        Some(name)
            if !sites
                .iter()
                .any(|s| s.namespace().as_deref() == Some(ns.as_str()) && s.name_any() == name) =>
        {
            Api::<PloneSite>::namespaced(ctx.client().clone(), &ns)
                .get_opt(name)
                .await
                .map_err(|source| Error::Read {
                    namespace: ns.clone(),
                    name: name.to_string(),
                    source,
                })?
        }
        _ => None,
    };
    sites.extend(fetched.as_ref());
    let view = View {
        tenant,
        catalog: &catalog,
        sites: &sites,
        tenant_config: &ctx.data.tenant_config,
    };
    let mut outcome = check::evaluate(&request, &view, mutu_runtime::status::now());

    if let Some(site) = outcome.create.take() {
        let name = site.name_any();
        create_site(&ctx, &ns, &request, site).await?;
        outcome.status.site = Some(name.clone());
        ctx.event(
            request.as_ref(),
            false,
            "SiteCreated",
            format!("created site {ns}/{name}"),
        )
        .await;
    }

    let api: Api<ProvisioningRequest> = Api::namespaced(ctx.client().clone(), &ns);
    // Only over the version read: an approver's decision written meanwhile is
    // never overwritten; its watch event brings it to the next reconcile.
    let written = mutu_runtime::status::write_over_read(
        &api,
        request.as_ref(),
        outcome.status,
        &outcome.conditions,
        ctx.applier.field_manager(),
        &ctx.metrics,
        ctx.name,
    )
    .await
    .map_err(Error::Status)?;
    if written && let Some(note) = outcome.note {
        ctx.event(request.as_ref(), note.warning, note.reason, note.message)
            .await;
    }
    Ok(ctx.requeue())
}

/// Creates the request's site, once: a site of that name made for this
/// request already (a previous reconcile whose status write failed) is fine.
async fn create_site(
    ctx: &Ctx,
    ns: &str,
    request: &ProvisioningRequest,
    site: PloneSite,
) -> Result<(), Error> {
    let name = site.name_any();
    let api: Api<PloneSite> = Api::namespaced(ctx.client().clone(), ns);
    let params = PostParams {
        field_manager: Some(ctx.applier.field_manager().to_string()),
        ..Default::default()
    };
    match api.create(&params, &site).await {
        Ok(_) => {
            ctx.metrics.write(ctx.name, "create", "PloneSite");
            Ok(())
        }
        Err(e) if mutu_runtime::create::already_exists(&e) => {
            let found = api.get_opt(&name).await.map_err(|source| Error::Create {
                namespace: ns.to_string(),
                name: name.clone(),
                source,
            })?;
            let ours = found
                .as_ref()
                .is_some_and(|s| s.labels().get(REQUEST_LABEL) == Some(&request.name_any()));
            if ours {
                Ok(())
            } else {
                Err(Error::Taken {
                    namespace: ns.to_string(),
                    name,
                })
            }
        }
        Err(source) => Err(Error::Create {
            namespace: ns.to_string(),
            name,
            source,
        }),
    }
}
