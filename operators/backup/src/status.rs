//! The status of a run (a Backup or a Restore): writing it, the conditions
//! both kinds of run report, and whether a run has finished.

use kube::Resource;
use kube::api::Api;
use mutu_api::RunStatus;
use mutu_runtime::conditions::Desired as Cond;

use crate::context::{Ctx, Error};

/// Whether a run (Backup or Restore) has finished, either way.
pub fn finished(status: Option<&RunStatus>) -> bool {
    status.is_some_and(|s| {
        mutu_runtime::conditions::is_true(&s.conditions, mutu_api::CONDITION_COMPLETE)
            || mutu_runtime::conditions::is_true(&s.conditions, mutu_api::CONDITION_FAILED)
    })
}

/// Writes the status of a run (a Backup or a Restore).
pub(crate) async fn write<K>(
    ctx: &Ctx,
    api: &Api<K>,
    run: &K,
    status: RunStatus,
    conds: &[Cond<'_>],
) -> Result<(), Error>
where
    K: Resource<DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + kube::core::object::HasStatus<Status = RunStatus>,
{
    ctx.write_status(api, run, status, conds)
        .await
        .map(|_| ())
        .map_err(Error::Status)
}

/// `Progressing=False` with `reason`: the run waits, and is not failing.
pub(crate) fn waiting<'a>(reason: &'a str, msg: String) -> Cond<'a> {
    Cond::new(mutu_api::CONDITION_PROGRESSING, false, reason, msg)
}

/// The run works (its Job runs, say): `Progressing=True` and `Complete=False`,
/// both with `reason` and `msg`.
pub(crate) fn working<'a>(reason: &'a str, msg: String) -> [Cond<'a>; 2] {
    [
        Cond::new(mutu_api::CONDITION_PROGRESSING, true, reason, msg.clone()),
        Cond::new(mutu_api::CONDITION_COMPLETE, false, reason, msg),
    ]
}

/// `Progressing=False`, `Done`: the run has finished.
pub(crate) fn done() -> Cond<'static> {
    Cond::new(
        mutu_api::CONDITION_PROGRESSING,
        false,
        "Done",
        "finished".to_string(),
    )
}

/// The run failed: `Failed=True` and `Complete=False`, both with `reason` and `msg`.
pub(crate) fn failed<'a>(reason: &'a str, msg: String) -> [Cond<'a>; 2] {
    [
        Cond::new(mutu_api::CONDITION_FAILED, true, reason, msg.clone()),
        Cond::new(mutu_api::CONDITION_COMPLETE, false, reason, msg),
    ]
}

/// The run failed and is done: [`failed`], then [`done`].
pub(crate) fn failed_and_done<'a>(reason: &'a str, msg: String) -> [Cond<'a>; 3] {
    let [failed, complete] = failed(reason, msg);
    [failed, complete, done()]
}
