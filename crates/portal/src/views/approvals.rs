//! The approvers' page: every member's requests waiting for a decision, each
//! with its forms to approve (if it passes its checks) or deny it.

use super::token_field;
use crate::html::{self, esc};
use crate::model::{Checks, Request};

/// A decision just recorded, to confirm.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Done<'a> {
    /// `namespace/name` of the request.
    pub request: &'a str,
    pub denied: bool,
}

/// The page's body: `done` confirmed, then the pending ones of `requests`,
/// their forms carrying the caller's `token` against cross-site forgery.
pub fn approvals(requests: &[Request], done: Option<Done<'_>>, token: &str) -> String {
    let mut body = String::new();
    if let Some(done) = done {
        let what = if done.denied {
            "refusée"
        } else {
            "approuvée"
        };
        body.push_str(&html::message(
            false,
            &format!("Demande {} {what}.", done.request),
        ));
    }
    let pending = waiting(requests);
    if pending.is_empty() {
        body.push_str("<p>Aucune demande n'attend de décision.</p>");
    }
    for r in pending {
        body.push_str(&card(r, token));
    }
    body
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

/// One request: what it asks, then how to decide.
fn card(r: &Request, token: &str) -> String {
    let key = format!("{}-{}", r.namespace, r.name);
    let mut card = format!(
        r#"<section class="card" aria-labelledby="t-{key}"><h2 id="t-{key}">{ns}/{name}</h2><p>Produit : {product}<br>Adresses : {hosts}{comment}</p>"#,
        key = esc(&key),
        ns = esc(&r.namespace),
        name = esc(&r.name),
        product = esc(&r.product),
        hosts = esc(&r.hostnames.join(", ")),
        comment = r
            .comment
            .as_deref()
            .map(|c| format!("<br>Motif : {}", esc(c)))
            .unwrap_or_default(),
    );
    if r.checks == Checks::Passed {
        card.push_str(&approve_form(r, token));
    } else {
        card.push_str(&failed_checks(r));
    }
    card.push_str(&deny_form(r, &key, token));
    card
}

fn approve_form(r: &Request, token: &str) -> String {
    format!(
        r#"<form method="post" action="/approbations/{ns}/{name}">{token}<input type="hidden" name="action" value="approuver"><button type="submit">Approuver {ns}/{name}</button></form>"#,
        ns = esc(&r.namespace),
        name = esc(&r.name),
        token = token_field(token),
    )
}

fn failed_checks(r: &Request) -> String {
    let mut text = String::from("<p>Cette demande ne passe pas les vérifications :</p><ul>");
    for reason in &r.reasons {
        text.push_str(&format!("<li>{}</li>", esc(&html::reason(reason, &[]))));
    }
    text.push_str("</ul>");
    text
}

/// The form to deny `r`, its fields named after `key`; it closes the card.
fn deny_form(r: &Request, key: &str, token: &str) -> String {
    format!(
        r#"<form method="post" action="/approbations/{ns}/{name}">{token}<input type="hidden" name="action" value="refuser"><label for="raison-{key}">Raison du refus (le membre la lira)</label><textarea id="raison-{key}" name="raison" required></textarea><button type="submit" class="deny">Refuser {ns}/{name}</button></form></section>"#,
        ns = esc(&r.namespace),
        name = esc(&r.name),
        key = esc(key),
        token = token_field(token),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Verdict;
    use crate::views::fixtures;
    use mutu_api::provisioning::RequestReason;

    #[test]
    fn nothing_waiting_is_said() {
        let mut decided = fixtures::request("web");
        decided.verdict = Verdict::Approved { by: "marie".into() };
        assert_eq!(
            approvals(&[decided], None, "1.ab"),
            "<p>Aucune demande n'attend de décision.</p>"
        );
    }

    #[test]
    fn a_decision_just_taken_is_confirmed() {
        let body = approvals(
            &[],
            Some(Done {
                request: "tenant-ans/web",
                denied: true,
            }),
            "1.ab",
        );
        assert!(
            body.starts_with(
                r#"<div class="notice" role="status">Demande tenant-ans/web refusée.</div>"#
            ),
            "{body}"
        );
        let body = approvals(
            &[],
            Some(Done {
                request: "a<b",
                denied: false,
            }),
            "1.ab",
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
        let card = card(&r, "1.ab");
        assert!(card.starts_with(r#"<section class="card" aria-labelledby="t-tenant-ans-web"><h2 id="t-tenant-ans-web">tenant-ans/web</h2><p>Produit : web<br>Adresses : www.ans.be, ans.be<br>Motif : pour &lt;la&gt; fête</p><form method="post" action="/approbations/tenant-ans/web"><input type="hidden" name="jeton" value="1.ab"><input type="hidden" name="action" value="approuver">"#), "{card}");
        assert_eq!(
            card.matches(r#"name="jeton" value="1.ab""#).count(),
            2,
            "{card}"
        );
        assert!(card.ends_with(r#"<label for="raison-tenant-ans-web">Raison du refus (le membre la lira)</label><textarea id="raison-tenant-ans-web" name="raison" required></textarea><button type="submit" class="deny">Refuser tenant-ans/web</button></form></section>"#), "{card}");
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
        let card = card(&r, "1.ab");
        assert!(!card.contains(r#"value="approuver""#), "{card}");
        assert!(card.contains("<p>Cette demande ne passe pas les vérifications :</p><ul><li>a &lt;reason&gt;</li></ul>"), "{card}");
        assert!(card.contains(r#"value="refuser""#), "{card}");
        assert!(
            card.contains(r#"<form method="post" action="/approbations/tenant-ans/web"><input type="hidden" name="jeton" value="1.ab"><input type="hidden" name="action" value="refuser">"#),
            "{card}"
        );
    }
}
