//! The pages' bodies: pure functions from the values of [`crate::model`] to
//! HTML, to be framed by [`crate::html::page`]. Every text from outside is
//! escaped here.

mod approvals;
mod ask;
mod home;
mod request;
mod sites;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::html::{self, esc};

pub use approvals::{Done, approvals};
pub use ask::ask;
pub use home::home;
pub use request::{refresh, request};
pub use sites::sites;

/// The links between the pages of the member `tenant`.
fn member_nav(tenant: &str) -> String {
    format!(
        r#"<nav aria-label="Pages du membre"><p><a href="/membres/{t}/sites">Mes sites</a> · <a href="/membres/{t}/demander">Demander un site</a></p></nav>"#,
        t = esc(tenant)
    )
}

/// The hidden field carrying a form's token against cross-site forgery.
fn token_field(token: &str) -> String {
    format!(
        r#"<input type="hidden" name="{}" value="{}">"#,
        crate::csrf::FIELD,
        esc(token)
    )
}

/// A date as the pages show it: day/month/year.
fn day(t: &Time) -> String {
    t.0.strftime("%d/%m/%Y").to_string()
}

/// An error, and the way back to the home page.
pub fn refusal(text: &str) -> String {
    format!(
        r#"{}<p><a href="/">Retour à l'accueil</a></p>"#,
        html::message(true, text)
    )
}

/// An error about a decision, and the way back to the approvals.
pub fn decision_refused(text: &str) -> String {
    format!(
        r#"{}<p><a href="/approbations">Retour aux demandes</a></p>"#,
        html::message(true, text)
    )
}

/// Values for the views' tests.
#[cfg(test)]
mod fixtures {
    use std::collections::BTreeMap;

    use crate::model::{Checks, Fulfilment, Member, Request, Verdict};

    pub fn member() -> Member {
        Member {
            name: "ans".into(),
            display_name: "Commune d'Ans".into(),
            namespace: "tenant-ans".into(),
            domains: vec!["ans.be".into()],
            entitlements: BTreeMap::from([("web".into(), 2), ("delib".into(), 1)]),
            used: BTreeMap::from([("delib".into(), 1)]),
        }
    }

    pub fn request(name: &str) -> Request {
        Request {
            namespace: "tenant-ans".into(),
            name: name.into(),
            product: "web".into(),
            hostnames: vec!["www.ans.be".into(), "ans.be".into()],
            comment: None,
            checks: Checks::Passed,
            verdict: Verdict::Pending,
            fulfilment: Fulfilment::Unknown,
            ready: false,
            reasons: vec![],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_member_nav_links_its_pages() {
        let nav = member_nav("a&b");
        assert!(nav.contains(r#"href="/membres/a&amp;b/sites""#), "{nav}");
        assert!(nav.contains(r#"href="/membres/a&amp;b/demander""#), "{nav}");
    }

    #[test]
    fn the_token_is_a_hidden_field() {
        assert_eq!(
            token_field("1.a\"b"),
            r#"<input type="hidden" name="jeton" value="1.a&quot;b">"#
        );
    }

    #[test]
    fn dates_are_day_month_year() {
        let t: Time = serde_json::from_value(serde_json::json!("2025-06-07T08:00:00Z"))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(day(&t), "07/06/2025");
    }

    #[test]
    fn refusals_are_alerts_with_a_way_back() {
        assert_eq!(
            refusal("Non <b>"),
            r#"<div class="error" role="alert">Non &lt;b&gt;</div><p><a href="/">Retour à l'accueil</a></p>"#
        );
        assert!(
            decision_refused("x")
                .ends_with(r#"<p><a href="/approbations">Retour aux demandes</a></p>"#)
        );
    }
}
