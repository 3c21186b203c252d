//! Streaming writer of the outer archive: tar -> gzip -> checksums -> sink.

use std::io::{Read, Write};

use super::pgzip::ParallelGzWriter;
use super::{
    ArchiveCompression, MANIFEST_ENTRY, Manifest, ManifestEntry, TOP_DIR, resolve_threads,
};
use crate::digest::{Digests, EntryHasher, Hasher, HashingWriter};
use crate::error::{Error, Result};

/// Writes a `juju-backup/` archive entry by entry into any [`Write`],
/// computing the whole-archive SHA-1/SHA-256/size and each entry's SHA-256
/// for the manifest as it goes. Nothing is buffered beyond the gzip window.
pub struct ArchiveWriter<W: Write> {
    tar: tar::Builder<Compressor<HashingWriter<W>>>,
    manifest: Manifest,
    mtime: u64,
}

fn write_err(entry: &str, e: std::io::Error) -> Error {
    Error::io("writing archive entry", entry, e)
}

impl<W: Write> std::fmt::Debug for ArchiveWriter<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArchiveWriter").finish_non_exhaustive()
    }
}

impl<W: Write> ArchiveWriter<W> {
    /// Starts a gzip archive (writes the `juju-backup/` directory entry).
    /// `level` is the gzip level 0-9; `mtime` stamps the entries we create.
    /// Compression runs on every core.
    #[cfg_attr(
        not(any(feature = "internals", feature = "test-util")),
        allow(dead_code)
    )]
    pub fn new(out: W, level: u32, mtime: u64) -> Result<Self> {
        Self::with_compression(out, ArchiveCompression::Gzip { level, threads: 0 }, mtime)
    }

    /// Starts an archive compressed as `compression` says.
    pub fn with_compression(out: W, compression: ArchiveCompression, mtime: u64) -> Result<Self> {
        Self::hashed_with(out, compression, mtime, Hasher::default())
    }

    /// [`ArchiveWriter::with_compression`], its output hashed by `hasher`.
    pub(crate) fn hashed_with(
        out: W,
        compression: ArchiveCompression,
        mtime: u64,
        hasher: Hasher,
    ) -> Result<Self> {
        let out = HashingWriter::with_hasher(out, hasher);
        let gz = match compression {
            ArchiveCompression::Gzip { level, threads } => {
                Compressor::Gzip(ParallelGzWriter::new(out, level, resolve_threads(threads)))
            }
            ArchiveCompression::Zstd { level, threads } => {
                let mut enc = zstd::stream::write::Encoder::new(out, level)
                    .map_err(|e| write_err("zstd encoder", e))?;
                let threads = resolve_threads(threads);
                if threads > 1 {
                    enc.multithread(threads as u32)
                        .map_err(|e| write_err("zstd encoder", e))?;
                }
                Compressor::Zstd(enc)
            }
        };
        let mut w = ArchiveWriter {
            tar: tar::Builder::new(gz),
            manifest: Manifest {
                format_version: 1,
                entries: Vec::new(),
            },
            mtime,
        };
        w.add_dir("")?;
        Ok(w)
    }

    fn header(&self, kind: tar::EntryType, size: u64, mode: u32) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_size(size);
        h.set_mode(mode);
        h.set_mtime(self.mtime);
        h
    }

    /// Adds a directory entry `juju-backup/<name>` (`name` empty for the top).
    pub fn add_dir(&mut self, name: &str) -> Result<()> {
        let path = format!("{TOP_DIR}{name}");
        let mut h = self.header(tar::EntryType::Directory, 0, 0o700);
        self.tar
            .append_data(&mut h, &path, std::io::empty())
            .map_err(|e| write_err(&path, e))
    }

    /// Adds `juju-backup/<name>` with exactly `size` bytes from `data`.
    ///
    /// Fails (leaving the archive unusable) if `data` yields a different
    /// number of bytes: a tar entry's size cannot be changed once written.
    pub fn add_file(&mut self, name: &str, size: u64, mode: u32, data: impl Read) -> Result<()> {
        let path = format!("{TOP_DIR}{name}");
        let mut h = self.header(tar::EntryType::Regular, size, mode);
        let mut hashed = EntryHasher::new(data.take(size));
        self.tar
            .append_data(&mut h, &path, &mut hashed)
            .map_err(|e| write_err(&path, e))?;
        let (written, sha256) = hashed.finish();
        if written != size {
            return Err(write_err(
                &path,
                std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    format!("source gave {written} bytes, {size} were announced"),
                ),
            ));
        }
        self.manifest
            .entries
            .push(ManifestEntry { path, size, sha256 });
        Ok(())
    }

    /// Writes the manifest, ends the tar and the gzip stream, and returns
    /// the sink with the digests of everything written to it.
    pub fn finish(mut self) -> Result<(W, Digests)> {
        // Invariant: the manifest is plain strings and numbers.
        let json = serde_json::to_vec_pretty(&self.manifest).unwrap_or_default();
        let mut h = self.header(tar::EntryType::Regular, json.len() as u64, 0o600);
        self.tar
            .append_data(&mut h, MANIFEST_ENTRY, &json[..])
            .map_err(|e| write_err(MANIFEST_ENTRY, e))?;
        let gz = self
            .tar
            .into_inner()
            .map_err(|e| write_err(MANIFEST_ENTRY, e))?;
        let mut hashing = gz
            .finish()
            .map_err(|e| write_err("compression trailer", e))?;
        hashing
            .flush()
            .map_err(|e| write_err("compression trailer", e))?;
        Ok(hashing.finish())
    }
}

/// The compressor under the tar stream.
enum Compressor<W: Write> {
    Gzip(ParallelGzWriter<W>),
    Zstd(zstd::stream::write::Encoder<'static, W>),
}

impl<W: Write> Compressor<W> {
    fn finish(self) -> std::io::Result<W> {
        match self {
            Compressor::Gzip(g) => g.finish(),
            Compressor::Zstd(z) => z.finish(),
        }
    }
}

impl<W: Write> Write for Compressor<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Compressor::Gzip(g) => g.write(buf),
            Compressor::Zstd(z) => z.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Compressor::Gzip(g) => g.flush(),
            Compressor::Zstd(z) => z.flush(),
        }
    }
}
