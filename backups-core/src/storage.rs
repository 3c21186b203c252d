//! Where backups live: a thin layer over [`object_store`] built from a URL.
//!
//! Layout per backup: `<prefix>/<id>.<nonce>.tar.gz` (the archive,
//! `.tar.zst` when zstd-compressed, `.age` appended when encrypted; the
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

use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt};
use url::Url;

use crate::cloud::{bad_url, cloud_store};
use crate::error::{Error, Result};
use crate::id::BackupId;
use crate::metadata::Metadata;

/// A store of backups: an object store and a key prefix.
#[derive(Clone)]
pub struct Storage {
    store: Arc<dyn ObjectStore>,
    prefix: ObjectPath,
    url: String,
    local_dir: Option<PathBuf>,
    /// Modes of what a local store writes: (directories, files).
    local_modes: (u32, u32),
    /// Never delete anything ([`APPEND_ONLY_OPTION`]).
    append_only: bool,
    /// What kind of store it is, for object locks.
    backend: Backend,
}

/// The kind of store, and for S3 what reopens it (object-lock requests).
#[derive(Clone)]
pub(crate) enum Backend {
    /// A local directory.
    Local,
    /// `memory://`.
    Memory,
    /// An S3 bucket (or S3-compatible store).
    S3(Arc<crate::s3lock::S3Settings>),
    /// Azure Blob Storage.
    Azure,
    /// Google Cloud Storage.
    Gcs,
    /// An object store given to [`Storage::new`].
    Other,
}

/// The store option that lets a local store's group read it
/// (`--store-option group_access=true`): directories `0750`, files `0640`
/// instead of `0700` and `0600`.
pub const GROUP_ACCESS_OPTION: &str = "group_access";

/// The store option that makes this tool never delete anything in the
/// store (`--store-option append_only=true`), for credentials that may put,
/// get and list but not delete: leases expire instead of being removed,
/// what a failed write leaves is left for `gc` run elsewhere, and the
/// commands that delete (`remove`, `forget`, `gc --yes`, `unlock`) are
/// refused. Any store takes it.
pub const APPEND_ONLY_OPTION: &str = "append_only";

/// Whether a store option's value means yes.
fn truthy(value: &str) -> bool {
    matches!(value, "true" | "1" | "yes")
}

impl fmt::Debug for Storage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Storage").field("url", &self.url).finish()
    }
}

impl Storage {
    /// Wraps an existing object store; keys go under `prefix`.
    pub fn new(store: Arc<dyn ObjectStore>, prefix: ObjectPath, url: impl Into<String>) -> Self {
        Storage {
            store,
            prefix,
            url: url.into(),
            local_dir: None,
            local_modes: (0o700, 0o600),
            append_only: false,
            backend: Backend::Other,
        }
    }

    /// What kind of store this is.
    pub(crate) fn backend(&self) -> &Backend {
        &self.backend
    }

    /// Never deletes anything in the store (see [`APPEND_ONLY_OPTION`]).
    pub fn with_append_only(mut self, append_only: bool) -> Self {
        self.append_only = append_only;
        self
    }

    /// Whether this store never deletes ([`APPEND_ONLY_OPTION`]).
    pub fn append_only(&self) -> bool {
        self.append_only
    }

    /// Refuses `operation`, which deletes, on an append-only store.
    pub(crate) fn check_may_delete(&self, operation: &str) -> Result<()> {
        if self.append_only {
            return Err(Error::AppendOnly {
                store: self.url.clone(),
                operation: operation.to_string(),
            });
        }
        Ok(())
    }

    /// Best-effort removal of what a failed or lost write left (`key`):
    /// nothing on an append-only store, where it stays for `gc`.
    pub(crate) async fn discard(&self, key: &ObjectPath) {
        if !self.append_only {
            let _ = self.store.delete(key).await;
        }
    }

    /// Opens a store from a URL: `file:///var/backups` (or a plain absolute
    /// path), `memory://` (fresh and empty each time), `s3://bucket/prefix`,
    /// `az://container/prefix`, `gs://bucket/prefix`. Cloud credentials come
    /// from the environment; `options` are passed to the object_store builder
    /// (e.g. `("aws_endpoint", "http://127.0.0.1:9000")`). A local store's
    /// directory is created if missing (see [`Storage::from_url_existing`]
    /// to refuse that); a local or memory store takes no option but
    /// [`GROUP_ACCESS_OPTION`], and an unknown option is an error.
    pub fn from_url<I, K, V>(url: &str, options: I) -> Result<Self>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: Into<String>,
    {
        Self::open(url, options, true)
    }

    /// [`Storage::from_url`] for reading a store that must already exist: a
    /// local directory that is missing is [`Error::NoStore`] instead of
    /// being created (a wrong path must not look like an empty store).
    pub fn from_url_existing<I, K, V>(url: &str, options: I) -> Result<Self>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: Into<String>,
    {
        Self::open(url, options, false)
    }

    fn open<I, K, V>(url: &str, options: I, create: bool) -> Result<Self>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: Into<String>,
    {
        let mut append_only = false;
        let mut rest = Vec::new();
        for (k, v) in options {
            let v: String = v.into();
            if k.as_ref() == APPEND_ONLY_OPTION {
                append_only = truthy(&v);
            } else {
                rest.push((k.as_ref().to_string(), v));
            }
        }
        Ok(Self::open_store(url, rest, create)?.with_append_only(append_only))
    }

    /// [`Storage::open`] but for [`APPEND_ONLY_OPTION`].
    fn open_store<I, K, V>(url: &str, options: I, create: bool) -> Result<Self>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: Into<String>,
    {
        // Our own option, for local stores; the rest go to object_store.
        let mut group_access = false;
        let mut passed = Vec::new();
        for (k, v) in options {
            let v: String = v.into();
            if k.as_ref() == GROUP_ACCESS_OPTION {
                group_access = truthy(&v);
            } else {
                passed.push((k.as_ref().to_string(), v));
            }
        }
        let options = passed;
        // A local or memory store has no object_store options to take.
        let no_options = |kind: &str| match options.first() {
            Some((k, _)) => Err(bad_url(
                url,
                format!(
                    "unknown store option {k:?} (a {kind} store takes only {GROUP_ACCESS_OPTION} and {APPEND_ONLY_OPTION})"
                ),
            )),
            None => Ok(()),
        };
        let local = |path: PathBuf| {
            no_options("local")?;
            Self::local(path, url, group_access, create)
        };
        if url.starts_with('/') {
            return local(PathBuf::from(url));
        }
        let parsed = match Url::parse(url) {
            Ok(parsed) => parsed,
            // No scheme: a directory, relative to the current one.
            Err(url::ParseError::RelativeUrlWithoutBase) => {
                let path = std::path::absolute(url)
                    .map_err(|e| Error::io("resolving store directory", url, e))?;
                return local(path);
            }
            Err(e) => return Err(bad_url(url, e.to_string())),
        };
        match parsed.scheme() {
            "file" => {
                let path = parsed
                    .to_file_path()
                    .map_err(|_| bad_url(url, "not an absolute local path"))?;
                local(path)
            }
            "memory" => {
                no_options("memory")?;
                let mut storage =
                    Storage::new(Arc::new(InMemory::new()), ObjectPath::default(), url);
                storage.backend = Backend::Memory;
                Ok(storage)
            }
            "s3" | "s3a" | "az" | "azure" | "abfs" | "abfss" | "gs" => {
                let backend = match parsed.scheme() {
                    "s3" | "s3a" => Backend::S3(Arc::new(crate::s3lock::S3Settings::new(
                        url,
                        options.clone(),
                    ))),
                    "gs" => Backend::Gcs,
                    _ => Backend::Azure,
                };
                let store = cloud_store(&parsed, url, options)?;
                let prefix = ObjectPath::from_url_path(parsed.path())
                    .map_err(|e| bad_url(url, e.to_string()))?;
                let mut storage = Storage::new(store, prefix, url);
                storage.backend = backend;
                Ok(storage)
            }
            other => Err(bad_url(
                url,
                format!(
                    "unsupported scheme {other:?} (use file://, memory://, s3://, az:// or gs://)"
                ),
            )),
        }
    }

    /// A store in a local directory. One this creates (only with `create`)
    /// is private to its owner (`0700`; `0750` with group access); an
    /// existing one keeps its mode: it is not re-moded behind the
    /// operator's back. A path that is not a directory is no store.
    fn local(path: PathBuf, url: &str, group_access: bool, create: bool) -> Result<Self> {
        let modes = if group_access {
            (0o750, 0o640)
        } else {
            (0o700, 0o600)
        };
        match std::fs::metadata(&path) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(Error::NoStore {
                    path,
                    not_a_directory: true,
                });
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if !create {
                    return Err(Error::NoStore {
                        path,
                        not_a_directory: false,
                    });
                }
                use std::os::unix::fs::DirBuilderExt;
                std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(modes.0)
                    .create(&path)
                    .map_err(|e| Error::io("creating store directory", &path, e))?;
                // The mode asked for, whatever the umask.
                set_mode(&path, modes.0)?;
            }
            Err(e) => return Err(Error::io("opening store directory", &path, e)),
        }
        let fs = LocalFileSystem::new_with_prefix(&path).map_err(|e| Error::storage(url, e))?;
        let mut storage = Storage::new(Arc::new(fs), ObjectPath::default(), url);
        storage.local_dir = Some(path);
        storage.local_modes = modes;
        storage.backend = Backend::Local;
        Ok(storage)
    }

    /// For a local store: gives the file at `key` (and the directories
    /// between it and the store's) the store's private modes. Best effort:
    /// a file that is gone is no error.
    pub(crate) fn make_private(&self, key: &ObjectPath) {
        let Some(dir) = &self.local_dir else { return };
        let mut at = dir.clone();
        let parts: Vec<_> = key.parts().collect();
        for (i, part) in parts.iter().enumerate() {
            at.push(part.as_ref());
            let mode = if i + 1 == parts.len() {
                self.local_modes.1
            } else {
                self.local_modes.0
            };
            let _ = set_mode(&at, mode);
        }
    }

    /// Files of a local store that anyone on the host may read (mode
    /// `o+r`), for `gc` to report; empty for other stores.
    pub fn world_readable(&self) -> Vec<PathBuf> {
        use std::os::unix::fs::PermissionsExt;
        let Some(dir) = &self.local_dir else {
            return Vec::new();
        };
        walkdir::WalkDir::new(dir)
            .into_iter()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_type().is_file())
            .filter(|e| {
                e.metadata()
                    .is_ok_and(|m| m.permissions().mode() & 0o004 != 0)
            })
            .map(|e| e.path().to_path_buf())
            .collect()
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
        // `<id'>.<nonce>.tar.gz[.age]`: id' is the id the backup was started
        // under (it may have moved to a later second at commit), always of
        // the same model; the nonce is hex.
        let valid = strip_archive_suffix(name)
            .and_then(|s| s.rsplit_once('.'))
            .is_some_and(|(started_as, nonce)| {
                !nonce.is_empty()
                    && nonce.bytes().all(|c| c.is_ascii_hexdigit())
                    && started_as
                        .parse::<BackupId>()
                        .is_ok_and(|s| s.model_uuid() == id.model_uuid())
            });
        if valid {
            self.prefix.clone().join(name.as_str())
        } else {
            self.prefix.clone().join(format!("{id}.tar.gz"))
        }
    }

    /// A fresh archive name for a new write of `id`: `<id>.<nonce>.tar.gz`
    /// (`.tar.zst` when `compression` is `zstd`), with `.age` appended when
    /// it is encrypted.
    pub(crate) fn new_archive_name(id: &BackupId, compression: &str, encrypted: bool) -> String {
        let ext = if compression == "zstd" {
            "tar.zst"
        } else {
            "tar.gz"
        };
        let age = if encrypted { ".age" } else { "" };
        format!("{id}.{}.{ext}{age}", uuid::Uuid::new_v4().simple())
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

/// The endings of an archive object's name: gzip or zstd, plain or
/// age-encrypted.
pub(crate) const ARCHIVE_SUFFIXES: [&str; 4] =
    [".tar.gz", ".tar.gz.age", ".tar.zst", ".tar.zst.age"];

/// `name` without its archive ending, if it has one.
pub(crate) fn strip_archive_suffix(name: &str) -> Option<&str> {
    ARCHIVE_SUFFIXES.iter().find_map(|s| name.strip_suffix(s))
}

/// Deletes `key` from `store`; one that is already gone is fine.
pub(crate) async fn delete_if_exists(store: &dyn ObjectStore, key: &ObjectPath) -> Result<()> {
    match store.delete(key).await {
        Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
        Err(e) => Err(Error::storage(key, e)),
    }
}

fn set_mode(path: &std::path::Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| Error::io("setting the mode of", path, e))
}
