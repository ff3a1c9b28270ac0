//! "Mes sites": a member's sites (address, product, release, state,
//! certificate, last backup) and its requests.

use serde::Serialize;

use super::day;
use crate::html::View;
use crate::i18n::Lang;
use crate::model::{Member, ProductNames, Request, Site, SiteState, Verdict};

#[derive(Serialize)]
struct Sites<'a> {
    tenant: &'a str,
    display_name: &'a str,
    sites: Vec<Row<'a>>,
    requests: Vec<RequestLine<'a>>,
}

/// A site as its row shows it.
#[derive(Serialize)]
struct Row<'a> {
    host: &'a str,
    product: &'a str,
    release: &'a str,
    class: &'static str,
    state: String,
    certificate: String,
    backup: String,
}

#[derive(Serialize)]
struct RequestLine<'a> {
    name: &'a str,
    host: &'a str,
    state: String,
}

/// The body of the page of `member`'s `sites` and `requests` in `lang`;
/// `names` are the products' names in the catalog.
pub fn sites(
    lang: Lang,
    member: &Member,
    sites: &[Site],
    names: &ProductNames,
    requests: &[Request],
) -> View {
    View::new(
        "sites.html",
        Sites {
            tenant: &member.name,
            display_name: &member.display_name,
            sites: sites.iter().map(|s| row(lang, s, names)).collect(),
            requests: requests
                .iter()
                .map(|r| RequestLine {
                    name: &r.name,
                    host: r.host(),
                    state: request_state(lang, r),
                })
                .collect(),
        },
    )
}

fn row<'a>(lang: Lang, s: &'a Site, names: &'a ProductNames) -> Row<'a> {
    let (class, state) = match s.state {
        SiteState::Online => ("state-ok", lang.tr("site-online")),
        SiteState::Deleting => ("state-ko", lang.tr("site-deleting")),
        SiteState::Preparing => ("state-wait", lang.tr("site-preparing")),
    };
    Row {
        host: &s.host,
        product: names.get(&s.product).unwrap_or(&s.product),
        release: s.release.as_deref().unwrap_or("—"),
        class,
        state,
        certificate: s
            .certificate_expiry
            .as_ref()
            .map(|t| lang.tr_with("site-certificate-expires", &[("date", day(lang, t).into())]))
            .unwrap_or_else(|| "—".to_string()),
        backup: s
            .last_backup
            .as_ref()
            .map(|t| day(lang, t))
            .unwrap_or_else(|| lang.tr("site-no-backup")),
    }
}

/// A request's state in a few words.
fn request_state(lang: Lang, r: &Request) -> String {
    if r.ready {
        return lang.tr("request-state-online");
    }
    match r.verdict {
        Verdict::Denied { .. } => lang.tr("request-state-denied"),
        Verdict::Approved { .. } | Verdict::ApprovedAutomatically => {
            lang.tr("request-state-approved")
        }
        Verdict::Pending if !r.reasons.is_empty() => lang.tr("request-state-to-correct"),
        Verdict::Pending => lang.tr("request-state-pending"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::views::fixtures::{self, french};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use mutu_api::provisioning::RequestReason;

    fn time(text: &str) -> Time {
        serde_json::from_value(serde_json::json!(text)).unwrap_or_else(|e| panic!("{e}"))
    }

    fn site(host: &str, state: SiteState) -> Site {
        Site {
            host: host.into(),
            product: "web".into(),
            release: None,
            state,
            certificate_expiry: None,
            last_backup: None,
        }
    }

    fn names() -> ProductNames {
        ProductNames::from([("web".to_string(), "Site web".to_string())])
    }

    fn page(sites_: &[Site], requests: &[Request]) -> String {
        french(sites(
            Lang::Fr,
            &fixtures::member(),
            sites_,
            &names(),
            requests,
        ))
    }

    #[test]
    fn a_member_without_sites_or_requests_is_told_so() {
        let body = page(&[], &[]);
        assert!(
            body.contains("</h1>\n<nav aria-label=\"Pages du membre\">"),
            "{body}"
        );
        assert!(body.contains("<p>Commune d&#39;Ans</p>"), "{body}");
        assert!(body.contains("pas encore de site"), "{body}");
        assert!(!body.contains("<table>"), "{body}");
        assert!(!body.contains("Mes demandes"), "{body}");
    }

    #[test]
    fn a_site_row_shows_its_product_release_state_certificate_and_backup() {
        let mut s = site("www.ans.be", SiteState::Online);
        s.release = Some("6.1".into());
        s.certificate_expiry = Some(time("2025-06-07T08:00:00Z"));
        s.last_backup = Some(time("2025-02-03T04:05:06Z"));
        let body = page(std::slice::from_ref(&s), &[]);
        assert!(body.contains(
            r#"<tr><td><a href="https://www.ans.be/">www.ans.be</a></td><td>Site web</td><td>6.1</td><td class="state-ok">En ligne</td><td>expire le 07/06/2025</td><td>03/02/2025</td></tr>"#
        ), "{body}");
        let body = fixtures::body(&fixtures::page(
            Lang::De,
            sites(Lang::De, &fixtures::member(), &[s], &names(), &[]),
        ))
        .to_string();
        assert!(body.contains(
            r#"<td class="state-ok">Online</td><td>läuft am 07.06.2025 ab</td><td>03.02.2025</td>"#
        ), "{body}");
        assert!(
            body.contains("<th scope=\"col\">Letzte Sicherung</th>"),
            "{body}"
        );
    }

    #[test]
    fn a_site_row_without_details_says_so() {
        let mut s = site("a<b", SiteState::Deleting);
        s.product = "x".into();
        let body = page(&[s, site("w", SiteState::Preparing)], &[]);
        assert!(
            body.contains(r#"<a href="https://a&lt;b/">a&lt;b</a>"#),
            "{body}"
        );
        assert!(body.contains("<td>x</td><td>—</td>"), "{body}");
        assert!(
            body.contains(r#"<td class="state-ko">En suppression</td><td>—</td><td>aucune</td>"#),
            "{body}"
        );
        assert!(
            body.contains(r#"<td class="state-wait">En préparation</td>"#),
            "{body}"
        );
    }

    #[test]
    fn the_table_has_a_caption_and_a_row_per_site() {
        let body = page(
            &[
                site("a.ans.be", SiteState::Online),
                site("b.ans.be", SiteState::Preparing),
            ],
            &[],
        );
        assert!(body.contains(r#"<caption class="skip">Sites du membre</caption>"#));
        assert_eq!(body.matches("<tr><td>").count(), 2, "{body}");
        assert!(body.contains("</tbody>\n</table></div>"), "{body}");
    }

    #[test]
    fn requests_link_to_their_page_with_their_state() {
        let body = page(&[], &[fixtures::request("web-2")]);
        assert!(body.contains(
            "<h2>Mes demandes</h2>\n<ul>\n<li><a href=\"/membres/ans/demandes/web-2\">www.ans.be</a> — en attente d&#39;approbation</li>\n</ul>"
        ), "{body}");
    }

    #[test]
    fn a_requests_state_puts_online_first_then_the_decision() {
        let lang = Lang::Fr;
        let mut r = fixtures::request("web");
        assert_eq!(request_state(lang, &r), "en attente d'approbation");
        r.reasons.push(RequestReason {
            code: "HostnameTaken".into(),
            subject: None,
            message: String::new(),
        });
        assert_eq!(request_state(lang, &r), "à corriger");
        r.verdict = Verdict::ApprovedAutomatically;
        assert_eq!(
            request_state(lang, &r),
            "approuvée, mise en service en cours"
        );
        r.verdict = Verdict::Denied { by: "marie".into() };
        assert_eq!(request_state(lang, &r), "refusée");
        assert_eq!(request_state(Lang::De, &r), "abgelehnt");
        r.ready = true;
        assert_eq!(request_state(lang, &r), "site en ligne");
    }
}
