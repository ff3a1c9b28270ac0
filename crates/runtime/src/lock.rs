//! One holder at a time for a site's data: a Restore (`restore/<name>`), a MigrationPlan
//! (`migration/<plan>`) or a ReleaseRollout (`rollout/<plan>`), written in the site's
//! annotation [`mutu_api::HELD_BY_ANNOTATION`] by the API server atomically: taken only over
//! the version of the site that was read (a lagging cache gets a conflict, not the site), and
//! let go only by its holder. A hold whose holder is gone or finished is stale, and may be
//! taken over (again only over what was read). Any other value (e.g. `ops/jdoe`, set by the
//! platform team by hand) is never stale: it stays until a person removes it.

use kube::api::{Api, Patch, PatchParams};
use kube::{Client, ResourceExt};
use mutu_api::wave::SiteStep;
use mutu_api::{HELD_BY_ANNOTATION, MigrationPlan, PloneSite, ReleaseRollout, Restore};
use serde_json::json;

use crate::conditions;

/// The holder value of the Restore `name`.
pub fn restore_holder(name: &str) -> String {
    format!("restore/{name}")
}

/// Who holds `site` now, if anyone.
pub fn holder(site: &PloneSite) -> Option<&str> {
    site.annotations()
        .get(HELD_BY_ANNOTATION)
        .map(String::as_str)
        .filter(|h| !h.is_empty())
}

/// Takes `site` for `me`, over the version of it that was read (`site` as cached): `Ok(true)`
/// once `me` holds it, `Ok(false)` when someone wrote the site since (read it again).
/// `site` must be free, or held by a stale holder (see [`is_stale`]).
pub async fn take(client: &Client, site: &PloneSite, me: &str) -> Result<bool, kube::Error> {
    let ns = site.namespace().unwrap_or_default();
    let api: Api<PloneSite> = Api::namespaced(client.clone(), &ns);
    let patch = json!({"metadata": {
        "resourceVersion": site.resource_version(),
        "annotations": {HELD_BY_ANNOTATION: me},
    }});
    match api
        .patch(
            &site.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
    {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
        Err(e) => Err(e),
    }
}

/// Lets go of the site `name` in `ns` if `me` holds it (and only then), over the version read
/// just before: `Ok(true)` when `me` does not hold it any more, `Ok(false)` when the site kept
/// changing meanwhile (try again later).
pub async fn let_go(client: &Client, ns: &str, name: &str, me: &str) -> Result<bool, kube::Error> {
    let api: Api<PloneSite> = Api::namespaced(client.clone(), ns);
    for _ in 0..3 {
        let Some(site) = api.get_opt(name).await? else {
            return Ok(true);
        };
        if holder(&site) != Some(me) {
            return Ok(true);
        }
        let patch = json!({"metadata": {
            "resourceVersion": site.resource_version(),
            "annotations": {HELD_BY_ANNOTATION: null},
        }});
        match api
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => return Ok(true),
            Err(kube::Error::Api(e)) if e.code == 409 => continue,
            Err(kube::Error::Api(e)) if e.code == 404 => return Ok(true),
            Err(e) => return Err(e),
        }
    }
    Ok(false)
}

/// Whether the hold `holder` on site `site` of `ns` is stale: its Restore is gone or finished,
/// or its plan is gone or done with the site. A hold of any other kind is never stale.
pub async fn is_stale(
    client: &Client,
    ns: &str,
    site: &str,
    holder: &str,
) -> Result<bool, kube::Error> {
    let Some((kind, name)) = holder.split_once('/') else {
        return Ok(false);
    };
    let progress_done = |status: Option<&mutu_api::wave::WaveStatus>| {
        status
            .and_then(|s| {
                s.site_progress
                    .iter()
                    .find(|p| p.namespace == ns && p.name == site)
            })
            .is_none_or(|p| matches!(p.step, SiteStep::Done | SiteStep::Failed))
    };
    match kind {
        "restore" => {
            let api: Api<Restore> = Api::namespaced(client.clone(), ns);
            Ok(api.get_opt(name).await?.is_none_or(|r| {
                let conds = r
                    .status
                    .as_ref()
                    .map(|s| s.conditions.as_slice())
                    .unwrap_or(&[]);
                r.metadata.deletion_timestamp.is_some()
                    || conditions::is_true(conds, mutu_api::CONDITION_COMPLETE)
                    || conditions::is_true(conds, mutu_api::CONDITION_FAILED)
            }))
        }
        "migration" => {
            let api: Api<MigrationPlan> = Api::all(client.clone());
            Ok(api
                .get_opt(name)
                .await?
                .is_none_or(|p| progress_done(p.status.as_ref())))
        }
        "rollout" => {
            let api: Api<ReleaseRollout> = Api::all(client.clone());
            Ok(api
                .get_opt(name)
                .await?
                .is_none_or(|p| progress_done(p.status.as_ref())))
        }
        _ => Ok(false),
    }
}
