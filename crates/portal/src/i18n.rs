//! The languages of the portal and of the maintenance page: French (the
//! default), German (Wallonia includes the German-speaking Community) and
//! English. Which one a request gets ([`negotiate`]: its `Accept-Language`,
//! q-values honoured), and every text in each, from the Fluent files
//! `i18n/fr.ftl`, `de.ftl` and `en.ftl`, embedded in the binary.
//!
//! Fluent rather than plain key files: its messages take named variables,
//! choose words by a variable's value (a quota's resource) or by plural rules,
//! and carry comments for translators, in files a translator edits without
//! knowing Rust. The code names a text only by its key, written out where it
//! is used (`lang.tr("key")`, `Title("key")`, `t("key")` in templates); the
//! test `every_key_is_in_every_language_and_used` fails when a key is missing
//! in one language, takes other variables in one, or is in the files but
//! used nowhere.
//!
//! A key that has no text (or whose variables were not all given) renders as
//! [`missing`] (`⟦key⟧`, logged as a warning), never as another language: the
//! tests and the browser test look for that marker on every page.

use std::borrow::Cow;
use std::sync::{Arc, OnceLock};

use fluent_bundle::concurrent::FluentBundle;
use fluent_bundle::{FluentArgs, FluentResource, FluentValue};

use crate::html::esc;

/// A language of the portal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Lang {
    Fr,
    De,
    En,
}

impl Lang {
    /// Every language, the default first.
    pub const ALL: [Lang; 3] = [Lang::Fr, Lang::De, Lang::En];

    /// The language of a request that asks for none the portal speaks.
    pub const DEFAULT: Lang = Lang::Fr;

    /// Its code, as in `<html lang>`, the `lang` cookie and query parameter.
    pub fn code(self) -> &'static str {
        match self {
            Lang::Fr => "fr",
            Lang::De => "de",
            Lang::En => "en",
        }
    }

    /// The language of exactly that code (`fr`, `de`, `en`).
    pub fn from_code(code: &str) -> Option<Lang> {
        Lang::ALL.into_iter().find(|l| l.code() == code)
    }

    /// The language of a language tag (`de-BE`, `FR`), by its primary subtag.
    fn from_tag(tag: &str) -> Option<Lang> {
        let primary = tag.split('-').next().unwrap_or_default();
        Lang::ALL
            .into_iter()
            .find(|l| l.code().eq_ignore_ascii_case(primary))
    }

    /// Its name in itself, as the language switch shows it (the same in
    /// every language, so not in the translation files).
    pub fn endonym(self) -> &'static str {
        match self {
            Lang::Fr => "Français",
            Lang::De => "Deutsch",
            Lang::En => "English",
        }
    }

    /// How dates are written in it (`strftime`): 07/06/2025, 07.06.2025.
    pub fn date_format(self) -> &'static str {
        match self {
            Lang::De => "%d.%m.%Y",
            Lang::Fr | Lang::En => "%d/%m/%Y",
        }
    }

    fn index(self) -> usize {
        self as usize
    }

    /// The text of `key` in this language.
    pub fn tr(self, key: &str) -> String {
        catalog().text(self, key, &[])
    }

    /// The text of `key` in this language, with its variables.
    pub fn tr_with(self, key: &str, args: &[(&str, Arg<'_>)]) -> String {
        catalog().text(self, key, args)
    }

    /// The text of `key` in this language as HTML: its own words and the
    /// [`Arg::Text`] variables escaped, the [`Arg::Html`] ones as they are.
    pub fn tr_html(self, key: &str, args: &[(&str, Arg<'_>)]) -> String {
        catalog().html(self, key, args)
    }
}

/// The language for a request's `Accept-Language` (all its values, joined
/// by commas): the one of highest q-value the portal speaks (the first of
/// equals; `*` is French), French if none.
pub fn negotiate(accept_language: Option<&str>) -> Lang {
    let mut best: Option<(f32, Lang)> = None;
    for range in accept_language.unwrap_or_default().split(',') {
        let mut parts = range.split(';');
        let tag = parts.next().unwrap_or_default().trim();
        let mut q = Some(1.0);
        for param in parts {
            if let Some((name, value)) = param.split_once('=')
                && name.trim().eq_ignore_ascii_case("q")
            {
                q = value
                    .trim()
                    .parse::<f32>()
                    .ok()
                    .filter(|q| (0.0..=1.0).contains(q));
            }
        }
        let lang = if tag == "*" {
            Some(Lang::DEFAULT)
        } else {
            Lang::from_tag(tag)
        };
        if let (Some(q), Some(lang)) = (q, lang)
            && q > 0.0
            && best.is_none_or(|(b, _)| q > b)
        {
            best = Some((q, lang));
        }
    }
    best.map(|(_, l)| l).unwrap_or(Lang::DEFAULT)
}

/// A variable of a message.
#[derive(Clone, Debug, PartialEq)]
pub enum Arg<'a> {
    /// Text, escaped in HTML.
    Text(Cow<'a, str>),
    /// A number (plural rules see it).
    Number(i64),
    /// A fragment of HTML already escaped, kept as it is in HTML (and
    /// escaped like text outside HTML).
    Html(String),
}

impl<'a> From<&'a str> for Arg<'a> {
    fn from(text: &'a str) -> Self {
        Arg::Text(Cow::Borrowed(text))
    }
}

impl<'a> From<&'a String> for Arg<'a> {
    fn from(text: &'a String) -> Self {
        Arg::Text(Cow::Borrowed(text))
    }
}

impl From<String> for Arg<'_> {
    fn from(text: String) -> Self {
        Arg::Text(Cow::Owned(text))
    }
}

impl From<i64> for Arg<'_> {
    fn from(n: i64) -> Self {
        Arg::Number(n)
    }
}

/// What a key without a text renders as.
pub fn missing(key: &str) -> String {
    format!("⟦{key}⟧")
}

/// The translation files, by language.
pub const SOURCES: [(Lang, &str); 3] = [
    (Lang::Fr, include_str!("../i18n/fr.ftl")),
    (Lang::De, include_str!("../i18n/de.ftl")),
    (Lang::En, include_str!("../i18n/en.ftl")),
];

type Bundle = FluentBundle<Arc<FluentResource>>;

/// Every language's messages, twice: as text, and as HTML (their own words
/// escaped as they are written out).
pub struct Catalog {
    text: Vec<Bundle>,
    html: Vec<Bundle>,
}

/// The catalog of the embedded files, read once.
pub fn catalog() -> &'static Catalog {
    static CATALOG: OnceLock<Catalog> = OnceLock::new();
    CATALOG.get_or_init(|| {
        let (catalog, errors) = Catalog::parse(&SOURCES);
        for e in errors {
            tracing::error!(error = %e, "translation file");
        }
        catalog
    })
}

fn escape_text(text: &str) -> Cow<'_, str> {
    if text.contains(['&', '<', '>', '"', '\'']) {
        Cow::Owned(esc(text))
    } else {
        Cow::Borrowed(text)
    }
}

impl Catalog {
    /// The catalog of these files, and what was wrong in them (the messages
    /// that could be read are kept).
    pub fn parse(sources: &[(Lang, &str)]) -> (Catalog, Vec<String>) {
        let mut errors = Vec::new();
        let mut text = Vec::new();
        let mut html = Vec::new();
        for lang in Lang::ALL {
            let source = sources
                .iter()
                .find(|(l, _)| *l == lang)
                .map(|(_, s)| *s)
                .unwrap_or_default();
            let resource = match FluentResource::try_new(source.to_string()) {
                Ok(r) => r,
                Err((r, e)) => {
                    errors.extend(e.iter().map(|e| format!("{}.ftl: {e:?}", lang.code())));
                    r
                }
            };
            let resource = Arc::new(resource);
            let id: unic_langid::LanguageIdentifier = lang.code().parse().unwrap_or_default();
            for escaped in [false, true] {
                let mut bundle = Bundle::new_concurrent(vec![id.clone()]);
                // No Unicode isolation marks around variables: only
                // left-to-right languages, and pages compared as text.
                bundle.set_use_isolating(false);
                if escaped {
                    bundle.set_transform(Some(escape_text));
                }
                if let Err(e) = bundle.add_resource(resource.clone())
                    && !escaped
                {
                    errors.extend(e.iter().map(|e| format!("{}.ftl: {e}", lang.code())));
                }
                if escaped {
                    html.push(bundle);
                } else {
                    text.push(bundle);
                }
            }
        }
        (Catalog { text, html }, errors)
    }

    /// The text of `key` in `lang`, with `args`.
    pub fn text(&self, lang: Lang, key: &str, args: &[(&str, Arg<'_>)]) -> String {
        self.format(&self.text[lang.index()], lang, key, args, false)
    }

    /// The text of `key` in `lang` as HTML (see [`Lang::tr_html`]).
    pub fn html(&self, lang: Lang, key: &str, args: &[(&str, Arg<'_>)]) -> String {
        self.format(&self.html[lang.index()], lang, key, args, true)
    }

    /// Whether `lang` has a text for `key`.
    pub fn has(&self, lang: Lang, key: &str) -> bool {
        self.text[lang.index()]
            .get_message(key)
            .and_then(|m| m.value())
            .is_some()
    }

    fn format(
        &self,
        bundle: &Bundle,
        lang: Lang,
        key: &str,
        args: &[(&str, Arg<'_>)],
        html: bool,
    ) -> String {
        let Some(pattern) = bundle.get_message(key).and_then(|m| m.value()) else {
            tracing::warn!(key, lang = lang.code(), "no text for this key");
            return missing(key);
        };
        let mut fluent = FluentArgs::with_capacity(args.len());
        for (name, arg) in args {
            let value = match arg {
                Arg::Text(t) if html => FluentValue::from(esc(t)),
                Arg::Text(t) => FluentValue::from(t.to_string()),
                Arg::Html(h) => FluentValue::from(h.clone()),
                Arg::Number(n) => FluentValue::from(*n),
            };
            fluent.set(*name, value);
        }
        let mut errors = Vec::new();
        let out = bundle.format_pattern(pattern, Some(&fluent), &mut errors);
        if !errors.is_empty() {
            tracing::warn!(key, lang = lang.code(), ?errors, "text not formatted");
            return missing(key);
        }
        out.into_owned()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};
    use std::path::Path;

    use fluent_syntax::ast;

    use super::*;

    #[test]
    fn the_language_is_the_best_one_accepted_and_french_otherwise() {
        assert_eq!(negotiate(None), Lang::Fr);
        assert_eq!(negotiate(Some("")), Lang::Fr);
        assert_eq!(negotiate(Some("de-BE,de;q=0.9,fr;q=0.8")), Lang::De);
        assert_eq!(negotiate(Some("en-GB")), Lang::En);
        assert_eq!(negotiate(Some("EN-gb")), Lang::En);
        // q-values, whatever the order.
        assert_eq!(negotiate(Some("fr;q=0.5, de;q=0.8, en;q=0.7")), Lang::De);
        assert_eq!(negotiate(Some("en;q=0.4,de-BE;q=0.9")), Lang::De);
        // Languages the portal does not speak are passed over.
        assert_eq!(negotiate(Some("nl-BE,nl;q=0.9,en;q=0.5")), Lang::En);
        assert_eq!(negotiate(Some("nl-BE,nl;q=0.9")), Lang::Fr);
        // Of equals, the first.
        assert_eq!(negotiate(Some("en,de")), Lang::En);
        assert_eq!(negotiate(Some("de;q=0.5,en;q=0.5")), Lang::De);
        // q=0 means "not this one"; a wrong q-value drops its range.
        assert_eq!(negotiate(Some("de;q=0,en;q=0.1")), Lang::En);
        assert_eq!(negotiate(Some("de;q=0")), Lang::Fr);
        assert_eq!(negotiate(Some("de;q=x,en;q=0.2")), Lang::En);
        assert_eq!(negotiate(Some("de;q=2,en;q=0.2")), Lang::En);
        // `*` is any language: French, the default.
        assert_eq!(negotiate(Some("nl, *;q=0.5, en;q=0.4")), Lang::Fr);
        // Spaces around the parts are tolerated.
        assert_eq!(negotiate(Some(" de ; q=0.9 , fr ; q = 0.8 ")), Lang::De);
        // Not a language, just a prefix of one.
        assert_eq!(negotiate(Some("deu,english")), Lang::Fr);
    }

    #[test]
    fn codes_round_trip() {
        for lang in Lang::ALL {
            assert_eq!(Lang::from_code(lang.code()), Some(lang));
        }
        assert_eq!(Lang::from_code("nl"), None);
        assert_eq!(Lang::from_code("FR"), None);
        assert_eq!(Lang::from_code("fr-BE"), None);
    }

    #[test]
    fn texts_take_their_variables_and_html_escapes_all_but_html() {
        assert_eq!(
            Lang::Fr.tr_with(
                "reason-denied-why",
                &[("who", "a<b".into()), ("why", "c".into())]
            ),
            "Demande refusée par a<b : c"
        );
        assert_eq!(
            Lang::De.tr_html(
                "maintenance-named-site",
                &[("site", Arg::Html("<strong>a&amp;b</strong>".into()))]
            ),
            "Die Website <strong>a&amp;b</strong> wird gerade von der Genossenschaft umgezogen oder aktualisiert. Sie ist in wenigen Minuten wieder erreichbar."
        );
        // The message's own words are escaped too.
        assert_eq!(
            Lang::Fr.tr_html("request-for", &[("hosts", "<b>".into())]),
            "Demande de site pour &lt;b&gt;."
        );
        assert_eq!(
            Lang::Fr.tr_html("reason-no-tenant", &[]),
            "Cette demande n&#39;a pas été faite dans l&#39;espace d&#39;un membre."
        );
    }

    #[test]
    fn words_are_chosen_by_a_variables_value() {
        let quota = |lang: Lang, resource: &str| {
            lang.tr_with("reason-quota-exceeded", &[("resource", resource.into())])
        };
        assert!(quota(Lang::Fr, "memory").contains("(mémoire)"));
        assert!(quota(Lang::De, "CPU").contains("(Prozessor)"));
        assert!(quota(Lang::En, "gpu").contains("(resources)"));
    }

    #[test]
    fn a_missing_key_or_variable_is_marked() {
        assert_eq!(Lang::De.tr("no-such-key"), "⟦no-such-key⟧");
        assert_eq!(Lang::En.tr("signed-in-as"), "⟦signed-in-as⟧");
        assert!(!catalog().has(Lang::Fr, "no-such-key"));
        assert!(catalog().has(Lang::Fr, "signed-in-as"));
    }

    /// The variables a pattern uses, into `out`.
    fn variables(pattern: &ast::Pattern<&str>, out: &mut BTreeSet<String>) {
        for element in &pattern.elements {
            if let ast::PatternElement::Placeable { expression } = element {
                expression_variables(expression, out);
            }
        }
    }

    fn expression_variables(expression: &ast::Expression<&str>, out: &mut BTreeSet<String>) {
        match expression {
            ast::Expression::Select { selector, variants } => {
                inline_variables(selector, out);
                for v in variants {
                    variables(&v.value, out);
                }
            }
            ast::Expression::Inline(inline) => inline_variables(inline, out),
        }
    }

    fn inline_variables(inline: &ast::InlineExpression<&str>, out: &mut BTreeSet<String>) {
        match inline {
            ast::InlineExpression::VariableReference { id } => {
                out.insert(id.name.to_string());
            }
            ast::InlineExpression::Placeable { expression } => {
                expression_variables(expression, out);
            }
            _ => {}
        }
    }

    /// Each message of a file, with its variables.
    fn messages(source: &str) -> BTreeMap<String, BTreeSet<String>> {
        let resource =
            FluentResource::try_new(source.to_string()).unwrap_or_else(|(_, e)| panic!("{e:?}"));
        let mut messages = BTreeMap::new();
        for entry in resource.entries() {
            if let ast::Entry::Message(m) = entry {
                let mut vars = BTreeSet::new();
                if let Some(value) = &m.value {
                    variables(value, &mut vars);
                }
                assert!(
                    messages.insert(m.id.name.to_string(), vars).is_none(),
                    "{} twice",
                    m.id.name
                );
            }
        }
        messages
    }

    /// Every file under `dir` (recursively) whose name ends with `ext`.
    fn files(dir: &Path, ext: &str, out: &mut Vec<(String, String)>) {
        let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        for entry in entries {
            let path = entry.unwrap_or_else(|e| panic!("{e}")).path();
            if path.is_dir() {
                files(&path, ext, out);
            } else if path.to_string_lossy().ends_with(ext) {
                let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{e}"));
                out.push((path.display().to_string(), text));
            }
        }
    }

    /// The string literals right after each of `calls` (e.g. `t(`) in `text`.
    fn keys_after(text: &str, calls: &[&str], out: &mut BTreeSet<String>) {
        for call in calls {
            for (at, _) in text.match_indices(call) {
                // A whole name: not the end of a longer one.
                let before = text[..at].chars().next_back();
                if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                    continue;
                }
                let rest = text[at + call.len()..].trim_start();
                let Some(quote) = rest.chars().next().filter(|c| *c == '"' || *c == '\'') else {
                    continue;
                };
                if let Some((key, _)) = rest[1..].split_once(quote) {
                    out.insert(key.to_string());
                }
            }
        }
    }

    /// The keys the portal's code and templates name.
    fn used_keys() -> BTreeSet<String> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut sources = Vec::new();
        files(&root.join("src"), ".rs", &mut sources);
        let mut templates = Vec::new();
        files(&root.join("templates"), ".html", &mut templates);
        let mut used = BTreeSet::new();
        for (path, text) in &sources {
            // Not this file's tests, which name keys that must not exist.
            let text = if path.ends_with("i18n.rs") {
                text.split("#[cfg(test)]").next().unwrap_or_default()
            } else {
                text.as_str()
            };
            // Nor comments, which show how keys are named.
            let code: Vec<&str> = text
                .lines()
                .filter(|l| !l.trim_start().starts_with("//"))
                .collect();
            keys_after(
                &code.join("\n"),
                &["tr(", "tr_with(", "tr_html(", "Title("],
                &mut used,
            );
        }
        for (_, text) in &templates {
            keys_after(text, &["t("], &mut used);
        }
        used
    }

    #[test]
    fn every_key_is_in_every_language_and_used() {
        let (_, errors) = Catalog::parse(&SOURCES);
        assert_eq!(errors, Vec::<String>::new());
        let files: Vec<(Lang, BTreeMap<String, BTreeSet<String>>)> =
            SOURCES.iter().map(|(l, s)| (*l, messages(s))).collect();
        let (_, french) = &files[0];
        for (lang, messages) in &files {
            for (key, vars) in french {
                assert!(
                    messages.contains_key(key),
                    "{key} is in fr.ftl but not in {}.ftl",
                    lang.code()
                );
                assert_eq!(
                    messages.get(key),
                    Some(vars),
                    "{key} takes other variables in {}.ftl than in fr.ftl",
                    lang.code()
                );
            }
            for key in messages.keys() {
                assert!(
                    french.contains_key(key),
                    "{key} is in {}.ftl but not in fr.ftl",
                    lang.code()
                );
            }
        }
        let used = used_keys();
        for key in &used {
            assert!(
                french.contains_key(key),
                "{key} is used but in no translation file"
            );
        }
        for key in french.keys() {
            assert!(
                used.contains(key),
                "{key} is in the translation files but used nowhere"
            );
        }
    }

    #[test]
    fn keys_are_found_after_their_calls_only() {
        let mut keys = BTreeSet::new();
        keys_after(
            r#"lang.tr("a") x.tr_with(
                "b", &[]) {{ t('c') }} {{ t("d", x=1) }} set("e") lang.tr(key)"#,
            &["tr(", "tr_with(", "t("],
            &mut keys,
        );
        assert_eq!(keys, BTreeSet::from(["a", "b", "c", "d"].map(String::from)));
    }
}
