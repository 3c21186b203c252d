//! Streaming reader of the outer archive: checks the layout, parses the
//! metadata, hands `root.tar` to a visitor, verifies the manifest and
//! computes the whole-archive digests, in one pass with bounded memory.

use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, Read};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};

use flate2::bufread::GzDecoder;

use super::{MANIFEST_ENTRY, METADATA_ENTRY, Manifest, ROOT_TAR_ENTRY, TOP_DIR};
use crate::digest::{Digests, EntryHasher, Hasher};
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

/// Names the archive in an error about one of its entries.
fn within(subject: &str, e: Error) -> Error {
    match e {
        Error::InvalidArchive { subject: s, reason } => Error::InvalidArchive {
            subject: format!("{subject} ({s})"),
            reason,
        },
        other => other,
    }
}

/// Explains a decompression or tar read error in a user's terms.
pub(crate) fn describe_read_error(e: &io::Error) -> String {
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
///
/// Decompression (and hashing of the compressed bytes) runs on its own
/// thread, a bounded channel ahead of the tar parsing and whatever the
/// visitor does with the entries — like `gzip -d | tar x`.
// The benches and fuzz targets call it (the `internals` feature).
#[cfg_attr(not(any(test, feature = "internals")), allow(dead_code))]
pub fn read_archive<R: Read + Send>(
    raw: R,
    subject: &str,
    root: Option<&mut dyn RootVisitor>,
    progress: Arc<dyn Progress>,
) -> Result<ArchiveSummary> {
    read_archive_hashed(raw, subject, root, progress, Hasher::default())
}

/// [`read_archive`], computing only the digests of the compressed bytes
/// that `hasher` computes (a restore that checked the stored bytes already
/// needs SHA-256 alone to see they did not change).
pub(crate) fn read_archive_hashed<R: Read + Send>(
    raw: R,
    subject: &str,
    root: Option<&mut dyn RootVisitor>,
    progress: Arc<dyn Progress>,
    hasher: Hasher,
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
    let (consumed, digests) = std::thread::scope(|scope| {
        let (raw_tx, raw_rx) = sync_channel::<io::Result<Vec<u8>>>(DECODE_AHEAD);
        let (tx, rx) = sync_channel::<io::Result<Vec<u8>>>(DECODE_AHEAD);
        let fail_ref = &fail;
        let hashing = scope.spawn(move || read_and_hash(source, hasher, raw_tx));
        let decoder =
            scope.spawn(move || decode(ChannelReader::new(raw_rx), tx, fail_ref, subject));
        // Buffered: tar reads 512-byte headers.
        let reader = BufReader::with_capacity(256 * 1024, ChannelReader::new(rx));
        let consumed = consume(reader, subject, root, &fail);
        // The reader (and the channel) is gone: a decoder still sending
        // stops, and with it the reading thread.
        let decoded = decoder
            .join()
            .unwrap_or_else(|_| Err(Error::internal("the decompression thread panicked")));
        let digests = hashing
            .join()
            .map_err(|_| Error::internal("the archive reading thread panicked"));
        (consumed, decoded.and(digests))
    });
    let consumed = consumed?;
    let digests = digests?;
    let Consumed {
        metadata,
        manifest,
        has_root_tar,
        seen,
    } = consumed;

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
    })
}

/// What the tar side of [`read_archive`] found.
struct Consumed {
    metadata: Option<Metadata>,
    manifest: Option<Manifest>,
    has_root_tar: bool,
    seen: HashMap<String, (u64, String)>,
}

/// Parses the decompressed tar stream and feeds the visitor.
fn consume<B: Read>(
    gz: B,
    subject: &str,
    mut root: Option<&mut dyn RootVisitor>,
    fail: &Failure,
) -> Result<Consumed> {
    let mut metadata = None;
    let mut manifest: Option<Manifest> = None;
    let mut has_root_tar = false;
    let mut seen: HashMap<String, (u64, String)> = HashMap::new();

    let mut archive = tar::Archive::new(super::HeaderGuard::new(gz));

    let entries = archive.entries().map_err(|e| fail.map("reading tar", e))?;
    for entry in entries {
        let entry = entry.map_err(|e| fail.map("reading tar header", e))?;
        let raw_path = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let path = outer_entry_path(&entry)
            .map_err(|reason| Error::invalid(subject, format!("entry {raw_path:?} {reason}")))?;
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
                    visitor.visit(&mut hashed).map_err(|e| within(subject, e))?;
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
                    visitor
                        .visit_dump(rel, size, &mut hashed)
                        .map_err(|e| within(subject, e))?;
                }
            }
            _ => {}
        }
        io::copy(&mut hashed, &mut io::sink()).map_err(|e| fail.map(&path, e))?;
        let (size, sha256) = hashed.finish();
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
    Ok(Consumed {
        metadata,
        manifest,
        has_root_tar,
        seen,
    })
}

/// An outer entry's path, normalised (`./` and `.` dropped): it must lie
/// under [`TOP_DIR`] (or be it), with no `..`, no absolute path, and a
/// link only to a path under it. Returns why not otherwise.
fn outer_entry_path<R: Read>(entry: &tar::Entry<'_, R>) -> std::result::Result<String, String> {
    let raw = entry.path_bytes();
    let top = TOP_DIR.trim_end_matches('/');
    let path = normalise_outer(&raw, &[], false)?;
    if path.first().map(String::as_str) != Some(top) {
        return Err(format!("is outside {TOP_DIR}"));
    }
    let kind = entry.header().entry_type();
    if kind.is_symlink() || kind.is_hard_link() {
        let target = entry
            .link_name_bytes()
            .ok_or_else(|| "is a link without a target".to_string())?;
        if target.starts_with(b"/") {
            return Err(format!(
                "links to the absolute path {:?}",
                String::from_utf8_lossy(&target)
            ));
        }
        // A symlink's target is relative to its directory, a hard link's
        // to the archive's root.
        let base = if kind.is_symlink() {
            &path[..path.len() - 1]
        } else {
            &[][..]
        };
        let resolved = normalise_outer(&target, base, kind.is_symlink())
            .map_err(|r| format!("links out: its target {r}"))?;
        if resolved.first().map(String::as_str) != Some(top) {
            return Err(format!(
                "links to {:?}, outside {TOP_DIR}",
                String::from_utf8_lossy(&target)
            ));
        }
    }
    Ok(path.join("/"))
}

/// `raw`'s components after `base`, `.` dropped; refuses NUL bytes, an
/// absolute path, and `..` (with `parent_ok`, a `..` that leaves the
/// archive's root).
fn normalise_outer(
    raw: &[u8],
    base: &[String],
    parent_ok: bool,
) -> std::result::Result<Vec<String>, String> {
    if raw.is_empty() {
        return Err("has an empty path".into());
    }
    if raw.contains(&0) {
        return Err("has a NUL byte in its path".into());
    }
    if raw.starts_with(b"/") {
        return Err("has an absolute path".into());
    }
    let mut out = base.to_vec();
    for part in raw.split(|b| *b == b'/') {
        match part {
            b"" | b"." => {}
            b".." if !parent_ok => return Err("has '..' in its path".into()),
            b".." => {
                if out.pop().is_none() {
                    return Err("goes above the archive's root".into());
                }
            }
            p => out.push(String::from_utf8_lossy(p).into_owned()),
        }
    }
    if out.is_empty() {
        return Err("names the archive's root".into());
    }
    Ok(out)
}

/// Chunks decompressed at a time, and how many may wait in the channel.
const DECODE_CHUNK: usize = 1024 * 1024;
const DECODE_AHEAD: usize = 4;

/// Raw bytes read (and hashed) at a time, ahead of the decompression.
const RAW_CHUNK: usize = 256 * 1024;

/// The reading thread: reads the compressed bytes, hashes them and hands
/// them to the decompression thread (so hashing runs beside inflating, not
/// before it), until the end or until the decompression stops.
fn read_and_hash<R: Read>(
    mut source: SourceReader<R>,
    mut hasher: Hasher,
    tx: SyncSender<io::Result<Vec<u8>>>,
) -> Digests {
    loop {
        let mut chunk = vec![0u8; RAW_CHUNK];
        let mut filled = 0;
        while filled < chunk.len() {
            match source.read(&mut chunk[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    let _ = tx.send(Err(e));
                    return hasher.finish();
                }
            }
        }
        if filled == 0 {
            return hasher.finish();
        }
        chunk.truncate(filled);
        hasher.update(&chunk);
        if tx.send(Ok(chunk)).is_err() {
            return hasher.finish();
        }
    }
}

/// The decompression thread: detects the format, decompresses into the
/// channel, then checks nothing follows the compressed stream.
fn decode<S: Read>(
    source: S,
    tx: SyncSender<io::Result<Vec<u8>>>,
    fail: &Failure,
    subject: &str,
) -> Result<()> {
    let send_err = |e: io::Error| {
        let copy = io::Error::new(e.kind(), e.to_string());
        let _ = tx.send(Err(copy));
        e
    };
    let mut buffered = BufReader::with_capacity(256 * 1024, source);
    let head = buffered
        .fill_buf()
        .map_err(|e| fail.map("reading", send_err(e)))?;
    if head.is_empty() {
        let _ = tx.send(Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "empty file, not a gzip stream",
        )));
        return Err(Error::invalid(subject, "empty file, not a gzip stream"));
    }
    let mut decoder = if head.starts_with(&[0x1f, 0x8b]) {
        Decoder::Gzip(Box::new(GzDecoder::new(buffered)))
    } else if head.starts_with(&ZSTD_MAGIC) {
        let z = zstd::stream::read::Decoder::with_buffer(buffered)
            .map_err(|e| fail.map("starting zstd", send_err(e)))?
            .single_frame();
        Decoder::Zstd(z)
    } else {
        let msg = "not a gzip stream (no gzip or zstd magic bytes)";
        let _ = tx.send(Err(io::Error::new(io::ErrorKind::InvalidData, msg)));
        return Err(Error::invalid(subject, msg));
    };
    loop {
        let mut chunk = vec![0u8; DECODE_CHUNK];
        let mut filled = 0;
        while filled < chunk.len() {
            match decoder.read(&mut chunk[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(fail.map("decompressing", send_err(e))),
            }
        }
        if filled == 0 {
            break;
        }
        chunk.truncate(filled);
        if tx.send(Ok(chunk)).is_err() {
            // The tar side stopped (an error, or data past the end): its
            // error is the one reported.
            return Err(Error::Cancelled("archive reading stopped".into()));
        }
    }
    drop(tx);
    let mut buffered = decoder.into_inner();
    let trailing = buffered
        .fill_buf()
        .map_err(|e| fail.map("after the compressed stream", e))?
        .len();
    if trailing > 0 {
        return Err(Error::invalid(
            subject,
            "unexpected data after the gzip stream",
        ));
    }
    Ok(())
}

/// A [`Read`] over the chunks the decompression thread sends.
struct ChannelReader {
    rx: Receiver<io::Result<Vec<u8>>>,
    chunk: Vec<u8>,
    pos: usize,
}

impl ChannelReader {
    fn new(rx: Receiver<io::Result<Vec<u8>>>) -> Self {
        ChannelReader {
            rx,
            chunk: Vec::new(),
            pos: 0,
        }
    }
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.chunk.len() {
            match self.rx.recv() {
                Ok(Ok(chunk)) => {
                    self.chunk = chunk;
                    self.pos = 0;
                }
                Ok(Err(e)) => return Err(e),
                Err(_) => return Ok(0),
            }
        }
        let n = (self.chunk.len() - self.pos).min(buf.len());
        buf[..n].copy_from_slice(&self.chunk[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}
