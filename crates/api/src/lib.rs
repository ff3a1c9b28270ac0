//! The custom resource types of mutu's hosting domain (API group `hosting.imio.be`), their CEL
//! validation rules and the generation of their CustomResourceDefinitions. No I/O, no client.

// `#[kube(printcolumn(name = .., type_ = ..))]` repeats `type_ = "string"` across columns, which
// clippy mistakes for duplicated attributes.
#![allow(clippy::duplicated_attributes)]

pub mod backup;
pub mod certificate;
pub mod common;
mod crd;
pub mod issuer;
pub mod policy;
pub mod product;
pub mod provisioning;
pub mod site;
pub mod solr;
pub mod tenant;
pub mod wave;

#[cfg(test)]
mod tests;

pub use backup::{
    Backup, BackupPolicy, BackupPolicySpec, BackupSpec, Restore, RestoreSpec, RunStatus,
};
pub use certificate::{Certificate, CertificateSpec, CertificateStatus};
pub use common::{
    API_VERSION, CATCH_UP_ANNOTATION, COMPONENT, CONDITION_COMPLETE, CONDITION_FAILED,
    CONDITION_PROGRESSING, CONDITION_READY, DATA_VOLUME_ANNOTATION, DeletionPolicy, GROUP,
    HELD_BY_ANNOTATION, INSTANCE, MADE_BY_ANNOTATION, MAINTENANCE_ANNOTATION, MANAGED_BY,
    MANAGED_BY_VALUE, OFFLINE_ANNOTATION, POOL_ANNOTATION, POOL_FRONTEND, POOL_LABEL,
    POOL_PHYSICAL, PRODUCT_LABEL, Pool, RELEASE_ANNOTATION, REQUEST_LABEL,
    SUPERSEDED_BY_ANNOTATION, TENANT_LABEL, VERSION, Window, tenant_namespace,
};
pub use crd::{CRD_HEADER, crd_file_name, crd_yaml, crds};
pub use issuer::{CertificateIssuer, CertificateIssuerSpec, CertificateIssuerStatus};
pub use product::{Product, ProductSpec, ProductStatus};
pub use provisioning::{ProvisioningRequest, ProvisioningRequestSpec, ProvisioningRequestStatus};
pub use site::{PloneSite, PloneSiteSpec, PloneSiteStatus};
pub use solr::{SolrIndex, SolrIndexSpec, SolrIndexStatus};
pub use tenant::{MemberTenant, MemberTenantSpec, MemberTenantStatus};
pub use wave::{MigrationPlan, MigrationPlanSpec, ReleaseRollout, ReleaseRolloutSpec, WaveStatus};
