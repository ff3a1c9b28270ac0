//! One request's page: its checks, decision and progress as steps, and why it
//! cannot go through if it cannot.

use super::member_nav;
use crate::html::{self, esc};
use crate::model::{Checks, Fulfilment, Member, Request, Verdict};

/// The body of the page of `member`'s request `r`.
pub fn request(member: &Member, r: &Request) -> String {
    let mut body = member_nav(&member.name);
    body.push_str(&format!(
        "<p>Demande de site pour <strong>{}</strong>.</p><ol class=\"steps\">",
        esc(&r.hostnames.join(", "))
    ));
    body.push_str(&checks_step(r.checks));
    body.push_str(&format!(
        "<li><strong>Décision :</strong> {}</li>",
        decision_state(r)
    ));
    body.push_str(&format!(
        "<li><strong>Mise en service :</strong> {}</li></ol>",
        site_state(r)
    ));
    if !r.reasons.is_empty() {
        body.push_str(&reasons(member, r));
    }
    body
}

/// After how many seconds the page reloads itself: never once the site is
/// online or the request denied, less often while it must be corrected.
pub fn refresh(r: &Request) -> Option<u32> {
    if r.ready || r.denied() {
        None
    } else if r.checks == Checks::Failed {
        Some(10)
    } else {
        Some(5)
    }
}

fn checks_step(checks: Checks) -> String {
    let (class, text) = match checks {
        Checks::Running => ("state-wait", "en cours…"),
        Checks::Passed => ("state-ok", "conforme"),
        Checks::Failed => ("state-ko", "à corriger"),
    };
    format!(r#"<li><strong>Vérification :</strong> <span class="{class}">{text}</span></li>"#)
}

fn decision_state(r: &Request) -> String {
    match &r.verdict {
        Verdict::ApprovedAutomatically => {
            r#"<span class="state-ok">approuvée automatiquement</span>"#.to_string()
        }
        Verdict::Approved { by } => {
            format!(r#"<span class="state-ok">approuvée par {}</span>"#, esc(by))
        }
        Verdict::Denied { by } => {
            format!(r#"<span class="state-ko">refusée par {}</span>"#, esc(by))
        }
        Verdict::Pending if r.checks == Checks::Passed => {
            r#"<span class="state-wait">en attente d'un approbateur</span>"#.to_string()
        }
        Verdict::Pending => "—".to_string(),
    }
}

fn site_state(r: &Request) -> String {
    if r.ready {
        let url = format!("https://{}/", r.host());
        return format!(
            r#"<span class="state-ok">votre site est en ligne : <a href="{u}">{u}</a></span>"#,
            u = esc(&url)
        );
    }
    match r.fulfilment {
        Fulfilment::AwaitingGitOps => {
            r#"<span class="state-wait">la coopérative ajoute le site à sa configuration</span>"#
                .to_string()
        }
        Fulfilment::Creating => {
            r#"<span class="state-wait">création du site en cours…</span>"#.to_string()
        }
        Fulfilment::SiteDeleted => {
            r#"<span class="state-ko">le site a été supprimé depuis</span>"#.to_string()
        }
        Fulfilment::Unknown => "—".to_string(),
    }
}

/// Why the request cannot go through, and (unless denied) a link to make
/// another.
fn reasons(member: &Member, r: &Request) -> String {
    let mut text = String::from(
        r#"<h2 id="raisons">Pourquoi la demande ne peut pas aboutir</h2><ul aria-labelledby="raisons">"#,
    );
    for reason in &r.reasons {
        text.push_str(&format!(
            "<li>{}</li>",
            esc(&html::reason(reason, &member.domains))
        ));
    }
    text.push_str("</ul>");
    if !r.denied() {
        text.push_str(&format!(
            r#"<p><a href="/membres/{}/demander">Faire une nouvelle demande</a></p>"#,
            esc(&member.name)
        ));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::views::fixtures;
    use mutu_api::provisioning::RequestReason;

    fn foreign() -> RequestReason {
        RequestReason {
            code: "ForeignHostname".into(),
            subject: Some("www.mons.be".into()),
            message: String::new(),
        }
    }

    #[test]
    fn a_new_request_shows_three_steps_and_reloads() {
        let mut r = fixtures::request("web");
        r.checks = Checks::Running;
        let body = request(&fixtures::member(), &r);
        assert!(body.contains("<p>Demande de site pour <strong>www.ans.be, ans.be</strong>.</p><ol class=\"steps\">"), "{body}");
        assert!(body.contains(r#"<li><strong>Vérification :</strong> <span class="state-wait">en cours…</span></li>"#), "{body}");
        assert!(
            body.contains("<li><strong>Décision :</strong> —</li>"),
            "{body}"
        );
        assert!(
            body.contains("<li><strong>Mise en service :</strong> —</li></ol>"),
            "{body}"
        );
        assert!(!body.contains("raisons"), "{body}");
        assert_eq!(refresh(&r), Some(5));
    }

    #[test]
    fn a_valid_request_waits_for_an_approver() {
        let r = fixtures::request("web");
        assert_eq!(
            checks_step(r.checks),
            r#"<li><strong>Vérification :</strong> <span class="state-ok">conforme</span></li>"#
        );
        assert_eq!(
            decision_state(&r),
            r#"<span class="state-wait">en attente d'un approbateur</span>"#
        );
    }

    #[test]
    fn who_decided_is_named_unless_it_was_mutu() {
        let mut r = fixtures::request("web");
        r.verdict = Verdict::ApprovedAutomatically;
        assert_eq!(
            decision_state(&r),
            r#"<span class="state-ok">approuvée automatiquement</span>"#
        );
        r.verdict = Verdict::Approved {
            by: "marie&co".into(),
        };
        assert_eq!(
            decision_state(&r),
            r#"<span class="state-ok">approuvée par marie&amp;co</span>"#
        );
        r.verdict = Verdict::Denied { by: "marie".into() };
        assert_eq!(
            decision_state(&r),
            r#"<span class="state-ko">refusée par marie</span>"#
        );
        assert_eq!(refresh(&r), None);
    }

    #[test]
    fn the_sites_progress_ends_with_its_address() {
        let mut r = fixtures::request("web");
        r.fulfilment = Fulfilment::AwaitingGitOps;
        assert!(site_state(&r).contains("ajoute le site à sa configuration"));
        r.fulfilment = Fulfilment::Creating;
        assert!(site_state(&r).contains("création du site en cours…"));
        r.fulfilment = Fulfilment::SiteDeleted;
        assert!(site_state(&r).contains(r#"class="state-ko">le site a été supprimé depuis"#));
        r.ready = true;
        assert_eq!(
            site_state(&r),
            r#"<span class="state-ok">votre site est en ligne : <a href="https://www.ans.be/">https://www.ans.be/</a></span>"#
        );
        assert_eq!(refresh(&r), None);
    }

    #[test]
    fn reasons_are_explained_with_the_members_domains_and_a_new_request_offered() {
        let mut r = fixtures::request("web");
        r.checks = Checks::Failed;
        r.reasons = vec![foreign()];
        let body = request(&fixtures::member(), &r);
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
        assert_eq!(refresh(&r), Some(10));
    }

    #[test]
    fn a_denied_request_offers_no_new_one() {
        let mut r = fixtures::request("web");
        r.verdict = Verdict::Denied { by: "marie".into() };
        r.reasons = vec![foreign()];
        let body = request(&fixtures::member(), &r);
        assert!(body.contains("raisons"), "{body}");
        assert!(!body.contains("Faire une nouvelle demande"), "{body}");
    }
}
