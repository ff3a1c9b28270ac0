//! The hosting rules of mutu, as pure functions and types: no Kubernetes
//! client, no I/O, no async. This is where a reader learns the domain; the
//! operators read the cluster, ask these functions what should be, and act.
//!
//! - [`names`]: what a site's children are called (ZEO server, volumes, Solr alias, Secrets).
//! - [`storage`]: where a site keeps its data (ZEO, RelStorage, a generic volume, nothing).
//! - [`egress`]: where a member's pods may connect outside their namespace (DNS, Solr, databases, mail).
//! - [`admission`]: whether a site may be served (tenant, entitlement, hostnames).
//! - [`placement`]: the pool a site runs on, and whether a pool has room for it.
//! - [`quota`] and [`quantity`]: what an instance counts and what a member may use.
//! - [`schedule`]: the backup night: every site's start time inside its window.
//! - [`provisioning`]: the names and states of a member's request for a site.
//! - [`wave`]: which sites a MigrationPlan or ReleaseRollout changes together, in which order.
//! - [`scripts`]: the scripts the Jobs run inside a site's image, one copy each.

pub mod admission;
pub mod egress;
pub mod names;
pub mod placement;
pub mod provisioning;
pub mod quantity;
pub mod quota;
pub mod schedule;
pub mod scripts;
pub mod storage;
pub mod wave;
