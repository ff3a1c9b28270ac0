//! The site's search index: a SolrIndex when its product has Solr and the site
//! does not turn it off.

use kube::ResourceExt;
use mutu_api::product::Engine;
use mutu_api::solr::SolrIndexSpec;
use mutu_api::{PloneSite, ProductSpec, SolrIndex};

use super::pod::meta;

/// The site gets an index: a Plone product with Solr, not turned off by the site.
pub(super) fn wanted(site: &PloneSite, product: &ProductSpec) -> bool {
    product.engine == Engine::Plone
        && product.solr.as_ref().is_some_and(|s| s.enabled)
        && site.spec.solr.as_ref().and_then(|s| s.enabled) != Some(false)
}

/// The site's index, of the product's configset, at the site's configset
/// version, else the product's. The index goes with the site's data: Delete
/// removes it from Solr too.
pub(super) fn solr_index(site: &PloneSite, product: &ProductSpec) -> SolrIndex {
    let product_solr = product.solr.as_ref();
    let version = site
        .spec
        .solr
        .as_ref()
        .and_then(|s| s.configset_version.clone())
        .or_else(|| product_solr.and_then(|s| s.configset_version.clone()));
    SolrIndex {
        metadata: meta(site, &site.name_any(), "search", true),
        spec: SolrIndexSpec {
            site: Some(site.name_any()),
            configset: product_solr.and_then(|s| s.configset.clone()),
            configset_version: version,
            deletion_policy: site.spec.deletion_policy,
            ..Default::default()
        },
        status: None,
    }
}
