//! The names of what mutu creates for a site, in one place: every operator,
//! test and command that looks for a site's ZEO server, volume, Solr alias or
//! Secret finds it through these functions, so a name changes here or nowhere.

use mutu_api::common::stable_hash;

/// Longest name of most objects (a DNS label): Jobs, Services, volume claims.
pub const MAX_NAME: usize = 63;

/// Longest site name: every name mutu derives from it must stay a DNS label, the
/// longest being its nightly pack Job `<site>-pack-YYYYMMDD` (14 more).
pub const MAX_SITE_NAME: usize = MAX_NAME - "-pack-YYYYMMDD".len();

/// Endings a site name may not have: the site's instances' Service is named after
/// the site, so a site `S-zeo` (or `S-offline`) would take the Service of site `S`'s
/// ZEO server (or of its maintenance page).
pub const RESERVED_SITE_SUFFIXES: [&str; 2] = ["-zeo", "-offline"];

/// Why `name` cannot name a site, with what to change; `None` when it can. A site
/// names its Services, which must be RFC 1035 labels (starting with a letter), and
/// its other children, which must not meet another site's.
pub fn site_name_problem(name: &str) -> Option<String> {
    let bytes = name.as_bytes();
    let label = !bytes.is_empty()
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes.last() != Some(&b'-');
    if !label || !bytes[0].is_ascii_lowercase() {
        return Some(format!(
            "metadata.name: {name:?} cannot name a site: it names the site's Services, so it must start with a lower-case letter and hold only lower-case letters, digits and '-' (not at its end), e.g. web-1"
        ));
    }
    if name.len() > MAX_SITE_NAME {
        return Some(format!(
            "metadata.name: {name:?} is {} characters long; a site's name has at most {MAX_SITE_NAME}, so that the names mutu derives from it fit",
            name.len()
        ));
    }
    if let Some(suffix) = RESERVED_SITE_SUFFIXES.iter().find(|s| name.ends_with(*s)) {
        let stem = &name[..name.len() - suffix.len()];
        return Some(format!(
            "metadata.name: {name:?} ends with {suffix:?}, which names a Service of site {stem:?}; choose a name that does not end with {}",
            RESERVED_SITE_SUFFIXES.join(" or ")
        ));
    }
    None
}

/// The image of a product's release: its instances, its Jobs, and what a
/// rollout checks its pods run.
pub fn release_image(product_image: &str, release: &str) -> String {
    format!("{product_image}:{release}")
}

/// The site's ZEO server: its StatefulSet and Service.
pub fn zeo_server(site: &str) -> String {
    format!("{site}-zeo")
}

/// Volume claim of a site's ZEO data until a MigrationPlan moves it (the
/// claim template `data` of [`zeo_server`]'s StatefulSet, ordinal 0).
pub fn zeo_data_claim(site: &str) -> String {
    format!("data-{site}-zeo-0")
}

/// Volume claim of a generic product's data.
pub fn generic_data_claim(site: &str) -> String {
    format!("{site}-data")
}

/// Secret with the `dsn` of a RelStorage site's PostgreSQL, unless the site
/// names its own.
pub fn postgresql_secret(site: &str) -> String {
    format!("{site}-postgresql")
}

/// Secret with the `username` and `password` of a Plone site's administrator
/// (a Manager at the Zope root), written once by the site operator.
pub fn admin_secret(site: &str) -> String {
    format!("{site}-admin")
}

/// Secret with the Solr credentials of a site's index.
pub fn solr_secret(site: &str) -> String {
    format!("{site}-solr")
}

/// The Solr alias a site's instances talk to: unique across tenants.
pub fn solr_alias(namespace: &str, site: &str) -> String {
    format!("{namespace}.{site}")
}

/// The Solr collection of version `version` of a site's configset.
pub fn solr_collection(alias: &str, version: &str) -> String {
    format!("{alias}_v{version}")
}

/// Secret holding the site's TLS certificate.
pub fn tls_secret(site: &str) -> String {
    format!("{site}-tls")
}

/// ConfigMap with the scripts the site's containers and Jobs run.
pub fn scripts_config(site: &str) -> String {
    format!("{site}-mutu")
}

/// Service of an offline site's Ingress: the maintenance page server.
pub fn offline_service(site: &str) -> String {
    format!("{site}-offline")
}

/// The Job that creates the Plone site in a new instance's database.
pub fn create_job(site: &str) -> String {
    format!("{site}-create")
}

/// The Job that upgrades `site`'s Plone site to `release` (the release's
/// characters other than letters and digits become `-`; at most 63 characters).
pub fn upgrade_job(site: &str, release: &str) -> String {
    let release: String = release
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    let name = format!("{site}-upgrade-{release}");
    name.chars()
        .take(63)
        .collect::<String>()
        .trim_end_matches('-')
        .to_string()
}

/// Name `{prefix}-{name}`, or where that is longer than [`MAX_NAME`], cut
/// and ended with a hash of the whole name, so two long names never meet.
pub fn bounded(prefix: &str, name: &str) -> String {
    let full = format!("{prefix}-{name}");
    if full.len() <= MAX_NAME {
        return full;
    }
    let hash = stable_hash(full.as_bytes());
    let cut: String = full.chars().take(52).collect();
    // Cut after a dot, the name would go on with a label starting with '-'.
    format!(
        "{}-{:010x}",
        cut.trim_end_matches(['-', '.']),
        hash & 0xff_ffff_ffff
    )
}

/// The volume claim a MigrationPlan (of uid `plan_uid`) copies a ZEO site's
/// data to: one per plan and site, so a second plan never reuses the first's.
pub fn migrated_data_claim(site: &str, plan_uid: &str) -> String {
    let hash = stable_hash(plan_uid.as_bytes()) & 0xff_ffff;
    let name = format!("data-{site}-zeo-{hash:06x}");
    if name.len() <= MAX_NAME {
        name
    } else {
        bounded("data", &format!("{site}-{hash:06x}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_site_children_are_named_after_it() {
        assert_eq!(zeo_server("delib"), "delib-zeo");
        assert_eq!(zeo_data_claim("delib"), "data-delib-zeo-0");
        assert_eq!(postgresql_secret("delib"), "delib-postgresql");
        assert_eq!(solr_secret("delib"), "delib-solr");
        assert_eq!(solr_alias("tenant-mons", "delib"), "tenant-mons.delib");
        assert_eq!(
            solr_collection("tenant-mons.delib", "2"),
            "tenant-mons.delib_v2"
        );
        assert_eq!(tls_secret("delib"), "delib-tls");
        assert_eq!(create_job("delib"), "delib-create");
    }

    #[test]
    fn a_site_name_must_start_with_a_letter_fit_and_not_end_like_a_service() {
        for ok in [
            "delib",
            "web-1",
            "a",
            "zeo",
            "my-zeo-site",
            &"s".repeat(MAX_SITE_NAME),
        ] {
            assert_eq!(site_name_problem(ok), None, "{ok}");
        }
        for (bad, says) in [
            ("1web", "start with a lower-case letter"),
            ("Web", "start with a lower-case letter"),
            ("web-", "not at its end"),
            ("", "start with a lower-case letter"),
            ("web.mons", "start with a lower-case letter"),
            ("delib-zeo", "names a Service of site \"delib\""),
            ("delib-offline", "names a Service of site \"delib\""),
            (&"s".repeat(MAX_SITE_NAME + 1), "characters long"),
        ] {
            let problem = site_name_problem(bad);
            assert!(
                problem.as_ref().is_some_and(|p| p.contains(says)),
                "{bad}: {problem:?}"
            );
        }
        assert_eq!(
            pack_job_len(),
            MAX_NAME,
            "the longest child of the longest name fits"
        );
    }

    fn pack_job_len() -> usize {
        format!("{}-pack-20261207", "s".repeat(MAX_SITE_NAME)).len()
    }

    #[test]
    fn a_long_name_is_cut_with_a_hash_and_stays_distinct() {
        assert_eq!(bounded("backup", "delib-1"), "backup-delib-1");
        let a = bounded("backup", &"a".repeat(80));
        let b = bounded("backup", &format!("{}b", "a".repeat(79)));
        assert!(a.len() <= MAX_NAME && b.len() <= MAX_NAME, "{a} {b}");
        assert_ne!(a, b);
        assert_eq!(a, bounded("backup", &"a".repeat(80)), "stable");
    }

    #[test]
    fn a_migrated_volume_is_named_by_its_plan_and_fits() {
        let one = migrated_data_claim("delib", "uid-1");
        assert!(one.starts_with("data-delib-zeo-"), "{one}");
        assert_ne!(one, migrated_data_claim("delib", "uid-2"));
        assert_ne!(one, zeo_data_claim("delib"));
        let long = migrated_data_claim(&"s".repeat(60), "uid-1");
        assert!(long.len() <= MAX_NAME, "{long}");
    }
}
