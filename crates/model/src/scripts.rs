//! The scripts mutu's Jobs run inside a site's own image, one copy each: the
//! site operator ships them in the site's scripts ConfigMap (mounted at
//! [`DIR`]), and the site, backup and SolrIndex operators' Jobs run them from
//! there. Each is tested for real in `tests/plone`, `tests/postgres` and
//! `tests/volume`.

/// Where the scripts ConfigMap is mounted in a site's containers and Jobs.
pub const DIR: &str = "/opt/mutu";

/// Creates the Plone site in a new instance's database (the site operator's creation Job).
pub const CREATE_SITE: Script = Script {
    name: "create_site.py",
    text: include_str!("../scripts/create_site.py"),
};
/// Upgrades a site to a new release (the site operator's upgrade Job).
pub const UPGRADE_SITE: Script = Script {
    name: "upgrade_site.py",
    text: include_str!("../scripts/upgrade_site.py"),
};
/// Reindexes a site into a new Solr collection (the SolrIndex operator's reindex Job).
pub const REINDEX_SOLR: Script = Script {
    name: "reindex_solr.py",
    text: include_str!("../scripts/reindex_solr.py"),
};
/// Backs up, restores and prunes a ZEO site's FileStorage and blobs (the backup operator's Jobs).
pub const ZODB_BACKUP: Script = Script {
    name: "zodb_backup.py",
    text: include_str!("../scripts/zodb_backup.py"),
};
/// Backs up and restores a RelStorage site's PostgreSQL database (the backup operator's
/// Jobs, in a PostgreSQL client image).
pub const PG_BACKUP: Script = Script {
    name: "pg_backup.sh",
    text: include_str!("../scripts/pg_backup.sh"),
};

/// Backs up and restores the data volume of a generic product's site (the
/// backup operator's Jobs, in a small image with a shell, tar and gzip).
pub const VOLUME_BACKUP: Script = Script {
    name: "volume_backup.sh",
    text: include_str!("../scripts/volume_backup.sh"),
};

/// Every script, as the ConfigMap carries them.
pub const ALL: [Script; 6] = [
    CREATE_SITE,
    UPGRADE_SITE,
    REINDEX_SOLR,
    ZODB_BACKUP,
    PG_BACKUP,
    VOLUME_BACKUP,
];

/// One script: its file name in the ConfigMap and its text.
#[derive(Clone, Copy, Debug)]
pub struct Script {
    pub name: &'static str,
    pub text: &'static str,
}

impl Script {
    /// Where a container finds it.
    pub fn path(&self) -> String {
        format!("{DIR}/{}", self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_script_is_shipped_and_found_under_the_mount() {
        for s in ALL {
            assert!(!s.text.trim().is_empty(), "{} is empty", s.name);
            assert_eq!(s.path(), format!("/opt/mutu/{}", s.name));
        }
        assert_eq!(ZODB_BACKUP.path(), "/opt/mutu/zodb_backup.py");
    }
}
