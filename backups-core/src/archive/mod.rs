//! The archive format: a gzip'd tar whose single top directory is
//! `juju-backup/`, holding `metadata.json`, `root.tar`, `dump/` and, in our
//! archives, a trailing `manifest.json` with the size and SHA-256 of every
//! other entry.

pub(crate) mod pgzip;
pub(crate) mod reader;
pub(crate) mod root_tar;
pub(crate) mod writer;

use serde::{Deserialize, Serialize};

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

impl Default for ArchiveCompression {
    fn default() -> Self {
        ArchiveCompression::Gzip {
            level: 6,
            threads: 0,
        }
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

/// Largest tar header extension (GNU long name/link, PAX record) accepted:
/// the tar crate reads them whole into memory.
pub(crate) const MAX_HEADER_EXTENSION: u64 = 1024 * 1024;

/// A [`std::io::Read`] over a tar stream that follows the header blocks as
/// they pass and fails on a header extension larger than
/// [`MAX_HEADER_EXTENSION`], before the tar crate would buffer it.
pub(crate) struct HeaderGuard<R> {
    inner: R,
    /// Bytes read so far.
    pos: u64,
    /// Where the next header block starts.
    next_header: u64,
    /// The header block being collected.
    block: Vec<u8>,
}

impl<R: std::io::Read> HeaderGuard<R> {
    pub(crate) fn new(inner: R) -> Self {
        HeaderGuard {
            inner,
            pos: 0,
            next_header: 0,
            block: Vec::with_capacity(512),
        }
    }

    fn inspect(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        let mut at = self.pos;
        let mut rest = bytes;
        while !rest.is_empty() {
            let end = at + rest.len() as u64;
            if end <= self.next_header && self.block.is_empty() {
                break;
            }
            if self.block.is_empty() && at < self.next_header {
                let skip = (self.next_header - at) as usize;
                rest = &rest[skip..];
                at = self.next_header;
                continue;
            }
            let need = 512 - self.block.len();
            let take = need.min(rest.len());
            self.block.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            at += take as u64;
            if self.block.len() == 512 {
                let header = tar::Header::from_byte_slice(&self.block);
                let size = if self.block.iter().all(|b| *b == 0) {
                    0
                } else {
                    header.entry_size().unwrap_or(0)
                };
                let kind = header.entry_type();
                let extension = kind.is_gnu_longname()
                    || kind.is_gnu_longlink()
                    || kind.is_pax_local_extensions()
                    || kind.is_pax_global_extensions();
                if extension && size > MAX_HEADER_EXTENSION {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!(
                            "tar header extension of {size} bytes is larger than {MAX_HEADER_EXTENSION}"
                        ),
                    ));
                }
                self.next_header = at + size.div_ceil(512) * 512;
                self.block.clear();
            }
        }
        Ok(())
    }
}

impl<R: std::io::Read> std::io::Read for HeaderGuard<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.inspect(&buf[..n])?;
        self.pos += n as u64;
        Ok(n)
    }
}
