//! The executor of the step machine (`step`): it fills what a site's step
//! looks at from the caches and the API server, and does what the step says
//! (annotations, Backups, volumes, Restores, pods).

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod, ResourceQuota};
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::{Resource, ResourceExt};
use mutu_api::backup::BackupTrigger;
use mutu_api::common::SITE_LABEL;
use mutu_api::wave::SiteProgress;
use mutu_api::{Backup, Certificate, PloneSite, Restore};
use mutu_model::names;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::engine::{Ctx, Error, kube_err};
use crate::plan::{Kind, PlanRef};
use crate::step::{self, Action, Look, Next, Outcome, Server, Volumes, World};

/// Works on the recorded step of a site: reads what the step looks at, does
/// what it says, and returns where the site goes.
pub async fn step(
    ctx: &Ctx,
    plan: &PlanRef,
    p: &SiteProgress,
    site: PloneSite,
    now: &Time,
) -> Result<Next, Error> {
    // The plan works on a site only while it holds it (one holder at a time: a Restore or
    // another plan waits, and this plan waits for them).
    let me = plan.who();
    let claim = step::claim(&site, &me);
    if claim != step::Claim::Ours {
        let ns = site.namespace().unwrap_or_default();
        if let step::Claim::HeldBy(other) = &claim {
            let stale = mutu_runtime::lock::is_stale(ctx.client(), &ns, &p.name, other)
                .await
                .map_err(kube_err(format!("read the holder {other} of the site")))?;
            if !stale {
                return Ok(Next::Wait(format!(
                    "the site is held by {other} ({}); this plan waits until it lets go",
                    mutu_api::HELD_BY_ANNOTATION
                )));
            }
        }
        let taken = mutu_runtime::lock::take(ctx.client(), &site, &me)
            .await
            .map_err(kube_err(format!("take hold of the site {ns}/{}", p.name)))?;
        ctx.metrics.write(ctx.name, "patch", "PloneSite");
        return Ok(Next::Wait(if taken {
            format!("holds the site ({}={me})", mutu_api::HELD_BY_ANNOTATION)
        } else {
            "the site changed while this plan took hold of it; trying again".to_string()
        }));
    }
    let mut world = observe(ctx, plan, p, site, now);
    loop {
        match step::decide(plan, p, &world) {
            Outcome::Look(look) => look_at(ctx, plan, p, &mut world, look).await?,
            Outcome::Then(actions, next) => {
                for action in actions {
                    perform(ctx, plan, &world.site, action).await?;
                }
                return Ok(next);
            }
        }
    }
}

/// What the caches say of the site: its Product, the plan's Backups of it,
/// its server pods, the copy Job.
fn observe(ctx: &Ctx, plan: &PlanRef, p: &SiteProgress, site: PloneSite, now: &Time) -> World {
    let data = &ctx.data;
    let ns = site.namespace().unwrap_or_default();
    let backups = ["pre", "final"]
        .into_iter()
        .map(|what| plan.object_name(&p.name, what))
        .filter_map(|name| {
            let b = data.backup(&ns, &name)?;
            let conds = b
                .status
                .as_ref()
                .map(|s| s.conditions.as_slice())
                .unwrap_or(&[]);
            Some((name, step::run_state(conds)))
        })
        .collect();
    let servers = data
        .server_pods(&ns, &p.name)
        .iter()
        .map(|pod| server(data, pod))
        .collect();
    World {
        product: data.product(&site.spec.product),
        backups,
        servers,
        ..World::new(now.clone(), site)
    }
}

/// What a step sees of one of the site's server pods.
fn server(data: &crate::engine::Caches, pod: &Pod) -> Server {
    Server {
        name: pod.name_any(),
        zeo: pod.labels().get(mutu_api::COMPONENT).map(String::as_str) == Some("zeo"),
        deleting: pod.metadata.deletion_timestamp.is_some(),
        pool: pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.as_deref())
            .and_then(|n| data.node_pool(n)),
        image: pod
            .spec
            .as_ref()
            .and_then(|s| s.containers.first())
            .and_then(|c| c.image.clone()),
        ready: pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True")),
    }
}

/// Reads what a step looks at.
async fn look_at(
    ctx: &Ctx,
    plan: &PlanRef,
    p: &SiteProgress,
    w: &mut World,
    look: Look,
) -> Result<(), Error> {
    let ns = w.site.namespace().unwrap_or_default();
    let site = w.site.name_any();
    let to = match &plan.kind {
        Kind::Migration { to, .. } => to.as_str(),
        Kind::Rollout { .. } => "",
    };
    match look {
        Look::Room => {
            let mut room = match &w.product {
                Some(product) => mutu_model::placement::fits_on_pool(
                    &w.site,
                    product,
                    to,
                    &ctx.data.nodes.state(),
                    &ctx.data.pods.state(),
                ),
                None => Ok(()),
            };
            // A move copies the ZEO data to a new volume beside the current one: the
            // member's storage quota must hold both, or the copy would be refused with the
            // site's servers stopped.
            if room.is_ok()
                && let Some(origin) = &p.origin_volume
            {
                let api: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client().clone(), &ns);
                let claim = api
                    .get_opt(origin)
                    .await
                    .map_err(kube_err(format!("read the volume claim {ns}/{origin}")))?;
                if let Some(claim) = claim {
                    room = quota_room(ctx, &ns, &claim).await?;
                }
            }
            w.room = Some(room);
        }
        Look::Certificate => {
            let name = names::tls_secret(&site);
            let api: Api<Certificate> = Api::namespaced(ctx.client().clone(), &ns);
            let cert = api
                .get_opt(&name)
                .await
                .map_err(kube_err(format!("read the Certificate {ns}/{name}")))?;
            let now = Time(mutu_runtime::status::now());
            w.certificate = Some(step::certificate_valid(cert.as_ref(), &name, &now));
        }
        Look::Ingress => {
            let api: Api<Ingress> = Api::namespaced(ctx.client().clone(), &ns);
            let ing = api
                .get_opt(&site)
                .await
                .map_err(kube_err(format!("read the Ingress of {ns}/{site}")))?;
            w.ingress_offline = Some(step::shows_maintenance(
                ing.as_ref(),
                &names::offline_service(&site),
            ));
        }
        Look::Volumes => w.volumes = Some(volumes(ctx, plan, p, &ns).await?),
        Look::ZeoServer => w.zeo_claim = Some(zeo_claim(ctx, &ns, &site).await?),
        Look::DataRestore => {
            let name = plan.object_name(&p.name, "data");
            w.data_restore = Some(restore_run(ctx, &ns, &name).await?);
        }
        Look::Restore => {
            let name = plan.object_name(&p.name, "restore");
            w.restore = Some(restore_run(ctx, &ns, &name).await?);
        }
        Look::Servers => {
            let pods: Api<Pod> = Api::namespaced(ctx.client().clone(), &ns);
            let list = pods
                .list(&ListParams::default().labels(&format!("{SITE_LABEL}={site}")))
                .await
                .map_err(kube_err(format!("list the pods of {ns}/{site}")))?;
            w.servers_now = Some(
                list.items
                    .iter()
                    .filter(|pod| {
                        matches!(
                            pod.labels().get(mutu_api::COMPONENT).map(String::as_str),
                            Some("instance" | "zeo")
                        )
                    })
                    .map(|pod| server(&ctx.data, pod))
                    .collect(),
            );
        }
    }
    Ok(())
}

/// The site's new data volume: whether it exists, and if not, its current one.
async fn volumes(ctx: &Ctx, plan: &PlanRef, p: &SiteProgress, ns: &str) -> Result<Volumes, Error> {
    let api: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client().clone(), ns);
    let claim = plan.new_volume(&p.name);
    let new_exists = api
        .get_opt(&claim)
        .await
        .map_err(kube_err(format!("read the volume claim {ns}/{claim}")))?
        .is_some();
    if new_exists {
        return Ok(Volumes {
            new_exists,
            origin: None,
            quota: Ok(()),
        });
    }
    let origin = p
        .origin_volume
        .clone()
        .unwrap_or_else(|| names::zeo_data_claim(&p.name));
    let origin = api
        .get_opt(&origin)
        .await
        .map_err(kube_err(format!("read the volume claim {ns}/{origin}")))?;
    let quota = match &origin {
        Some(claim) => quota_room(ctx, ns, claim).await?,
        None => Ok(()),
    };
    Ok(Volumes {
        new_exists,
        origin,
        quota,
    })
}

/// Whether the member's quotas in `ns` leave room for a copy of `claim`.
async fn quota_room(
    ctx: &Ctx,
    ns: &str,
    claim: &PersistentVolumeClaim,
) -> Result<Result<(), String>, Error> {
    let size = claim
        .spec
        .as_ref()
        .and_then(|s| s.resources.as_ref())
        .and_then(|r| r.requests.as_ref())
        .and_then(|r| r.get("storage"))
        .and_then(mutu_model::quantity::parse)
        .unwrap_or(0.0);
    let api: Api<ResourceQuota> = Api::namespaced(ctx.client().clone(), ns);
    let quotas = api
        .list(&ListParams::default())
        .await
        .map_err(kube_err(format!("list the quotas of {ns}")))?;
    Ok(mutu_model::quota::room_for_claim(&quotas.items, size))
}

/// The run of the Restore `name`, `None` when it does not exist.
async fn restore_run(ctx: &Ctx, ns: &str, name: &str) -> Result<Option<step::Run>, Error> {
    let api: Api<Restore> = Api::namespaced(ctx.client().clone(), ns);
    let restore = api
        .get_opt(name)
        .await
        .map_err(kube_err(format!("read the Restore {ns}/{name}")))?;
    Ok(restore.map(|r| {
        step::run_state(
            r.status
                .as_ref()
                .map(|s| s.conditions.as_slice())
                .unwrap_or(&[]),
        )
    }))
}

/// The volume claim the site's ZEO server mounts as its data, `None` without a ZEO server.
async fn zeo_claim(ctx: &Ctx, ns: &str, site: &str) -> Result<Option<String>, Error> {
    let sts: Api<StatefulSet> = Api::namespaced(ctx.client().clone(), ns);
    let zeo = sts
        .get_opt(&names::zeo_server(site))
        .await
        .map_err(kube_err("read the site's ZEO server"))?;
    Ok(zeo.map(|z| {
        z.spec
            .template
            .spec
            .and_then(|p| p.volumes)
            .unwrap_or_default()
            .into_iter()
            .find(|v| v.name == "data")
            .and_then(|v| v.persistent_volume_claim)
            .map(|c| c.claim_name)
            .unwrap_or_default()
    }))
}

/// Does what a step says.
async fn perform(ctx: &Ctx, plan: &PlanRef, site: &PloneSite, action: Action) -> Result<(), Error> {
    let ns = site.namespace().unwrap_or_default();
    match action {
        Action::Annotate(wanted) => annotate(ctx, site, &wanted).await,
        Action::CreateBackup { name } => {
            let trigger = match plan.kind {
                Kind::Migration { .. } => BackupTrigger::Migration,
                Kind::Rollout { .. } => BackupTrigger::Rollout,
            };
            // Not owned by the plan: a deleted plan takes no backup data with it.
            let backup: Backup = made_by(
                plan,
                site,
                &name,
                "Backup",
                "backup",
                json!({"site": site.name_any(), "trigger": trigger}),
                false,
            )?;
            let api: Api<Backup> = Api::namespaced(ctx.client().clone(), &ns);
            create_once(ctx, &api, &backup, format!("the Backup {ns}/{name}")).await
        }
        Action::CreateRestore { name, backup } => {
            let restore: Restore = made_by(
                plan,
                site,
                &name,
                "Restore",
                "restore",
                json!({"site": site.name_any(), "backup": backup}),
                true,
            )?;
            let api: Api<Restore> = Api::namespaced(ctx.client().clone(), &ns);
            create_once(ctx, &api, &restore, format!("the Restore {ns}/{name}")).await
        }
        Action::CreateVolume(claim) => {
            let api: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client().clone(), &ns);
            let what = format!("the volume claim {ns}/{}", claim.name_any());
            create_once(ctx, &api, &claim, what).await
        }
        Action::DeletePods(pods) => delete_pods(ctx, &ns, &pods).await,
        Action::Supersede { claim, by } => supersede(ctx, &ns, &claim, by).await,
    }
}

/// Sets (or removes) the annotation saying which claim holds the data of `claim`'s site now;
/// nothing is written when it already says so, or when the claim is gone.
async fn supersede(ctx: &Ctx, ns: &str, claim: &str, by: Option<String>) -> Result<(), Error> {
    let api: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client().clone(), ns);
    let what = format!("mark the volume claim {ns}/{claim}");
    let Some(current) = api.get_opt(claim).await.map_err(kube_err(what.clone()))? else {
        return Ok(());
    };
    if current
        .annotations()
        .get(mutu_api::SUPERSEDED_BY_ANNOTATION)
        == by.as_ref()
    {
        return Ok(());
    }
    let patch = json!({"metadata": {"annotations": {mutu_api::SUPERSEDED_BY_ANNOTATION: by}}});
    api.patch(claim, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map_err(kube_err(what))?;
    ctx.metrics
        .write(ctx.name, "patch", "PersistentVolumeClaim");
    Ok(())
}

/// A Backup or Restore `name` of the site made by the plan (labelled with
/// it), owned by it when `owned`.
fn made_by<K: DeserializeOwned>(
    plan: &PlanRef,
    site: &PloneSite,
    name: &str,
    kind: &str,
    component: &str,
    spec: Value,
    owned: bool,
) -> Result<K, Error> {
    let owners = if owned {
        json!([plan.owner_ref()])
    } else {
        json!([])
    };
    serde_json::from_value(json!({
        "apiVersion": mutu_api::API_VERSION, "kind": kind,
        "metadata": {
            "name": name, "namespace": site.namespace().unwrap_or_default(),
            "labels": {
                mutu_api::MANAGED_BY: mutu_api::MANAGED_BY_VALUE,
                mutu_api::INSTANCE: site.name_any(),
                mutu_api::COMPONENT: component,
                SITE_LABEL: site.name_any(),
            },
            "annotations": {mutu_api::MADE_BY_ANNOTATION: plan.who()},
            "ownerReferences": owners,
        },
        "spec": spec,
    }))
    .map_err(|e| Error::Kube {
        what: format!("build the {kind} {name}"),
        source: kube::Error::SerdeError(e),
    })
}

/// Deletes the site's server pods left on the wrong pool.
async fn delete_pods(ctx: &Ctx, ns: &str, pods: &[String]) -> Result<(), Error> {
    let api: Api<Pod> = Api::namespaced(ctx.client().clone(), ns);
    for pod in pods {
        match api.delete(pod, &DeleteParams::default()).await {
            Ok(_) => ctx.metrics.write(ctx.name, "delete", "Pod"),
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(source) => {
                return Err(Error::Kube {
                    what: format!("delete the pod {ns}/{pod} left on the wrong pool"),
                    source,
                });
            }
        }
    }
    Ok(())
}

/// Sets (or, with `None`, removes) annotations of a site, unless they already are so.
async fn annotate(
    ctx: &Ctx,
    site: &PloneSite,
    wanted: &[(&str, Option<String>)],
) -> Result<(), Error> {
    let current = site.annotations();
    let changes: serde_json::Map<String, Value> = wanted
        .iter()
        .filter(|(k, v)| current.get(*k) != v.as_ref())
        .map(|(k, v)| (k.to_string(), json!(v)))
        .collect();
    if changes.is_empty() {
        return Ok(());
    }
    let ns = site.namespace().unwrap_or_default();
    let api: Api<PloneSite> = Api::namespaced(ctx.client().clone(), &ns);
    match api
        .patch(
            &site.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&json!({"metadata": {"annotations": changes}})),
        )
        .await
    {
        Ok(_) => {
            ctx.metrics.write(ctx.name, "patch", "PloneSite");
            Ok(())
        }
        Err(source) => Err(Error::Kube {
            what: format!("annotate the site {ns}/{}", site.name_any()),
            source,
        }),
    }
}

/// Creates `obj` unless it exists: a step that repeats (after a restart)
/// finds what it created the first time.
async fn create_once<K>(ctx: &Ctx, api: &Api<K>, obj: &K, what: String) -> Result<(), Error>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Serialize + std::fmt::Debug,
{
    ctx.create_once(api, obj)
        .await
        .map(|_| ())
        .map_err(|source| Error::Kube {
            what: format!("create {what}"),
            source,
        })
}

/// Lets go of the sites this plan is done with (`finished`, see `plan::to_let_go`) that it
/// still holds.
pub async fn let_go_finished<'a>(
    ctx: &Ctx,
    plan: &PlanRef,
    finished: impl Iterator<Item = &'a SiteProgress>,
) -> Result<(), Error> {
    let me = plan.who();
    for p in finished {
        let held = ctx
            .data
            .site(&p.namespace, &p.name)
            .is_some_and(|s| mutu_runtime::lock::holder(&s) == Some(me.as_str()));
        if held {
            mutu_runtime::lock::let_go(ctx.client(), &p.namespace, &p.name, &me)
                .await
                .map_err(kube_err(format!(
                    "let go of the site {}/{}",
                    p.namespace, p.name
                )))?;
            ctx.metrics.write(ctx.name, "patch", "PloneSite");
        }
    }
    Ok(())
}
