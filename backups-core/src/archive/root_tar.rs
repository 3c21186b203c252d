//! `root.tar` produced as a stream: headers are generated from the scan, file
//! contents are read once, straight from disk, and the total size is known
//! before the first byte so the outer tar needs no temporary copy.

use std::fs::File;
use std::io::{self, Read};
use std::sync::{Arc, Mutex};

use crate::files::{EntryKind, FileEntry};
use crate::progress::Progress;

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
            out.append_data(&mut header, format!("{}/", entry.name), io::empty())?;
        }
        EntryKind::File { size } => {
            header.set_entry_type(tar::EntryType::Regular);
            header.set_size(*size);
            // Only the header is written here: the data follows from disk.
            out.append_data(&mut header, &entry.name, io::empty())?;
        }
        EntryKind::Symlink { target } => {
            header.set_entry_type(tar::EntryType::Symlink);
            header.set_size(0);
            out.append_link(&mut header, &entry.name, target)?;
        }
    }
    // into_inner writes the two end blocks; the header is everything before them.
    let mut bytes = out.into_inner()?;
    bytes.truncate(bytes.len() - 2 * BLOCK as usize);
    Ok(bytes)
}

fn data_size(entry: &FileEntry) -> u64 {
    match entry.kind {
        EntryKind::File { size } => size,
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
    /// Copying `remaining` bytes of the current file.
    Data {
        file: Option<File>,
        remaining: u64,
        size: u64,
    },
    Done,
}

/// A `Read` that yields `root.tar` for the scanned entries.
///
/// Files that shrink while read are padded with zeros, files that grow are
/// cut at their scanned size, and files that vanish become zeros; each case
/// is recorded in the shared warnings list.
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

    /// Moves to the next piece once the buffer is drained.
    fn advance(&mut self) -> io::Result<()> {
        if let Some(entry) = self.current.take() {
            // The header of `entry` was emitted: now its data.
            let size = data_size(&entry);
            if size > 0 {
                let file = match File::open(&entry.source) {
                    Ok(f) => Some(f),
                    Err(e) => {
                        self.warn(format!(
                            "{}: could not be read ({e}); stored as {size} zero bytes",
                            entry.source.display()
                        ));
                        None
                    }
                };
                self.current = Some(entry);
                self.state = State::Data {
                    file,
                    remaining: size,
                    size,
                };
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

    fn finish_data(&mut self, mut file: Option<File>, size: u64) {
        let entry = self.current.take();
        if let (Some(f), Some(entry)) = (file.as_mut(), entry.as_ref()) {
            let mut probe = [0u8; 1];
            if matches!(f.read(&mut probe), Ok(n) if n > 0) {
                self.warn(format!(
                    "{}: grew while being read; cut at {size} bytes",
                    entry.source.display()
                ));
            }
        }
        let pad = (padded(size) - size) as usize;
        self.buf = vec![0; pad];
        self.pos = 0;
        self.state = State::Buffer;
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
                State::Data {
                    file,
                    remaining,
                    size,
                } => {
                    if *remaining == 0 {
                        let (file, size) = (file.take(), *size);
                        self.finish_data(file, size);
                        continue;
                    }
                    let want = (*remaining).min(out.len() as u64) as usize;
                    let n = match file.as_mut() {
                        Some(f) => match f.read(&mut out[..want]) {
                            Ok(n) => n,
                            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                            Err(e) => {
                                let path = self
                                    .current
                                    .as_ref()
                                    .map(|c| c.source.display().to_string())
                                    .unwrap_or_default();
                                return Err(io::Error::new(
                                    e.kind(),
                                    format!("reading {path}: {e}"),
                                ));
                            }
                        },
                        None => {
                            out[..want].fill(0);
                            want
                        }
                    };
                    if n == 0 {
                        // Shrunk: pad with zeros up to the size in the header.
                        let missing = *remaining;
                        let path = self
                            .current
                            .as_ref()
                            .map(|c| c.source.display().to_string())
                            .unwrap_or_default();
                        *file = None;
                        self.warn(format!(
                            "{path}: shrank while being read; padded {missing} zero bytes"
                        ));
                        continue;
                    }
                    *remaining -= n as u64;
                    self.progress.advance(n as u64);
                    return Ok(n);
                }
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
