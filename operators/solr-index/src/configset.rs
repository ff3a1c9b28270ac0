//! The configsets mutu ships, by name and version. A version is uploaded to
//! Solr once, as `mutu-<name>-v<version>`, and never changed in place: a new
//! version is a new configset.

use std::collections::BTreeMap;

const PLONE_SOLRCONFIG: &str = include_str!("../configsets/plone/solrconfig.xml");
const PLONE_SCHEMA: &str = include_str!("../configsets/plone/schema.xml");
const PLONE_CONTRACTIONS_FR: &str = include_str!("../configsets/plone/lang/contractions_fr.txt");

/// What version 2 of the Plone configset adds: the keywords (`Subject`)
/// searchable as text too, not only as exact values.
const PLONE_V2_FIELDS: &str = r#"  <field name="Subject_text" type="text" indexed="true" stored="false" multiValued="true"/>
  <copyField source="Subject" dest="Subject_text"/>
"#;

/// The name of a configset version in Solr.
pub fn solr_name(name: &str, version: &str) -> String {
    format!("mutu-{name}-v{version}")
}

/// The versions mutu ships of `name`, for error messages.
pub fn versions(name: &str) -> Vec<&'static str> {
    match name {
        "plone" => vec!["1", "2"],
        _ => Vec::new(),
    }
}

/// Every configset mutu ships with its versions, e.g. `plone (1, 2)`.
pub fn shipped() -> String {
    ["plone"]
        .iter()
        .map(|name| format!("{name} ({})", versions(name).join(", ")))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The files of configset `name` at `version`, or `None` if mutu does not ship it.
pub fn files(name: &str, version: &str) -> Option<BTreeMap<String, Vec<u8>>> {
    let schema = match (name, version) {
        ("plone", "1") => PLONE_SCHEMA.to_string(),
        ("plone", "2") => {
            PLONE_SCHEMA.replacen("</schema>", &format!("{PLONE_V2_FIELDS}</schema>"), 1)
        }
        _ => return None,
    };
    Some(BTreeMap::from([
        (
            "solrconfig.xml".to_string(),
            PLONE_SOLRCONFIG.as_bytes().to_vec(),
        ),
        ("schema.xml".to_string(), schema.into_bytes()),
        (
            "lang/contractions_fr.txt".to_string(),
            PLONE_CONTRACTIONS_FR.as_bytes().to_vec(),
        ),
    ]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_version_defines_a_field_twice() {
        // Solr refuses to create a core whose schema repeats a field.
        for v in versions("plone") {
            let files = files("plone", v).unwrap_or_default();
            let schema = String::from_utf8_lossy(&files["schema.xml"]).into_owned();
            let mut names: Vec<&str> = schema
                .split("<field name=\"")
                .skip(1)
                .filter_map(|rest| rest.split('"').next())
                .collect();
            let all = names.len();
            names.sort_unstable();
            names.dedup();
            assert_eq!(names.len(), all, "version {v} repeats a field");
        }
    }

    #[test]
    fn the_plone_configset_keys_documents_by_uid_in_every_version() {
        for v in versions("plone") {
            let files = files("plone", v).unwrap_or_default();
            let schema = String::from_utf8_lossy(&files["schema.xml"]).into_owned();
            assert!(schema.contains("<uniqueKey>UID</uniqueKey>"), "v{v}");
            assert!(files.contains_key("solrconfig.xml"));
        }
        let v2 = String::from_utf8_lossy(&files("plone", "2").unwrap_or_default()["schema.xml"])
            .into_owned();
        assert!(v2.contains(r#"name="Subject_text""#) && v2.trim_end().ends_with("</schema>"));
        assert!(files("plone", "9").is_none() && files("delib", "1").is_none());
        assert_eq!(solr_name("plone", "2"), "mutu-plone-v2");
    }
}
