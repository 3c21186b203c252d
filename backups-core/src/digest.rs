//! Checksums computed while bytes stream past: SHA-1 (Juju's, base64),
//! SHA-256 (ours, hex) and the byte count.

use std::io::{self, Read, Write};

use base64::Engine;
use sha1::Sha1;
use sha2::{Digest, Sha256};

/// The digests of a whole archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digests {
    /// SHA-1, base64 (Juju's `Checksum`).
    pub sha1_base64: String,
    /// SHA-256, lower-case hex.
    pub sha256_hex: String,
    /// Number of bytes.
    pub size: u64,
}

/// Running SHA-1 + SHA-256 + size (by default both; either may be left
/// out where nothing needs it, and its digest is then empty).
#[derive(Clone)]
pub struct Hasher {
    sha1: Option<Sha1>,
    sha256: Option<Sha256>,
    size: u64,
}

impl Default for Hasher {
    fn default() -> Self {
        Hasher {
            sha1: Some(Sha1::default()),
            sha256: Some(Sha256::default()),
            size: 0,
        }
    }
}

impl std::fmt::Debug for Hasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hasher")
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

impl Hasher {
    /// Only SHA-1 and the size (Juju's checksum of a plain archive).
    pub(crate) fn sha1_only() -> Self {
        Hasher {
            sha256: None,
            ..Hasher::default()
        }
    }

    /// Only SHA-256 and the size (the stored bytes of an encrypted backup).
    pub(crate) fn sha256_only() -> Self {
        Hasher {
            sha1: None,
            ..Hasher::default()
        }
    }

    /// Adds bytes.
    pub fn update(&mut self, bytes: &[u8]) {
        if let Some(h) = &mut self.sha1 {
            h.update(bytes);
        }
        if let Some(h) = &mut self.sha256 {
            h.update(bytes);
        }
        self.size += bytes.len() as u64;
    }

    /// Finishes and returns the digests.
    pub fn finish(self) -> Digests {
        Digests {
            sha1_base64: self
                .sha1
                .map(|h| base64::engine::general_purpose::STANDARD.encode(h.finalize()))
                .unwrap_or_default(),
            sha256_hex: self
                .sha256
                .map(|h| hex::encode(h.finalize()))
                .unwrap_or_default(),
            size: self.size,
        }
    }
}

/// A writer that hashes everything written through it.
pub(crate) struct HashingWriter<W> {
    inner: W,
    hasher: Hasher,
}

impl<W: Write> HashingWriter<W> {
    /// Wraps `inner`.
    pub(crate) fn new(inner: W) -> Self {
        Self::with_hasher(inner, Hasher::default())
    }

    /// Wraps `inner`, hashing with `hasher`.
    pub(crate) fn with_hasher(inner: W, hasher: Hasher) -> Self {
        HashingWriter { inner, hasher }
    }

    /// Returns the inner writer and the digests of what was written.
    pub(crate) fn finish(self) -> (W, Digests) {
        (self.inner, self.hasher.finish())
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// SHA-256 (hex) and size of one archive entry, for the manifest.
pub(crate) struct EntryHasher<R> {
    pub(crate) inner: R,
    sha256: Sha256,
    pub(crate) size: u64,
}

impl<R: Read> EntryHasher<R> {
    pub(crate) fn new(inner: R) -> Self {
        EntryHasher {
            inner,
            sha256: Sha256::new(),
            size: 0,
        }
    }

    pub(crate) fn finish(self) -> (u64, String) {
        (self.size, hex::encode(self.sha256.finalize()))
    }
}

impl<R: Read> Read for EntryHasher<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.sha256.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_vectors() {
        let mut h = Hasher::default();
        h.update(b"abc");
        let d = h.finish();
        assert_eq!(d.sha1_base64, "qZk+NkcGgWq6PiVxeFDCbJzQ2J0=");
        assert_eq!(
            d.sha256_hex,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(d.size, 3);
    }
}
