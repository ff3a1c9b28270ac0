//! The home page: the members the caller administers, and the approvals if
//! they decide.

use serde::Serialize;

use crate::html::View;
use crate::model::MemberLink;

#[derive(Serialize)]
struct Home<'a> {
    members: &'a [MemberLink],
    approver: bool,
}

/// The home page's body for an agent administering `members`, an approver
/// or not.
pub fn home(members: &[MemberLink], approver: bool) -> View {
    View::new("home.html", Home { members, approver })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::i18n::Lang;
    use crate::views::fixtures::{self, french};

    fn ans() -> MemberLink {
        MemberLink {
            name: "ans".into(),
            display_name: "Commune d'Ans".into(),
        }
    }

    #[test]
    fn members_link_to_their_sites_and_form() {
        let body = french(home(&[ans()], false));
        assert!(
            body.contains(
                "<h2>Mes membres</h2>\n<ul>\n<li><a href=\"/membres/ans/sites\">Commune d&#39;Ans</a> — <a href=\"/membres/ans/demander\">demander un site</a></li>\n</ul>"
            ),
            "{body}"
        );
        assert!(!body.contains("Approbations"), "{body}");
        let body = fixtures::body(&fixtures::page(Lang::De, home(&[ans()], false))).to_string();
        assert!(body.contains("Website beantragen</a>"), "{body}");
    }

    #[test]
    fn approvers_get_the_approvals_link() {
        let body = french(home(&[], true));
        assert!(body.contains("<h2>Approbations</h2>"), "{body}");
        assert!(body.contains(r#"href="/approbations""#), "{body}");
        assert!(!body.contains("Mes membres"), "{body}");
        assert!(!body.contains("role="), "{body}");
    }

    #[test]
    fn nobody_is_told_to_ask_for_access() {
        let body = french(home(&[], false));
        assert!(body.contains(r#"role="status""#), "{body}");
        assert!(body.contains("administrateur d&#39;aucun membre"), "{body}");
    }
}
