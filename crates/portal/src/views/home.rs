//! The home page: the members the caller administers, and the approvals if
//! they decide.

use crate::html::{self, esc};
use crate::model::MemberLink;

/// The home page's body for an agent administering `members`, an approver
/// or not.
pub fn home(members: &[MemberLink], approver: bool) -> String {
    let mut body = String::new();
    if !members.is_empty() {
        body.push_str("<h2>Mes membres</h2><ul>");
        for m in members {
            body.push_str(&member_item(m));
        }
        body.push_str("</ul>");
    }
    if approver {
        body.push_str(
            r#"<h2>Approbations</h2><p><a href="/approbations">Demandes à approuver</a></p>"#,
        );
    }
    if body.is_empty() {
        body = html::message(
            false,
            "Votre compte n'est administrateur d'aucun membre. Demandez l'accès au support de la coopérative.",
        );
    }
    body
}

/// One member, linking to its sites and its request form.
fn member_item(m: &MemberLink) -> String {
    format!(
        r#"<li><a href="/membres/{name}/sites">{display}</a> — <a href="/membres/{name}/demander">demander un site</a></li>"#,
        name = esc(&m.name),
        display = esc(&m.display_name)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ans() -> MemberLink {
        MemberLink {
            name: "ans".into(),
            display_name: "Commune d'Ans".into(),
        }
    }

    #[test]
    fn members_link_to_their_sites_and_form() {
        let body = home(&[ans()], false);
        assert_eq!(
            body,
            r#"<h2>Mes membres</h2><ul><li><a href="/membres/ans/sites">Commune d&#39;Ans</a> — <a href="/membres/ans/demander">demander un site</a></li></ul>"#
        );
    }

    #[test]
    fn approvers_get_the_approvals_link() {
        let body = home(&[], true);
        assert!(body.starts_with("<h2>Approbations</h2>"), "{body}");
        assert!(body.contains(r#"href="/approbations""#), "{body}");
        assert!(!body.contains("Mes membres"), "{body}");
    }

    #[test]
    fn nobody_is_told_to_ask_for_access() {
        let body = home(&[], false);
        assert!(body.contains(r#"role="status""#), "{body}");
        assert!(body.contains("administrateur d&#39;aucun membre"), "{body}");
    }
}
