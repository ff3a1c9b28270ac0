//! "Demander un site": the request form, offering the products the member
//! may still have, filled in again with what was sent when it is refused.

use super::{member_nav, token_field};
use crate::form::AskForm;
use crate::html::{self, esc};
use crate::model::{Member, ProductNames};

/// The languages a site may have, as the form offers them.
const LANGUAGES: [(&str, &str); 4] = [
    ("fr", "Français"),
    ("de", "Deutsch"),
    ("nl", "Nederlands"),
    ("en", "English"),
];

/// The form's page body for `member`, showing `form`'s values and `error`;
/// `token` is the caller's token against cross-site forgery.
pub fn ask(
    member: &Member,
    names: &ProductNames,
    form: &AskForm,
    error: Option<&str>,
    token: &str,
) -> String {
    let options = product_options(member, names, form.produit.as_deref());
    let mut body = member_nav(&member.name);
    if let Some(e) = error {
        body.push_str(&html::message(true, e));
    }
    if options.is_empty() {
        body.push_str(&html::message(
            false,
            "Votre membre utilise déjà tous les sites prévus par son contrat ; contactez la coopérative pour en ajouter.",
        ));
        return body;
    }
    body.push_str(&form_html(member, &options, form, token));
    body
}

/// An option for each product the member has fewer sites of than it may,
/// `selected` chosen.
fn product_options(member: &Member, names: &ProductNames, selected: Option<&str>) -> String {
    let mut options = String::new();
    for (product, entitled) in &member.entitlements {
        let n = member.used.get(product).copied().unwrap_or(0);
        if n >= *entitled {
            continue;
        }
        let selected = if selected == Some(product.as_str()) {
            " selected"
        } else {
            ""
        };
        options.push_str(&format!(
            r#"<option value="{p}"{selected}>{d} ({n} sur {entitled} utilisés)</option>"#,
            p = esc(product),
            d = esc(names.get(product).unwrap_or(product)),
        ));
    }
    options
}

/// The language options, `chosen` (French by default) selected.
fn language_options(chosen: Option<&str>) -> String {
    let chosen = chosen.unwrap_or("fr");
    LANGUAGES
        .iter()
        .map(|(code, label)| {
            format!(
                r#"<option value="{code}"{}>{label}</option>"#,
                if chosen == *code { " selected" } else { "" }
            )
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

/// The form itself, with the product `options` and the caller's `token`.
fn form_html(member: &Member, options: &str, form: &AskForm, token: &str) -> String {
    format!(
        r#"<form method="post" action="/membres/{t}/demander">
{token}
<label for="produit">Produit</label>
<select id="produit" name="produit" required>{options}</select>
<label for="adresse">Adresse du site</label>
<p class="hint" id="adresse-aide">Une adresse sous les domaines de votre membre ({domains}), par exemple {example}.</p>
<input id="adresse" name="adresse" type="text" inputmode="url" autocomplete="off" required aria-describedby="adresse-aide" value="{adresse}">
<label for="alias">Autre adresse (facultatif)</label>
<input id="alias" name="alias" type="text" inputmode="url" autocomplete="off" value="{alias}">
<label for="langue">Langue du site</label>
<select id="langue" name="langue">{languages}</select>
<label for="commentaire">Pourquoi ce site ? (facultatif)</label>
<textarea id="commentaire" name="commentaire">{commentaire}</textarea>
<button type="submit">Envoyer la demande</button>
</form>"#,
        t = esc(&member.name),
        domains = esc(&member.domains.join(", ")),
        example = esc(&example_address(&member.domains)),
        adresse = esc(form.adresse.as_deref().unwrap_or_default()),
        alias = esc(form.alias.as_deref().unwrap_or_default()),
        commentaire = esc(form.commentaire.as_deref().unwrap_or_default()),
        languages = language_options(form.langue.as_deref()),
        token = token_field(token),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::views::fixtures;

    fn names() -> ProductNames {
        ProductNames::from([("web".to_string(), "Site <web>".to_string())])
    }

    #[test]
    fn only_products_with_sites_left_are_offered() {
        let options = product_options(&fixtures::member(), &names(), None);
        assert_eq!(
            options,
            r#"<option value="web">Site &lt;web&gt; (0 sur 2 utilisés)</option>"#
        );
    }

    #[test]
    fn the_product_sent_is_selected_again() {
        let options = product_options(&fixtures::member(), &names(), Some("web"));
        assert!(
            options.starts_with(r#"<option value="web" selected>"#),
            "{options}"
        );
    }

    #[test]
    fn french_is_the_language_unless_another_was_chosen() {
        let options = language_options(None);
        assert!(
            options
                .starts_with(r#"<option value="fr" selected>Français</option><option value="de">"#),
            "{options}"
        );
        let options = language_options(Some("nl"));
        assert!(
            options.contains(r#"<option value="nl" selected>Nederlands</option>"#),
            "{options}"
        );
        assert!(
            options.contains(r#"<option value="fr">Français</option>"#),
            "{options}"
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
        let body = ask(
            &fixtures::member(),
            &names(),
            &form,
            Some("Indiquez l'adresse du site."),
            "1.ab",
        );
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
    fn a_member_with_every_site_it_may_have_gets_no_form() {
        let mut member = fixtures::member();
        member.used.insert("web".into(), 2);
        let body = ask(&member, &names(), &AskForm::default(), None, "1.ab");
        assert!(!body.contains("<form"), "{body}");
        assert!(body.contains("utilise déjà tous les sites"), "{body}");
    }
}
