//! The Certificate's status: its conditions (`Ready`, `Issuing`), the fields
//! recorded from the Secret and from each issuance, and writing it.

use k8s_openapi::jiff::Timestamp;
use kube::api::Api;
use mutu_api::Certificate;
use mutu_api::certificate::CertificateStatus;
use mutu_runtime::conditions::Desired as Cond;

use super::context::{Ctx, Error};

/// Condition types.
pub const READY: &str = "Ready";
pub const ISSUING: &str = "Issuing";

/// `Ready`: the Secret serves a valid certificate for the names.
pub(super) fn serving(secret: &str, names: &[String], not_after: Timestamp) -> Cond<'static> {
    Cond::new(
        READY,
        true,
        "Issued",
        format!(
            "the Secret {secret} holds a valid certificate for {} until {not_after}",
            names.join(", ")
        ),
    )
}

/// `Issuing`: nothing to do until the renewal time.
pub(super) fn up_to_date(renewal: Timestamp) -> Cond<'static> {
    Cond::new(
        ISSUING,
        false,
        "UpToDate",
        format!("next renewal at {renewal}"),
    )
}

pub(super) async fn write(
    ctx: &Ctx,
    api: &Api<Certificate>,
    cert: &Certificate,
    status: CertificateStatus,
    conds: &[Cond<'_>],
) -> Result<bool, Error> {
    ctx.write_status(api, cert, status, conds)
        .await
        .map_err(Error::Status)
}
