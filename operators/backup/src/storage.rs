//! Where a site's data is, for a backup or a restore: its ZEO server's
//! FileStorage, its RelStorage database or a generic product's volume
//! ([`storage`]), and the member's
//! backup volume the runs write to and read from ([`ensure_volume`]).

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use kube::ResourceExt;
use kube::api::Api;
use mutu_api::PloneSite;
use mutu_api::product::StorageMode;

use crate::context::{Ctx, Error, kube_err};
use crate::jobs;
use mutu_model::storage::Storage as Kind;

/// Where a site keeps its data.
pub enum Storage {
    /// FileStorage and blobs behind its ZEO server (the StatefulSet).
    Zeo(Box<StatefulSet>),
    /// RelStorage in PostgreSQL; the Secret with its `dsn`.
    Rel { secret: String },
    /// A generic product's data volume: the claim its instances mount.
    Volume { claim: String },
}

impl Storage {
    /// The Job that runs `spec` against this storage, or why it cannot be built.
    pub fn job(
        &self,
        spec: &jobs::Spec<'_>,
        config: &crate::Config,
    ) -> Result<k8s_openapi::api::batch::v1::Job, jobs::Blocked> {
        match self {
            Storage::Zeo(zeo) => jobs::build(spec, zeo),
            Storage::Rel { secret } => Ok(jobs::pg_job(spec, &config.postgres_image, secret)),
            Storage::Volume { claim } => Ok(jobs::volume_job(spec, &config.volume_image, claim)),
        }
    }

    /// Whether a restore can go back to any time between backups (repozo's
    /// incremental history), not only to a backup's own time.
    pub fn point_in_time(&self) -> bool {
        matches!(self, Storage::Zeo(_))
    }
}

/// The storage of `site`, or why it cannot be worked on yet.
pub async fn storage(
    ctx: &Ctx,
    ns: &str,
    site: &PloneSite,
) -> Result<Result<Storage, String>, Error> {
    let name = site.name_any();
    // The model's rule, from the Product in the cache; without it, only a
    // site that names its storage mode can say where its data is.
    let kind = match (
        ctx.data.product(&site.spec.product),
        site.spec.storage.as_ref().and_then(|s| s.mode),
    ) {
        (Some(product), _) => mutu_model::storage::of_site(site, &product.spec),
        (None, Some(StorageMode::Relstorage)) => Kind::Rel,
        (None, Some(StorageMode::Zeo)) => Kind::Zeo,
        (None, None) => {
            return Ok(Err(format!(
                "the site's product {} does not exist",
                site.spec.product
            )));
        }
    };
    match kind {
        Kind::Volume => return volume(ctx, ns, site).await,
        Kind::Nothing => {
            return Ok(Err(format!(
                "the site keeps no data: product {} has no volume",
                site.spec.product
            )));
        }
        Kind::Rel => {
            let secret = mutu_model::storage::relstorage_secret(site);
            return Ok(Ok(Storage::Rel { secret }));
        }
        Kind::Zeo => {}
    }
    let zeo_name = mutu_model::names::zeo_server(&name);
    let zeo = Api::<StatefulSet>::namespaced(ctx.client().clone(), ns)
        .get_opt(&zeo_name)
        .await
        .map_err(kube_err("read the site's ZEO server"))?;
    Ok(zeo
        .map(|z| Storage::Zeo(Box::new(z)))
        .ok_or_else(|| format!("the site's ZEO server {zeo_name} does not exist yet")))
}

/// The data volume of a generic product's site: the claim its instances
/// mount (wherever a MigrationPlan moved it).
async fn volume(ctx: &Ctx, ns: &str, site: &PloneSite) -> Result<Result<Storage, String>, Error> {
    let name = site.name_any();
    let deployment = Api::<Deployment>::namespaced(ctx.client().clone(), ns)
        .get_opt(&name)
        .await
        .map_err(kube_err("read the site's instances"))?;
    let Some(deployment) = deployment else {
        return Ok(Err(format!(
            "the site's instances (Deployment {name}) do not exist yet"
        )));
    };
    let claim = deployment
        .spec
        .template
        .spec
        .and_then(|p| p.volumes)
        .into_iter()
        .flatten()
        .find(|v| v.name == "data")
        .and_then(|v| v.persistent_volume_claim)
        .map(|c| c.claim_name);
    Ok(claim
        .map(|claim| Storage::Volume { claim })
        .ok_or_else(|| format!("the site's instances (Deployment {name}) mount no data volume")))
}

/// The member's backup volume claim as mutu creates it.
fn volume_claim(config: &crate::Config, ns: &str) -> Result<PersistentVolumeClaim, Error> {
    let mut spec = serde_json::json!({
        "accessModes": ["ReadWriteMany"],
        "resources": {"requests": {"storage": config.volume_size}},
    });
    if let Some(class) = &config.storage_class {
        spec["storageClassName"] = serde_json::json!(class);
    }
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": config.volume_claim, "namespace": ns, "labels": {
            mutu_api::MANAGED_BY: mutu_api::MANAGED_BY_VALUE,
            mutu_api::COMPONENT: "backups",
        }},
        "spec": spec,
    }))
    .map_err(|e| Error::Kube {
        what: "build the backup volume claim".into(),
        source: kube::Error::SerdeError(e),
    })
}

/// Makes sure the member's backup volume exists (never deleted by mutu).
pub async fn ensure_volume(ctx: &Ctx, ns: &str) -> Result<(), Error> {
    let config = &ctx.data.config;
    let api: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client().clone(), ns);
    if api
        .get_opt(&config.volume_claim)
        .await
        .map_err(kube_err("read the backup volume claim"))?
        .is_some()
    {
        return Ok(());
    }
    let claim = volume_claim(config, ns)?;
    ctx.create_once(&api, &claim)
        .await
        .map(|_| ())
        .map_err(|source| Error::Kube {
            what: "create the backup volume claim".into(),
            source,
        })
}
