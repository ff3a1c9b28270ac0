//! The labels and annotations mutu puts on everything it creates, and the
//! selectors built from them.

use std::collections::BTreeMap;

pub use mutu_api::{COMPONENT, INSTANCE, MANAGED_BY, MANAGED_BY_VALUE};

/// The uid of the owning resource: unique across kinds and namespaces, so
/// pruning never touches another owner's children.
pub const OWNER_UID: &str = "hosting.imio.be/owner-uid";
/// Hash of the desired state mutu last applied to an object; an object whose
/// hash matches is not applied again.
pub const APPLIED_HASH: &str = "hosting.imio.be/applied-hash";

/// The standard labels of a child of `instance` (with uid `owner_uid`).
pub fn standard(instance: &str, owner_uid: &str, component: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (MANAGED_BY.to_string(), MANAGED_BY_VALUE.to_string()),
        (INSTANCE.to_string(), truncate_label(instance)),
        (COMPONENT.to_string(), component.to_string()),
        (OWNER_UID.to_string(), owner_uid.to_string()),
    ])
}

/// Selector of everything mutu manages.
pub fn managed_selector() -> String {
    format!("{MANAGED_BY}={MANAGED_BY_VALUE}")
}

/// Label values are limited to 63 characters; longer names are cut (the owner
/// uid label is what identifies the owner, not this one).
fn truncate_label(value: &str) -> String {
    let cut: String = value.chars().take(63).collect();
    cut.trim_end_matches(['-', '_', '.']).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_labels_name_owner_component_and_manager() {
        let labels = standard("ville-de-mons", "1234", "namespace");
        assert_eq!(labels[MANAGED_BY], "mutu");
        assert_eq!(labels[INSTANCE], "ville-de-mons");
        assert_eq!(labels[COMPONENT], "namespace");
        assert_eq!(labels[OWNER_UID], "1234");
    }

    #[test]
    fn long_instance_names_still_make_valid_label_values() {
        let long = format!("{}-x", "a".repeat(62));
        let labels = standard(&long, "u", "c");
        assert!(labels[INSTANCE].len() <= 63);
        assert!(!labels[INSTANCE].ends_with('-'));
    }
}
