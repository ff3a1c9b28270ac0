//! The approvers' page: every member's requests waiting for a decision, each
//! with its forms to approve (if it passes its checks) or deny it.

use serde::Serialize;

use super::reason;
use crate::html::View;
use crate::i18n::Lang;
use crate::model::{Checks, Request};

/// A decision just recorded, to confirm.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Done<'a> {
    /// `namespace/name` of the request.
    pub request: &'a str,
    pub denied: bool,
}

#[derive(Serialize)]
struct Approvals<'a> {
    done: Option<String>,
    pending: Vec<Card<'a>>,
    token: &'a str,
}

/// One request: what it asks, then how to decide.
#[derive(Serialize)]
struct Card<'a> {
    /// The ids of its heading and fields.
    key: String,
    /// `namespace/name`.
    id: String,
    namespace: &'a str,
    name: &'a str,
    product: &'a str,
    hosts: String,
    comment: Option<&'a str>,
    passes: bool,
    reasons: Vec<String>,
}

/// The page's body in `lang`: `done` confirmed, then the pending ones of
/// `requests`, their forms carrying the caller's `token` against
/// cross-site forgery.
pub fn approvals<'a>(
    lang: Lang,
    requests: &'a [Request],
    done: Option<Done<'_>>,
    token: &'a str,
) -> View {
    let done = done.map(|d| {
        if d.denied {
            lang.tr_with("approvals-denied", &[("request", d.request.into())])
        } else {
            lang.tr_with("approvals-approved", &[("request", d.request.into())])
        }
    });
    let pending = waiting(requests)
        .into_iter()
        .map(|r| Card {
            key: format!("{}-{}", r.namespace, r.name),
            id: format!("{}/{}", r.namespace, r.name),
            namespace: &r.namespace,
            name: &r.name,
            product: &r.product,
            hosts: r.hostnames.join(", "),
            comment: r.comment.as_deref(),
            passes: r.checks == Checks::Passed,
            reasons: r.reasons.iter().map(|x| reason(lang, x, &[])).collect(),
        })
        .collect();
    View::new(
        "approvals.html",
        Approvals {
            done,
            pending,
            token,
        },
    )
}

/// The requests waiting for a decision: those an approver can approve
/// first, then those that fail their checks, each by namespace and name.
fn waiting(requests: &[Request]) -> Vec<&Request> {
    let mut pending: Vec<&Request> = requests.iter().filter(|r| r.pending()).collect();
    pending.sort_by_key(|r| {
        (
            r.checks != Checks::Passed,
            r.namespace.clone(),
            r.name.clone(),
        )
    });
    pending
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Verdict;
    use crate::views::fixtures::{self, french};
    use mutu_api::provisioning::RequestReason;

    fn page(requests: &[Request], done: Option<Done<'_>>) -> String {
        french(approvals(Lang::Fr, requests, done, "1.ab"))
    }

    #[test]
    fn nothing_waiting_is_said() {
        let mut decided = fixtures::request("web");
        decided.verdict = Verdict::Approved { by: "marie".into() };
        let body = page(&[decided], None);
        assert!(
            body.contains("<p>Aucune demande n&#39;attend de décision.</p>"),
            "{body}"
        );
        assert!(!body.contains("<form"), "{body}");
    }

    #[test]
    fn a_decision_just_taken_is_confirmed() {
        let body = page(
            &[],
            Some(Done {
                request: "tenant-ans/web",
                denied: true,
            }),
        );
        assert!(
            body.contains(
                r#"<div class="notice" role="status">Demande tenant-ans/web refusée.</div>"#
            ),
            "{body}"
        );
        let body = page(
            &[],
            Some(Done {
                request: "a<b",
                denied: false,
            }),
        );
        assert!(body.contains("Demande a&lt;b approuvée."), "{body}");
    }

    #[test]
    fn requests_that_pass_their_checks_come_first() {
        let mut failing = fixtures::request("a");
        failing.checks = Checks::Failed;
        let mut other = fixtures::request("b");
        other.namespace = "tenant-mons".into();
        let requests = [other, failing, fixtures::request("c")];
        let order: Vec<&str> = waiting(&requests).iter().map(|r| r.name.as_str()).collect();
        assert_eq!(order, ["c", "b", "a"]);
    }

    #[test]
    fn a_valid_request_can_be_approved_or_denied() {
        let mut r = fixtures::request("web");
        r.comment = Some("pour <la> fête".into());
        let card = page(&[r], None);
        assert!(card.contains("<section class=\"card\" aria-labelledby=\"t-tenant-ans-web\">\n<h2 id=\"t-tenant-ans-web\">tenant-ans/web</h2>\n<p>Produit : web<br>Adresses : www.ans.be, ans.be<br>Motif : pour &lt;la&gt; fête</p>\n<form method=\"post\" action=\"/approbations/tenant-ans/web\"><input type=\"hidden\" name=\"jeton\" value=\"1.ab\"><input type=\"hidden\" name=\"action\" value=\"approuver\"><button type=\"submit\">Approuver tenant-ans/web</button></form>"), "{card}");
        assert_eq!(
            card.matches(r#"name="jeton" value="1.ab""#).count(),
            2,
            "{card}"
        );
        assert!(card.contains("<label for=\"raison-tenant-ans-web\">Raison du refus (le membre la lira)</label><textarea id=\"raison-tenant-ans-web\" name=\"raison\" required></textarea><button type=\"submit\" class=\"deny\">Refuser tenant-ans/web</button></form>\n</section>"), "{card}");
    }

    #[test]
    fn an_invalid_request_shows_its_reasons_instead_of_approval() {
        let mut r = fixtures::request("web");
        r.checks = Checks::Running;
        r.reasons = vec![RequestReason {
            code: "Other".into(),
            subject: None,
            message: "a <reason>".into(),
        }];
        let card = page(&[r], None);
        assert!(!card.contains(r#"value="approuver""#), "{card}");
        assert!(card.contains("<p>Cette demande ne passe pas les vérifications :</p>\n<ul>\n<li>a &lt;reason&gt;</li>\n</ul>"), "{card}");
        assert!(card.contains(r#"value="refuser""#), "{card}");
        assert!(
            card.contains("<form method=\"post\" action=\"/approbations/tenant-ans/web\"><input type=\"hidden\" name=\"jeton\" value=\"1.ab\"><input type=\"hidden\" name=\"action\" value=\"refuser\">"),
            "{card}"
        );
    }
}
