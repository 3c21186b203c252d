//! `root.tar` produced as a stream: headers are generated from the scan, file
//! contents are read once, straight from disk, and the total size is known
//! before the first byte so the outer tar needs no temporary copy.

use std::fs::File;
use std::io::{self, Read, Seek};
use std::sync::{Arc, Mutex};

use crate::files::{EntryKind, FileEntry};
use crate::progress::Progress;
use crate::sparse::{Segment, SparseMap};

const BLOCK: u64 = 512;

fn padded(n: u64) -> u64 {
    n.div_ceil(BLOCK) * BLOCK
}

/// Header bytes (including GNU long-name records) for one entry.
fn header_bytes(entry: &FileEntry) -> io::Result<Vec<u8>> {
    let mut header = tar::Header::new_gnu();
    header.set_mode(entry.mode);
    header.set_mtime(entry.mtime.max(0) as u64);
    header.set_uid(u64::from(entry.uid));
    header.set_gid(u64::from(entry.gid));
    let mut out = tar::Builder::new(Vec::with_capacity(1024));
    match &entry.kind {
        EntryKind::Directory => {
            header.set_entry_type(tar::EntryType::Directory);
            header.set_size(0);
            let mut name = entry.name.clone().into_os_string();
            name.push("/");
            out.append_data(&mut header, name, io::empty())?;
        }
        EntryKind::File { size } => {
            header.set_entry_type(tar::EntryType::Regular);
            header.set_size(*size);
            // Only the header is written here: the data follows from disk.
            out.append_data(&mut header, &entry.name, io::empty())?;
        }
        EntryKind::Sparse { map } => {
            header.set_entry_type(tar::EntryType::GNUSparse);
            header.set_size(map.stored());
            let extensions = sparse_header(&mut header, map);
            out.append_data(&mut header, &entry.name, io::empty())?;
            let mut bytes = out.into_inner()?;
            bytes.truncate(bytes.len() - 2 * BLOCK as usize);
            bytes.extend_from_slice(&extensions);
            return Ok(bytes);
        }
        EntryKind::Symlink { target } => {
            header.set_entry_type(tar::EntryType::Symlink);
            header.set_size(0);
            out.append_link(&mut header, &entry.name, target)?;
        }
        EntryKind::HardLink { target } => {
            header.set_entry_type(tar::EntryType::Link);
            header.set_size(0);
            out.append_link(&mut header, &entry.name, target)?;
        }
    }
    // into_inner writes the two end blocks; the header is everything before them.
    let mut bytes = out.into_inner()?;
    bytes.truncate(bytes.len() - 2 * BLOCK as usize);
    Ok(bytes)
}

/// The old GNU sparse format (what GNU tar and the tar crate read): the
/// real size and the first 4 segments in the header, the others in 512-byte
/// extension blocks of 21, returned to follow it; a map ending in a hole
/// ends with an empty segment at the file's size, as GNU tar writes it.
fn sparse_header(header: &mut tar::Header, map: &SparseMap) -> Vec<u8> {
    let mut listed: Vec<Segment> = map.segments().to_vec();
    if listed.last().is_none_or(|s| s.end() < map.size()) {
        listed.push(Segment {
            offset: map.size(),
            len: 0,
        });
    }
    let mut extensions = Vec::new();
    if let Some(gnu) = header.as_gnu_mut() {
        gnu.set_real_size(map.size());
        for (slot, s) in gnu.sparse.iter_mut().zip(&listed) {
            slot.set_offset(s.offset);
            slot.set_length(s.len);
        }
        let in_header = gnu.sparse.len();
        gnu.set_is_extended(listed.len() > in_header);
        let mut rest = listed[listed.len().min(in_header)..].chunks(21).peekable();
        while let Some(chunk) = rest.next() {
            let mut ext = tar::GnuExtSparseHeader::new();
            for (slot, s) in ext.sparse_mut().iter_mut().zip(chunk) {
                slot.set_offset(s.offset);
                slot.set_length(s.len);
            }
            ext.set_is_extended(rest.peek().is_some());
            extensions.extend_from_slice(ext.as_bytes());
        }
    }
    extensions
}

/// The data segments `root.tar` stores for an entry.
fn stored_segments(entry: &FileEntry) -> Vec<Segment> {
    match &entry.kind {
        EntryKind::File { size } if *size > 0 => vec![Segment {
            offset: 0,
            len: *size,
        }],
        EntryKind::Sparse { map } => map.segments().to_vec(),
        _ => Vec::new(),
    }
}

fn data_size(entry: &FileEntry) -> u64 {
    match &entry.kind {
        EntryKind::File { size } => *size,
        EntryKind::Sparse { map } => map.stored(),
        _ => 0,
    }
}

/// The exact byte length of the `root.tar` that [`RootTar`] will produce.
pub fn root_tar_size(entries: &[FileEntry]) -> io::Result<u64> {
    let mut total = 2 * BLOCK;
    for e in entries {
        total += header_bytes(e)?.len() as u64 + padded(data_size(e));
    }
    Ok(total)
}

enum State {
    /// Emitting `buf[pos..]` (a header, padding or the end blocks).
    Buffer,
    /// Copying the current file's data segments.
    Data(Data),
    Done,
}

/// Where the copy of one file's stored data is.
struct Data {
    file: Option<File>,
    segments: Vec<Segment>,
    /// The segment being copied, and its bytes still to copy.
    index: usize,
    remaining: u64,
    /// The file offset must move to the segment's start first.
    seek: bool,
    /// Stored bytes still to copy, this segment's included.
    left: u64,
    /// Stored bytes in all.
    stored: u64,
}

/// A `Read` that yields `root.tar` for the scanned entries.
///
/// Files that shrink while read are padded with zeros, files that grow are
/// cut at their scanned size, and files that vanish become zeros; each case
/// is recorded in the shared warnings list. A sparse file's data segments
/// are read where the scan found them; data written into its holes since is
/// reported, not stored.
pub struct RootTar {
    entries: std::vec::IntoIter<FileEntry>,
    current: Option<FileEntry>,
    buf: Vec<u8>,
    pos: usize,
    state: State,
    trailer_written: bool,
    warnings: Arc<Mutex<Vec<String>>>,
    progress: Arc<dyn Progress>,
}

impl std::fmt::Debug for RootTar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RootTar").finish_non_exhaustive()
    }
}

impl RootTar {
    /// Starts producing `root.tar` for `entries`.
    pub fn new(
        entries: Vec<FileEntry>,
        warnings: Arc<Mutex<Vec<String>>>,
        progress: Arc<dyn Progress>,
    ) -> Self {
        RootTar {
            entries: entries.into_iter(),
            current: None,
            buf: Vec::new(),
            pos: 0,
            state: State::Buffer,
            trailer_written: false,
            warnings,
            progress,
        }
    }

    fn warn(&self, msg: String) {
        self.progress.warn(&msg);
        if let Ok(mut w) = self.warnings.lock() {
            w.push(msg);
        }
    }

    fn current_path(&self) -> String {
        self.current
            .as_ref()
            .map(|c| c.source().display().to_string())
            .unwrap_or_default()
    }

    /// Moves to the next piece once the buffer is drained.
    fn advance(&mut self) -> io::Result<()> {
        if let Some(entry) = self.current.take() {
            // The header of `entry` was emitted: now its data.
            let stored = data_size(&entry);
            let segments = stored_segments(&entry);
            if let Some(first) = segments.first().copied() {
                let file = match File::open(entry.source()) {
                    Ok(f) => Some(f),
                    Err(e) => {
                        self.warn(format!(
                            "{}: could not be read ({e}); stored as {stored} zero bytes",
                            entry.source().display()
                        ));
                        None
                    }
                };
                self.current = Some(entry);
                self.state = State::Data(Data {
                    file,
                    segments,
                    index: 0,
                    remaining: first.len,
                    seek: first.offset > 0,
                    left: stored,
                    stored,
                });
                return Ok(());
            }
        }
        match self.entries.next() {
            Some(entry) => {
                self.buf = header_bytes(&entry)?;
                self.pos = 0;
                self.current = Some(entry);
                self.state = State::Buffer;
            }
            None if !self.trailer_written => {
                self.buf = vec![0; 2 * BLOCK as usize];
                self.pos = 0;
                self.trailer_written = true;
                self.state = State::Buffer;
            }
            None => self.state = State::Done,
        }
        Ok(())
    }

    /// After a file's data: reports growth (and, for a sparse file, data
    /// that appeared in its holes), then pads to the block size.
    fn finish_data(&mut self, mut file: Option<File>, stored: u64) {
        let entry = self.current.take();
        if let (Some(f), Some(entry)) = (file.as_mut(), entry.as_ref()) {
            let size = match &entry.kind {
                EntryKind::Sparse { map } => {
                    if SparseMap::probe(f, map.size())
                        .ok()
                        .flatten()
                        .is_some_and(|now| !map.covers(&now))
                    {
                        self.warn(format!(
                            "{}: data was written into its holes while it was read; stored as scanned",
                            entry.source().display()
                        ));
                    }
                    let _ = f.seek(io::SeekFrom::Start(map.size()));
                    map.size()
                }
                _ => stored,
            };
            let mut probe = [0u8; 1];
            if matches!(f.read(&mut probe), Ok(n) if n > 0) {
                self.warn(format!(
                    "{}: grew while being read; cut at {size} bytes",
                    entry.source().display()
                ));
            }
        }
        let pad = (padded(stored) - stored) as usize;
        self.buf = vec![0; pad];
        self.pos = 0;
        self.state = State::Buffer;
    }

    /// Copies the next bytes of the current file's data into `out`;
    /// `Ok(None)` once it is all copied.
    fn read_data(&mut self, out: &mut [u8]) -> io::Result<Option<usize>> {
        let State::Data(d) = &mut self.state else {
            return Ok(Some(0));
        };
        while d.remaining == 0 {
            d.index += 1;
            let Some(next) = d.segments.get(d.index).copied() else {
                let (file, stored) = (d.file.take(), d.stored);
                self.finish_data(file, stored);
                return Ok(None);
            };
            d.remaining = next.len;
            d.seek = true;
        }
        let want = d.remaining.min(out.len() as u64) as usize;
        let n = match d.file.as_mut() {
            Some(f) => {
                let result = if d.seek {
                    f.seek(io::SeekFrom::Start(d.segments[d.index].offset))
                        .and_then(|_| f.read(&mut out[..want]))
                } else {
                    f.read(&mut out[..want])
                };
                match result {
                    Ok(n) => {
                        d.seek = false;
                        n
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(Some(0)),
                    Err(e) => {
                        let path = self.current_path();
                        return Err(io::Error::new(e.kind(), format!("reading {path}: {e}")));
                    }
                }
            }
            None => {
                out[..want].fill(0);
                want
            }
        };
        if n == 0 {
            // Shrunk: pad with zeros up to the size in the header.
            let missing = d.left;
            d.file = None;
            let path = self.current_path();
            self.warn(format!(
                "{path}: shrank while being read; padded {missing} zero bytes"
            ));
            return Ok(Some(0));
        }
        d.remaining -= n as u64;
        d.left -= n as u64;
        self.progress.advance(n as u64);
        Ok(Some(n))
    }
}

impl Read for RootTar {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        loop {
            match &mut self.state {
                State::Done => return Ok(0),
                State::Buffer => {
                    if self.pos < self.buf.len() {
                        let n = (self.buf.len() - self.pos).min(out.len());
                        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
                        self.pos += n;
                        return Ok(n);
                    }
                    self.advance()?;
                }
                State::Data(_) => match self.read_data(out)? {
                    Some(0) | None => continue,
                    Some(n) => return Ok(n),
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::files::FileSet;
    use crate::progress::NoProgress;

    #[test]
    fn size_is_exact_and_tar_crate_reads_it_back() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        let long = "d".repeat(120);
        std::fs::create_dir_all(root.join(&long)).unwrap();
        std::fs::write(root.join(&long).join("f".repeat(100)), vec![7u8; 1000]).unwrap();
        std::fs::write(root.join("empty"), b"").unwrap();
        std::os::unix::fs::symlink("x".repeat(200), root.join("longlink")).unwrap();
        let scanned = FileSet {
            paths: vec![root.clone()],
            excludes: vec![],
            single: vec![],
        }
        .scan()
        .unwrap();
        let expected = root_tar_size(&scanned.entries).unwrap();
        let mut bytes = Vec::new();
        let warnings = Arc::default();
        RootTar::new(scanned.entries.clone(), warnings, Arc::new(NoProgress))
            .read_to_end(&mut bytes)
            .unwrap();
        assert_eq!(bytes.len() as u64, expected);
        let mut archive = tar::Archive::new(&bytes[..]);
        let mut found = Vec::new();
        for e in archive.entries().unwrap() {
            let mut e = e.unwrap();
            let path = e.path().unwrap().to_string_lossy().into_owned();
            let mut data = Vec::new();
            e.read_to_end(&mut data).unwrap();
            found.push((
                path,
                data.len(),
                e.link_name().unwrap().map(|l| l.into_owned()),
            ));
        }
        let name = |p: &str| format!("{}/{p}", root.to_string_lossy().trim_start_matches('/'));
        assert!(found.contains(&(name(&format!("{long}/{}", "f".repeat(100))), 1000, None)));
        assert!(found.contains(&(name("longlink"), 0, Some("x".repeat(200).into()))));
    }

    #[test]
    fn shrinking_file_is_padded_and_reported() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        std::fs::write(root.join("f"), vec![1u8; 4096]).unwrap();
        let scanned = FileSet {
            paths: vec![root.join("f")],
            excludes: vec![],
            single: vec![],
        }
        .scan()
        .unwrap();
        let expected = root_tar_size(&scanned.entries).unwrap();
        std::fs::write(root.join("f"), vec![1u8; 10]).unwrap();
        let warnings: Arc<Mutex<Vec<String>>> = Arc::default();
        let mut bytes = Vec::new();
        RootTar::new(scanned.entries, warnings.clone(), Arc::new(NoProgress))
            .read_to_end(&mut bytes)
            .unwrap();
        assert_eq!(bytes.len() as u64, expected);
        let w = warnings.lock().unwrap();
        assert!(w[0].contains("shrank"), "{w:?}");
    }
}
