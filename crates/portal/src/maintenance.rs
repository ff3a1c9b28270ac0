//! The page the public sees while a site is in maintenance, as `mutu
//! maintenance-page` serves it: in the visitor's language (see
//! [`crate::i18n::negotiate`]), with a line in each other one, from the same
//! translation files and templates as the portal (so the server needs
//! nothing the `mutu` binary does not have already).

use minijinja::context;

use crate::html;
use crate::i18n::Lang;

/// The page in `lang`, naming `host` (a `Host` header's name) if there is one.
pub fn page(lang: Lang, host: Option<&str>) -> Result<String, minijinja::Error> {
    let others: Vec<&str> = Lang::ALL
        .into_iter()
        .filter(|l| *l != lang)
        .map(Lang::code)
        .collect();
    html::render(
        "maintenance.html",
        context! {
            lang => lang.code(),
            host => host.unwrap_or_default(),
            others,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(lang: Lang, host: Option<&str>) -> String {
        page(lang, host).unwrap_or_else(|e| panic!("{e:#}"))
    }

    #[test]
    fn the_page_is_in_the_language_asked_with_a_line_in_the_others() {
        let p = render(Lang::De, Some("www.eupen.be"));
        assert!(p.starts_with("<!DOCTYPE html>\n<html lang=\"de\">"), "{p}");
        assert!(p.contains("<title>Website in Wartung</title>"), "{p}");
        assert!(
            p.contains("<p>Die Website <strong>www.eupen.be</strong> wird gerade"),
            "{p}"
        );
        assert!(
            p.contains(r#"<p lang="fr">Le site <strong>www.eupen.be</strong> est en cours"#),
            "{p}"
        );
        assert!(
            p.contains(r#"<p lang="en">The site <strong>www.eupen.be</strong> is being moved"#),
            "{p}"
        );
        assert!(!p.contains(r#"<p lang="de">"#), "{p}");
        for lang in Lang::ALL {
            for host in [None, Some("a.be")] {
                let p = render(lang, host);
                assert!(!p.contains('⟦'), "{p}");
                assert!(!p.contains("none"), "{p}");
            }
        }
    }

    #[test]
    fn without_a_host_the_page_says_this_site() {
        let p = render(Lang::En, None);
        assert!(p.contains("<p>This site is being moved"), "{p}");
        assert!(p.contains(r#"<p lang="fr">Ce site est en cours"#), "{p}");
        assert!(!p.contains("<strong>"), "{p}");
    }

    #[test]
    fn the_host_is_escaped_in_every_language() {
        let p = render(Lang::Fr, Some("<script>alert(1)</script>.be"));
        assert!(!p.contains("<script>"), "{p}");
        assert_eq!(
            p.matches("<strong>&lt;script&gt;alert(1)&lt;/script&gt;.be</strong>")
                .count(),
            3,
            "{p}"
        );
    }
}
