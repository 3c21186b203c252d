//! Streaming writer of the outer archive: tar -> gzip -> checksums -> sink.

use std::io::{Read, Write};

use super::pgzip::ParallelGzWriter;
use super::{MANIFEST_ENTRY, Manifest, ManifestEntry, TOP_DIR};
use crate::digest::{Digests, EntryHasher, HashingWriter};
use crate::error::{Error, Result};

/// Writes a `juju-backup/` archive entry by entry into any [`Write`],
/// computing the whole-archive SHA-1/SHA-256/size and each entry's SHA-256
/// for the manifest as it goes. Nothing is buffered beyond the gzip window.
pub struct ArchiveWriter<W: Write> {
    tar: tar::Builder<ParallelGzWriter<HashingWriter<W>>>,
    manifest: Manifest,
    mtime: u64,
}

fn write_err(entry: &str, e: std::io::Error) -> Error {
    Error::io("writing archive entry", entry, e)
}

impl<W: Write> ArchiveWriter<W> {
    /// Starts an archive (writes the `juju-backup/` directory entry).
    /// `level` is the gzip level 0-9; `mtime` stamps the entries we create.
    /// Compression runs on every core (see [`ArchiveWriter::with_threads`]).
    pub fn new(out: W, level: u32, mtime: u64) -> Result<Self> {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Self::with_threads(out, level, mtime, cores)
    }

    /// Like [`ArchiveWriter::new`], compressing on `threads` threads. The
    /// output is one standard gzip member whatever the thread count.
    pub fn with_threads(out: W, level: u32, mtime: u64, threads: usize) -> Result<Self> {
        let gz = ParallelGzWriter::new(HashingWriter::new(out), level, threads);
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
        let mut hashing = gz.finish().map_err(|e| write_err("gzip trailer", e))?;
        hashing.flush().map_err(|e| write_err("gzip trailer", e))?;
        Ok(hashing.finish())
    }
}
