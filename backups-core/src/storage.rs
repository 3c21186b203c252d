//! Where backups live: a thin layer over [`object_store`] built from a URL.
//!
//! Layout per backup: `<prefix>/<id>.<nonce>.tar.gz` (the archive; the
//! nonce is fresh for every write) and `<prefix>/<id>.json` (the metadata
//! sidecar naming that archive, written last: the commit point). A backup
//! without a sidecar does not exist; an archive no sidecar names is garbage.
//!
//! Why the nonce: some S3-compatible stores (Garage) ignore create-only
//! puts, so two writers of one id could otherwise overwrite each other's
//! archive and leave a sidecar describing bytes that are gone. With unique
//! archive names the last sidecar written wins and always names an intact
//! archive; the loser notices when it reads the sidecar back.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use std::time::Duration;

use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};
use object_store::gcp::{GoogleCloudStorageBuilder, GoogleConfigKey};
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path as ObjectPath;
use object_store::{BackoffConfig, ClientConfigKey, ObjectStore, ObjectStoreExt, RetryConfig};
use url::Url;

use crate::BackupId;
use crate::error::{Error, Result};
use crate::metadata::Metadata;

/// A store of backups: an object store and a key prefix.
#[derive(Clone)]
pub struct Storage {
    store: Arc<dyn ObjectStore>,
    prefix: ObjectPath,
    url: String,
    local_dir: Option<PathBuf>,
}

impl fmt::Debug for Storage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Storage").field("url", &self.url).finish()
    }
}

fn bad_url(value: &str, reason: impl Into<String>) -> Error {
    Error::InvalidInput {
        what: crate::error::InputKind::StoreUrl,
        value: value.to_string(),
        reason: reason.into(),
    }
}

/// How transient failures (5xx, timeouts, connection resets) are retried,
/// with exponential backoff.
fn retry_config() -> RetryConfig {
    RetryConfig {
        backoff: BackoffConfig {
            init_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(15),
            base: 2.0,
        },
        max_retries: 8,
        retry_timeout: Duration::from_secs(300),
    }
}

/// Our defaults for how long one request may take, each applied only when
/// the cloud's own environment (`{env_prefix}_TIMEOUT`, ...) does not set
/// it: the builders' `with_client_options` would replace every client
/// setting read from the environment (`AWS_ALLOW_HTTP` among them).
fn client_defaults(env_prefix: &str) -> Vec<(ClientConfigKey, &'static str)> {
    [
        (ClientConfigKey::ConnectTimeout, "CONNECT_TIMEOUT", "10s"),
        (ClientConfigKey::Timeout, "TIMEOUT", "120s"),
    ]
    .into_iter()
    .filter(|(_, var, _)| std::env::var_os(format!("{env_prefix}_{var}")).is_none())
    .map(|(key, _, value)| (key, value))
    .collect()
}

/// Builds an S3, Azure or GCS store: credentials and settings from the
/// environment (`AWS_*`, `AZURE_*`, `GOOGLE_*`), then `options` (object_store
/// config keys such as `endpoint`, `region`, `allow_http`). An unknown key
/// is an error rather than silently ignored.
fn cloud_store<I, K, V>(parsed: &Url, url: &str, options: I) -> Result<Arc<dyn ObjectStore>>
where
    I: IntoIterator<Item = (K, V)>,
    K: AsRef<str>,
    V: Into<String>,
{
    let unknown = |k: &str| bad_url(url, format!("unknown store option {k:?}"));
    let built: object_store::Result<Arc<dyn ObjectStore>> = match parsed.scheme() {
        "s3" | "s3a" => {
            let mut b = AmazonS3Builder::from_env()
                .with_url(url)
                .with_retry(retry_config());
            for (k, v) in client_defaults("AWS") {
                b = b.with_config(AmazonS3ConfigKey::Client(k), v);
            }
            for (k, v) in options {
                let key: AmazonS3ConfigKey = k.as_ref().parse().map_err(|_| unknown(k.as_ref()))?;
                b = b.with_config(key, v);
            }
            b.build().map(|s| Arc::new(s) as _)
        }
        "gs" => {
            let mut b = GoogleCloudStorageBuilder::from_env()
                .with_url(url)
                .with_retry(retry_config());
            for (k, v) in client_defaults("GOOGLE") {
                b = b.with_config(GoogleConfigKey::Client(k), v);
            }
            for (k, v) in options {
                let key: GoogleConfigKey = k.as_ref().parse().map_err(|_| unknown(k.as_ref()))?;
                b = b.with_config(key, v);
            }
            b.build().map(|s| Arc::new(s) as _)
        }
        _ => {
            let mut b = MicrosoftAzureBuilder::from_env()
                .with_url(url)
                .with_retry(retry_config());
            for (k, v) in client_defaults("AZURE") {
                b = b.with_config(AzureConfigKey::Client(k), v);
            }
            for (k, v) in options {
                let key: AzureConfigKey = k.as_ref().parse().map_err(|_| unknown(k.as_ref()))?;
                b = b.with_config(key, v);
            }
            b.build().map(|s| Arc::new(s) as _)
        }
    };
    built.map_err(|e| bad_url(url, e.to_string()))
}

impl Storage {
    /// Wraps an existing object store; keys go under `prefix`.
    pub fn new(store: Arc<dyn ObjectStore>, prefix: ObjectPath, url: impl Into<String>) -> Self {
        Storage {
            store,
            prefix,
            url: url.into(),
            local_dir: None,
        }
    }

    /// Opens a store from a URL: `file:///var/backups` (or a plain absolute
    /// path), `memory://` (fresh and empty each time), `s3://bucket/prefix`,
    /// `az://container/prefix`, `gs://bucket/prefix`. Cloud credentials come
    /// from the environment; `options` are passed to the object_store builder
    /// (e.g. `("aws_endpoint", "http://127.0.0.1:9000")`).
    pub fn from_url<I, K, V>(url: &str, options: I) -> Result<Self>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: Into<String>,
    {
        if url.starts_with('/') {
            return Self::local(PathBuf::from(url), url);
        }
        let parsed = match Url::parse(url) {
            Ok(parsed) => parsed,
            // No scheme: a directory, relative to the current one.
            Err(url::ParseError::RelativeUrlWithoutBase) => {
                let path = std::path::absolute(url)
                    .map_err(|e| Error::io("resolving store directory", url, e))?;
                return Self::local(path, url);
            }
            Err(e) => return Err(bad_url(url, e.to_string())),
        };
        match parsed.scheme() {
            "file" => {
                let path = parsed
                    .to_file_path()
                    .map_err(|_| bad_url(url, "not an absolute local path"))?;
                Self::local(path, url)
            }
            "memory" => Ok(Storage::new(
                Arc::new(InMemory::new()),
                ObjectPath::default(),
                url,
            )),
            "s3" | "s3a" | "az" | "azure" | "abfs" | "abfss" | "gs" => {
                let store = cloud_store(&parsed, url, options)?;
                let prefix = ObjectPath::from_url_path(parsed.path())
                    .map_err(|e| bad_url(url, e.to_string()))?;
                Ok(Storage::new(store, prefix, url))
            }
            other => Err(bad_url(
                url,
                format!(
                    "unsupported scheme {other:?} (use file://, memory://, s3://, az:// or gs://)"
                ),
            )),
        }
    }

    fn local(path: PathBuf, url: &str) -> Result<Self> {
        std::fs::create_dir_all(&path)
            .map_err(|e| Error::io("creating store directory", &path, e))?;
        let fs = LocalFileSystem::new_with_prefix(&path).map_err(|e| Error::storage(url, e))?;
        let mut storage = Storage::new(Arc::new(fs), ObjectPath::default(), url);
        storage.local_dir = Some(path);
        Ok(storage)
    }

    /// For a local store, its directory (where interrupted multipart uploads
    /// leave `<key>#<n>` staging files that object_store does not list).
    pub fn local_dir(&self) -> Option<&std::path::Path> {
        self.local_dir.as_deref()
    }

    /// The URL this store was opened from.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The underlying object store.
    pub fn object_store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// The key prefix backups live under.
    pub fn prefix(&self) -> &ObjectPath {
        &self.prefix
    }

    /// Deletes `key`; one that is already gone is fine.
    pub(crate) async fn delete_if_exists(&self, key: &ObjectPath) -> Result<()> {
        delete_if_exists(self.store.as_ref(), key).await
    }

    /// The key of a committed backup's archive: the name its metadata
    /// records (checked to belong to its id), else `<prefix>/<id>.tar.gz`.
    pub(crate) fn archive_key(&self, id: &BackupId, meta: &Metadata) -> ObjectPath {
        let name = &meta.archive;
        let valid = name
            .strip_prefix(id.as_str())
            .and_then(|rest| rest.strip_prefix('.'))
            .and_then(|rest| rest.strip_suffix(".tar.gz"))
            .is_some_and(|nonce| !nonce.is_empty() && nonce.bytes().all(|c| c.is_ascii_hexdigit()));
        if valid {
            self.prefix.clone().join(name.as_str())
        } else {
            self.prefix.clone().join(format!("{id}.tar.gz"))
        }
    }

    /// A fresh archive name for a new write of `id`: `<id>.<nonce>.tar.gz`.
    pub(crate) fn new_archive_name(id: &BackupId) -> String {
        format!("{id}.{}.tar.gz", uuid::Uuid::new_v4().simple())
    }

    /// The key of an archive name under the prefix.
    pub(crate) fn key(&self, name: &str) -> ObjectPath {
        self.prefix.clone().join(name)
    }

    /// `<prefix>/<id>.json`.
    pub(crate) fn sidecar_key(&self, id: &BackupId) -> ObjectPath {
        self.prefix.clone().join(format!("{id}.json"))
    }

    /// The id a sidecar key belongs to, if `key` is one directly under the prefix.
    pub(crate) fn id_of_sidecar(&self, key: &ObjectPath) -> Option<BackupId> {
        let rest = key.prefix_match(&self.prefix)?;
        let parts: Vec<_> = rest.collect();
        if parts.len() != 1 {
            return None;
        }
        parts[0].as_ref().strip_suffix(".json")?.parse().ok()
    }
}

/// Deletes `key` from `store`; one that is already gone is fine.
pub(crate) async fn delete_if_exists(store: &dyn ObjectStore, key: &ObjectPath) -> Result<()> {
    match store.delete(key).await {
        Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
        Err(e) => Err(Error::storage(key, e)),
    }
}
