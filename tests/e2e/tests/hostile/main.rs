//! The hostile suite: members (and a site's own credentials) trying to cross the
//! tenant boundary or to lose data, on the shared local control plane. Each
//! attempt is made for real, through the API server (impersonating a member's
//! admin), the members' portal, or Solr, and each refusal is checked (status
//! and a message that says what to change) and counted; every test also checks
//! that nothing of anyone was lost.
//!
//! Its own harness: the tests run at once, each on a thread of its own, and the
//! suite prints every refused attempt, then how many there were; it fails when
//! a test fails or, run whole, when fewer than [`AT_LEAST`] attempts were
//! refused (a test that stopped trying would go unnoticed otherwise).
//!
//!     cargo test -p mutu-e2e --test hostile [FILTER]

mod api;
mod portal;
mod solr;

use std::future::Future;
use std::pin::Pin;
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Hostile attempts refused so far in this run.
static REFUSED: AtomicUsize = AtomicUsize::new(0);

/// Fewest refused attempts a whole run must count.
const AT_LEAST: usize = 60;

/// Counts one refused hostile attempt and prints it with what the refusal said.
pub(crate) fn count(case: &str, message: &str) {
    let n = REFUSED.fetch_add(1, Ordering::SeqCst) + 1;
    println!("hostile case {n} refused: {case}: {message}");
}

type Test = Pin<Box<dyn Future<Output = anyhow::Result<()>>>>;
/// A test's name and its function.
type Named = (&'static str, fn() -> Test);

/// `module::test` names and their functions.
macro_rules! tests {
    ($($module:ident::$test:ident),* $(,)?) => {
        vec![$((
            concat!(stringify!($module), "::", stringify!($test)),
            (|| Box::pin($module::$test()) as Test) as fn() -> Test,
        )),*]
    };
}

/// Every test of the suite, by name.
fn tests() -> Vec<Named> {
    tests![
        api::a_member_editing_another_members_hostname_into_its_ready_site_takes_nothing,
        api::a_member_cannot_choose_to_delete_data_nor_set_the_platforms_annotations,
        api::kubernetes_own_identities_cannot_be_a_members_admins,
        api::a_backup_policy_that_would_keep_no_backup_is_refused,
        api::a_public_suffix_is_refused_as_a_members_domain_and_grants_nothing,
        api::a_member_reaches_nothing_of_another_member_nor_of_the_platform_nor_above_its_role,
        api::an_older_member_given_a_newer_members_domain_takes_nothing_from_it,
        api::a_member_flooding_manual_backups_runs_two_at_a_time_and_all_complete,
        api::a_member_restoring_over_its_live_site_must_confirm_it,
        portal::forged_identities_and_forms_are_refused_by_the_portal_and_change_nothing,
        portal::forged_decisions_are_refused_by_the_portal_and_the_request_stays_pending,
        solr::a_sites_solr_credentials_reach_only_its_own_collection,
    ]
}

fn main() -> ExitCode {
    // Like the standard harness: the first argument that is not a flag filters by name.
    let filter = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let chosen: Vec<_> = tests()
        .into_iter()
        .filter(|(name, _)| filter.as_deref().is_none_or(|f| name.contains(f)))
        .collect();
    println!("running {} hostile tests", chosen.len());
    let threads: Vec<_> = chosen
        .into_iter()
        .map(|(name, test)| {
            let thread = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?;
                rt.block_on(test())
            });
            (name, thread)
        })
        .collect();
    let mut failed = Vec::new();
    for (name, thread) in threads {
        match thread.join() {
            Ok(Ok(())) => println!("test {name} ... ok"),
            Ok(Err(e)) => {
                println!("test {name} ... FAILED: {e:?}");
                failed.push(name);
            }
            Err(_) => {
                println!("test {name} ... FAILED (panicked, see above)");
                failed.push(name);
            }
        }
    }
    let refused = REFUSED.load(Ordering::SeqCst);
    println!(
        "hostile suite: {refused} attempts refused, {} tests failed",
        failed.len()
    );
    if !failed.is_empty() {
        println!("failures: {failed:?}");
        return ExitCode::FAILURE;
    }
    if filter.is_none() && refused < AT_LEAST {
        println!("the suite must refuse at least {AT_LEAST} attempts; it counted {refused}");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
