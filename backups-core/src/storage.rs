//! Where backups live: a thin layer over [`object_store`] built from a URL.
//!
//! Layout per backup: `<prefix>/<id>.tar.gz` (the archive) and
//! `<prefix>/<id>.json` (the metadata sidecar, written last: the commit
//! point). A backup without a sidecar does not exist.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use object_store::ObjectStore;
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path as ObjectPath;
use url::Url;

use crate::BackupId;
use crate::error::{Error, Result};

/// A store of backups: an object store and a key prefix.
#[derive(Clone)]
pub struct Storage {
    store: Arc<dyn ObjectStore>,
    prefix: ObjectPath,
    url: String,
}

impl fmt::Debug for Storage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Storage").field("url", &self.url).finish()
    }
}

fn bad_url(value: &str, reason: impl Into<String>) -> Error {
    Error::InvalidInput {
        what: "store URL",
        value: value.to_string(),
        reason: reason.into(),
    }
}

impl Storage {
    /// Wraps an existing object store; keys go under `prefix`.
    pub fn new(store: Arc<dyn ObjectStore>, prefix: ObjectPath, url: impl Into<String>) -> Self {
        Storage {
            store,
            prefix,
            url: url.into(),
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
        let parsed = Url::parse(url).map_err(|e| bad_url(url, e.to_string()))?;
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
                let (store, prefix) = object_store::parse_url_opts(&parsed, options)
                    .map_err(|e| bad_url(url, e.to_string()))?;
                Ok(Storage::new(Arc::from(store), prefix, url))
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
        Ok(Storage::new(Arc::new(fs), ObjectPath::default(), url))
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

    /// `<prefix>/<id>.tar.gz`.
    pub fn archive_key(&self, id: &BackupId) -> ObjectPath {
        self.prefix.clone().join(format!("{id}.tar.gz"))
    }

    /// `<prefix>/<id>.json`.
    pub fn sidecar_key(&self, id: &BackupId) -> ObjectPath {
        self.prefix.clone().join(format!("{id}.json"))
    }

    /// The id a sidecar key belongs to, if `key` is one directly under the prefix.
    pub fn id_of_sidecar(&self, key: &ObjectPath) -> Option<BackupId> {
        let rest = key.prefix_match(&self.prefix)?;
        let parts: Vec<_> = rest.collect();
        if parts.len() != 1 {
            return None;
        }
        parts[0].as_ref().strip_suffix(".json")?.parse().ok()
    }
}
