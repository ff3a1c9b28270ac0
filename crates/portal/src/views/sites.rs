//! "Mes sites": a member's sites (address, product, release, state,
//! certificate, last backup) and its requests.

use super::{day, member_nav};
use crate::html::esc;
use crate::model::{Member, ProductNames, Request, Site, SiteState, Verdict};

/// The body of the page of `member`'s `sites` and `requests`; `names` are
/// the products' names in the catalog.
pub fn sites(
    member: &Member,
    sites: &[Site],
    names: &ProductNames,
    requests: &[Request],
) -> String {
    let mut body = member_nav(&member.name);
    body.push_str(&format!("<p>{}</p>", esc(&member.display_name)));
    if sites.is_empty() {
        body.push_str("<p>Votre membre n'a pas encore de site.</p>");
    } else {
        body.push_str(&sites_table(sites, names));
    }
    if !requests.is_empty() {
        body.push_str(&requests_list(&member.name, requests));
    }
    body
}

fn sites_table(sites: &[Site], names: &ProductNames) -> String {
    let mut table = String::from(
        r#"<div class="table"><table><caption class="skip">Sites du membre</caption><thead><tr><th scope="col">Adresse</th><th scope="col">Produit</th><th scope="col">Version</th><th scope="col">État</th><th scope="col">Certificat</th><th scope="col">Dernière sauvegarde</th></tr></thead><tbody>"#,
    );
    for s in sites {
        table.push_str(&site_row(s, names));
    }
    table.push_str("</tbody></table></div>");
    table
}

fn site_row(s: &Site, names: &ProductNames) -> String {
    let (class, state) = match s.state {
        SiteState::Online => ("state-ok", "En ligne"),
        SiteState::Deleting => ("state-ko", "En suppression"),
        SiteState::Preparing => ("state-wait", "En préparation"),
    };
    let cert = s
        .certificate_expiry
        .as_ref()
        .map(|t| format!("expire le {}", day(t)))
        .unwrap_or_else(|| "—".to_string());
    let backup = s
        .last_backup
        .as_ref()
        .map(day)
        .unwrap_or_else(|| "aucune".to_string());
    format!(
        r#"<tr><td><a href="https://{host}/">{host}</a></td><td>{product}</td><td>{release}</td><td class="{class}">{state}</td><td>{cert}</td><td>{backup}</td></tr>"#,
        host = esc(&s.host),
        product = esc(names.get(&s.product).unwrap_or(&s.product)),
        release = esc(s.release.as_deref().unwrap_or("—")),
    )
}

fn requests_list(tenant: &str, requests: &[Request]) -> String {
    let mut list = String::from("<h2>Mes demandes</h2><ul>");
    for r in requests {
        list.push_str(&format!(
            r#"<li><a href="/membres/{t}/demandes/{n}">{host}</a> — {state}</li>"#,
            t = esc(tenant),
            n = esc(&r.name),
            host = esc(r.host()),
            state = esc(request_state(r)),
        ));
    }
    list.push_str("</ul>");
    list
}

/// A request's state in a few words.
fn request_state(r: &Request) -> &'static str {
    if r.ready {
        return "site en ligne";
    }
    match r.verdict {
        Verdict::Denied { .. } => "refusée",
        Verdict::Approved { .. } | Verdict::ApprovedAutomatically => {
            "approuvée, mise en service en cours"
        }
        Verdict::Pending if !r.reasons.is_empty() => "à corriger",
        Verdict::Pending => "en attente d'approbation",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::views::fixtures;
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

    #[test]
    fn a_member_without_sites_or_requests_is_told_so() {
        let body = sites(&fixtures::member(), &[], &names(), &[]);
        assert!(
            body.starts_with(r#"<nav aria-label="Pages du membre">"#),
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
        assert_eq!(
            site_row(&s, &names()),
            r#"<tr><td><a href="https://www.ans.be/">www.ans.be</a></td><td>Site web</td><td>6.1</td><td class="state-ok">En ligne</td><td>expire le 07/06/2025</td><td>03/02/2025</td></tr>"#
        );
    }

    #[test]
    fn a_site_row_without_details_says_so() {
        let mut s = site("a<b", SiteState::Deleting);
        s.product = "x".into();
        let row = site_row(&s, &names());
        assert!(
            row.contains(r#"<a href="https://a&lt;b/">a&lt;b</a>"#),
            "{row}"
        );
        assert!(row.contains("<td>x</td><td>—</td>"), "{row}");
        assert!(
            row.contains(r#"<td class="state-ko">En suppression</td><td>—</td><td>aucune</td>"#),
            "{row}"
        );
        let row = site_row(&site("w", SiteState::Preparing), &names());
        assert!(
            row.contains(r#"<td class="state-wait">En préparation</td>"#),
            "{row}"
        );
    }

    #[test]
    fn the_table_has_a_caption_and_a_row_per_site() {
        let table = sites_table(
            &[
                site("a.ans.be", SiteState::Online),
                site("b.ans.be", SiteState::Preparing),
            ],
            &names(),
        );
        assert!(table.contains(r#"<caption class="skip">Sites du membre</caption>"#));
        assert_eq!(table.matches("<tr><td>").count(), 2, "{table}");
        assert!(table.ends_with("</tbody></table></div>"));
    }

    #[test]
    fn requests_link_to_their_page_with_their_state() {
        let body = sites(
            &fixtures::member(),
            &[],
            &names(),
            &[fixtures::request("web-2")],
        );
        assert!(body.contains(
            r#"<h2>Mes demandes</h2><ul><li><a href="/membres/ans/demandes/web-2">www.ans.be</a> — en attente d&#39;approbation</li></ul>"#
        ), "{body}");
    }

    #[test]
    fn a_requests_state_puts_online_first_then_the_decision() {
        let mut r = fixtures::request("web");
        assert_eq!(request_state(&r), "en attente d'approbation");
        r.reasons.push(RequestReason {
            code: "HostnameTaken".into(),
            subject: None,
            message: String::new(),
        });
        assert_eq!(request_state(&r), "à corriger");
        r.verdict = Verdict::ApprovedAutomatically;
        assert_eq!(request_state(&r), "approuvée, mise en service en cours");
        r.verdict = Verdict::Denied { by: "marie".into() };
        assert_eq!(request_state(&r), "refusée");
        r.ready = true;
        assert_eq!(request_state(&r), "site en ligne");
    }
}
