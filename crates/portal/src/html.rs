//! How the pages are made: templates (`templates/*.html`, embedded in the
//! binary) rendered by [minijinja](https://docs.rs/minijinja), every value
//! HTML-escaped unless a template marks it as markup; their words from the
//! translation files ([`crate::i18n`], `t("key", var=value)` in a template);
//! one layout (no script, `<html lang>` of the page's language, the language
//! switch); and its stylesheet (readable on a phone, visible focus, contrast
//! of at least 4.5:1), served apart at [`STYLESHEET`] so that the pages need
//! nothing inline (their Content-Security-Policy allows no inline style or
//! script).
//!
//! Why minijinja rather than askama or maud: the pages stay HTML files that
//! whoever reviews their wording or accessibility reads without Rust (maud
//! writes markup as Rust macros); escaping is on by default for `.html`
//! templates, and only a template's own markup (a `{% set %}` block) is ever
//! marked safe; translations take named variables as Jinja keyword arguments
//! (`t("ask-address-hint", domains=domains)`), which map one to one onto
//! Fluent's; and it adds one crate without procedural macros or code
//! generation to the `mutu` binary every operator runs (askama would, and
//! would check templates at compile time only for what Rust can see, not the
//! translation keys). Templates are checked when the environment is built and
//! rendered with undefined variables as errors; the tests render every page
//! in every language.

use std::sync::OnceLock;

use minijinja::value::{Kwargs, Serde, Value};
use minijinja::{AutoEscape, Environment, Error, ErrorKind, Output, State, UndefinedBehavior};
use serde::Serialize;

use crate::i18n::{Arg, Lang};

/// Escapes text for HTML content and attribute values.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Where the pages' stylesheet is served.
pub const STYLESHEET: &str = "/style.css";

/// The pages' stylesheet.
pub const STYLE: &str = r#"
*{box-sizing:border-box}
body{margin:0;font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;font-size:1.05rem;line-height:1.5;color:#1b1b1b;background:#fff}
a{color:#0a4b8c}
a:focus,button:focus,input:focus,select:focus,textarea:focus{outline:3px solid #c25400;outline-offset:2px}
.skip{position:absolute;left:-999px}
.skip:focus{left:1rem;top:1rem;background:#fff;padding:.5rem;z-index:2}
header{background:#0a4b8c;color:#fff;padding:.75rem 1rem;display:flex;flex-wrap:wrap;gap:.5rem 1.5rem;align-items:baseline}
header a{color:#fff}
header a:focus{outline-color:#fff}
header .who{margin-left:auto;font-size:.95rem}
header .langs ul{list-style:none;margin:0;padding:0;display:flex;gap:.75rem}
header .langs a[aria-current]{font-weight:700;text-decoration:none}
main{max-width:62rem;margin:0 auto;padding:1rem}
h1{font-size:1.6rem;margin:.5rem 0 1rem}
h2{font-size:1.25rem;margin:1.5rem 0 .5rem}
.table{overflow-x:auto}
table{border-collapse:collapse;width:100%}
th,td{text-align:left;padding:.5rem;border-bottom:1px solid #767676;vertical-align:top}
th{background:#f2f2f2}
label{display:block;font-weight:600;margin-top:1rem}
.hint{color:#4a4a4a;font-size:.95rem;margin:.25rem 0}
input,select,textarea{font:inherit;width:100%;max-width:36rem;padding:.5rem;border:1px solid #595959;border-radius:4px}
textarea{min-height:5rem}
button{font:inherit;margin-top:1rem;padding:.6rem 1.2rem;border:0;border-radius:4px;background:#0a4b8c;color:#fff;cursor:pointer}
button.deny{background:#a30000}
.error{border-left:5px solid #a30000;background:#fff5f5;color:#7a0000;padding:.75rem 1rem;margin:1rem 0}
.notice{border-left:5px solid #1e6b2f;background:#f1faf3;color:#14471f;padding:.75rem 1rem;margin:1rem 0}
.state-ok{color:#1e6b2f;font-weight:600}
.state-wait{color:#7a4a00;font-weight:600}
.state-ko{color:#a30000;font-weight:600}
ol.steps li{margin:.5rem 0}
.card{border:1px solid #767676;border-radius:6px;padding:1rem;margin:1rem 0}
"#;

/// The templates, by name (`.html`: escaped).
pub const TEMPLATES: [(&str, &str); 9] = [
    ("layout.html", include_str!("../templates/layout.html")),
    ("macros.html", include_str!("../templates/macros.html")),
    ("home.html", include_str!("../templates/home.html")),
    ("sites.html", include_str!("../templates/sites.html")),
    ("ask.html", include_str!("../templates/ask.html")),
    ("request.html", include_str!("../templates/request.html")),
    (
        "approvals.html",
        include_str!("../templates/approvals.html"),
    ),
    ("refusal.html", include_str!("../templates/refusal.html")),
    (
        "maintenance.html",
        include_str!("../templates/maintenance.html"),
    ),
];

/// The language of the template being rendered (its `lang` variable).
fn lang_of(state: &State) -> Result<Lang, Error> {
    state
        .lookup("lang")
        .and_then(|v| v.as_str().and_then(Lang::from_code))
        .ok_or_else(|| Error::new(ErrorKind::UndefinedError, "no page language (lang)"))
}

/// `t("key", name=value, ...)`: the text of `key` in the page's language,
/// escaped when written out; as markup if a value is markup (a `{% set %}`
/// block), with the message's words and the other values escaped.
fn t(state: &State, key: &str, kwargs: Kwargs) -> Result<Value, Error> {
    let lang = lang_of(state)?;
    let mut args = Vec::new();
    let mut markup = false;
    for name in kwargs.args() {
        let value: Value = kwargs.get(name)?;
        let arg = if value.is_safe() {
            markup = true;
            Arg::Html(value.to_string())
        } else if let Some(n) = value.as_i64().filter(|_| value.as_str().is_none()) {
            Arg::Number(n)
        } else {
            Arg::from(value.to_string())
        };
        args.push((name, arg));
    }
    kwargs.assert_all_used()?;
    Ok(if markup {
        Value::from_safe_string(lang.tr_html(key, &args))
    } else {
        Value::from(lang.tr_with(key, &args))
    })
}

/// Writes values out escaped with [`esc`] (minijinja's own escaping would
/// write `'` as `&#x27;` and `/` as `&#x2f;`: the same for browsers, but not
/// what the rest of the portal writes); markup and non-HTML templates as
/// minijinja does.
fn formatter(out: &mut Output, state: &mut State, value: &Value) -> Result<(), Error> {
    if matches!(state.auto_escape(), AutoEscape::Html)
        && !value.is_safe()
        && !value.is_undefined()
        && !value.is_none()
    {
        out.write_str(&esc(&value.to_string()))?;
        return Ok(());
    }
    minijinja::escape_formatter(out, state, value)
}

/// The environment of the embedded templates, made once.
fn environment() -> Result<&'static Environment<'static>, &'static Error> {
    static ENV: OnceLock<Result<Environment<'static>, Error>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_syntax(
            minijinja::syntax::SyntaxConfig::builder()
                .trim_blocks(true)
                .lstrip_blocks(true)
                .build()?,
        );
        env.set_formatter(formatter);
        env.add_function("t", t);
        env.add_global("csrf_field", crate::csrf::FIELD);
        env.add_global("stylesheet", STYLESHEET);
        for (name, source) in TEMPLATES {
            env.add_template(name, source)?;
        }
        Ok(env)
    })
    .as_ref()
}

/// `template` rendered with `context`.
pub fn render(template: &str, context: Value) -> Result<String, Error> {
    let env = environment().map_err(|e| {
        Error::new(
            ErrorKind::InvalidOperation,
            format!("the templates are not valid: {e:#}"),
        )
    })?;
    env.get_template(template)?.render(context)
}

/// A page's body: its template and the values it shows.
pub struct View {
    pub template: &'static str,
    pub context: Value,
}

impl View {
    pub fn new(template: &'static str, context: impl Serialize) -> Self {
        View {
            template,
            context: Value::from(Serde(context)),
        }
    }
}

/// A language of the switch each page shows.
#[derive(Serialize)]
struct Choice {
    code: &'static str,
    name: &'static str,
    current: bool,
}

/// A page's title: the key of its text in the translation files.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Title(pub &'static str);

/// What the layout shows around a page's body.
pub struct Frame<'a> {
    pub lang: Lang,
    /// Where the language switch's links go (`?lang=..` is added): the
    /// page's own path, or a page that answers GET where it does not.
    pub switch_to: &'a str,
    pub title: Title,
    /// The user shown as signed in.
    pub who: Option<&'a str>,
}

/// A whole page: `view` in the layout, framed by `frame`.
pub fn page(frame: &Frame<'_>, view: View) -> Result<String, Error> {
    let switch: Vec<Choice> = Lang::ALL
        .into_iter()
        .map(|l| Choice {
            code: l.code(),
            name: l.endonym(),
            current: l == frame.lang,
        })
        .collect();
    let context = minijinja::context! {
        lang => frame.lang.code(),
        title => frame.lang.tr(frame.title.0),
        who => frame.who,
        switch => Value::from(Serde(switch)),
        switch_to => frame.switch_to,
        ..view.context
    };
    render(view.template, context)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::views;

    #[test]
    fn text_is_escaped() {
        assert_eq!(
            esc(r#"<a href="x">O'Neil & co</a>"#),
            "&lt;a href=&quot;x&quot;&gt;O&#39;Neil &amp; co&lt;/a&gt;"
        );
    }

    #[test]
    fn the_templates_are_valid() {
        assert!(environment().is_ok(), "{:?}", environment().err());
    }

    fn framed(lang: Lang, who: Option<&str>) -> String {
        let frame = Frame {
            lang,
            switch_to: "/membres/ans/sites",
            title: Title("title-sites"),
            who,
        };
        page(&frame, views::refusal("x".into())).unwrap_or_else(|e| panic!("{e:#}"))
    }

    #[test]
    fn every_page_has_its_language_a_viewport_and_a_skip_link() {
        let p = framed(Lang::Fr, Some("agent@ans.be"));
        assert!(p.contains(r#"<html lang="fr">"#), "{p}");
        assert!(p.contains("width=device-width"));
        assert!(p.contains(r##"<a class="skip" href="#contenu">Aller au contenu</a>"##));
        assert!(p.contains(r#"<main id="contenu">"#));
        assert!(p.contains("<title>Mes sites — mutu</title>"), "{p}");
        assert!(p.contains("<h1>Mes sites</h1>"), "{p}");
        assert!(p.contains("Connecté·e : agent@ans.be"), "{p}");
        let p = framed(Lang::De, None);
        assert!(p.contains(r#"<html lang="de">"#), "{p}");
        assert!(p.contains("<h1>Meine Websites</h1>"), "{p}");
        assert!(p.contains("Zum Inhalt springen"), "{p}");
        assert!(!p.contains("Angemeldet"), "{p}");
        let p = framed(Lang::En, None);
        assert!(p.contains(r#"<html lang="en">"#), "{p}");
    }

    #[test]
    fn every_page_offers_the_other_languages_in_their_own() {
        let p = framed(Lang::De, None);
        assert!(
            p.contains(r#"<nav class="langs" aria-label="Sprache des Portals">"#),
            "{p}"
        );
        for (code, name) in [("fr", "Français"), ("en", "English")] {
            assert!(
                p.contains(&format!(
                    r#"<a href="/membres/ans/sites?lang={code}" hreflang="{code}" lang="{code}">{name}</a>"#
                )),
                "{code} in {p}"
            );
        }
        assert!(
            p.contains(r#"<a href="/membres/ans/sites?lang=de" hreflang="de" lang="de" aria-current="true">Deutsch</a>"#),
            "{p}"
        );
    }

    #[test]
    fn pages_have_nothing_inline_but_link_their_stylesheet() {
        for lang in Lang::ALL {
            let p = framed(lang, Some("agent@ans.be"));
            assert!(
                p.contains(r#"<link rel="stylesheet" href="/style.css">"#),
                "{p}"
            );
            for inline in ["<style", "<script", " style=", "http-equiv"] {
                assert!(!p.contains(inline), "{inline} in {p}");
            }
            // No event handler attribute (` onclick=`...).
            for (at, _) in p.match_indices(" on") {
                let name: String = p[at + 1..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphabetic())
                    .collect();
                assert!(!p[at + 1 + name.len()..].starts_with('='), "{name} in {p}");
            }
        }
    }

    #[test]
    fn a_missing_variable_is_an_error_not_an_empty_text() {
        let e = render("refusal.html", minijinja::context! { lang => "fr" });
        assert!(e.is_err(), "{e:?}");
    }
}
