//! A small, typed client for the SolrCloud admin APIs mutu uses: configsets,
//! collections, aliases, users and their permissions, and document counts.
//! Every error carries Solr's own message.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};

/// Why a Solr call failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Solr answered with an error: its HTTP status and its own message.
    #[error("Solr answered {status} to {what}: {message}")]
    Solr {
        what: String,
        status: u16,
        message: String,
    },
    /// Solr could not be reached (down, refused, timed out).
    #[error("cannot reach Solr for {what}: {source}")]
    Unreachable {
        what: String,
        #[source]
        source: reqwest::Error,
    },
    /// Solr answered something this client does not understand.
    #[error("unexpected answer from Solr to {what}: {message}")]
    Unexpected { what: String, message: String },
    /// The operating system gave no random bytes for a password.
    #[error("cannot draw random bytes for a password: {0}")]
    Random(String),
    /// A configset could not be packed.
    #[error("cannot pack configset {name}: {message}")]
    Pack { name: String, message: String },
}

impl Error {
    /// Whether Solr was unreachable (as opposed to refusing the request).
    pub fn is_unreachable(&self) -> bool {
        matches!(self, Error::Unreachable { .. })
    }

    /// The HTTP status Solr answered with, if it answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Solr { status, .. } => Some(*status),
            _ => None,
        }
    }
}

pub type Result<T> = std::result::Result<T, Error>;

/// Basic-auth credentials.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credentials {
    pub user: String,
    pub password: String,
}

/// A client of one Solr cluster, e.g. `http://127.0.0.1:8983/solr`.
#[derive(Clone, Debug)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    auth: Option<Credentials>,
}

/// The message of a Solr error answer: `error.msg`, else the body.
pub fn error_message(body: &str) -> String {
    serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| {
            v["error"]["msg"]
                .as_str()
                .or_else(|| v["errorMessages"][0]["msg"].as_str())
                .or_else(|| v["exception"]["msg"].as_str())
                .map(str::to_string)
        })
        .unwrap_or_else(|| {
            let trimmed = body.trim();
            let cut: String = trimmed.chars().take(300).collect();
            if cut.is_empty() {
                "(no message)".into()
            } else {
                cut
            }
        })
}

impl Client {
    /// A client of the Solr at `base` (e.g. `http://127.0.0.1:8983/solr`), as `auth`.
    pub fn new(base: &str, auth: Option<Credentials>) -> Result<Self> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(3))
            .timeout(Duration::from_secs(60))
            .build()
            .map_err(|source| Error::Unreachable {
                what: "building the HTTP client".into(),
                source,
            })?;
        Ok(Self {
            http,
            base: base.trim_end_matches('/').to_string(),
            auth,
        })
    }

    /// The same cluster, as another user.
    pub fn as_user(&self, auth: Credentials) -> Self {
        Self {
            http: self.http.clone(),
            base: self.base.clone(),
            auth: Some(auth),
        }
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    fn with_auth(&self, req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.auth {
            Some(a) => req.basic_auth(&a.user, Some(&a.password)),
            None => req,
        }
    }

    async fn send(&self, what: &str, req: reqwest::RequestBuilder) -> Result<Value> {
        let rsp = self
            .with_auth(req)
            .send()
            .await
            .map_err(|source| Error::Unreachable {
                what: what.to_string(),
                source,
            })?;
        let status = rsp.status();
        let body = rsp.text().await.map_err(|source| Error::Unreachable {
            what: what.to_string(),
            source,
        })?;
        if !status.is_success() {
            return Err(Error::Solr {
                what: what.to_string(),
                status: status.as_u16(),
                message: error_message(&body),
            });
        }
        serde_json::from_str(&body).map_err(|e| Error::Unexpected {
            what: what.to_string(),
            message: format!("{e}: {}", body.chars().take(200).collect::<String>()),
        })
    }

    async fn collections_api(&self, what: &str, params: &[(&str, &str)]) -> Result<Value> {
        let url = format!("{}/admin/collections", self.base);
        let mut query: Vec<(&str, &str)> = params.to_vec();
        query.push(("wt", "json"));
        self.send(what, self.http.get(url).query(&query)).await
    }

    /// Whether the cluster answers (the node's system info).
    pub async fn ping(&self) -> Result<()> {
        let url = format!("{}/admin/info/system", self.base);
        self.send(
            "the system info",
            self.http.get(url).query(&[("wt", "json")]),
        )
        .await
        .map(|_| ())
    }

    /// The configsets the cluster holds.
    pub async fn configsets(&self) -> Result<Vec<String>> {
        let url = format!("{}/admin/configs", self.base);
        let v = self
            .send(
                "listing configsets",
                self.http
                    .get(url)
                    .query(&[("action", "LIST"), ("wt", "json")]),
            )
            .await?;
        strings(&v["configSets"], "listing configsets")
    }

    /// Uploads the configset `name` from `files` (path inside the configset ->
    /// content). Solr refuses to overwrite an existing configset.
    pub async fn upload_configset(
        &self,
        name: &str,
        files: &BTreeMap<String, Vec<u8>>,
    ) -> Result<()> {
        let zip = pack(name, files)?;
        let url = format!("{}/admin/configs", self.base);
        self.send(
            &format!("uploading configset {name}"),
            self.http
                .post(url)
                .query(&[("action", "UPLOAD"), ("name", name), ("wt", "json")])
                .header("Content-Type", "application/octet-stream")
                .body(zip),
        )
        .await
        .map(|_| ())
    }

    /// The collections of the cluster.
    pub async fn collections(&self) -> Result<Vec<String>> {
        let v = self
            .collections_api("listing collections", &[("action", "LIST")])
            .await?;
        strings(&v["collections"], "listing collections")
    }

    /// Creates the collection `name` from `configset` (one shard, one replica).
    pub async fn create_collection(&self, name: &str, configset: &str) -> Result<()> {
        self.collections_api(
            &format!("creating collection {name}"),
            &[
                ("action", "CREATE"),
                ("name", name),
                ("collection.configName", configset),
                ("numShards", "1"),
                ("replicationFactor", "1"),
            ],
        )
        .await
        .map(|_| ())
    }

    /// Deletes the collection `name`.
    pub async fn delete_collection(&self, name: &str) -> Result<()> {
        self.collections_api(
            &format!("deleting collection {name}"),
            &[("action", "DELETE"), ("name", name)],
        )
        .await
        .map(|_| ())
    }

    /// The aliases: alias -> the collection(s) it points to.
    pub async fn aliases(&self) -> Result<BTreeMap<String, String>> {
        let v = self
            .collections_api("listing aliases", &[("action", "LISTALIASES")])
            .await?;
        let map = v["aliases"].as_object().cloned().unwrap_or_default();
        Ok(map
            .into_iter()
            .map(|(k, v)| (k, v.as_str().unwrap_or_default().to_string()))
            .collect())
    }

    /// Points the alias `name` at `collection` (creating or moving it).
    pub async fn set_alias(&self, name: &str, collection: &str) -> Result<()> {
        self.collections_api(
            &format!("pointing alias {name} at {collection}"),
            &[
                ("action", "CREATEALIAS"),
                ("name", name),
                ("collections", collection),
            ],
        )
        .await
        .map(|_| ())
    }

    /// Deletes the alias `name`.
    pub async fn delete_alias(&self, name: &str) -> Result<()> {
        self.collections_api(
            &format!("deleting alias {name}"),
            &[("action", "DELETEALIAS"), ("name", name)],
        )
        .await
        .map(|_| ())
    }

    /// Documents in `collection` (or alias).
    pub async fn count(&self, collection: &str) -> Result<i64> {
        let url = format!("{}/{collection}/select", self.base);
        let v = self
            .send(
                &format!("counting the documents of {collection}"),
                self.http
                    .get(url)
                    .query(&[("q", "*:*"), ("rows", "0"), ("wt", "json")]),
            )
            .await?;
        v["response"]["numFound"]
            .as_i64()
            .ok_or_else(|| Error::Unexpected {
                what: format!("counting the documents of {collection}"),
                message: "no response.numFound".into(),
            })
    }

    /// The answer of `collection`'s (or alias's) `/select` to the query `params`
    /// (`q`, `fl`, `rows`...), as Solr's JSON.
    pub async fn select(&self, collection: &str, params: &[(&str, &str)]) -> Result<Value> {
        let url = format!("{}/{collection}/select", self.base);
        let mut query: Vec<(&str, &str)> = params.to_vec();
        query.push(("wt", "json"));
        self.send(
            &format!("searching {collection}"),
            self.http.get(url).query(&query),
        )
        .await
    }

    /// Adds `docs` to `collection` and commits.
    pub async fn index(&self, collection: &str, docs: &[Value]) -> Result<()> {
        let url = format!("{}/{collection}/update", self.base);
        self.send(
            &format!("indexing into {collection}"),
            self.http
                .post(url)
                .query(&[("commit", "true"), ("wt", "json")])
                .json(docs),
        )
        .await
        .map(|_| ())
    }

    /// Creates or updates the user `user` (basic authentication).
    pub async fn set_user(&self, user: &str, password: &str) -> Result<()> {
        self.security(
            "authentication",
            &format!("setting user {user}"),
            json!({"set-user": {user: password}}),
        )
        .await
    }

    /// Deletes the user `user`.
    pub async fn delete_user(&self, user: &str) -> Result<()> {
        self.security(
            "authentication",
            &format!("deleting user {user}"),
            json!({"delete-user": [user]}),
        )
        .await
    }

    /// Gives `user` exactly the roles `roles`.
    pub async fn set_user_roles(&self, user: &str, roles: &[&str]) -> Result<()> {
        let roles: Value = if roles.is_empty() {
            Value::Null
        } else {
            json!(roles)
        };
        self.security(
            "authorization",
            &format!("setting the roles of {user}"),
            json!({"set-user-role": {user: roles}}),
        )
        .await
    }

    /// The permissions of the authorization plugin, in order.
    pub async fn permissions(&self) -> Result<Vec<Permission>> {
        let v = self.security_config("authorization").await?;
        let list = v["permissions"].clone();
        serde_json::from_value(if list.is_null() { json!([]) } else { list }).map_err(|e| {
            Error::Unexpected {
                what: "reading the permissions".into(),
                message: e.to_string(),
            }
        })
    }

    /// The configuration of the security plugin `plugin` (`authentication` or
    /// `authorization`) as Solr holds it in security.json (`Null` if there is none).
    pub async fn security_config(&self, plugin: &str) -> Result<Value> {
        let url = format!("{}/admin/{plugin}", self.base);
        let v = self
            .send(
                &format!("reading the {plugin} configuration"),
                self.http.get(url).query(&[("wt", "json")]),
            )
            .await?;
        if v[format!("{plugin}.enabled")] == json!(false) {
            return Ok(Value::Null);
        }
        // Solr 9 answers `authorization`; older releases `authorization.configuration`.
        let conf = &v[plugin];
        Ok(if conf.is_null() {
            v[format!("{plugin}.configuration")].clone()
        } else {
            conf.clone()
        })
    }

    /// What is missing from the cluster's security rules for site users to be
    /// safe (see [`missing_rules`]); empty when all is in place.
    pub async fn missing_security_rules(&self, admin_role: &str) -> Result<Vec<String>> {
        let authentication = self.security_config("authentication").await?;
        let authorization = self.security_config("authorization").await?;
        Ok(missing_rules(&authentication, &authorization, admin_role))
    }

    /// Gives `roles` the site rights ([`SITE_RIGHTS`]) on `collections` (and
    /// on the aliases that point to them): one permission per right, `name`
    /// for searching, `name:update`, `name:files`. `before` puts them ahead
    /// of the permission with that index. Name the admin role in `roles` too:
    /// Solr looks a collection's own permissions up before the catch-all
    /// `all`, so the admin keeps access to these paths only through them.
    pub async fn add_permission(
        &self,
        name: &str,
        collections: &[&str],
        roles: &[&str],
        before: Option<u32>,
    ) -> Result<()> {
        let commands: Vec<(&str, Value)> = site_permissions(name, collections, roles)
            .iter()
            .map(|p| {
                let mut body = p.to_json();
                if let Some(index) = before {
                    body["before"] = json!(index);
                }
                ("set-permission", body)
            })
            .collect();
        self.edit_permissions(&format!("adding permission {name}"), &commands)
            .await
    }

    /// Applies `commands` (e.g. `set-permission`, `delete-permission`) to the
    /// authorization plugin in one request: Solr applies them one after the
    /// other to its latest security.json and stores the result once, so
    /// nobody ever sees a state in between.
    pub async fn edit_permissions(&self, what: &str, commands: &[(&str, Value)]) -> Result<()> {
        if commands.is_empty() {
            return Ok(());
        }
        // One JSON object with a key per command: the keys may repeat.
        let body = commands
            .iter()
            .map(|(cmd, v)| format!("{}:{v}", Value::from(*cmd)))
            .collect::<Vec<_>>()
            .join(",");
        self.security_raw("authorization", what, format!("{{{body}}}"))
            .await
    }

    /// Deletes the permission at `index`.
    pub async fn delete_permission(&self, index: u32) -> Result<()> {
        self.security(
            "authorization",
            &format!("deleting permission {index}"),
            json!({"delete-permission": index}),
        )
        .await
    }

    async fn security(&self, plugin: &str, what: &str, body: Value) -> Result<()> {
        self.security_raw(plugin, what, body.to_string()).await
    }

    async fn security_raw(&self, plugin: &str, what: &str, body: String) -> Result<()> {
        let url = format!("{}/admin/{plugin}", self.base);
        let req = self
            .http
            .post(url)
            .header("Content-Type", "application/json")
            .body(body);
        let v = self.send(what, req).await?;
        // The security API refuses a command with HTTP 200 and errorMessages.
        if v["errorMessages"].as_array().is_some_and(|e| !e.is_empty()) {
            return Err(Error::Solr {
                what: what.to_string(),
                status: 400,
                message: error_message(&v.to_string()),
            });
        }
        Ok(())
    }
}

/// One permission of Solr's rule-based authorization plugin.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
pub struct Permission {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub index: Option<u32>,
    #[serde(default)]
    pub role: Option<Value>,
    #[serde(default)]
    pub collection: Option<Value>,
    #[serde(default)]
    pub path: Option<Value>,
    #[serde(default)]
    pub method: Option<Value>,
    #[serde(default)]
    pub params: Option<Value>,
}

/// A string or a list of strings (as Solr accepts both), sorted; empty when
/// absent.
fn sorted(v: &Option<Value>) -> Vec<String> {
    let mut list: Vec<String> = match v {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(|s| s.as_str().map(str::to_string))
            .collect(),
        _ => Vec::new(),
    };
    list.sort();
    list.dedup();
    list
}

impl Permission {
    /// Its roles, sorted.
    pub fn roles(&self) -> Vec<String> {
        sorted(&self.role)
    }

    /// Its collections, sorted.
    pub fn collections(&self) -> Vec<String> {
        sorted(&self.collection)
    }

    /// Its paths, sorted.
    pub fn paths(&self) -> Vec<String> {
        sorted(&self.path)
    }

    /// Its HTTP methods, sorted (empty: every method).
    pub fn methods(&self) -> Vec<String> {
        sorted(&self.method)
    }

    /// Whether `self` and `other` are the same rule (whatever their index
    /// and the order of their lists).
    pub fn same_rule(&self, other: &Permission) -> bool {
        self.name == other.name
            && self.roles() == other.roles()
            && self.collections() == other.collections()
            && self.paths() == other.paths()
            && self.methods() == other.methods()
            && self.params == other.params
    }

    /// The permission as `set-permission` takes it (without index).
    pub fn to_json(&self) -> Value {
        let mut v = json!({});
        let fields = [
            ("name", self.name.clone().map(Value::from)),
            ("collection", self.collection.clone()),
            ("path", self.path.clone()),
            ("method", self.method.clone()),
            ("params", self.params.clone()),
            ("role", self.role.clone()),
        ];
        for (key, value) in fields {
            if let Some(value) = value {
                v[key] = value;
            }
        }
        v
    }
}

/// One kind of request a site's Solr user may make on its own collections:
/// the request handlers (`path`, `/x/*` for the handlers under `/x`) and
/// the HTTP methods. Each becomes one permission of the authorization
/// plugin, named after the site (`mutu:<alias>` followed by `suffix`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct SiteRight {
    pub suffix: &'static str,
    pub path: &'static [&'static str],
    pub method: &'static [&'static str],
}

/// What a site's user may do, and nothing more: what collective.solr (the
/// Plone add-on) calls on its core. It searches with POST on `/select` (and
/// `/suggest`), writes with POST on `/update`, and reads `schema.xml` with
/// GET on `/admin/file/` to learn the unique key. Requests to any other path
/// of its collections (`/config`, `/schema`, `/admin/...`), to other
/// collections, or to the cluster's admin APIs fall through to the
/// catch-all `all`, which only the admin role holds.
///
/// `tests/solr/site-rights.json` holds the same list for the smoke test (a
/// unit test keeps the two equal).
pub const SITE_RIGHTS: &[SiteRight] = &[
    SiteRight {
        suffix: "",
        path: &["/select", "/query", "/get", "/suggest"],
        method: &["GET", "POST"],
    },
    SiteRight {
        suffix: ":update",
        path: &["/update", "/update/*"],
        method: &["POST"],
    },
    SiteRight {
        suffix: ":files",
        path: &["/admin/file", "/admin/file/", "/admin/ping"],
        method: &["GET"],
    },
];

/// The permissions that give `roles` the [`SITE_RIGHTS`] on `collections`,
/// the first named `name`, the others `name` and their suffix.
pub fn site_permissions(name: &str, collections: &[&str], roles: &[&str]) -> Vec<Permission> {
    SITE_RIGHTS
        .iter()
        .map(|r| Permission {
            name: Some(format!("{name}{}", r.suffix)),
            index: None,
            role: Some(json!(roles)),
            collection: Some(json!(collections)),
            path: Some(json!(r.path)),
            method: Some(json!(r.method)),
            params: None,
        })
        .collect()
}

/// Whether the permission named `candidate` is one of the site permissions
/// named `name` (`name` itself, or `name:...`).
pub fn is_site_permission(name: &str, candidate: &str) -> bool {
    candidate == name
        || candidate
            .strip_prefix(name)
            .is_some_and(|rest| rest.starts_with(':'))
}

/// The commands that turn the site permissions named `name` in `current`
/// (Solr's list, in order) into `desired`, for [`Client::edit_permissions`]:
/// a permission that changed is overwritten where it stands (`index`), a new
/// one goes before the catch-all `all`, and those no longer wanted (an older
/// form, duplicates) are deleted last. Applied in one request, the site never
/// loses access in between. Empty when `current` already holds `desired`.
pub fn plan_site_permissions(
    current: &[Permission],
    name: &str,
    desired: &[Permission],
) -> Vec<(&'static str, Value)> {
    // The names in order, as Solr will hold them after each command.
    let mut order: Vec<Option<String>> = current.iter().map(|p| p.name.clone()).collect();
    let mut commands = Vec::new();
    for want in desired {
        let at = order.iter().position(|n| *n == want.name);
        match at {
            // Already there (a second copy is deleted below).
            Some(_) if current.iter().any(|p| p.same_rule(want)) => {}
            Some(at) => {
                let mut body = want.to_json();
                body["index"] = json!(at + 1);
                commands.push(("set-permission", body));
            }
            None => {
                let mut body = want.to_json();
                let all = order.iter().position(|n| n.as_deref() == Some("all"));
                match all {
                    Some(all) => {
                        body["before"] = json!(all + 1);
                        order.insert(all, want.name.clone());
                    }
                    None => order.push(want.name.clone()),
                }
                commands.push(("set-permission", body));
            }
        }
    }
    // The site's permissions that are not wanted, and any second copy.
    let mut seen = Vec::new();
    let mut stale = Vec::new();
    for (i, n) in order.iter().enumerate() {
        let Some(n) = n else { continue };
        if !is_site_permission(name, n) {
            continue;
        }
        let wanted = desired
            .iter()
            .any(|d| d.name.as_deref() == Some(n.as_str()));
        if !wanted || seen.contains(n) {
            stale.push(i + 1);
        }
        seen.push(n.clone());
    }
    // From the last, so that each index still points where it did.
    for index in stale.into_iter().rev() {
        commands.push(("delete-permission", json!(index)));
    }
    commands
}

/// What is missing from Solr's security configuration (`authentication`
/// and `authorization` of security.json, `Null` when absent) for a site's
/// user to reach only what its permissions name: each entry says which rule
/// and how to add it. Empty when all is in place.
///
/// The rules: Basic authentication with `blockUnknown: true` (no anonymous
/// request), rule-based authorization, and its catch-all permission `all`
/// held by `admin_role` alone, for every collection. Without `all`, Solr
/// lets any authenticated user (a site's too) through every request that no
/// other permission names (`/config`, the Collections API...).
pub fn missing_rules(
    authentication: &Value,
    authorization: &Value,
    admin_role: &str,
) -> Vec<String> {
    let mut missing = Vec::new();
    let class = |v: &Value| v["class"].as_str().unwrap_or_default().to_string();
    let authn = class(authentication);
    if !authn.ends_with("BasicAuthPlugin") {
        missing.push(format!(
            "authentication: Solr has {}; set in security.json \"authentication\": {{\"class\": \"solr.BasicAuthPlugin\", \"blockUnknown\": true, ...}}",
            if authn.is_empty() { "no authentication plugin".to_string() } else { format!("the authentication plugin {authn}, not solr.BasicAuthPlugin") }
        ));
    } else if authentication["blockUnknown"] != json!(true) {
        missing.push(
            "authentication: blockUnknown is not true, so requests without credentials get through; set it: POST /solr/admin/authentication {\"set-property\": {\"blockUnknown\": true}}".to_string(),
        );
    }
    let authz = class(authorization);
    if !authz.ends_with("RuleBasedAuthorizationPlugin") {
        missing.push(format!(
            "authorization: Solr has {}; set in security.json \"authorization\": {{\"class\": \"solr.RuleBasedAuthorizationPlugin\", \"permissions\": [{{\"name\": \"all\", \"role\": \"{admin_role}\"}}], ...}}",
            if authz.is_empty() { "no authorization plugin".to_string() } else { format!("the authorization plugin {authz}, not solr.RuleBasedAuthorizationPlugin") }
        ));
        return missing;
    }
    let permissions: Vec<Permission> =
        serde_json::from_value(authorization["permissions"].clone()).unwrap_or_default();
    let add = format!(
        "POST /solr/admin/authorization {{\"set-permission\": {{\"name\": \"all\", \"role\": \"{admin_role}\"}}}}"
    );
    match permissions.iter().find(|p| p.name.as_deref() == Some("all")) {
        None => missing.push(format!(
            "authorization: no catch-all permission \"all\" for role {admin_role}, so every user may use what no other permission names (/config, the Collections API...); add it last: {add}"
        )),
        Some(all) => {
            let roles = all.roles();
            if roles != [admin_role.to_string()] {
                let held = if all.role.is_none() || all.role == Some(Value::Null) {
                    "no role (anyone)".to_string()
                } else {
                    format!("roles [{}]", roles.join(", "))
                };
                missing.push(format!(
                    "authorization: the catch-all permission \"all\" (index {}) has {held}, not the role {admin_role} alone; set it: POST /solr/admin/authorization {{\"set-permission\": {{\"index\": {}, \"name\": \"all\", \"role\": \"{admin_role}\"}}}}",
                    all.index.unwrap_or_default(),
                    all.index.unwrap_or_default()
                ));
            }
            if all.collection.is_some() || all.path.is_some() || all.method.is_some() || all.params.is_some() {
                missing.push(format!(
                    "authorization: the catch-all permission \"all\" (index {}) is narrowed by collection, path, method or params; it must cover every request: give it only a name and a role",
                    all.index.unwrap_or_default()
                ));
            }
        }
    }
    missing
}

/// A password of 24 bytes from the operating system's cryptographic random
/// generator, as 48 hexadecimal characters.
pub fn new_password() -> Result<String> {
    let mut bytes = [0u8; 24];
    getrandom::fill(&mut bytes).map_err(|e| Error::Random(e.to_string()))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

fn strings(v: &Value, what: &str) -> Result<Vec<String>> {
    let list = v.as_array().ok_or_else(|| Error::Unexpected {
        what: what.to_string(),
        message: "not a list".into(),
    })?;
    Ok(list
        .iter()
        .filter_map(|s| s.as_str().map(str::to_string))
        .collect())
}

/// A zip of `files`, as the configset API wants it.
pub fn pack(name: &str, files: &BTreeMap<String, Vec<u8>>) -> Result<Vec<u8>> {
    let err = |e: &dyn std::fmt::Display| Error::Pack {
        name: name.to_string(),
        message: e.to_string(),
    };
    let mut out = std::io::Cursor::new(Vec::new());
    {
        let mut zip = zip::ZipWriter::new(&mut out);
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        for (path, content) in files {
            zip.start_file(path.as_str(), options)
                .map_err(|e| err(&e))?;
            zip.write_all(content).map_err(|e| err(&e))?;
        }
        zip.finish().map_err(|e| err(&e))?;
    }
    Ok(out.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn solr_error_messages_are_read_from_its_json() {
        let body = r#"{"responseHeader":{"status":400},"error":{"metadata":[],"msg":"collection already exists: x","code":400}}"#;
        assert_eq!(error_message(body), "collection already exists: x");
        let v2 = r#"{"errorMessages":[{"msg":"bad permission"}]}"#;
        assert_eq!(error_message(v2), "bad permission");
        assert_eq!(
            error_message("<html>Forbidden</html>"),
            "<html>Forbidden</html>"
        );
        assert_eq!(error_message(""), "(no message)");
    }

    #[test]
    fn configsets_are_packed_as_zip_files() {
        let files = BTreeMap::from([
            ("solrconfig.xml".to_string(), b"<config/>".to_vec()),
            ("managed-schema.xml".to_string(), b"<schema/>".to_vec()),
        ]);
        let bytes = pack("plone-1", &files).unwrap_or_default();
        assert_eq!(&bytes[..2], b"PK");
        let mut archive =
            zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(archive.len(), 2);
        let names: Vec<String> = (0..2)
            .filter_map(|i| {
                archive
                    .by_index(i)
                    .ok()
                    .and_then(|f| f.name().ok().map(|n| n.to_string()))
            })
            .collect();
        assert!(names.contains(&"solrconfig.xml".to_string()));
    }

    fn perm(v: Value) -> Permission {
        serde_json::from_value(v).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Solr's list after `commands`, applied as Solr's edit operations do
    /// (set-permission with index or before, delete-permission, renumbered
    /// after each).
    fn apply(current: &[Permission], commands: &[(&str, Value)]) -> Vec<Permission> {
        let mut list: Vec<Permission> = current.to_vec();
        for (cmd, body) in commands {
            match *cmd {
                "set-permission" => {
                    let p = perm(body.clone());
                    if let Some(index) = body["index"].as_u64() {
                        let at = usize::try_from(index).unwrap_or(usize::MAX) - 1;
                        assert!(at < list.len(), "index {index} out of range");
                        list[at] = p;
                    } else if let Some(before) = body["before"].as_u64() {
                        let at = usize::try_from(before).unwrap_or(usize::MAX) - 1;
                        assert!(at < list.len(), "before {before} out of range");
                        list.insert(at, p);
                    } else {
                        list.push(p);
                    }
                }
                "delete-permission" => {
                    let index = body.as_u64().unwrap_or_default();
                    let at = usize::try_from(index).unwrap_or(usize::MAX) - 1;
                    assert!(at < list.len(), "no permission {index}");
                    list.remove(at);
                }
                other => panic!("unexpected command {other}"),
            }
            for (i, p) in list.iter_mut().enumerate() {
                p.index = u32::try_from(i + 1).ok();
            }
        }
        list
    }

    fn names(list: &[Permission]) -> Vec<String> {
        list.iter().filter_map(|p| p.name.clone()).collect()
    }

    fn with_index(list: Vec<Permission>) -> Vec<Permission> {
        list.into_iter()
            .enumerate()
            .map(|(i, mut p)| {
                p.index = u32::try_from(i + 1).ok();
                p
            })
            .collect()
    }

    #[test]
    fn a_site_may_search_update_and_read_its_schema_file_and_nothing_else() {
        let perms = site_permissions("mutu:t.web", &["t.web_v1"], &["admin", "t.web"]);
        assert_eq!(
            names(&perms),
            ["mutu:t.web", "mutu:t.web:update", "mutu:t.web:files"]
        );
        let mut allowed = Vec::new();
        for p in &perms {
            assert_eq!(p.collections(), ["t.web_v1"]);
            assert_eq!(p.roles(), ["admin", "t.web"]);
            assert!(!p.methods().is_empty(), "{p:?}: every method");
            for path in p.paths() {
                for method in p.methods() {
                    allowed.push(format!("{method} {path}"));
                }
            }
        }
        allowed.sort();
        assert_eq!(
            allowed,
            [
                "GET /admin/file",
                "GET /admin/file/",
                "GET /admin/ping",
                "GET /get",
                "GET /query",
                "GET /select",
                "GET /suggest",
                "POST /get",
                "POST /query",
                "POST /select",
                "POST /suggest",
                "POST /update",
                "POST /update/*",
            ]
        );
        // Solr reads `/x/*` as every path that starts with `/x`, and `/*` as
        // every path: no right may reach the config, the schema API or the
        // admin handlers by a prefix.
        for forbidden in [
            "/config",
            "/config/overlay",
            "/schema",
            "/schema/fields",
            "/admin/luke",
            "/admin/segments",
            "/replication",
        ] {
            for p in &perms {
                for path in p.paths() {
                    let prefix = path.strip_suffix("/*");
                    let reaches =
                        path == forbidden || prefix.is_some_and(|pre| forbidden.starts_with(pre));
                    assert!(!reaches, "{path} of {:?} reaches {forbidden}", p.name);
                }
            }
        }
    }

    #[test]
    fn the_smoke_test_grants_the_same_rights_as_the_operator() {
        let file: Value =
            serde_json::from_str(include_str!("../../../tests/solr/site-rights.json"))
                .unwrap_or_else(|e| panic!("tests/solr/site-rights.json: {e}"));
        assert_eq!(
            file,
            json!(SITE_RIGHTS),
            "tests/solr/site-rights.json differs from SITE_RIGHTS"
        );
    }

    #[test]
    fn site_permissions_are_told_from_others_by_name() {
        assert!(is_site_permission("mutu:t.web", "mutu:t.web"));
        assert!(is_site_permission("mutu:t.web", "mutu:t.web:update"));
        assert!(!is_site_permission("mutu:t.web", "mutu:t.web2"));
        assert!(!is_site_permission("mutu:t.web", "mutu:t.webx:update"));
        assert!(!is_site_permission("mutu:t.web", "all"));
    }

    #[test]
    fn a_new_site_gets_its_permissions_before_the_catch_all() {
        let current = with_index(vec![
            perm(
                json!({"name": "mutu:t.other", "collection": ["t.other_v1"], "path": ["/select"], "role": ["admin", "t.other"]}),
            ),
            perm(json!({"name": "all", "role": "admin"})),
        ]);
        let desired = site_permissions("mutu:t.web", &["t.web_v1"], &["admin", "t.web"]);
        let commands = plan_site_permissions(&current, "mutu:t.web", &desired);
        assert_eq!(commands.len(), 3);
        assert!(commands.iter().all(|(c, _)| *c == "set-permission"));
        let after = apply(&current, &commands);
        assert_eq!(
            names(&after),
            [
                "mutu:t.other",
                "mutu:t.web",
                "mutu:t.web:update",
                "mutu:t.web:files",
                "all"
            ]
        );
        assert!(
            plan_site_permissions(&after, "mutu:t.web", &desired).is_empty(),
            "nothing left to do"
        );
    }

    #[test]
    fn the_old_every_path_permission_is_replaced_where_it_stands_and_duplicates_go() {
        // What earlier releases left: `/*` on the site's collection, twice.
        let old = json!({"name": "mutu:t.web", "collection": ["t.web_v1"], "path": "/*", "role": ["admin", "t.web"]});
        let current = with_index(vec![
            perm(old.clone()),
            perm(
                json!({"name": "mutu:t.other", "collection": ["t.other_v1"], "path": "/*", "role": ["admin", "t.other"]}),
            ),
            perm(old),
            perm(json!({"name": "all", "role": "admin"})),
        ]);
        let desired = site_permissions("mutu:t.web", &["t.web_v1"], &["admin", "t.web"]);
        let commands = plan_site_permissions(&current, "mutu:t.web", &desired);
        // The additions come first, then the overwrite in place, the deletion last.
        let kinds: Vec<&str> = commands.iter().map(|(c, _)| *c).collect();
        assert_eq!(
            kinds,
            [
                "set-permission",
                "set-permission",
                "set-permission",
                "delete-permission"
            ]
        );
        let after = apply(&current, &commands);
        assert_eq!(
            names(&after),
            [
                "mutu:t.web",
                "mutu:t.other",
                "mutu:t.web:update",
                "mutu:t.web:files",
                "all"
            ]
        );
        for want in &desired {
            assert!(
                after.iter().any(|p| p.same_rule(want)),
                "{want:?} missing from {after:?}"
            );
        }
        // The other site's permission (even of the old form) is not this site's to touch.
        assert_eq!(after[1].paths(), ["/*"]);
        assert!(
            after
                .iter()
                .all(|p| p.name.as_deref() != Some("mutu:t.web") || p.paths() != ["/*"])
        );
        assert!(plan_site_permissions(&after, "mutu:t.web", &desired).is_empty());
    }

    #[test]
    fn a_new_collection_of_the_site_rewrites_its_permissions_in_place() {
        let v1 = with_index(
            site_permissions("mutu:t.web", &["t.web_v1"], &["admin", "t.web"])
                .into_iter()
                .chain([perm(json!({"name": "all", "role": "admin"}))])
                .collect(),
        );
        let desired =
            site_permissions("mutu:t.web", &["t.web_v1", "t.web_v2"], &["admin", "t.web"]);
        let commands = plan_site_permissions(&v1, "mutu:t.web", &desired);
        assert_eq!(commands.len(), 3);
        assert!(
            commands
                .iter()
                .all(|(c, b)| *c == "set-permission" && b["index"].is_u64())
        );
        let after = apply(&v1, &commands);
        assert_eq!(after.len(), 4);
        assert!(
            after[..3]
                .iter()
                .all(|p| p.collections() == ["t.web_v1", "t.web_v2"])
        );
        // The same rule in another order of its lists is left alone.
        let reordered = with_index(vec![perm(json!({
            "name": "mutu:t.web:update", "collection": ["t.web_v2", "t.web_v1"],
            "path": ["/update/*", "/update"], "method": "POST", "role": ["t.web", "admin"]
        }))]);
        assert!(plan_site_permissions(&reordered, "mutu:t.web", &desired[1..2]).is_empty());
    }

    fn secure() -> (Value, Value) {
        (
            json!({"class": "solr.BasicAuthPlugin", "blockUnknown": true, "credentials": {}}),
            json!({"class": "solr.RuleBasedAuthorizationPlugin", "user-role": {"admin": ["admin"]},
                   "permissions": [{"name": "all", "role": "admin", "index": 1}]}),
        )
    }

    #[test]
    fn the_security_rules_mutu_writes_are_enough() {
        let (authn, authz) = secure();
        assert_eq!(missing_rules(&authn, &authz, "admin"), Vec::<String>::new());
        // A role given as a one-element list is the same rule.
        let mut authz = authz;
        authz["permissions"][0]["role"] = json!(["admin"]);
        assert_eq!(missing_rules(&authn, &authz, "admin"), Vec::<String>::new());
    }

    #[test]
    fn each_missing_security_rule_is_named_with_how_to_add_it() {
        let one = |authn: Value, authz: Value, says: &[&str]| {
            let missing = missing_rules(&authn, &authz, "admin");
            assert_eq!(missing.len(), 1, "{missing:?}");
            for s in says {
                assert!(missing[0].contains(s), "{:?} does not say {s}", missing[0]);
            }
        };
        let (authn, authz) = secure();
        one(
            Value::Null,
            authz.clone(),
            &[
                "no authentication plugin",
                "solr.BasicAuthPlugin",
                "blockUnknown",
            ],
        );
        let mut open = authn.clone();
        open["blockUnknown"] = json!(false);
        one(
            open.clone(),
            authz.clone(),
            &["blockUnknown is not true", "set-property"],
        );
        open.as_object_mut().map(|o| o.remove("blockUnknown"));
        one(open, authz.clone(), &["blockUnknown is not true"]);
        one(
            json!({"class": "solr.JWTAuthPlugin", "blockUnknown": true}),
            authz.clone(),
            &["solr.JWTAuthPlugin, not solr.BasicAuthPlugin"],
        );
        one(
            authn.clone(),
            Value::Null,
            &[
                "no authorization plugin",
                "RuleBasedAuthorizationPlugin",
                "\"name\": \"all\"",
            ],
        );
        let mut no_all = authz.clone();
        no_all["permissions"] = json!([{"name": "mutu:t.web", "collection": "t.web_v1", "path": "/*", "role": "t.web"}]);
        one(
            authn.clone(),
            no_all,
            &[
                "no catch-all permission \"all\" for role admin",
                "set-permission",
                "\"role\": \"admin\"",
            ],
        );
        let mut anyone = authz.clone();
        anyone["permissions"][0]["role"] = json!("*");
        one(authn.clone(), anyone, &["roles [*]", "\"index\": 1"]);
        let mut nobody = authz.clone();
        nobody["permissions"][0]["role"] = Value::Null;
        one(authn.clone(), nobody, &["no role (anyone)"]);
        let mut shared = authz.clone();
        shared["permissions"][0]["role"] = json!(["admin", "t.web"]);
        one(authn.clone(), shared, &["roles [admin, t.web]"]);
        let mut narrow = authz.clone();
        narrow["permissions"][0]["collection"] = json!("t.web_v1");
        one(authn.clone(), narrow, &["narrowed"]);
        // Both plugins missing: both named.
        assert_eq!(missing_rules(&Value::Null, &Value::Null, "admin").len(), 2);
    }

    #[test]
    fn passwords_are_long_random_and_different() {
        let a = new_password().unwrap_or_default();
        let b = new_password().unwrap_or_default();
        assert_eq!(a.len(), 48);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }

    #[tokio::test]
    async fn an_unreachable_solr_is_reported_as_such() {
        // A port nothing listens on (bound, then released).
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap_or(1);
        let client = Client::new(&format!("http://127.0.0.1:{port}/solr"), None)
            .unwrap_or_else(|e| panic!("{e}"));
        let err = client.collections().await.err();
        assert!(err.as_ref().is_some_and(Error::is_unreachable), "{err:?}");
    }
}
