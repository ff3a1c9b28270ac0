//! The pages' bodies: from the values of [`crate::model`] to what their
//! templates (`templates/*.html`) show, with the words that depend on those
//! values (states, reasons, dates) in the page's language. Escaping is the
//! templates': every value is escaped unless a template makes it markup.

mod approvals;
mod ask;
mod home;
mod request;
mod sites;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use mutu_api::provisioning::RequestReason;
use serde::Serialize;

use crate::html::View;
use crate::i18n::Lang;

pub use approvals::{Done, approvals};
pub use ask::ask;
pub use home::home;
pub use request::request;
pub use sites::sites;

/// A date as the pages show it in `lang`: 07/06/2025, 07.06.2025.
fn day(lang: Lang, t: &Time) -> String {
    t.0.strftime(lang.date_format()).to_string()
}

#[derive(Serialize)]
struct Refusal {
    text: String,
    back_to_approvals: bool,
}

/// An error, and the way back to the home page.
pub fn refusal(text: String) -> View {
    View::new(
        "refusal.html",
        Refusal {
            text,
            back_to_approvals: false,
        },
    )
}

/// An error about a decision, and the way back to the approvals.
pub fn decision_refused(text: String) -> View {
    View::new(
        "refusal.html",
        Refusal {
            text,
            back_to_approvals: true,
        },
    )
}

/// One reason a request is refused, in plain words in `lang`. `domains` are
/// the member's domains, for a hostname outside them.
pub fn reason(lang: Lang, r: &RequestReason, domains: &[String]) -> String {
    let s = r.subject.as_deref().unwrap_or_default();
    match r.code.as_str() {
        "NoTenant" => lang.tr("reason-no-tenant"),
        "TenantNotReady" => lang.tr("reason-tenant-not-ready"),
        "UnknownProduct" => lang.tr_with("reason-unknown-product", &[("product", s.into())]),
        "NotEntitled" => lang.tr_with("reason-not-entitled", &[("product", s.into())]),
        "OverEntitlement" => lang.tr_with("reason-over-entitlement", &[("product", s.into())]),
        "ForeignHostname" if domains.is_empty() => {
            lang.tr_with("reason-foreign-hostname", &[("address", s.into())])
        }
        "ForeignHostname" => lang.tr_with(
            "reason-foreign-hostname-domains",
            &[
                ("address", s.into()),
                ("domains", domains.join(", ").into()),
            ],
        ),
        "HostnameTaken" => lang.tr_with("reason-hostname-taken", &[("address", s.into())]),
        "SiteNameTaken" => lang.tr_with("reason-site-name-taken", &[("name", s.into())]),
        "InvalidSiteName" => lang.tr_with("reason-invalid-site-name", &[("name", s.into())]),
        "ReplicasOutOfRange" => {
            lang.tr_with("reason-replicas-out-of-range", &[("replicas", s.into())])
        }
        "QuotaExceeded" => lang.tr_with("reason-quota-exceeded", &[("resource", s.into())]),
        "Denied" => {
            // "denied by WHO: WHY" from mutu; the reason itself is the approver's words.
            let why = r.message.split_once(": ").map(|(_, w)| w).unwrap_or("");
            if why.is_empty() {
                lang.tr_with("reason-denied", &[("who", s.into())])
            } else {
                lang.tr_with(
                    "reason-denied-why",
                    &[("who", s.into()), ("why", why.into())],
                )
            }
        }
        // A reason this portal does not know yet: mutu's own words.
        _ => r.message.clone(),
    }
}

/// Values and a frame for the views' tests.
#[cfg(test)]
pub(crate) mod fixtures {
    use std::collections::BTreeMap;

    use crate::html::{self, Frame, Title, View};
    use crate::i18n::Lang;
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

    /// `view` as a whole page in `lang`, checked for texts without a translation.
    pub fn page(lang: Lang, view: View) -> String {
        let frame = Frame {
            lang,
            switch_to: "/",
            title: Title("title-home"),
            who: Some("agent@ans.be"),
        };
        let page = html::page(&frame, view).unwrap_or_else(|e| panic!("{e:#}"));
        assert!(!page.contains('⟦'), "a text without translation in {page}");
        page
    }

    /// The page's body: what is in `<main>`.
    pub fn body(page: &str) -> &str {
        page.split_once("<main id=\"contenu\">")
            .and_then(|(_, rest)| rest.split_once("</main>"))
            .map(|(body, _)| body)
            .unwrap_or_else(|| panic!("no main in {page}"))
    }

    /// The body of `view` in French.
    pub fn french(view: View) -> String {
        body(&page(Lang::Fr, view)).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::views::fixtures;

    #[test]
    fn dates_are_written_as_each_language_writes_them() {
        let t: Time = serde_json::from_value(serde_json::json!("2025-06-07T08:00:00Z"))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(day(Lang::Fr, &t), "07/06/2025");
        assert_eq!(day(Lang::De, &t), "07.06.2025");
        assert_eq!(day(Lang::En, &t), "07/06/2025");
    }

    #[test]
    fn refusals_are_alerts_with_a_way_back() {
        let body = fixtures::french(refusal("Non <b>".into()));
        assert_eq!(
            body.trim(),
            "<h1>Accueil</h1>\n<div class=\"error\" role=\"alert\">Non &lt;b&gt;</div>\n<p><a href=\"/\">Retour à l&#39;accueil</a></p>"
        );
        let body = fixtures::french(decision_refused("x".into()));
        assert!(
            body.trim_end()
                .ends_with(r#"<p><a href="/approbations">Retour aux demandes</a></p>"#),
            "{body}"
        );
        let body =
            fixtures::body(&fixtures::page(Lang::De, decision_refused("x".into()))).to_string();
        assert!(body.contains("Zurück zu den Anträgen"), "{body}");
    }

    fn reason_of(code: &str, subject: Option<&str>, message: &str) -> RequestReason {
        RequestReason {
            code: code.into(),
            subject: subject.map(str::to_string),
            message: message.into(),
        }
    }

    #[test]
    fn a_foreign_hostname_is_explained_naming_the_domains() {
        let r = reason_of(
            "ForeignHostname",
            Some("www.ans.be"),
            "spec.hostnames: www.ans.be is not under the member's domains (mons.be)",
        );
        let text = reason(Lang::Fr, &r, &["mons.be".to_string()]);
        assert_eq!(
            text,
            "L'adresse « www.ans.be » n'appartient pas aux domaines de votre membre (mons.be) ; choisissez une adresse sous l'un d'eux."
        );
        let text = reason(Lang::De, &r, &["mons.be".to_string()]);
        assert!(
            text.starts_with(
                "Die Adresse „www.ans.be“ gehört nicht zu den Domains Ihres Mitglieds (mons.be)"
            ),
            "{text}"
        );
        assert_eq!(
            reason(Lang::En, &r, &[]),
            "The address “www.ans.be” is not under your member's domains."
        );
    }

    #[test]
    fn a_denial_gives_the_approvers_words() {
        let r = reason_of(
            "Denied",
            Some("marie@imio.be"),
            "denied by marie@imio.be: un seul site par commune",
        );
        assert_eq!(
            reason(Lang::Fr, &r, &[]),
            "Demande refusée par marie@imio.be : un seul site par commune"
        );
        assert_eq!(
            reason(Lang::De, &r, &[]),
            "Antrag abgelehnt von marie@imio.be: un seul site par commune"
        );
        let r = reason_of("Denied", Some("marie@imio.be"), "denied by marie@imio.be");
        assert_eq!(
            reason(Lang::En, &r, &[]),
            "Request denied by marie@imio.be."
        );
    }

    #[test]
    fn every_reason_has_its_words_in_every_language() {
        let codes = [
            "NoTenant",
            "TenantNotReady",
            "UnknownProduct",
            "NotEntitled",
            "OverEntitlement",
            "ForeignHostname",
            "HostnameTaken",
            "SiteNameTaken",
            "InvalidSiteName",
            "ReplicasOutOfRange",
            "QuotaExceeded",
            "Denied",
        ];
        for lang in Lang::ALL {
            for code in codes {
                let text = reason(lang, &reason_of(code, Some("x"), "mutu's words"), &[]);
                assert!(!text.contains('⟦'), "{code}: {text}");
                assert_ne!(text, "mutu's words", "{code}");
            }
            let quota = |s| reason(lang, &reason_of("QuotaExceeded", s, ""), &[]);
            assert_ne!(quota(Some("memory")), quota(Some("CPU")));
            assert_eq!(quota(None), quota(Some("gpu")));
        }
        // A reason the portal does not know: mutu's words.
        assert_eq!(
            reason(Lang::De, &reason_of("Other", None, "mutu's words"), &[]),
            "mutu's words"
        );
    }

    /// What a member (or anyone writing to its objects) could try to slip in.
    const SCRIPT: &str = "<script>alert(1)</script>";

    #[test]
    fn a_script_in_member_input_is_escaped_on_every_page() {
        use crate::form::AskForm;
        use crate::model::{Checks, MemberLink, ProductNames, Site, SiteState, Verdict};

        let mut member = fixtures::member();
        member.display_name = format!("Ans {SCRIPT}");
        member.domains = vec![format!("{SCRIPT}.be")];
        let names = ProductNames::from([("web".to_string(), SCRIPT.to_string())]);
        let site = Site {
            host: SCRIPT.into(),
            product: "web".into(),
            release: Some(SCRIPT.into()),
            state: SiteState::Online,
            certificate_expiry: None,
            last_backup: None,
        };
        let mut asked = fixtures::request("web");
        asked.hostnames = vec![SCRIPT.into()];
        asked.comment = Some(SCRIPT.into());
        asked.product = SCRIPT.into();
        asked.checks = Checks::Failed;
        asked.reasons = vec![
            RequestReason {
                code: "ForeignHostname".into(),
                subject: Some(SCRIPT.into()),
                message: String::new(),
            },
            RequestReason {
                code: "Other".into(),
                subject: None,
                message: SCRIPT.into(),
            },
        ];
        let mut denied = asked.clone();
        denied.verdict = Verdict::Denied { by: SCRIPT.into() };
        denied.reasons = vec![RequestReason {
            code: "Denied".into(),
            subject: Some(SCRIPT.into()),
            message: format!("denied by x: {SCRIPT}"),
        }];
        let mut online = asked.clone();
        online.ready = true;
        let form = AskForm {
            produit: Some(SCRIPT.into()),
            adresse: Some(SCRIPT.into()),
            alias: Some(SCRIPT.into()),
            langue: Some(SCRIPT.into()),
            commentaire: Some(SCRIPT.into()),
            jeton: Some(SCRIPT.into()),
        };
        let links = [MemberLink {
            name: SCRIPT.into(),
            display_name: SCRIPT.into(),
        }];
        for lang in Lang::ALL {
            let error = crate::form::Invalid::Hostname(SCRIPT.into()).text(lang);
            let pages = [
                ("home", home(&links, true)),
                (
                    "sites",
                    sites(
                        lang,
                        &member,
                        std::slice::from_ref(&site),
                        &names,
                        std::slice::from_ref(&asked),
                    ),
                ),
                ("ask", ask(&member, &names, &form, Some(&error), SCRIPT)),
                ("request", request(lang, &member, &asked)),
                ("denied request", request(lang, &member, &denied)),
                ("online request", request(lang, &member, &online)),
                (
                    "approvals",
                    approvals(
                        lang,
                        std::slice::from_ref(&asked),
                        Some(Done {
                            request: SCRIPT,
                            denied: true,
                        }),
                        SCRIPT,
                    ),
                ),
                ("refusal", refusal(SCRIPT.into())),
                ("decision refused", decision_refused(SCRIPT.into())),
            ];
            for (what, view) in pages {
                let page = fixtures::page(lang, view);
                assert!(!page.contains("<script"), "{what} in {lang:?}: {page}");
                assert!(
                    page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
                    "{what} in {lang:?}: {page}"
                );
            }
        }
    }
}
