//! Kubernetes clients impersonating the portal's users, one per identity,
//! kept for reuse (a bounded number: the cache empties when full).

use std::collections::HashMap;
use std::sync::Mutex;

use kube::Client;

use crate::Identity;

/// Most identities whose clients are kept.
const KEEP: usize = 256;

/// Impersonating clients, made from the portal's own configuration.
pub struct Clients {
    base: kube::Config,
    cache: Mutex<HashMap<Identity, Client>>,
}

impl Clients {
    pub fn new(base: kube::Config) -> Self {
        Self {
            base,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// A client the API server takes for `who` (user and groups).
    pub fn get(&self, who: &Identity) -> Result<Client, kube::Error> {
        if let Ok(cache) = self.cache.lock()
            && let Some(client) = cache.get(who)
        {
            return Ok(client.clone());
        }
        let mut config = self.base.clone();
        config.auth_info.impersonate = Some(who.user.clone());
        config.auth_info.impersonate_groups = Some(who.groups.clone());
        let client = Client::try_from(config)?;
        if let Ok(mut cache) = self.cache.lock() {
            if cache.len() >= KEEP {
                cache.clear();
            }
            cache.insert(who.clone(), client.clone());
        }
        Ok(client)
    }
}
