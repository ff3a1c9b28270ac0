//! The request form, as sent ("Demander un site"): its fields, their checks
//! before anything is asked of Kubernetes, and the name a new request takes.

use std::collections::BTreeSet;

use mutu_api::common::is_dns_name;
use mutu_api::provisioning::Language;
use serde::Deserialize;

use crate::i18n::Lang;
use crate::model::NewRequest;

/// The form's fields, all optional so that a missing one gets a message in
/// the agent's language.
#[derive(Deserialize, Default, Clone, Debug)]
pub struct AskForm {
    #[serde(default)]
    pub produit: Option<String>,
    #[serde(default)]
    pub adresse: Option<String>,
    #[serde(default)]
    pub alias: Option<String>,
    #[serde(default)]
    pub langue: Option<String>,
    #[serde(default)]
    pub commentaire: Option<String>,
    /// The token against cross-site forgery (never shown again).
    #[serde(default)]
    pub jeton: Option<String>,
}

/// Why a form cannot become a request; [`Invalid::text`] says it to the agent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Invalid {
    NoProduct,
    /// Not a DNS name, as sent (trimmed, in lower case).
    Hostname(String),
    NoHostname,
}

impl Invalid {
    /// What to correct, in `lang`.
    pub fn text(&self, lang: Lang) -> String {
        match self {
            Invalid::NoProduct => lang.tr("ask-no-product"),
            Invalid::Hostname(h) => lang.tr_with("ask-invalid-address", &[("address", h.into())]),
            Invalid::NoHostname => lang.tr("ask-no-address"),
        }
    }
}

/// The languages a site may have, by their code in the form.
const LANGUAGES: [(&str, Language); 4] = [
    ("fr", Language::Fr),
    ("de", Language::De),
    ("nl", Language::Nl),
    ("en", Language::En),
];

/// The request the form asks for, or the first thing wrong with it.
pub fn new_request(form: &AskForm) -> Result<NewRequest, Invalid> {
    let product = form.produit.clone().unwrap_or_default();
    if product.is_empty() {
        return Err(Invalid::NoProduct);
    }
    let hostnames = hostnames(form)?;
    Ok(NewRequest {
        product,
        hostnames,
        language: language(form.langue.as_deref()),
        comment: comment(form.commentaire.as_deref()),
    })
}

/// The address and the alias, trimmed and in lower case, each once.
fn hostnames(form: &AskForm) -> Result<Vec<String>, Invalid> {
    let mut hostnames = Vec::new();
    for field in [&form.adresse, &form.alias] {
        let value = field.as_deref().unwrap_or_default().trim().to_lowercase();
        if value.is_empty() {
            continue;
        }
        if !is_dns_name(&value) {
            return Err(Invalid::Hostname(value));
        }
        if !hostnames.contains(&value) {
            hostnames.push(value);
        }
    }
    if hostnames.is_empty() {
        return Err(Invalid::NoHostname);
    }
    Ok(hostnames)
}

/// The language of that code; French for any other.
fn language(code: Option<&str>) -> Language {
    LANGUAGES
        .iter()
        .find(|(c, _)| Some(*c) == code)
        .map(|(_, l)| *l)
        .unwrap_or(Language::Fr)
}

/// The comment, trimmed; none if blank.
fn comment(text: Option<&str>) -> Option<String> {
    text.map(str::trim)
        .filter(|c| !c.is_empty())
        .map(str::to_string)
}

/// The first of `product`, `product-2`, ... that no site or request of the
/// namespace uses.
pub fn free_name(product: &str, taken: &BTreeSet<String>) -> String {
    (1..)
        .map(|i| {
            if i == 1 {
                product.to_string()
            } else {
                format!("{product}-{i}")
            }
        })
        .find(|n| !taken.contains(n))
        .unwrap_or_else(|| product.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(produit: &str, adresse: &str, alias: &str) -> AskForm {
        AskForm {
            produit: Some(produit.into()),
            adresse: Some(adresse.into()),
            alias: Some(alias.into()),
            ..AskForm::default()
        }
    }

    #[test]
    fn a_new_request_takes_the_first_free_name() {
        let taken = BTreeSet::from(["web".to_string(), "web-2".to_string()]);
        assert_eq!(free_name("web", &taken), "web-3");
        assert_eq!(free_name("delib", &taken), "delib");
    }

    #[test]
    fn addresses_are_trimmed_lower_cased_and_kept_once() {
        let r = new_request(&form("web", " WWW.Ans.be ", "www.ans.be"));
        assert_eq!(r.map(|r| r.hostnames), Ok(vec!["www.ans.be".to_string()]));
        let r = new_request(&form("web", "", "alias.ans.be"));
        assert_eq!(r.map(|r| r.hostnames), Ok(vec!["alias.ans.be".to_string()]));
    }

    #[test]
    fn the_product_is_checked_first_then_the_addresses() {
        assert_eq!(new_request(&AskForm::default()), Err(Invalid::NoProduct));
        assert_eq!(
            new_request(&form("", "bad_name", "")),
            Err(Invalid::NoProduct)
        );
        assert_eq!(new_request(&form("web", " ", "")), Err(Invalid::NoHostname));
        assert_eq!(
            new_request(&form("web", "www.ans.be", "Bad_Name")),
            Err(Invalid::Hostname("bad_name".into()))
        );
    }

    #[test]
    fn an_invalid_address_is_named_in_the_message() {
        let text = Invalid::Hostname("a b".into()).text(Lang::Fr);
        assert!(
            text.starts_with("« a b » n'est pas une adresse valide"),
            "{text}"
        );
        let text = Invalid::Hostname("a b".into()).text(Lang::De);
        assert!(
            text.starts_with("„a b“ ist keine gültige Adresse"),
            "{text}"
        );
        assert_eq!(Invalid::NoProduct.text(Lang::En), "Choose a product.");
    }

    #[test]
    fn an_unknown_language_is_french_and_a_blank_comment_none() {
        let mut f = form("web", "www.ans.be", "");
        f.langue = Some("xx".into());
        f.commentaire = Some("  ".into());
        let r = new_request(&f);
        assert_eq!(r.as_ref().map(|r| r.language), Ok(Language::Fr));
        assert_eq!(r.map(|r| r.comment), Ok(None));
        f.langue = Some("nl".into());
        f.commentaire = Some(" pour la fête ".into());
        let r = new_request(&f);
        assert_eq!(r.as_ref().map(|r| r.language), Ok(Language::Nl));
        assert_eq!(r.map(|r| r.comment), Ok(Some("pour la fête".into())));
    }
}
