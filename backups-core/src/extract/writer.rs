//! The extractor: writes `root.tar` into the target, checking every path
//! again against the real disk, journaling what it creates and replaces.

use std::collections::{BTreeMap, HashSet};
use std::ffi::OsStr;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::archive::reader::RootVisitor;
use crate::archive::{HeaderGuard, SparseSlot};
use crate::error::{Error, Result};
use crate::journal::RestoreJournal;
use crate::progress::Progress;
use crate::rewrite::Rewrites;
use crate::sparse::SparseMap;

use super::policy::{CheckedKind, ExtractOptions, ExtractStats, Policy, count, read_err};
use super::pool::{SMALL_FILE, WriteJob, WriterPool};
use super::rewrite::{qualifies, rewrite_entry};
use super::sys::{Attributes, chown, make_device, place};

/// Extracts `root.tar` into a target directory.
pub struct Extractor {
    target: PathBuf,
    root: PathBuf,
    policy: Policy,
    allow_setuid: bool,
    journal: Option<RestoreJournal>,
    progress: Arc<dyn Progress>,
    dirs: Vec<(PathBuf, u32, u64)>,
    /// Directories under the target already known to be real directories
    /// (this extraction never turns a directory into anything else).
    known_dirs: HashSet<PathBuf>,
    counter: u64,
    rewrites: Option<Arc<Rewrites>>,
    /// The copy buffer, reused from file to file.
    buf: Vec<u8>,
    /// The writer threads for small files (started with the first).
    pool: Option<WriterPool>,
    /// What was restored.
    pub stats: ExtractStats,
    /// Replacements made per rewritten file (path relative to the target).
    pub rewritten: BTreeMap<String, u64>,
}

impl std::fmt::Debug for Extractor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Extractor")
            .field("target", &self.target)
            .field("journal", &self.journal.is_some())
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl Extractor {
    /// Prepares extraction into `target`, which is created (if missing)
    /// only when the first entry is written.
    pub fn new(target: &Path, progress: Arc<dyn Progress>) -> Result<Self> {
        Ok(Extractor {
            target: target.to_path_buf(),
            root: PathBuf::new(),
            policy: Policy::default(),
            allow_setuid: false,
            journal: None,
            progress,
            dirs: Vec::new(),
            known_dirs: HashSet::new(),
            counter: 0,
            rewrites: None,
            buf: Vec::new(),
            pool: None,
            stats: ExtractStats::default(),
            rewritten: BTreeMap::new(),
        })
    }

    /// Applies `options` (what may be created beyond files and links).
    pub fn with_options(mut self, options: ExtractOptions) -> Self {
        self.policy.allow_devices = options.allow_devices;
        self.allow_setuid = options.allow_setuid;
        self
    }

    /// Records every path this extraction creates, and keeps the previous
    /// version of every path it replaces, in `journal` (which can then undo
    /// the extraction exactly).
    pub fn with_journal(mut self, journal: RestoreJournal) -> Self {
        self.journal = Some(journal);
        self
    }

    /// Rewrites the contents of the files the rules cover (UTF-8 text of
    /// at most [`crate::MAX_REWRITE_FILE`] bytes) before they are written,
    /// on the same temp name, rename and journal path as every file.
    pub fn with_rewrites(mut self, rewrites: Arc<Rewrites>) -> Self {
        self.rewrites = Some(rewrites);
        self
    }

    fn record(&self, path: &Path) -> Result<()> {
        match &self.journal {
            Some(j) => j.created(path),
            None => Ok(()),
        }
    }

    /// With a journal: keeps the current version of `dest`, about to be
    /// replaced, under a stash name beside it (a hard link, so `dest` stays
    /// in place until the new version is renamed over it).
    fn keep_previous(&mut self, dest: &Path) -> Result<()> {
        let Some(journal) = self.journal.clone() else {
            return Ok(());
        };
        let stash = self.side_name(dest, "old");
        journal.replacing(dest, &stash)?;
        if fs::hard_link(dest, &stash).is_err() {
            // Hard links refused here (some filesystems, protected_hardlinks):
            // move it aside instead.
            fs::rename(dest, &stash)
                .map_err(|e| Error::io("keeping the previous version of", dest, e))?;
        }
        Ok(())
    }

    /// Makes sure every parent of `rel` is a real directory inside the
    /// target, creating missing ones; returns the full destination path.
    fn prepare_parents(&mut self, name: &str, rel: &Path) -> Result<PathBuf> {
        let mut dir = self.root.clone();
        if let Some(parent) = rel.parent() {
            if !parent.as_os_str().is_empty() && self.known_dirs.contains(parent) {
                return Ok(self.root.join(rel));
            }
            for part in parent.components() {
                dir.push(part);
                match fs::symlink_metadata(&dir) {
                    Ok(m) if m.file_type().is_dir() => {}
                    Ok(m) if m.file_type().is_symlink() => {
                        return Err(Error::unsafe_path(
                            name,
                            format!("parent {} is a symlink", dir.display()),
                        ));
                    }
                    Ok(_) => {
                        return Err(Error::unsafe_path(
                            name,
                            format!("parent {} is not a directory", dir.display()),
                        ));
                    }
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {
                        // Journaled first: a kill in between leaves nothing unrecorded.
                        self.record(&dir)?;
                        fs::create_dir(&dir).map_err(|e| Error::io("creating", &dir, e))?;
                    }
                    Err(e) => return Err(Error::io("inspecting", &dir, e)),
                }
            }
            self.known_dirs.insert(parent.to_path_buf());
        }
        Ok(self.root.join(rel))
    }

    /// A temporary name beside `dest`, journaled (when there is a journal
    /// file) before it is created.
    fn temp_name(&mut self, dest: &Path) -> Result<PathBuf> {
        let tmp = self.side_name(dest, "tmp");
        if let Some(j) = &self.journal {
            j.temporary(&tmp)?;
        }
        Ok(tmp)
    }

    /// `.<name>.backups-<what>-<pid>-<n>` beside `dest`.
    fn side_name(&mut self, dest: &Path, what: &str) -> PathBuf {
        self.counter += 1;
        let file = dest
            .file_name()
            .map(OsStr::to_os_string)
            .unwrap_or_default();
        let mut name = std::ffi::OsString::from(".");
        name.push(file);
        name.push(format!(
            ".backups-{what}-{}-{}",
            std::process::id(),
            self.counter
        ));
        dest.with_file_name(name)
    }

    /// An entry's owner, mode (setuid/setgid dropped unless allowed) and
    /// mtime, as its file or device node gets them.
    fn attributes(
        &mut self,
        name: &str,
        owner: (Option<u64>, Option<u64>),
        mode: u32,
        mtime: u64,
    ) -> Attributes {
        Attributes {
            owner,
            mode: Some(self.mode(name, mode)),
            mtime: Some(mtime),
        }
    }

    fn mode(&mut self, name: &str, mode: u32) -> u32 {
        if mode & 0o6000 != 0 {
            self.stats.setuid += 1;
            if self.allow_setuid {
                return mode & 0o7777;
            }
            let msg = format!("{name}: setuid/setgid bits dropped");
            self.progress.warn(&msg);
            self.stats.warnings.push(msg);
        }
        mode & 0o1777
    }

    fn ensure_root(&mut self) -> Result<()> {
        if self.root.as_os_str().is_empty() {
            let target = &self.target;
            if let Ok(absolute) = std::path::absolute(target) {
                let missing: Vec<PathBuf> = absolute
                    .ancestors()
                    .take_while(|a| fs::symlink_metadata(a).is_err())
                    .map(Path::to_path_buf)
                    .collect();
                for dir in missing.iter().rev() {
                    self.record(dir)?;
                }
            }
            let target = &self.target;
            fs::create_dir_all(target).map_err(|e| Error::io("creating target", target, e))?;
            self.root = target
                .canonicalize()
                .map_err(|e| Error::io("resolving target", target, e))?;
        }
        Ok(())
    }

    fn extract_entry<R: Read>(
        &mut self,
        mut entry: tar::Entry<'_, R>,
        sparse: Option<SparseMap>,
    ) -> Result<()> {
        let (name, rel, kind) = self.policy.check(&entry, sparse)?;
        self.ensure_root()?;
        // What may depend on a small file still in flight waits for it.
        if let Some(pool) = &self.pool
            && (matches!(kind, CheckedKind::HardLink(_)) || pool.in_flight(&self.root.join(&rel)))
        {
            pool.drain()?;
        }
        let dest = self.prepare_parents(&name, &rel)?;
        let header = entry.header();
        let mode = header.mode().unwrap_or(0o644);
        let mtime = header.mtime().unwrap_or(0);
        let owner = (header.uid().ok(), header.gid().ok());
        let existing = fs::symlink_metadata(&dest).ok();
        // A directory that replaces a file is new too: a rollback removes it
        // (its contents are all new) before the file comes back.
        let is_new = existing
            .as_ref()
            .is_none_or(|m| matches!(kind, CheckedKind::Directory) && !m.is_dir());
        if let CheckedKind::File(size) = kind
            && size <= SMALL_FILE
            && existing.is_none()
            && qualifies(self.rewrites.as_deref(), &rel, size).is_none()
        {
            return self.write_small(entry, &name, dest, (owner, mode, mtime), &kind);
        }
        if existing.as_ref().is_some_and(|m| !m.is_dir()) {
            self.keep_previous(&dest)?;
        }
        // Journaled before it is made, like its temporary name below, so
        // that undoing a restore killed at any point leaves neither behind.
        if is_new {
            self.record(&dest)?;
        }
        match &kind {
            CheckedKind::Directory => {
                self.make_dir(&name, &dest, existing.as_ref(), owner, mode, mtime)?
            }
            CheckedKind::File(_) | CheckedKind::Sparse(_) => {
                let at = (name.as_str(), rel.as_path(), dest.as_path());
                self.write_file(
                    &mut entry,
                    &kind,
                    at,
                    existing.as_ref(),
                    (owner, mode, mtime),
                )?;
            }
            CheckedKind::Symlink(target) => {
                refuse_dir(&name, &existing)?;
                let tmp = self.temp_name(&dest)?;
                let attributes = Attributes {
                    owner,
                    ..Attributes::default()
                };
                place(&tmp, &dest, attributes, |tmp| {
                    std::os::unix::fs::symlink(target, tmp)
                        .map_err(|e| Error::io("creating symlink", tmp, e))
                })?;
            }
            CheckedKind::HardLink(target) => {
                refuse_dir(&name, &existing)?;
                let source = self.prepare_parents(&name, target)?;
                match fs::symlink_metadata(&source) {
                    Ok(m) if m.is_file() => {}
                    _ => {
                        return Err(Error::unsafe_path(
                            &name,
                            format!(
                                "hard link to {} which is not a regular file in the target",
                                target.display()
                            ),
                        ));
                    }
                }
                let tmp = self.temp_name(&dest)?;
                place(&tmp, &dest, Attributes::default(), |tmp| {
                    fs::hard_link(&source, tmp).map_err(|e| Error::io("linking", tmp, e))
                })?;
            }
            CheckedKind::Device { kind, major, minor } => {
                refuse_dir(&name, &existing)?;
                let tmp = self.temp_name(&dest)?;
                let attributes = self.attributes(&name, owner, mode, mtime);
                place(&tmp, &dest, attributes, |tmp| {
                    make_device(tmp, *kind, *major, *minor)
                })?;
            }
        }
        count(&mut self.stats, &kind);
        self.progress.item(&name);
        Ok(())
    }

    /// A directory entry: made, or kept (journaled) where one is, or
    /// replacing a file; its mode and time set once its contents are in.
    fn make_dir(
        &mut self,
        name: &str,
        dest: &Path,
        existing: Option<&fs::Metadata>,
        owner: (Option<u64>, Option<u64>),
        mode: u32,
        mtime: u64,
    ) -> Result<()> {
        match existing {
            Some(m) if m.is_dir() => {
                if let Some(j) = &self.journal {
                    j.directory(dest, m)?;
                }
            }
            Some(_) => {
                // (Already moved aside when hard links were refused.)
                match fs::remove_file(dest) {
                    Err(e) if e.kind() != io::ErrorKind::NotFound => {
                        return Err(Error::io("replacing", dest, e));
                    }
                    _ => {}
                }
                fs::create_dir(dest).map_err(|e| Error::io("creating", dest, e))?;
            }
            None => fs::create_dir(dest).map_err(|e| Error::io("creating", dest, e))?,
        }
        chown(dest, owner);
        let mode = self.mode(name, mode);
        self.dirs.push((dest.to_path_buf(), mode, mtime));
        Ok(())
    }

    /// A regular or sparse file entry: through a temporary name (and the
    /// rewrite rules, when they apply to it), renamed into place.
    fn write_file<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        kind: &CheckedKind,
        (name, rel, dest): (&str, &Path, &Path),
        existing: Option<&fs::Metadata>,
        (owner, mode, mtime): ((Option<u64>, Option<u64>), u32, u64),
    ) -> Result<()> {
        refuse_dir(name, &existing.cloned())?;
        let tmp = self.temp_name(dest)?;
        let attributes = self.attributes(name, owner, mode, mtime);
        let progress = self.progress.clone();
        let size = match kind {
            CheckedKind::File(size) => Some(*size),
            _ => None,
        };
        let rewrite = size
            .and_then(|size| qualifies(self.rewrites.as_deref(), rel, size))
            .zip(self.rewrites.clone());
        let mut replaced = None;
        if self.buf.is_empty() {
            self.buf = vec![0u8; COPY_BUFFER];
        }
        let buf = &mut self.buf;
        place(&tmp, dest, attributes, |tmp| {
            let mut out = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(tmp)
                .map_err(|e| Error::io("creating", tmp, e))?;
            let written = match (kind, &rewrite) {
                (_, Some((key, rw))) => {
                    let new = rewrite_entry(name, entry, rw)?;
                    io::Write::write_all(&mut out, &new.bytes)
                        .map_err(|e| Error::io("writing", tmp, e))?;
                    replaced = Some((key.clone(), new.replacements));
                    size.unwrap_or(0)
                }
                (CheckedKind::Sparse(map), None) => {
                    write_sparse(name, entry, &mut out, tmp, map, buf)?
                }
                _ => copy_entry(name, entry, &mut out, tmp, buf)?,
            };
            progress.advance(written);
            Ok(())
        })?;
        if let Some((key, n)) = replaced.filter(|(_, n)| *n > 0) {
            self.rewritten.insert(key, n);
        }
        Ok(())
    }

    /// A new small file: its contents read here, the file made by the
    /// writer threads (which journal it).
    fn write_small<R: Read>(
        &mut self,
        mut entry: tar::Entry<'_, R>,
        name: &str,
        dest: PathBuf,
        (owner, mode, mtime): ((Option<u64>, Option<u64>), u32, u64),
        kind: &CheckedKind,
    ) -> Result<()> {
        let mut data = Vec::new();
        (&mut entry)
            .take(SMALL_FILE)
            .read_to_end(&mut data)
            .map_err(|e| read_err(name, e))?;
        // Journaled before the writer thread makes it (and its temporary).
        self.record(&dest)?;
        let tmp = self.temp_name(&dest)?;
        let attributes = self.attributes(name, owner, mode, mtime);
        let progress = self.progress.clone();
        let pool = self.pool.get_or_insert_with(|| WriterPool::start(progress));
        pool.submit(WriteJob {
            tmp,
            dest,
            attributes,
            data,
        })?;
        count(&mut self.stats, kind);
        self.progress.item(name);
        Ok(())
    }

    /// Applies directory modes and times, deepest first, so read-only
    /// directories do not block their own extraction.
    fn finish_dirs(&mut self) -> Result<()> {
        for (dir, mode, mtime) in self.dirs.drain(..).rev() {
            fs::set_permissions(&dir, fs::Permissions::from_mode(mode))
                .map_err(|e| Error::io("setting mode of", &dir, e))?;
            if let Ok(f) = File::open(&dir) {
                let _ = f.set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(mtime));
            }
        }
        Ok(())
    }
}

impl RootVisitor for Extractor {
    fn visit(&mut self, root: &mut dyn Read) -> Result<()> {
        let sparse = SparseSlot::default();
        let guard = HeaderGuard::new(root).with_sparse_maps(sparse.clone());
        let mut archive = tar::Archive::new(guard);
        let entries = archive.entries().map_err(|e| read_err("(start)", e))?;
        let mut result = Ok(());
        for entry in entries {
            let entry = match entry {
                Ok(e) => e,
                Err(e) => {
                    result = Err(read_err("(header)", e));
                    break;
                }
            };
            if let Err(e) = self.extract_entry(entry, sparse.take()) {
                result = Err(e);
                break;
            }
        }
        let pooled = self.pool.take().map_or(Ok(()), WriterPool::finish);
        let dirs = self.finish_dirs();
        result.and(pooled).and(dirs)
    }
}

/// Bytes copied at a time from an entry to its file.
const COPY_BUFFER: usize = 256 * 1024;

fn refuse_dir(name: &str, existing: &Option<fs::Metadata>) -> Result<()> {
    match existing {
        Some(m) if m.is_dir() => Err(Error::unsafe_path(
            name,
            "a directory exists at this path in the target",
        )),
        _ => Ok(()),
    }
}

fn copy_entry(
    name: &str,
    entry: &mut impl Read,
    out: &mut File,
    tmp: &Path,
    buf: &mut [u8],
) -> Result<u64> {
    let mut total = 0u64;
    loop {
        let n = match entry.read(buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(read_err(name, e)),
        };
        io::Write::write_all(out, &buf[..n]).map_err(|e| Error::io("writing", tmp, e))?;
        total += n as u64;
    }
}

/// Writes a sparse file's data segments (the entry's contents, in order)
/// at their offsets, then sets its length: the holes are never written.
/// Returns the file's size.
fn write_sparse<R: Read>(
    name: &str,
    entry: &mut tar::Entry<'_, R>,
    out: &mut File,
    tmp: &Path,
    map: &SparseMap,
    buf: &mut [u8],
) -> Result<u64> {
    use std::io::{Seek, SeekFrom};
    for segment in map.segments() {
        out.seek(SeekFrom::Start(segment.offset))
            .map_err(|e| Error::io("seeking in", tmp, e))?;
        let copied = copy_entry(name, &mut entry.take(segment.len), out, tmp, buf)?;
        if copied != segment.len {
            return Err(read_err(
                name,
                io::Error::new(io::ErrorKind::UnexpectedEof, "sparse data cut short"),
            ));
        }
    }
    out.set_len(map.size())
        .map_err(|e| Error::io("setting the size of", tmp, e))?;
    Ok(map.size())
}

#[cfg(test)]
#[path = "writer_tests.rs"]
mod tests;
