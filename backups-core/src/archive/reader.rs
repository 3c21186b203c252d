//! Streaming reader of the outer archive: checks the layout, parses the
//! metadata, hands `root.tar` to a visitor, verifies the manifest and
//! computes the whole-archive digests, in one pass with bounded memory.

use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, Read};
use std::sync::{Arc, Mutex};

use flate2::bufread::GzDecoder;

use super::{MANIFEST_ENTRY, METADATA_ENTRY, Manifest, ROOT_TAR_ENTRY, TOP_DIR};
use crate::digest::{Digests, EntryHasher, HashingReader};
use crate::error::{Error, Result};
use crate::metadata::{MAX_METADATA_BYTES, Metadata};
use crate::progress::Progress;

/// Something that consumes `root.tar` (and, optionally, the files under
/// `dump/`) while the archive streams past: validation, extraction, loading.
pub trait RootVisitor {
    /// Reads `root` (the inner tar) as far as it needs.
    fn visit(&mut self, root: &mut dyn Read) -> Result<()>;

    /// Reads one file under `juju-backup/dump/`; `path` is relative to `dump/`.
    fn visit_dump(&mut self, _path: &str, _size: u64, _body: &mut dyn Read) -> Result<()> {
        Ok(())
    }
}

/// What one pass over an archive found.
#[derive(Debug, Clone)]
pub struct ArchiveSummary {
    /// The in-archive `metadata.json`.
    pub metadata: Metadata,
    /// Digests of the whole compressed archive.
    pub digests: Digests,
    /// Whether `juju-backup/root.tar` is present.
    pub has_root_tar: bool,
    /// Whether a manifest was present (and verified).
    pub manifest_verified: bool,
    /// File entries under `juju-backup/dump/` (path, size).
    pub dump_entries: Vec<(String, u64)>,
}

const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

/// The decompressor under the tar stream, chosen by magic bytes.
enum Decoder<R: BufRead> {
    Gzip(Box<GzDecoder<R>>),
    Zstd(zstd::stream::read::Decoder<'static, R>),
}

impl<R: BufRead> Decoder<R> {
    fn into_inner(self) -> R {
        match self {
            Decoder::Gzip(g) => (*g).into_inner(),
            Decoder::Zstd(z) => z.finish(),
        }
    }
}

impl<R: BufRead> Read for Decoder<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Decoder::Gzip(g) => g.read(buf),
            Decoder::Zstd(z) => z.read(buf),
        }
    }
}

/// Largest run of bytes accepted after the tar's end blocks.
const MAX_TAR_PADDING: u64 = 1024 * 1024;

/// Records the first error of the underlying byte source, so a network or
/// disk failure is not reported as a corrupt archive.
struct SourceReader<R> {
    inner: R,
    error: Arc<Mutex<Option<String>>>,
    progress: Arc<dyn Progress>,
}

impl<R: Read> Read for SourceReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.inner.read(buf) {
            Ok(n) => {
                self.progress.advance(n as u64);
                Ok(n)
            }
            Err(e) => {
                if let Ok(mut slot) = self.error.lock() {
                    slot.get_or_insert_with(|| e.to_string());
                }
                Err(e)
            }
        }
    }
}

/// Maps a read error inside the archive to the right variant.
struct Failure {
    subject: String,
    source_error: Arc<Mutex<Option<String>>>,
}

impl Failure {
    fn map(&self, what: &str, e: io::Error) -> Error {
        if let Some(msg) = self.source_error.lock().ok().and_then(|s| s.clone()) {
            return Error::io(
                "reading archive",
                &self.subject,
                io::Error::new(e.kind(), msg),
            );
        }
        Error::invalid(
            &self.subject,
            format!("{what}: {}", describe_read_error(&e)),
        )
    }
}

/// Explains a decompression or tar read error in a user's terms.
pub fn describe_read_error(e: &io::Error) -> String {
    let msg = e.to_string();
    if e.kind() == io::ErrorKind::UnexpectedEof
        || msg.contains("incomplete deflate stream")
        || msg.contains("unexpected end")
    {
        "truncated (unexpected end of data)".to_string()
    } else if msg.contains("invalid gzip header") {
        "not a gzip stream (invalid gzip header)".to_string()
    } else if msg.contains("corrupt deflate stream") || msg.contains("invalid") {
        format!("corrupt compressed data ({msg})")
    } else {
        msg
    }
}

/// Reads a whole archive from `raw`. `subject` (an id or file name) is
/// used in errors; `root`, if given, receives `root.tar` as it streams.
pub fn read_archive<R: Read>(
    raw: R,
    subject: &str,
    mut root: Option<&mut dyn RootVisitor>,
    progress: Arc<dyn Progress>,
) -> Result<ArchiveSummary> {
    let source_error = Arc::new(Mutex::new(None));
    let fail = Failure {
        subject: subject.to_string(),
        source_error: source_error.clone(),
    };
    let source = SourceReader {
        inner: raw,
        error: source_error,
        progress,
    };
    let mut buffered = BufReader::with_capacity(256 * 1024, HashingReader::new(source));
    let head = buffered.fill_buf().map_err(|e| fail.map("reading", e))?;
    if head.is_empty() {
        return Err(Error::invalid(subject, "empty file, not a gzip stream"));
    }
    let decoder = if head.starts_with(&[0x1f, 0x8b]) {
        Decoder::Gzip(Box::new(GzDecoder::new(buffered)))
    } else if head.starts_with(&ZSTD_MAGIC) {
        let z = zstd::stream::read::Decoder::with_buffer(buffered)
            .map_err(|e| fail.map("starting zstd", e))?
            .single_frame();
        Decoder::Zstd(z)
    } else {
        return Err(Error::invalid(
            subject,
            "not a gzip stream (no gzip or zstd magic bytes)",
        ));
    };
    // Buffered on both sides: tar reads 512-byte headers, which would
    // otherwise each be a call into the decompressor.
    let gz = BufReader::with_capacity(256 * 1024, decoder);
    let mut archive = tar::Archive::new(gz);
    let mut metadata = None;
    let mut manifest: Option<Manifest> = None;
    let mut has_root_tar = false;
    let mut seen: HashMap<String, (u64, String)> = HashMap::new();
    let mut dump_entries = Vec::new();

    let entries = archive.entries().map_err(|e| fail.map("reading tar", e))?;
    for entry in entries {
        let entry = entry.map_err(|e| fail.map("reading tar header", e))?;
        let raw_path = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let path = raw_path.trim_start_matches("./").to_string();
        if !path.starts_with(TOP_DIR) && path != TOP_DIR.trim_end_matches('/') {
            return Err(Error::invalid(
                subject,
                format!("entry {raw_path:?} is outside {TOP_DIR}"),
            ));
        }
        let kind = entry.header().entry_type();
        if kind.is_dir() {
            continue;
        }
        if seen.contains_key(&path) {
            return Err(Error::invalid(subject, format!("duplicate entry {path:?}")));
        }
        let mut hashed = EntryHasher::new(entry);
        match path.as_str() {
            METADATA_ENTRY => {
                let mut buf = Vec::new();
                (&mut hashed)
                    .take(MAX_METADATA_BYTES + 1)
                    .read_to_end(&mut buf)
                    .map_err(|e| fail.map(METADATA_ENTRY, e))?;
                metadata = Some(Metadata::from_json(
                    &buf,
                    &format!("{subject} ({METADATA_ENTRY})"),
                )?);
            }
            ROOT_TAR_ENTRY => {
                has_root_tar = true;
                if let Some(visitor) = root.as_deref_mut() {
                    visitor.visit(&mut hashed).map_err(|e| match e {
                        Error::InvalidArchive { subject: s, reason } => Error::InvalidArchive {
                            subject: format!("{subject} ({s})"),
                            reason,
                        },
                        other => other,
                    })?;
                }
            }
            MANIFEST_ENTRY => {
                let mut buf = Vec::new();
                (&mut hashed)
                    .take(MAX_METADATA_BYTES + 1)
                    .read_to_end(&mut buf)
                    .map_err(|e| fail.map(MANIFEST_ENTRY, e))?;
                if buf.len() as u64 > MAX_METADATA_BYTES {
                    return Err(Error::invalid(subject, "manifest.json is too large"));
                }
                manifest = Some(serde_json::from_slice(&buf).map_err(|e| {
                    Error::invalid(subject, format!("unreadable manifest.json: {e}"))
                })?);
            }
            p if p.starts_with(super::DUMP_DIR) && kind.is_file() => {
                if let Some(visitor) = root.as_deref_mut() {
                    let size = hashed.inner.header().size().unwrap_or(0);
                    let rel = &p[super::DUMP_DIR.len()..];
                    visitor.visit_dump(rel, size, &mut hashed)?;
                }
            }
            _ => {}
        }
        io::copy(&mut hashed, &mut io::sink()).map_err(|e| fail.map(&path, e))?;
        let (size, sha256) = hashed.finish();
        if path.starts_with(super::DUMP_DIR) {
            dump_entries.push((path.clone(), size));
        }
        seen.insert(path, (size, sha256));
    }
    // Past the tar end blocks: only padding may follow (GNU tar pads to
    // 10 KiB records); reading it to the end also checks the gzip CRC.
    let mut gz = archive.into_inner();
    let padding = io::copy(&mut (&mut gz).take(MAX_TAR_PADDING + 1), &mut io::sink())
        .map_err(|e| fail.map("end of archive", e))?;
    if padding > MAX_TAR_PADDING {
        return Err(Error::invalid(
            subject,
            "unexpected data after the end of the tar",
        ));
    }
    let mut buffered = gz.into_inner().into_inner();
    let trailing = buffered
        .fill_buf()
        .map_err(|e| fail.map("after gzip stream", e))?
        .len();
    if trailing > 0 {
        return Err(Error::invalid(
            subject,
            "unexpected data after the gzip stream",
        ));
    }
    let hashing = buffered.into_inner();
    let digests = hashing.finish();

    let metadata = metadata
        .ok_or_else(|| Error::invalid(subject, format!("missing entry {METADATA_ENTRY}")))?;
    let manifest_verified = manifest.is_some();
    if let Some(manifest) = manifest {
        for want in &manifest.entries {
            let (size, sha256) = seen.get(&want.path).ok_or_else(|| {
                Error::invalid(
                    subject,
                    format!("entry {} listed in the manifest is missing", want.path),
                )
            })?;
            if *size != want.size {
                return Err(Error::ChecksumMismatch {
                    subject: format!("{subject} entry {}", want.path),
                    what: "size",
                    expected: want.size.to_string(),
                    actual: size.to_string(),
                });
            }
            if *sha256 != want.sha256 {
                return Err(Error::ChecksumMismatch {
                    subject: format!("{subject} entry {}", want.path),
                    what: "SHA-256",
                    expected: want.sha256.clone(),
                    actual: sha256.clone(),
                });
            }
        }
    }
    Ok(ArchiveSummary {
        metadata,
        digests,
        has_root_tar,
        manifest_verified,
        dump_entries,
    })
}
