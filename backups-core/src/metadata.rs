//! Backup metadata: Juju's `metadata.json` (formats v0, v1, v2) plus our
//! additions, as stored inside the archive and in the `<id>.json` sidecar.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::digest::Digests;
use crate::error::{Error, Result};
use crate::id::BackupId;

/// The checksum format Juju records for its SHA-1 checksums.
pub(crate) const CHECKSUM_FORMAT: &str = "SHA-1, base64 encoded";

/// The metadata format version we write (Juju's v1 field names).
pub(crate) const FORMAT_VERSION: u32 = 1;

/// The newest metadata format version this crate understands.
pub(crate) const MAX_FORMAT_VERSION: u32 = 2;

/// Largest `metadata.json` or sidecar we read, to bound memory on hostile input.
pub const MAX_METADATA_BYTES: u64 = 8 * 1024 * 1024;

/// Everything known about one backup.
///
/// Keys are Go-style PascalCase as Juju writes them; times are RFC 3339 with
/// nanoseconds and `None` stands for Go's zero time `0001-01-01T00:00:00Z`.
/// Keys this crate does not know (Juju's `CACert`, `CAPrivateKey`...) are
/// kept in [`Metadata::extra`] and written back unchanged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct Metadata {
    /// The backup id; empty inside an archive (Juju writes it before the id exists).
    #[serde(rename = "ID", default, with = "id_or_empty")]
    pub id: Option<BackupId>,
    /// Metadata format version: 0 when absent (oldest Juju), 1, or 2.
    #[serde(default)]
    pub format_version: u32,
    /// SHA-1 of the whole `.tar.gz`, base64; empty inside an archive.
    #[serde(default)]
    pub checksum: String,
    /// Always `"SHA-1, base64 encoded"` once known; empty inside an archive.
    #[serde(default)]
    pub checksum_format: String,
    /// Size in bytes of the whole `.tar.gz`; 0 inside an archive.
    #[serde(default)]
    pub size: u64,
    /// When the archive was stored.
    #[serde(default, with = "go_time")]
    pub stored: Option<OffsetDateTime>,
    /// When the backup started (the id's time).
    #[serde(default, with = "go_time")]
    pub started: Option<OffsetDateTime>,
    /// When the backup finished.
    #[serde(default, with = "go_time")]
    pub finished: Option<OffsetDateTime>,
    /// Free-form notes given by the operator.
    #[serde(default)]
    pub notes: String,
    /// The model (v0: environment) UUID.
    #[serde(rename = "ModelUUID", alias = "Environment", default)]
    pub model_uuid: String,
    /// The machine id the backup was taken on.
    #[serde(default)]
    pub machine: String,
    /// The host name the backup was taken on.
    #[serde(default)]
    pub hostname: String,
    /// The controller software version.
    #[serde(default)]
    pub version: String,
    /// The OS series (Juju 2/3).
    #[serde(default)]
    pub series: String,
    /// The OS base (Juju 4), e.g. `ubuntu@22.04`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub base: String,
    /// The controller UUID (v1+).
    #[serde(rename = "ControllerUUID", default)]
    pub controller_uuid: String,
    /// Number of controller nodes in HA (v1+).
    #[serde(rename = "HANodes", default)]
    pub ha_nodes: u64,
    /// The controller machine id (v1+).
    #[serde(rename = "ControllerMachineID", default)]
    pub controller_machine_id: String,
    /// The controller machine's instance id (v1+).
    #[serde(rename = "ControllerMachineInstanceID", default)]
    pub controller_machine_instance_id: String,

    /// Ours: SHA-256 of the whole `.tar.gz`, hex.
    #[serde(rename = "SHA256", default, skip_serializing_if = "String::is_empty")]
    pub sha256: String,
    /// Ours: labels such as `manual`, `scheduled`, `pre-restore`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<String>,
    /// Ours: number of entries in `root.tar`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_count: Option<u64>,
    /// Ours: bytes of file contents in `root.tar` (what a restore writes;
    /// its progress total).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_bytes: Option<u64>,
    /// Ours: the database inventory (namespace -> document count).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub databases: BTreeMap<String, u64>,
    /// Ours: the tool that wrote the backup, e.g. `backups 0.1.0`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub tool_version: String,
    /// Ours: the archive object's name in the store, `<id>.<nonce>.tar.gz`
    /// (empty: `<id>.tar.gz`). Unique per writer, so concurrent writers of
    /// one id never overwrite each other's archive.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub archive: String,
    /// Ours: how the archive is compressed, `gzip` or `zstd` (empty in
    /// Juju's and older backups: gzip).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub compression: String,
    /// Ours: warnings recorded while creating the backup (files that changed...).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// Ours: device nodes and FIFOs in `root.tar` (restored only when
    /// allowed; a restore by id refuses them up front from this count).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub device_nodes: u64,

    /// Ours: how the stored object is encrypted, and its size and SHA-256;
    /// absent when the stored object is the plain archive. `size`,
    /// `checksum` and `sha256` are always the plain archive's (an encrypted
    /// backup made by `create` records no plain SHA-256).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption: Option<EncryptionInfo>,
    /// Ours: writers were quiesced by a lock hook for the whole backup.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub locked: bool,
    /// Ours: the database dump describes one instant (oplog captured).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub point_in_time: bool,
    /// Ours: the database member the dump was read from (`host:port`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dumped_from: Option<String>,
    /// Ours: the replica set that member belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replica_set: Option<String>,
    /// Ours: the oplog position the dump is consistent at (the last entry
    /// its `oplog.bson` may hold), `seconds:ordinal`; where point-in-time
    /// recovery starts replaying oplog slices.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oplog_end: Option<String>,
    /// Ours: the last verification of this backup (`backups verify`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verification: Option<Verification>,
    /// Ours: the store this backup was copied from, and when
    /// (`backups copy`); absent for a backup made or uploaded here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub copied_from: Option<CopiedFrom>,
    /// Ours: the object lock this backup's archive and commit record were
    /// written with (`--immutable-for`); what the store holds is read from
    /// it (`StoreBackups::object_lock`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lock_requested: Option<crate::immutable::lock::ObjectLock>,
    /// Ours, in sidecars: the secret keys of the archive's metadata
    /// (`CAPrivateKey`...) that the sidecar leaves out; they stay only
    /// inside the archive.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secrets_in_archive: Vec<String>,

    /// Keys this crate does not interpret, kept as they were.
    #[serde(flatten)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

/// How an encrypted backup's stored object was encrypted, and its size and
/// SHA-256. The backup's own `Size` and `Checksum` are the plain
/// archive's: the checksum Juju knows it by, which a decrypted download
/// matches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
#[non_exhaustive]
pub struct EncryptionInfo {
    /// Always `age`.
    pub scheme: String,
    /// The public recipients it was encrypted to (empty for a passphrase).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recipients: Vec<String>,
    /// Encrypted with a passphrase instead of recipients.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub passphrase: bool,
    /// Size of the stored (encrypted) object.
    pub stored_size: u64,
    /// SHA-256 (hex) of the stored object.
    #[serde(rename = "StoredSHA256")]
    pub stored_sha256: String,
}

/// How thoroughly a backup was verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[non_exhaustive]
pub enum VerifyLevel {
    /// The stored object against the sidecar: size and digests.
    Stored,
    /// Every entry read: manifest digests, paths, BSON framing.
    ReadData,
    /// Restored into scratch space and compared with what was recorded.
    Drill,
}

impl VerifyLevel {
    /// The level as sidecars, JSON and the CLI spell it (`read-data`).
    pub fn name(self) -> &'static str {
        match self {
            VerifyLevel::Stored => "stored",
            VerifyLevel::ReadData => "read-data",
            VerifyLevel::Drill => "drill",
        }
    }
}

impl std::fmt::Display for VerifyLevel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Where a copied backup came from ([`Metadata::copied_from`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
#[non_exhaustive]
pub struct CopiedFrom {
    /// The source store's URL, credentials redacted
    /// ([`crate::secret::redact_uri`]).
    pub store: String,
    /// When the copy was committed.
    #[serde(with = "go_time")]
    pub time: Option<OffsetDateTime>,
}

/// The outcome of the last verification of a backup, as its sidecar
/// records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
#[non_exhaustive]
pub struct Verification {
    /// When it ran.
    #[serde(with = "go_time")]
    pub time: Option<OffsetDateTime>,
    /// How thoroughly.
    pub level: VerifyLevel,
    /// Whether the backup passed.
    pub ok: bool,
    /// What was checked, or what failed.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

impl Verification {
    /// A record of a verification that ran now.
    pub fn now(level: VerifyLevel, ok: bool, detail: impl Into<String>) -> Self {
        Verification {
            time: Some(OffsetDateTime::now_utc()),
            level,
            ok,
            detail: detail.into(),
        }
    }
}

/// Longest label accepted.
pub const MAX_LABEL_LEN: usize = 64;

/// Checks a label a backup is given: 1 to [`MAX_LABEL_LEN`] of
/// `A-Z a-z 0-9 . _ : / -` (no spaces, commas or control characters, so
/// every label prints as itself and `list`'s comma-joined column reads
/// back).
pub fn check_label(label: &str) -> Result<()> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || "._:/-".contains(c);
    let reason = if label.is_empty() {
        Some("a label cannot be empty".to_string())
    } else if label.len() > MAX_LABEL_LEN {
        Some(format!("longer than {MAX_LABEL_LEN} characters"))
    } else {
        label
            .chars()
            .find(|c| !allowed(*c))
            .map(|c| format!("{c:?} is not allowed (use A-Z a-z 0-9 . _ : / -)"))
    };
    match reason {
        None => Ok(()),
        Some(reason) => Err(Error::InvalidInput {
            what: crate::error::InputKind::Label,
            value: label.to_string(),
            reason,
        }),
    }
}

/// Removes the secrets ([`crate::secret::is_secret_name`]) from `value` at every
/// depth, pushing the path of each (`Cloud.Credentials`, `Items[0].token`)
/// to `found`.
fn strip_secrets(value: &mut serde_json::Value, path: &str, found: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(map) => {
            let secret: Vec<String> = map
                .keys()
                .filter(|k| crate::secret::is_secret_name(k))
                .cloned()
                .collect();
            for k in secret {
                map.remove(&k);
                found.push(format!("{path}.{k}"));
            }
            for (k, v) in map.iter_mut() {
                strip_secrets(v, &format!("{path}.{k}"), found);
            }
        }
        serde_json::Value::Array(items) => {
            for (i, v) in items.iter_mut().enumerate() {
                strip_secrets(v, &format!("{path}[{i}]"), found);
            }
        }
        _ => {}
    }
}

impl Metadata {
    /// The metadata as a sidecar carries it (and `show` prints it): without
    /// the secrets of Juju's metadata, at any depth (a key naming a
    /// password, secret, token, private key, credential or API key, see
    /// [`crate::secret::is_secret_name`]); their paths are listed in
    /// [`Metadata::secrets_in_archive`]. They stay only inside the archive.
    pub fn for_sidecar(&self) -> Metadata {
        let mut out = self.clone();
        let mut found = Vec::new();
        let keys: Vec<String> = out.extra.keys().cloned().collect();
        for k in keys {
            if crate::secret::is_secret_name(&k) {
                out.extra.remove(&k);
                found.push(k);
            } else if let Some(v) = out.extra.get_mut(&k) {
                strip_secrets(v, &k, &mut found);
            }
        }
        out.secrets_in_archive.extend(found);
        out.secrets_in_archive.sort();
        out.secrets_in_archive.dedup();
        out
    }

    /// Files and database describe one moment: the backup was taken with
    /// writers locked, and its database dump (if any) is point-in-time.
    pub fn clean(&self) -> bool {
        self.locked && (self.databases.is_empty() || self.point_in_time)
    }

    /// The stored object's size: the encrypted object's, else the archive's.
    pub fn stored_size(&self) -> u64 {
        self.encryption
            .as_ref()
            .map_or(self.size, |e| e.stored_size)
    }

    /// Compares `got`, the digests of the stored object's bytes, with what
    /// was recorded for them (an encrypted backup's own; else the archive's).
    /// What a check of this backup's stored bytes must compute: SHA-256
    /// alone when it is recorded (enough to know the bytes are the ones
    /// recorded), both digests otherwise.
    pub(crate) fn stored_hasher(&self) -> crate::digest::Hasher {
        let sha256 = match &self.encryption {
            Some(e) => &e.stored_sha256,
            None => &self.sha256,
        };
        if sha256.is_empty() {
            crate::digest::Hasher::default()
        } else {
            crate::digest::Hasher::sha256_only()
        }
    }

    pub(crate) fn check_stored_digests(&self, subject: &str, got: &Digests) -> Result<()> {
        match &self.encryption {
            None => self.check_digests(subject, got),
            Some(e) => {
                let stored = Metadata {
                    size: e.stored_size,
                    sha256: e.stored_sha256.clone(),
                    ..Default::default()
                };
                stored.check_digests(subject, got)
            }
        }
    }

    /// Compares `got` with the size and digests this metadata recorded
    /// (format 2 may record none); `subject` names the backup in the error.
    pub(crate) fn check_digests(&self, subject: &str, got: &Digests) -> Result<()> {
        let size = (self.size != 0).then(|| (self.size.to_string(), got.size.to_string()));
        // Bytes whose SHA-256 matches need no SHA-1 as well (a hasher may
        // leave it out, see [`Metadata::stored_hasher`]).
        let by_sha256 = !self.sha256.is_empty() && !got.sha256_hex.is_empty();
        let sha1 = (!(by_sha256 && got.sha1_base64.is_empty()))
            .then(|| (self.checksum.clone(), got.sha1_base64.clone()));
        let checks = [
            ("size", size),
            ("SHA-1", sha1),
            (
                "SHA-256",
                Some((self.sha256.clone(), got.sha256_hex.clone())),
            ),
        ];
        for (what, pair) in checks {
            if let Some((expected, actual)) = pair
                && !expected.is_empty()
                && expected != actual
            {
                return Err(Error::ChecksumMismatch {
                    subject: subject.to_string(),
                    what,
                    expected,
                    actual,
                });
            }
        }
        Ok(())
    }

    /// Parses metadata JSON from an archive or sidecar; `subject` names the
    /// source in errors.
    pub fn from_json(bytes: &[u8], subject: &str) -> Result<Self> {
        if bytes.len() as u64 > MAX_METADATA_BYTES {
            return Err(Error::invalid(
                subject,
                format!("metadata is larger than {MAX_METADATA_BYTES} bytes"),
            ));
        }
        serde_json::from_slice(bytes)
            .map_err(|e| Error::invalid(subject, format!("unreadable metadata.json: {e}")))
    }

    /// Serialises to the JSON written into archives and sidecars.
    pub fn to_json(&self) -> Vec<u8> {
        // Invariant: every field serialises (strings, numbers, maps of JSON values).
        serde_json::to_vec_pretty(self).unwrap_or_default()
    }

    /// The id this backup gets in a store: its start time and model UUID.
    pub fn derive_id(&self, subject: &str) -> Result<BackupId> {
        let started = self
            .started
            .ok_or_else(|| Error::invalid(subject, "metadata has no Started time"))?;
        if self.model_uuid.is_empty() {
            return Err(Error::invalid(
                subject,
                "metadata has no ModelUUID (or Environment)",
            ));
        }
        BackupId::new(started, &self.model_uuid)
            .map_err(|e| Error::invalid(subject, format!("cannot derive an id: {e}")))
    }

    /// Refuses metadata of a format newer than this crate understands.
    pub fn check_format(&self, subject: &str) -> Result<()> {
        if self.format_version > MAX_FORMAT_VERSION {
            return Err(Error::Incompatible {
                subject: subject.to_string(),
                reason: format!(
                    "metadata format version {} is newer than the newest understood ({MAX_FORMAT_VERSION})",
                    self.format_version
                ),
            });
        }
        Ok(())
    }

    /// The OS series, or the base for Juju 4 archives.
    pub fn series_or_base(&self) -> &str {
        if self.series.is_empty() {
            &self.base
        } else {
            &self.series
        }
    }
}

mod id_or_empty {
    use super::*;
    use serde::{Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(v: &Option<BackupId>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(v.as_ref().map(BackupId::as_str).unwrap_or(""))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<BackupId>, D::Error> {
        let s = Option::<String>::deserialize(d)?.unwrap_or_default();
        if s.is_empty() {
            return Ok(None);
        }
        s.parse().map(Some).map_err(serde::de::Error::custom)
    }
}

/// Go's `time.Time` JSON: RFC 3339 with nanoseconds, zero time for "unset".
pub(crate) mod go_time {
    use serde::{Deserialize, Deserializer, Serializer};
    use time::OffsetDateTime;
    use time::format_description::well_known::Rfc3339;

    const ZERO: &str = "0001-01-01T00:00:00Z";

    pub(crate) fn format(v: Option<OffsetDateTime>) -> String {
        match v {
            None => ZERO.to_string(),
            Some(t) => t
                .to_offset(time::UtcOffset::UTC)
                .format(&Rfc3339)
                .unwrap_or_else(|_| ZERO.to_string()),
        }
    }

    pub(crate) fn serialize<S: Serializer>(
        v: &Option<OffsetDateTime>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format(*v))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<OffsetDateTime>, D::Error> {
        let s = Option::<String>::deserialize(d)?.unwrap_or_default();
        if s.is_empty() || s.starts_with("0001-01-01T00:00:00") {
            return Ok(None);
        }
        OffsetDateTime::parse(&s, &Rfc3339)
            .map(Some)
            .map_err(|e| serde::de::Error::custom(format!("bad time {s:?}: {e}")))
    }
}

/// Formats a time the way Go's JSON encoder does (zero time for `None`).
pub fn format_time(t: Option<OffsetDateTime>) -> String {
    go_time::format(t)
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// A sidecar that a listing skipped: it cannot be read (not JSON, empty,
/// too large) or does not describe a backup (another id, missing fields).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct UnreadableSidecar {
    /// The id its name gives.
    pub id: BackupId,
    /// Its object key.
    pub key: String,
    /// What is wrong with it.
    pub reason: String,
}

impl std::fmt::Display for UnreadableSidecar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "unreadable sidecar {}: {}", self.key, self.reason)
    }
}

#[cfg(test)]
mod tests;
