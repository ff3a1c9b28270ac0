//! The pages' frame and words: one server-rendered layout (no script), its
//! stylesheet (readable on a phone, visible focus, contrast of at least 4.5:1),
//! served apart at [`STYLESHEET`] so that the pages need nothing inline (their
//! Content-Security-Policy allows no inline style or script), HTML escaping,
//! and the French for what mutu says in English.

use mutu_api::provisioning::{Decision, RequestReason};

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
header .who{margin-left:auto;font-size:.95rem}
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

/// A whole page: `title`, the identity shown in the header, and `body`.
/// `refresh` reloads the page after that many seconds (progress without script).
pub fn page(title: &str, who: Option<&str>, body: &str, refresh: Option<u32>) -> String {
    let refresh = refresh
        .map(|s| format!(r#"<meta http-equiv="refresh" content="{s}">"#))
        .unwrap_or_default();
    let who = who
        .map(|w| format!(r#"<span class="who">Connecté·e : {}</span>"#, esc(w)))
        .unwrap_or_default();
    format!(
        r##"<!doctype html>
<html lang="fr">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
{refresh}
<title>{title} — mutu</title>
<link rel="stylesheet" href="{STYLESHEET}">
</head>
<body>
<a class="skip" href="#contenu">Aller au contenu</a>
<header><strong>mutu</strong> <nav aria-label="Navigation principale"><a href="/">Accueil</a></nav>{who}</header>
<main id="contenu">
<h1>{title}</h1>
{body}
</main>
</body>
</html>
"##,
        title = esc(title),
    )
}

/// A message box: an error (`role="alert"`) or a notice.
pub fn message(error: bool, text: &str) -> String {
    if error {
        format!(r#"<div class="error" role="alert">{}</div>"#, esc(text))
    } else {
        format!(r#"<div class="notice" role="status">{}</div>"#, esc(text))
    }
}

/// A request's decision, in French.
pub fn decision(d: Decision) -> &'static str {
    match d {
        Decision::Pending => "En attente d'approbation",
        Decision::Approved => "Approuvée",
        Decision::Denied => "Refusée",
    }
}

/// What a quota reason's subject is, in French.
fn resource(subject: Option<&str>) -> &'static str {
    match subject {
        Some("sites") => "nombre de sites",
        Some("CPU") => "processeur",
        Some("memory") => "mémoire",
        Some("storage") => "stockage",
        _ => "ressources",
    }
}

/// One reason a request is refused, in plain French. `domains` are the
/// member's domains, for a hostname outside them.
pub fn reason(r: &RequestReason, domains: &[String]) -> String {
    let s = r.subject.as_deref().unwrap_or_default();
    match r.code.as_str() {
        "NoTenant" => "Cette demande n'a pas été faite dans l'espace d'un membre.".to_string(),
        "TenantNotReady" => "L'espace de votre membre n'est pas encore prêt ; réessayez dans quelques minutes ou contactez le support.".to_string(),
        "UnknownProduct" => format!("Le produit « {s} » n'existe pas au catalogue."),
        "NotEntitled" => format!(
            "Votre membre n'a pas souscrit au produit « {s} » ; contactez la coopérative pour l'ajouter à son contrat."
        ),
        "OverEntitlement" => format!(
            "Votre membre a déjà tous les sites « {s} » prévus par son contrat ; supprimez-en un ou demandez une extension."
        ),
        "ForeignHostname" => {
            if domains.is_empty() {
                format!("L'adresse « {s} » n'appartient pas aux domaines de votre membre.")
            } else {
                format!(
                    "L'adresse « {s} » n'appartient pas aux domaines de votre membre ({}) ; choisissez une adresse sous l'un d'eux.",
                    domains.join(", ")
                )
            }
        }
        "HostnameTaken" => {
            format!("L'adresse « {s} » est déjà utilisée par un autre site ; choisissez-en une autre.")
        }
        "SiteNameTaken" => {
            format!("Un site nommé « {s} » existe déjà chez votre membre ; choisissez un autre nom.")
        }
        "InvalidSiteName" => format!(
            "Le nom « {s} » ne convient pas : lettres minuscules, chiffres et tirets, 40 caractères au plus."
        ),
        "ReplicasOutOfRange" => {
            format!("Le nombre d'instances demandé ({s}) n'est pas permis pour ce produit.")
        }
        "QuotaExceeded" => format!(
            "Le quota de votre membre ne permet pas un site de plus ({}) ; contactez la coopérative.",
            resource(r.subject.as_deref())
        ),
        "Denied" => {
            // "denied by WHO: WHY" from mutu; the reason itself is the approver's words.
            let why = r.message.split_once(": ").map(|(_, w)| w).unwrap_or("");
            if why.is_empty() {
                format!("Demande refusée par {s}.")
            } else {
                format!("Demande refusée par {s} : {why}")
            }
        }
        _ => r.message.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped() {
        assert_eq!(
            esc(r#"<a href="x">O'Neil & co</a>"#),
            "&lt;a href=&quot;x&quot;&gt;O&#39;Neil &amp; co&lt;/a&gt;"
        );
    }

    #[test]
    fn a_foreign_hostname_is_explained_in_french_naming_the_domains() {
        let r = RequestReason {
            code: "ForeignHostname".into(),
            subject: Some("www.ans.be".into()),
            message: "spec.hostnames: www.ans.be is not under the member's domains (mons.be)"
                .into(),
        };
        let text = reason(&r, &["mons.be".to_string()]);
        assert!(text.contains("www.ans.be"), "{text}");
        assert!(text.contains("n'appartient pas aux domaines"), "{text}");
        assert!(text.contains("mons.be"), "{text}");
    }

    #[test]
    fn a_denial_gives_the_approvers_words() {
        let r = RequestReason {
            code: "Denied".into(),
            subject: Some("marie@imio.be".into()),
            message: "denied by marie@imio.be: un seul site par commune".into(),
        };
        assert_eq!(
            reason(&r, &[]),
            "Demande refusée par marie@imio.be : un seul site par commune"
        );
    }

    #[test]
    fn every_page_is_french_with_a_viewport_and_a_skip_link() {
        let p = page("Mes sites", Some("agent@ans.be"), "<p>x</p>", Some(5));
        assert!(p.contains(r#"<html lang="fr">"#));
        assert!(p.contains("width=device-width"));
        assert!(p.contains(r##"href="#contenu""##));
        assert!(p.contains(r#"http-equiv="refresh" content="5""#));
        assert!(p.contains("agent@ans.be"));
    }

    #[test]
    fn pages_have_nothing_inline_but_link_their_stylesheet() {
        let p = page("Mes sites", None, "<p>x</p>", None);
        assert!(
            p.contains(r#"<link rel="stylesheet" href="/style.css">"#),
            "{p}"
        );
        for inline in ["<style", "<script", " style=", " on"] {
            assert!(!p.contains(inline), "{inline} in {p}");
        }
    }
}
