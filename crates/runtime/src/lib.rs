//! What every mutu operator shares: server-side apply and pruning of children,
//! conditions, status writes that skip when nothing changed, events, the
//! controller runner (malformed objects, bounded concurrency, backoff, jitter),
//! watches, metrics, health, and support for end-to-end tests.

pub mod apply;
pub mod conditions;
pub mod controller;
pub mod create;
pub mod fence;
pub mod index;
pub mod jobs;
pub mod labels;
pub mod leader;
pub mod lock;
pub mod logging;
pub mod metrics;
pub mod queue;
pub mod server;
pub mod status;
pub mod testing;
pub mod watch;

pub use apply::{Applier, ApplyError, Outcome};
pub use controller::{Context, Reason, Settings};
pub use metrics::Metrics;
pub use server::{Health, serve};
