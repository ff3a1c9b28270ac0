//! Creating what must exist once: a Job, a Backup, a volume claim. A reconcile
//! that repeats (after a crash, or because its cache lagged) finds what the
//! first one created: the API server's 409 means "already there", not an
//! error, and only a real creation counts as a write.

use std::fmt::Debug;

use kube::api::{Api, PostParams};
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::Context;

/// What [`Context::create_once`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Created {
    /// This call created it.
    New,
    /// It existed already (created earlier, or by another reconcile): left as it is.
    Existed,
}

/// Whether an error is the API server's "already exists".
pub fn already_exists(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(e) if e.code == 409)
}

impl<T> Context<T> {
    /// Creates `obj` unless an object of its name exists; a creation counts as
    /// one write of this controller in `mutu_api_writes_total`.
    pub async fn create_once<K>(&self, api: &Api<K>, obj: &K) -> Result<Created, kube::Error>
    where
        K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Serialize + Debug,
    {
        match api.create(&PostParams::default(), obj).await {
            Ok(created) => {
                self.metrics.write(self.name, "create", &K::kind(&()));
                tracing::debug!(kind = %K::kind(&()), name = %created.name_any(), "created");
                Ok(Created::New)
            }
            Err(e) if already_exists(&e) => Ok(Created::Existed),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api_error(code: u16) -> kube::Error {
        kube::Error::Api(
            kube::core::Status::failure("test", "Test")
                .with_code(code)
                .boxed(),
        )
    }

    #[test]
    fn only_a_conflict_on_creation_means_already_there() {
        assert!(already_exists(&api_error(409)));
        assert!(!already_exists(&api_error(403)));
        assert!(!already_exists(&api_error(422)));
    }
}
