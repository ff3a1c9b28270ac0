//! "Demander un site": the request form, offering the products the member
//! may still have, filled in again with what was sent when it is refused.

use serde::Serialize;

use crate::form::AskForm;
use crate::html::View;
use crate::model::{Member, ProductNames};

/// The languages a site may have, as the form offers them: by their names
/// in themselves (the same in every language of the portal).
const LANGUAGES: [(&str, &str); 4] = [
    ("fr", "Français"),
    ("de", "Deutsch"),
    ("nl", "Nederlands"),
    ("en", "English"),
];

#[derive(Serialize)]
struct Ask<'a> {
    tenant: &'a str,
    error: Option<&'a str>,
    products: Vec<ProductOption<'a>>,
    site_languages: Vec<LanguageOption>,
    domains: String,
    example: String,
    adresse: &'a str,
    alias: &'a str,
    commentaire: &'a str,
    token: &'a str,
}

/// A product the member may have another site of.
#[derive(Serialize, Debug, PartialEq, Eq)]
struct ProductOption<'a> {
    value: &'a str,
    name: &'a str,
    used: i32,
    total: i32,
    selected: bool,
}

#[derive(Serialize, Debug, PartialEq, Eq)]
struct LanguageOption {
    code: &'static str,
    name: &'static str,
    selected: bool,
}

/// The form's page body for `member`, showing `form`'s values and `error`;
/// `token` is the caller's token against cross-site forgery.
pub fn ask<'a>(
    member: &'a Member,
    names: &'a ProductNames,
    form: &'a AskForm,
    error: Option<&'a str>,
    token: &'a str,
) -> View {
    View::new(
        "ask.html",
        Ask {
            tenant: &member.name,
            error,
            products: products(member, names, form.produit.as_deref()),
            site_languages: languages(form.langue.as_deref()),
            domains: member.domains.join(", "),
            example: example_address(&member.domains),
            adresse: form.adresse.as_deref().unwrap_or_default(),
            alias: form.alias.as_deref().unwrap_or_default(),
            commentaire: form.commentaire.as_deref().unwrap_or_default(),
            token,
        },
    )
}

/// Each product the member has fewer sites of than it may, `selected` chosen.
fn products<'a>(
    member: &'a Member,
    names: &'a ProductNames,
    selected: Option<&str>,
) -> Vec<ProductOption<'a>> {
    member
        .entitlements
        .iter()
        .map(|(product, entitled)| {
            (
                product,
                member.used.get(product).copied().unwrap_or(0),
                *entitled,
            )
        })
        .filter(|(_, used, entitled)| used < entitled)
        .map(|(product, used, total)| ProductOption {
            value: product,
            name: names.get(product).unwrap_or(product),
            used,
            total,
            selected: selected == Some(product.as_str()),
        })
        .collect()
}

/// The language options, `chosen` (French by default) selected.
fn languages(chosen: Option<&str>) -> Vec<LanguageOption> {
    let chosen = chosen.unwrap_or("fr");
    LANGUAGES
        .iter()
        .map(|(code, name)| LanguageOption {
            code,
            name,
            selected: chosen == *code,
        })
        .collect()
}

/// An example address under the member's first domain.
fn example_address(domains: &[String]) -> String {
    domains
        .first()
        .map(|d| format!("www.{d}"))
        .unwrap_or_else(|| "www.commune.be".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::i18n::Lang;
    use crate::views::fixtures::{self, french};

    fn names() -> ProductNames {
        ProductNames::from([("web".to_string(), "Site <web>".to_string())])
    }

    #[test]
    fn only_products_with_sites_left_are_offered() {
        let member = fixtures::member();
        let names = names();
        let body = french(ask(&member, &names, &AskForm::default(), None, "1.ab"));
        assert!(
            body.contains(
                "<select id=\"produit\" name=\"produit\" required>\n<option value=\"web\">Site &lt;web&gt; (0 sur 2 utilisés)</option>\n</select>"
            ),
            "{body}"
        );
        let body = fixtures::body(&fixtures::page(
            Lang::De,
            ask(&member, &names, &AskForm::default(), None, "1.ab"),
        ))
        .to_string();
        assert!(
            body.contains(">Site &lt;web&gt; (0 von 2 genutzt)</option>"),
            "{body}"
        );
    }

    #[test]
    fn the_product_sent_is_selected_again() {
        let member = fixtures::member();
        let names = names();
        let options = products(&member, &names, Some("web"));
        assert_eq!(
            options,
            [ProductOption {
                value: "web",
                name: "Site <web>",
                used: 0,
                total: 2,
                selected: true
            }]
        );
        let form = AskForm {
            produit: Some("web".into()),
            ..AskForm::default()
        };
        let body = french(ask(&member, &names, &form, None, "1.ab"));
        assert!(body.contains(r#"<option value="web" selected>"#), "{body}");
    }

    #[test]
    fn french_is_the_language_unless_another_was_chosen() {
        let body = french(ask(
            &fixtures::member(),
            &names(),
            &AskForm::default(),
            None,
            "1.ab",
        ));
        assert!(
            body.contains(
                "<option value=\"fr\" lang=\"fr\" selected>Français</option>\n<option value=\"de\" lang=\"de\">Deutsch</option>"
            ),
            "{body}"
        );
        let options = languages(Some("nl"));
        assert_eq!(
            options
                .iter()
                .filter(|o| o.selected)
                .map(|o| o.name)
                .collect::<Vec<_>>(),
            ["Nederlands"]
        );
    }

    #[test]
    fn the_example_address_is_under_the_first_domain() {
        assert_eq!(
            example_address(&["ans.be".into(), "x.be".into()]),
            "www.ans.be"
        );
        assert_eq!(example_address(&[]), "www.commune.be");
    }

    #[test]
    fn a_refused_form_shows_the_error_and_what_was_sent() {
        let form = AskForm {
            adresse: Some("www.ans.be\"".into()),
            commentaire: Some("<pour la fête>".into()),
            ..AskForm::default()
        };
        let member = fixtures::member();
        let names = names();
        let body = french(ask(
            &member,
            &names,
            &form,
            Some("Indiquez l'adresse du site."),
            "1.ab",
        ));
        assert!(
            body.contains(
                r#"<div class="error" role="alert">Indiquez l&#39;adresse du site.</div>"#
            ),
            "{body}"
        );
        assert!(body.contains(r#"value="www.ans.be&quot;""#), "{body}");
        assert!(body.contains("&lt;pour la fête&gt;</textarea>"), "{body}");
        assert!(body.contains(r#"action="/membres/ans/demander""#), "{body}");
        assert!(
            body.contains(r#"<input type="hidden" name="jeton" value="1.ab">"#),
            "{body}"
        );
        assert!(
            body.contains("domaines de votre membre (ans.be), par exemple www.ans.be."),
            "{body}"
        );
    }

    #[test]
    fn every_field_has_its_label() {
        let body = french(ask(
            &fixtures::member(),
            &names(),
            &AskForm::default(),
            None,
            "1.ab",
        ));
        for id in ["produit", "adresse", "alias", "langue", "commentaire"] {
            assert!(
                body.contains(&format!(r#"<label for="{id}">"#)),
                "{id}: {body}"
            );
            assert!(body.contains(&format!(r#"id="{id}""#)), "{id}: {body}");
        }
    }

    #[test]
    fn a_member_with_every_site_it_may_have_gets_no_form() {
        let mut member = fixtures::member();
        member.used.insert("web".into(), 2);
        let body = french(ask(&member, &names(), &AskForm::default(), None, "1.ab"));
        assert!(!body.contains("<form"), "{body}");
        assert!(body.contains("utilise déjà tous les sites"), "{body}");
    }
}
