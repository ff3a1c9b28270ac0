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
        let url = format!("{}/admin/authorization", self.base);
        let v = self
            .send(
                "reading the permissions",
                self.http.get(url).query(&[("wt", "json")]),
            )
            .await?;
        let list = v["authorization.configuration"]["permissions"].clone();
        serde_json::from_value(if list.is_null() { json!([]) } else { list }).map_err(|e| {
            Error::Unexpected {
                what: "reading the permissions".into(),
                message: e.to_string(),
            }
        })
    }

    /// Adds a permission: `roles` may use every path of `collections` (and of
    /// the aliases that point to them). `before` puts it ahead of the
    /// permission with that index: Solr applies the first that matches, so it
    /// must come before a catch-all, and name the admin role too for the admin
    /// to keep access.
    pub async fn add_permission(
        &self,
        name: &str,
        collections: &[&str],
        roles: &[&str],
        before: Option<u32>,
    ) -> Result<()> {
        let mut perm =
            json!({"name": name, "collection": collections, "path": "/*", "role": roles});
        if let Some(index) = before {
            perm["before"] = json!(index);
        }
        self.security(
            "authorization",
            &format!("adding permission {name}"),
            json!({"set-permission": perm}),
        )
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
        let url = format!("{}/admin/{plugin}", self.base);
        let v = self.send(what, self.http.post(url).json(&body)).await?;
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
#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct Permission {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub index: Option<u32>,
    #[serde(default)]
    pub role: Option<Value>,
    #[serde(default)]
    pub collection: Option<Value>,
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
