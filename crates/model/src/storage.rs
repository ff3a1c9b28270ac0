//! Where a site's data lives: the one rule every operator asks (the site's own
//! storage settings first, then its Product's, then the defaults).

use mutu_api::product::{Engine, StorageMode};
use mutu_api::{PloneSite, ProductSpec};

use crate::names;

/// Size of a site's volume when neither it nor its Product names one.
pub const DEFAULT_SIZE: &str = "10Gi";

/// Where a site's data lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Storage {
    /// Plone: FileStorage and blobs on a volume of the site's pool, behind its ZEO server.
    Zeo,
    /// Plone: RelStorage in PostgreSQL, outside the pools.
    Rel,
    /// A generic product with a volume of its own.
    Volume,
    /// A generic product without a volume: no data.
    Nothing,
}

impl Storage {
    /// The site keeps data on a volume of the pool it runs on.
    pub fn on_pool_volume(self) -> bool {
        matches!(self, Storage::Zeo | Storage::Volume)
    }
}

/// The storage mode of a Plone site (`None` for a generic product).
pub fn mode(site: &PloneSite, product: &ProductSpec) -> Option<StorageMode> {
    match product.engine {
        Engine::Generic => None,
        Engine::Plone => Some(
            site.spec
                .storage
                .as_ref()
                .and_then(|s| s.mode)
                .or_else(|| product_mode(product))
                .unwrap_or_default(),
        ),
    }
}

/// The storage mode every instance of a Product gets unless the site says
/// otherwise (`None` for a generic product).
pub fn product_mode(product: &ProductSpec) -> Option<StorageMode> {
    match product.engine {
        Engine::Generic => None,
        Engine::Plone => Some(
            product
                .storage
                .as_ref()
                .and_then(|s| s.mode)
                .unwrap_or_default(),
        ),
    }
}

/// Where `site`, an instance of `product`, keeps its data.
pub fn of_site(site: &PloneSite, product: &ProductSpec) -> Storage {
    match mode(site, product) {
        Some(StorageMode::Zeo) => Storage::Zeo,
        Some(StorageMode::Relstorage) => Storage::Rel,
        None => {
            let sized = product
                .storage
                .as_ref()
                .and_then(|s| s.size.as_ref())
                .is_some()
                || site
                    .spec
                    .storage
                    .as_ref()
                    .and_then(|s| s.size.as_ref())
                    .is_some();
            if sized {
                Storage::Volume
            } else {
                Storage::Nothing
            }
        }
    }
}

/// Size of the site's volume: the site's, else its Product's, else [`DEFAULT_SIZE`].
pub fn size(site: &PloneSite, product: &ProductSpec) -> String {
    site.spec
        .storage
        .as_ref()
        .and_then(|s| s.size.clone())
        .or_else(|| product.storage.as_ref().and_then(|s| s.size.clone()))
        .map(|q| q.0)
        .unwrap_or_else(|| DEFAULT_SIZE.to_string())
}

/// Storage class of the site's volume: the site's, else its Product's, else the cluster's default.
pub fn class(site: &PloneSite, product: &ProductSpec) -> Option<String> {
    site.spec
        .storage
        .as_ref()
        .and_then(|s| s.storage_class_name.clone())
        .or_else(|| {
            product
                .storage
                .as_ref()
                .and_then(|s| s.storage_class_name.clone())
        })
}

/// Secret with the PostgreSQL `dsn` of a RelStorage site: the one it names, else
/// [`names::postgresql_secret`].
pub fn relstorage_secret(site: &PloneSite) -> String {
    site.spec
        .storage
        .as_ref()
        .and_then(|s| s.secret_ref.as_ref())
        .map(|r| r.name.clone())
        .unwrap_or_else(|| {
            names::postgresql_secret(site.metadata.name.as_deref().unwrap_or_default())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn site(storage: serde_json::Value) -> PloneSite {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "hosting.imio.be/v1alpha1", "kind": "PloneSite",
            "metadata": {"name": "delib", "namespace": "tenant-mons"},
            "spec": {"product": "delib", "hostnames": ["delib.mons.be"], "storage": storage},
        }))
        .unwrap_or_else(|e| panic!("a site: {e}"))
    }

    fn product(spec: serde_json::Value) -> ProductSpec {
        let mut base = serde_json::json!({
            "displayName": "Delib", "engine": "plone", "image": "registry/delib", "release": "6.2.2",
        });
        if let (Some(b), Some(s)) = (base.as_object_mut(), spec.as_object()) {
            b.extend(s.clone());
        }
        serde_json::from_value(base).unwrap_or_else(|e| panic!("a product: {e}"))
    }

    #[test]
    fn a_plone_site_is_zeo_unless_it_or_its_product_says_relstorage() {
        let plone = product(serde_json::json!({}));
        assert_eq!(of_site(&site(serde_json::json!({})), &plone), Storage::Zeo);
        let rel = product(serde_json::json!({"storage": {"mode": "relstorage"}}));
        assert_eq!(of_site(&site(serde_json::json!({})), &rel), Storage::Rel);
        assert_eq!(
            of_site(&site(serde_json::json!({"mode": "zeo"})), &rel),
            Storage::Zeo,
            "the site's own mode comes first"
        );
        assert_eq!(product_mode(&rel), Some(StorageMode::Relstorage));
    }

    #[test]
    fn a_generic_product_has_a_volume_only_when_a_size_is_given() {
        let bare = product(serde_json::json!({"engine": "generic"}));
        assert_eq!(mode(&site(serde_json::json!({})), &bare), None);
        assert_eq!(
            of_site(&site(serde_json::json!({})), &bare),
            Storage::Nothing
        );
        assert_eq!(
            of_site(&site(serde_json::json!({"size": "1Gi"})), &bare),
            Storage::Volume
        );
        let sized = product(serde_json::json!({"engine": "generic", "storage": {"size": "5Gi"}}));
        assert_eq!(
            of_site(&site(serde_json::json!({})), &sized),
            Storage::Volume
        );
        assert!(Storage::Volume.on_pool_volume() && !Storage::Rel.on_pool_volume());
    }

    #[test]
    fn size_class_and_secret_fall_back_in_order() {
        let p =
            product(serde_json::json!({"storage": {"size": "5Gi", "storageClassName": "fast"}}));
        assert_eq!(size(&site(serde_json::json!({})), &p), "5Gi");
        assert_eq!(size(&site(serde_json::json!({"size": "1Gi"})), &p), "1Gi");
        assert_eq!(
            size(
                &site(serde_json::json!({})),
                &product(serde_json::json!({}))
            ),
            DEFAULT_SIZE
        );
        assert_eq!(
            class(&site(serde_json::json!({})), &p).as_deref(),
            Some("fast")
        );
        assert_eq!(
            relstorage_secret(&site(serde_json::json!({}))),
            "delib-postgresql"
        );
        assert_eq!(
            relstorage_secret(&site(serde_json::json!({"secretRef": {"name": "pg"}}))),
            "pg"
        );
    }
}

/// The claim holding a site's data now, found from its first claim `first` by following the
/// claims' [`mutu_api::SUPERSEDED_BY_ANNOTATION`]: `superseded_by(claim)` reads that annotation
/// of `claim` (`None` when the claim does not exist or carries none). A chain that loops or
/// names a claim that does not exist stops at the last claim that exists.
pub fn live_claim(first: &str, superseded_by: impl Fn(&str) -> Option<Option<String>>) -> String {
    let mut seen = vec![first.to_string()];
    let mut here = first.to_string();
    // At most one hop per migration of the site: 32 is far beyond any real history.
    for _ in 0..32 {
        let Some(Some(next)) = superseded_by(&here) else {
            break;
        };
        if seen.contains(&next) || superseded_by(&next).is_none() {
            break;
        }
        seen.push(next.clone());
        here = next;
    }
    here
}

#[cfg(test)]
mod live_claim_tests {
    use super::live_claim;
    use std::collections::BTreeMap;

    fn chain(claims: &[(&str, Option<&str>)]) -> impl Fn(&str) -> Option<Option<String>> + use<> {
        let map: BTreeMap<String, Option<String>> = claims
            .iter()
            .map(|(c, by)| (c.to_string(), by.map(str::to_string)))
            .collect();
        move |c: &str| map.get(c).cloned()
    }

    #[test]
    fn the_live_claim_is_at_the_end_of_the_superseded_chain() {
        let first = "data-delib-zeo-0";
        assert_eq!(live_claim(first, chain(&[(first, None)])), first);
        let moved = chain(&[(first, Some("data-delib-m1")), ("data-delib-m1", None)]);
        assert_eq!(live_claim(first, moved), "data-delib-m1");
        let twice = chain(&[
            (first, Some("data-delib-m1")),
            ("data-delib-m1", Some("data-delib-m2")),
            ("data-delib-m2", None),
        ]);
        assert_eq!(live_claim(first, twice), "data-delib-m2");
    }

    #[test]
    fn a_broken_or_looping_chain_stops_at_a_claim_that_exists() {
        let first = "data-delib-zeo-0";
        let missing = chain(&[(first, Some("data-delib-gone"))]);
        assert_eq!(live_claim(first, missing), first);
        let looping = chain(&[(first, Some("a")), ("a", Some(first))]);
        assert_eq!(live_claim(first, looping), "a");
        // The first claim gone (deleted by hand): nothing to follow.
        assert_eq!(live_claim(first, chain(&[])), first);
    }
}
