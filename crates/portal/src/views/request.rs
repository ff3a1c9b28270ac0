//! One request's page: its checks, decision and progress as steps, and why it
//! cannot go through if it cannot. While it is under way, the page says so
//! and offers to refresh it: it does not reload itself (a page that reloads
//! every few seconds throws a screen reader's user back to its top; WCAG
//! 2.2.1).

use serde::Serialize;

use super::reason;
use crate::html::View;
use crate::i18n::Lang;
use crate::model::{Checks, Fulfilment, Member, Request, Verdict};

#[derive(Serialize)]
struct RequestPage<'a> {
    tenant: &'a str,
    name: &'a str,
    hosts: String,
    checks: State,
    decision: Option<State>,
    /// The address of the site, once online.
    online: Option<&'a str>,
    site: Option<State>,
    in_progress: bool,
    reasons: Vec<String>,
    denied: bool,
}

/// A step's state: its words, and the class that colours them.
#[derive(Serialize, Debug, PartialEq, Eq)]
struct State {
    class: &'static str,
    text: String,
}

fn state(class: &'static str, text: String) -> Option<State> {
    Some(State { class, text })
}

/// The body of the page of `member`'s request `r` in `lang`.
pub fn request<'a>(lang: Lang, member: &'a Member, r: &'a Request) -> View {
    View::new(
        "request.html",
        RequestPage {
            tenant: &member.name,
            name: &r.name,
            hosts: r.hostnames.join(", "),
            checks: checks_state(lang, r.checks),
            decision: decision_state(lang, r),
            online: r.ready.then(|| r.host()),
            site: site_state(lang, r),
            in_progress: in_progress(r),
            reasons: r
                .reasons
                .iter()
                .map(|x| reason(lang, x, &member.domains))
                .collect(),
            denied: r.denied(),
        },
    )
}

/// Whether the request is still under way: its site is not online and it
/// is not denied.
fn in_progress(r: &Request) -> bool {
    !(r.ready || r.denied())
}

fn checks_state(lang: Lang, checks: Checks) -> State {
    let (class, key) = match checks {
        Checks::Running => ("state-wait", lang.tr("checks-running")),
        Checks::Passed => ("state-ok", lang.tr("checks-passed")),
        Checks::Failed => ("state-ko", lang.tr("checks-failed")),
    };
    State { class, text: key }
}

fn decision_state(lang: Lang, r: &Request) -> Option<State> {
    match &r.verdict {
        Verdict::ApprovedAutomatically => state("state-ok", lang.tr("decision-automatic")),
        Verdict::Approved { by } => state(
            "state-ok",
            lang.tr_with("decision-approved-by", &[("who", by.into())]),
        ),
        Verdict::Denied { by } => state(
            "state-ko",
            lang.tr_with("decision-denied-by", &[("who", by.into())]),
        ),
        Verdict::Pending if r.checks == Checks::Passed => {
            state("state-wait", lang.tr("decision-waiting"))
        }
        Verdict::Pending => None,
    }
}

/// How far the site is, before it is online.
fn site_state(lang: Lang, r: &Request) -> Option<State> {
    if r.ready {
        return None;
    }
    match r.fulfilment {
        Fulfilment::AwaitingGitOps => state("state-wait", lang.tr("site-awaiting-gitops")),
        Fulfilment::Creating => state("state-wait", lang.tr("site-creating")),
        Fulfilment::SiteDeleted => state("state-ko", lang.tr("site-deleted")),
        Fulfilment::Unknown => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::views::fixtures::{self, french};
    use mutu_api::provisioning::RequestReason;

    fn foreign() -> RequestReason {
        RequestReason {
            code: "ForeignHostname".into(),
            subject: Some("www.mons.be".into()),
            message: String::new(),
        }
    }

    fn page(r: &Request) -> String {
        french(request(Lang::Fr, &fixtures::member(), r))
    }

    #[test]
    fn a_new_request_shows_three_steps_and_how_to_follow_it() {
        let mut r = fixtures::request("web");
        r.checks = Checks::Running;
        let body = page(&r);
        assert!(body.contains("<p>Demande de site pour <strong>www.ans.be, ans.be</strong>.</p>\n<ol class=\"steps\">"), "{body}");
        assert!(body.contains(r#"<li><strong>Vérification :</strong> <span class="state-wait">en cours…</span></li>"#), "{body}");
        assert!(
            body.contains("<li><strong>Décision :</strong> —</li>"),
            "{body}"
        );
        assert!(
            body.contains("<li><strong>Mise en service :</strong> —</li>\n</ol>"),
            "{body}"
        );
        assert!(!body.contains("raisons"), "{body}");
        assert!(in_progress(&r));
        assert!(
            body.contains(r#"ne se met pas à jour d&#39;elle-même. <a href="/membres/ans/demandes/web">Actualiser la page</a></p>"#),
            "{body}"
        );
    }

    #[test]
    fn a_valid_request_waits_for_an_approver() {
        let r = fixtures::request("web");
        assert_eq!(
            checks_state(Lang::Fr, r.checks),
            State {
                class: "state-ok",
                text: "conforme".into()
            }
        );
        assert_eq!(
            decision_state(Lang::Fr, &r),
            state("state-wait", "en attente d'un approbateur".into())
        );
        assert!(page(&r).contains(
            r#"<li><strong>Vérification :</strong> <span class="state-ok">conforme</span></li>"#
        ));
    }

    #[test]
    fn who_decided_is_named_unless_it_was_mutu() {
        let mut r = fixtures::request("web");
        r.verdict = Verdict::ApprovedAutomatically;
        assert!(page(&r).contains(r#"<span class="state-ok">approuvée automatiquement</span>"#));
        r.verdict = Verdict::Approved {
            by: "marie&co".into(),
        };
        assert!(page(&r).contains(r#"<span class="state-ok">approuvée par marie&amp;co</span>"#));
        r.verdict = Verdict::Denied { by: "marie".into() };
        let body = page(&r);
        assert!(
            body.contains(r#"<span class="state-ko">refusée par marie</span>"#),
            "{body}"
        );
        assert!(!in_progress(&r));
        assert!(!body.contains("Actualiser"), "{body}");
        assert_eq!(
            decision_state(Lang::De, &r),
            state("state-ko", "abgelehnt von marie".into())
        );
    }

    #[test]
    fn the_sites_progress_ends_with_its_address() {
        let mut r = fixtures::request("web");
        r.fulfilment = Fulfilment::AwaitingGitOps;
        assert!(page(&r).contains("ajoute le site à sa configuration"));
        r.fulfilment = Fulfilment::Creating;
        assert!(page(&r).contains("création du site en cours…"));
        r.fulfilment = Fulfilment::SiteDeleted;
        assert!(page(&r).contains(r#"class="state-ko">le site a été supprimé depuis"#));
        r.ready = true;
        let body = page(&r);
        assert!(body.contains(
            r#"<li><strong>Mise en service :</strong> <span class="state-ok">votre site est en ligne : <a href="https://www.ans.be/">https://www.ans.be/</a></span></li>"#
        ), "{body}");
        assert!(!in_progress(&r));
        let body = fixtures::body(&fixtures::page(
            Lang::En,
            request(Lang::En, &fixtures::member(), &r),
        ))
        .to_string();
        assert!(body.contains(
            r#"<span class="state-ok">your site is online: <a href="https://www.ans.be/">https://www.ans.be/</a></span>"#
        ), "{body}");
    }

    #[test]
    fn reasons_are_explained_with_the_members_domains_and_a_new_request_offered() {
        let mut r = fixtures::request("web");
        r.checks = Checks::Failed;
        r.reasons = vec![foreign()];
        let body = page(&r);
        assert!(body.contains(r#"<h2 id="raisons">"#), "{body}");
        assert!(
            body.contains("n&#39;appartient pas aux domaines de votre membre (ans.be)"),
            "{body}"
        );
        assert!(
            body.contains(
                r#"<p><a href="/membres/ans/demander">Faire une nouvelle demande</a></p>"#
            ),
            "{body}"
        );
    }

    #[test]
    fn a_denied_request_offers_no_new_one() {
        let mut r = fixtures::request("web");
        r.verdict = Verdict::Denied { by: "marie".into() };
        r.reasons = vec![foreign()];
        let body = page(&r);
        assert!(body.contains("raisons"), "{body}");
        assert!(!body.contains("Faire une nouvelle demande"), "{body}");
    }
}
