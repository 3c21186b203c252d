//! The archive format: a gzip'd tar whose single top directory is
//! `juju-backup/`, holding `metadata.json`, `root.tar`, `dump/` and, in our
//! archives, a trailing `manifest.json` with the size and SHA-256 of every
//! other entry.

mod guard;
pub(crate) mod pgzip;
pub(crate) mod reader;
pub(crate) mod root_tar;
#[cfg(test)]
mod sparse_tests;
pub(crate) mod writer;

use serde::{Deserialize, Serialize};

pub(crate) use guard::{HeaderGuard, SparseSlot};

/// The archive's top directory.
pub(crate) const TOP_DIR: &str = "juju-backup/";
/// The in-archive metadata entry.
pub(crate) const METADATA_ENTRY: &str = "juju-backup/metadata.json";
/// The inner tar of backed-up files.
pub(crate) const ROOT_TAR_ENTRY: &str = "juju-backup/root.tar";
/// The database dump directory.
pub(crate) const DUMP_DIR: &str = "juju-backup/dump/";
/// Our trailing manifest.
pub(crate) const MANIFEST_ENTRY: &str = "juju-backup/manifest.json";

/// Which compressor an archive uses, without its settings: what a config
/// file's `compression = "gzip" | "zstd"` and the CLI's `--compression`
/// name (a `clap::ValueEnum` with the `clap` feature).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum CompressionKind {
    /// gzip: Juju's format.
    #[default]
    Gzip,
    /// zstd: only this tool reads it.
    Zstd,
}

impl CompressionKind {
    /// `gzip` or `zstd`.
    pub fn name(self) -> &'static str {
        match self {
            CompressionKind::Gzip => "gzip",
            CompressionKind::Zstd => "zstd",
        }
    }
}

/// How the outer archive is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArchiveCompression {
    /// gzip (the Juju format), level 0-9, compressed on `threads` threads
    /// into one standard gzip member.
    Gzip {
        /// 0 (store) to 9 (smallest); 6 is gzip's default.
        level: u32,
        /// Compression threads (0: one per core).
        threads: usize,
    },
    /// zstd, level 1-19: faster and smaller, but only this tool reads it
    /// (Juju and `tar xzf` cannot).
    Zstd {
        /// 1 (fastest) to 19 (smallest); 3 is zstd's default.
        level: i32,
        /// Compression threads (0: one per core).
        threads: usize,
    },
}

impl ArchiveCompression {
    /// `gzip` or `zstd`, as [`crate::Metadata::compression`] records it.
    pub fn name(&self) -> &'static str {
        self.kind().name()
    }

    /// The compressor, without its settings.
    pub fn kind(&self) -> CompressionKind {
        match self {
            ArchiveCompression::Gzip { .. } => CompressionKind::Gzip,
            ArchiveCompression::Zstd { .. } => CompressionKind::Zstd,
        }
    }

    /// `kind` at `level` (`None`: its default) on `threads` threads (0:
    /// one per core): [`ArchiveCompression::gzip`] or
    /// [`ArchiveCompression::zstd`].
    pub fn new(
        kind: CompressionKind,
        level: Option<u32>,
        threads: usize,
    ) -> crate::error::Result<Self> {
        match kind {
            CompressionKind::Gzip => Self::gzip(level, threads),
            CompressionKind::Zstd => Self::zstd(level, threads),
        }
    }
}

impl Default for ArchiveCompression {
    fn default() -> Self {
        ArchiveCompression::Gzip {
            level: 6,
            threads: 0,
        }
    }
}

impl ArchiveCompression {
    /// gzip at `level` (0 stores, 9 is smallest; `None`: 6, gzip's
    /// default) on `threads` threads (0: one per core); a level above 9 is
    /// refused.
    pub fn gzip(level: Option<u32>, threads: usize) -> crate::error::Result<Self> {
        let level = level.unwrap_or(6);
        if level > 9 {
            return Err(bad_level(
                level,
                "gzip levels are 0 (store) to 9 (smallest)",
            ));
        }
        Ok(ArchiveCompression::Gzip { level, threads })
    }

    /// zstd at `level` (1 is fastest, 19 smallest; `None`: 3, zstd's
    /// default) on `threads` threads (0: one per core); 0 and levels above
    /// 19 are refused.
    pub fn zstd(level: Option<u32>, threads: usize) -> crate::error::Result<Self> {
        let level = level.unwrap_or(3);
        match i32::try_from(level) {
            Ok(level @ 1..=19) => Ok(ArchiveCompression::Zstd { level, threads }),
            _ => Err(bad_level(
                level,
                "zstd levels are 1 (fastest) to 19 (smallest)",
            )),
        }
    }
}

fn bad_level(level: u32, reason: &str) -> crate::error::Error {
    crate::error::Error::InvalidInput {
        what: crate::error::InputKind::CompressionLevel,
        value: level.to_string(),
        reason: reason.to_string(),
    }
}

pub(crate) fn resolve_threads(threads: usize) -> usize {
    if threads == 0 {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        threads
    }
}

/// Size and SHA-256 of every entry before it, written last by our writer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct Manifest {
    /// Manifest format version (1).
    pub format_version: u32,
    /// One line per file entry, in archive order.
    pub entries: Vec<ManifestEntry>,
}

/// One entry of the [`Manifest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct ManifestEntry {
    /// The entry's path in the archive, e.g. `juju-backup/root.tar`.
    pub path: String,
    /// Its size in bytes.
    pub size: u64,
    /// Its SHA-256, lower-case hex.
    #[serde(rename = "SHA256")]
    pub sha256: String,
}
