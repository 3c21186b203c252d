//! Safe handling of `root.tar`: every entry path is checked before use, and
//! extraction never follows a symlink, never writes outside the target, and
//! replaces each file atomically (temp name, then rename).
//!
//! Rules, applied both by the verify pass ([`RootCheck`], which touches
//! nothing) and again by the extractor against the real disk:
//! - paths must be relative and free of `..` (`./` is ignored);
//! - only files, directories, symlinks and hard links are accepted; device
//!   nodes and FIFOs are refused unless [`ExtractOptions::allow_devices`],
//!   other kinds always;
//! - symlinks are recreated as they are (absolute targets included) but no
//!   entry may be written through one: every parent of an entry must be a
//!   real directory inside the target;
//! - a hard link must point at a regular file already inside the target;
//! - setuid/setgid bits are dropped with a warning unless
//!   [`ExtractOptions::allow_setuid`].

use std::collections::HashSet;
use std::ffi::OsStr;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::archive::reader::RootVisitor;
use crate::error::{Error, Result};
use crate::journal::RestoreJournal;
use crate::progress::Progress;

/// Checks an entry path from an archive and returns it as a relative path.
pub fn sanitize_entry_path(raw: &[u8]) -> std::result::Result<PathBuf, String> {
    if raw.is_empty() {
        return Err("empty path".into());
    }
    if raw.contains(&0) {
        return Err("path contains a NUL byte".into());
    }
    if raw.starts_with(b"/") {
        return Err("absolute path".into());
    }
    let mut out = PathBuf::new();
    for c in Path::new(OsStr::from_bytes(raw)).components() {
        match c {
            Component::Normal(p) => out.push(p),
            Component::CurDir => {}
            Component::ParentDir => return Err("path contains '..'".into()),
            Component::RootDir | Component::Prefix(_) => return Err("absolute path".into()),
        }
    }
    if out.as_os_str().is_empty() {
        return Err("path names the target itself".into());
    }
    Ok(out)
}

/// What a restore may create beyond files, directories and links. Both are
/// off by default: a backup is data, and a device node or a setuid binary
/// from an archive is a way in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExtractOptions {
    /// Keep setuid/setgid bits (otherwise dropped, with a warning).
    pub allow_setuid: bool,
    /// Create device nodes and FIFOs (otherwise the archive is refused).
    pub allow_devices: bool,
}

/// The kind of a special file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceKind {
    /// A character device.
    Char,
    /// A block device.
    Block,
    /// A named pipe.
    Fifo,
}

/// What an accepted entry is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckedKind {
    /// A directory.
    Directory,
    /// A regular file of this many bytes.
    File(u64),
    /// A symlink with this target (kept verbatim).
    Symlink(PathBuf),
    /// A hard link to this (sanitised, relative) path.
    HardLink(PathBuf),
    /// A device node or FIFO (only with [`ExtractOptions::allow_devices`]).
    Device {
        /// Which kind.
        kind: DeviceKind,
        /// Major device number (0 for a FIFO).
        major: u32,
        /// Minor device number (0 for a FIFO).
        minor: u32,
    },
}

/// Static checks over the entries of one `root.tar`.
#[derive(Debug, Default)]
struct Policy {
    symlinks: HashSet<PathBuf>,
    allow_devices: bool,
}

impl Policy {
    fn check<R: Read>(
        &mut self,
        entry: &tar::Entry<'_, R>,
    ) -> Result<(String, PathBuf, CheckedKind)> {
        let raw = entry.path_bytes();
        let name = String::from_utf8_lossy(&raw).into_owned();
        let path = sanitize_entry_path(&raw).map_err(|r| Error::unsafe_path(&name, r))?;
        let header = entry.header();
        let kind = match header.entry_type() {
            tar::EntryType::Regular | tar::EntryType::Continuous => CheckedKind::File(
                header
                    .size()
                    .map_err(|e| Error::unsafe_path(&name, e.to_string()))?,
            ),
            tar::EntryType::Directory => CheckedKind::Directory,
            tar::EntryType::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .filter(|t| !t.is_empty())
                    .ok_or_else(|| Error::unsafe_path(&name, "symlink without a target"))?;
                CheckedKind::Symlink(PathBuf::from(OsStr::from_bytes(&target)))
            }
            tar::EntryType::Link => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| Error::unsafe_path(&name, "hard link without a target"))?;
                let target = sanitize_entry_path(&target).map_err(|r| {
                    Error::unsafe_path(
                        &name,
                        format!(
                            "hard link to {:?} points outside the target ({r})",
                            String::from_utf8_lossy(&target)
                        ),
                    )
                })?;
                CheckedKind::HardLink(target)
            }
            t @ (tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo) => {
                let kind = match t {
                    tar::EntryType::Char => DeviceKind::Char,
                    tar::EntryType::Block => DeviceKind::Block,
                    _ => DeviceKind::Fifo,
                };
                if !self.allow_devices {
                    let what = if kind == DeviceKind::Fifo {
                        "FIFOs"
                    } else {
                        "device nodes"
                    };
                    return Err(Error::unsafe_path(
                        &name,
                        format!("{what} are not restored unless allowed (--allow-devices)"),
                    ));
                }
                let number = |n: io::Result<Option<u32>>| {
                    n.map(Option::unwrap_or_default)
                        .map_err(|e| Error::unsafe_path(&name, format!("device number: {e}")))
                };
                let (major, minor) = if kind == DeviceKind::Fifo {
                    (0, 0)
                } else {
                    (
                        number(header.device_major())?,
                        number(header.device_minor())?,
                    )
                };
                CheckedKind::Device { kind, major, minor }
            }
            other => {
                return Err(Error::unsafe_path(
                    &name,
                    format!("unsupported entry type {other:?}"),
                ));
            }
        };
        for ancestor in path.ancestors().skip(1) {
            if self.symlinks.contains(ancestor) {
                return Err(Error::unsafe_path(
                    &name,
                    format!(
                        "would be written through the symlink {:?} restored earlier",
                        ancestor.display().to_string()
                    ),
                ));
            }
        }
        if let CheckedKind::HardLink(target) = &kind
            && (target
                .ancestors()
                .skip(1)
                .any(|a| self.symlinks.contains(a))
                || self.symlinks.contains(target))
        {
            return Err(Error::unsafe_path(
                &name,
                "hard link would resolve through a symlink",
            ));
        }
        if matches!(kind, CheckedKind::Symlink(_)) {
            self.symlinks.insert(path.clone());
        } else {
            self.symlinks.remove(&path);
        }
        Ok((name, path, kind))
    }
}

fn read_err(name: &str, e: io::Error) -> Error {
    Error::invalid(
        format!("root.tar entry {name:?}"),
        crate::archive::reader::describe_read_error(&e),
    )
}

/// Counts of what a `root.tar` holds or what was restored from it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExtractStats {
    /// Regular files.
    pub files: u64,
    /// Directories.
    pub directories: u64,
    /// Symlinks.
    pub symlinks: u64,
    /// Hard links.
    pub hard_links: u64,
    /// Device nodes and FIFOs.
    pub devices: u64,
    /// Entries with setuid/setgid bits.
    pub setuid: u64,
    /// Bytes of file contents.
    pub bytes: u64,
    /// Things adjusted on the way (dropped setuid bits...).
    pub warnings: Vec<String>,
}

/// Validates every entry of `root.tar` without writing anything.
#[derive(Debug, Default)]
pub struct RootCheck {
    policy: Policy,
    /// What was found.
    pub stats: ExtractStats,
}

impl RootCheck {
    /// Checks with what a restore under `options` would accept.
    pub fn new(options: ExtractOptions) -> Self {
        RootCheck {
            policy: Policy {
                allow_devices: options.allow_devices,
                ..Default::default()
            },
            stats: ExtractStats::default(),
        }
    }
}

impl RootVisitor for RootCheck {
    fn visit(&mut self, root: &mut dyn Read) -> Result<()> {
        let mut archive = tar::Archive::new(crate::archive::HeaderGuard::new(root));
        let entries = archive.entries().map_err(|e| read_err("(start)", e))?;
        for entry in entries {
            let entry = entry.map_err(|e| read_err("(header)", e))?;
            let (_, _, kind) = self.policy.check(&entry)?;
            count(&mut self.stats, &kind);
            if entry.header().mode().is_ok_and(|m| m & 0o6000 != 0) {
                self.stats.setuid += 1;
            }
        }
        Ok(())
    }

    /// Dump files are checked too, so a corrupt dump is refused before
    /// anything is restored: `.bson` framing (each document's length within
    /// MongoDB's limit, ending in a NUL byte, nothing cut short) and
    /// `.metadata.json` being JSON.
    fn visit_dump(&mut self, path: &str, size: u64, body: &mut dyn Read) -> Result<()> {
        let bad = |reason: String| Error::invalid(format!("dump/{path}"), reason);
        sanitize_entry_path(path.as_bytes())
            .map_err(|r| Error::unsafe_path(format!("dump/{path}"), r))?;
        if path.ends_with(".metadata.json") {
            if size > crate::metadata::MAX_METADATA_BYTES {
                return Err(bad("metadata file is too large".into()));
            }
            let mut buf = Vec::new();
            body.read_to_end(&mut buf).map_err(|e| read_err(path, e))?;
            serde_json::from_slice::<serde_json::Value>(&buf)
                .map_err(|e| bad(format!("unreadable JSON: {e}")))?;
        } else if path.ends_with(".bson") {
            check_bson_framing(body, path)?;
        }
        Ok(())
    }
}

/// Largest BSON document accepted in a dump (MongoDB's 16 MiB + slack for oplog entries).
const MAX_BSON_DOCUMENT: u64 = 16 * 1024 * 1024 + 16 * 1024;

/// Walks concatenated BSON documents by their length prefixes.
fn check_bson_framing(body: &mut dyn Read, path: &str) -> Result<()> {
    let bad = |at: u64, reason: String| {
        Error::invalid(
            format!("dump/{path}"),
            format!("corrupt BSON at byte {at}: {reason}"),
        )
    };
    let mut at = 0u64;
    let mut len_buf = [0u8; 4];
    loop {
        let mut got = 0;
        while got < 4 {
            match body.read(&mut len_buf[got..]) {
                Ok(0) if got == 0 => return Ok(()),
                Ok(0) => return Err(bad(at, "truncated length prefix".into())),
                Ok(n) => got += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(read_err(path, e)),
            }
        }
        let len = i32::from_le_bytes(len_buf);
        if len < 5 || len as u64 > MAX_BSON_DOCUMENT {
            return Err(bad(at, format!("document length {len}")));
        }
        let rest = len as u64 - 4;
        let mut take = (&mut *body).take(rest - 1);
        let copied = io::copy(&mut take, &mut io::sink()).map_err(|e| read_err(path, e))?;
        let mut last = [0u8; 1];
        let terminator = body.read(&mut last).map_err(|e| read_err(path, e))?;
        if copied != rest - 1 || terminator != 1 {
            return Err(bad(at, "document cut short".into()));
        }
        if last[0] != 0 {
            return Err(bad(at, "document does not end with a NUL byte".into()));
        }
        at += len as u64;
    }
}

fn count(stats: &mut ExtractStats, kind: &CheckedKind) {
    match kind {
        CheckedKind::Directory => stats.directories += 1,
        CheckedKind::File(n) => {
            stats.files += 1;
            stats.bytes += n;
        }
        CheckedKind::Symlink(_) => stats.symlinks += 1,
        CheckedKind::HardLink(_) => stats.hard_links += 1,
        CheckedKind::Device { .. } => stats.devices += 1,
    }
}

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
    /// What was restored.
    pub stats: ExtractStats,
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
            stats: ExtractStats::default(),
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
                        fs::create_dir(&dir).map_err(|e| Error::io("creating", &dir, e))?;
                        self.record(&dir)?;
                    }
                    Err(e) => return Err(Error::io("inspecting", &dir, e)),
                }
            }
            self.known_dirs.insert(parent.to_path_buf());
        }
        Ok(self.root.join(rel))
    }

    fn temp_name(&mut self, dest: &Path) -> PathBuf {
        self.side_name(dest, "tmp")
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

    fn extract_entry<R: Read>(&mut self, mut entry: tar::Entry<'_, R>) -> Result<()> {
        let (name, rel, kind) = self.policy.check(&entry)?;
        self.ensure_root()?;
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
        if existing.as_ref().is_some_and(|m| !m.is_dir()) {
            self.keep_previous(&dest)?;
        }
        match &kind {
            CheckedKind::Directory => {
                match existing {
                    Some(m) if m.is_dir() => {
                        if let Some(j) = &self.journal {
                            j.directory(&dest, &m)?;
                        }
                    }
                    Some(_) => {
                        // (Already moved aside when hard links were refused.)
                        match fs::remove_file(&dest) {
                            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                                return Err(Error::io("replacing", &dest, e));
                            }
                            _ => {}
                        }
                        fs::create_dir(&dest).map_err(|e| Error::io("creating", &dest, e))?;
                    }
                    None => fs::create_dir(&dest).map_err(|e| Error::io("creating", &dest, e))?,
                }
                chown(&dest, owner);
                let mode = self.mode(&name, mode);
                self.dirs.push((dest.clone(), mode, mtime));
            }
            CheckedKind::File(_) => {
                refuse_dir(&name, &existing)?;
                let tmp = self.temp_name(&dest);
                let mode = self.mode(&name, mode);
                let result = (|| {
                    let mut out = OpenOptions::new()
                        .write(true)
                        .create_new(true)
                        .mode(0o600)
                        .open(&tmp)
                        .map_err(|e| Error::io("creating", &tmp, e))?;
                    let n = copy_entry(&name, &mut entry, &mut out, &tmp)?;
                    self.progress.advance(n);
                    chown(&tmp, owner);
                    out.set_permissions(fs::Permissions::from_mode(mode))
                        .map_err(|e| Error::io("setting mode of", &tmp, e))?;
                    out.set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(mtime))
                        .map_err(|e| Error::io("setting mtime of", &tmp, e))?;
                    fs::rename(&tmp, &dest).map_err(|e| Error::io("renaming into", &dest, e))
                })();
                if result.is_err() {
                    let _ = fs::remove_file(&tmp);
                }
                result?;
            }
            CheckedKind::Symlink(target) => {
                refuse_dir(&name, &existing)?;
                let tmp = self.temp_name(&dest);
                std::os::unix::fs::symlink(target, &tmp)
                    .map_err(|e| Error::io("creating symlink", &tmp, e))?;
                chown(&tmp, owner);
                fs::rename(&tmp, &dest).map_err(|e| {
                    let _ = fs::remove_file(&tmp);
                    Error::io("renaming into", &dest, e)
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
                let tmp = self.temp_name(&dest);
                fs::hard_link(&source, &tmp).map_err(|e| Error::io("linking", &tmp, e))?;
                fs::rename(&tmp, &dest).map_err(|e| {
                    let _ = fs::remove_file(&tmp);
                    Error::io("renaming into", &dest, e)
                })?;
            }
            CheckedKind::Device { kind, major, minor } => {
                refuse_dir(&name, &existing)?;
                let tmp = self.temp_name(&dest);
                let mode = self.mode(&name, mode);
                make_device(&tmp, *kind, *major, *minor)?;
                let result = (|| {
                    chown(&tmp, owner);
                    fs::set_permissions(&tmp, fs::Permissions::from_mode(mode))
                        .map_err(|e| Error::io("setting mode of", &tmp, e))?;
                    set_mtime_nofollow(&tmp, mtime)?;
                    fs::rename(&tmp, &dest).map_err(|e| Error::io("renaming into", &dest, e))
                })();
                if result.is_err() {
                    let _ = fs::remove_file(&tmp);
                }
                result?;
            }
        }
        if is_new {
            self.record(&dest)?;
        }
        count(&mut self.stats, &kind);
        self.progress.item(&name);
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

/// Creates a device node or FIFO (device nodes need root, or CAP_MKNOD).
fn make_device(path: &Path, kind: DeviceKind, major: u32, minor: u32) -> Result<()> {
    use rustix::fs::{CWD, FileType, Mode, makedev, mknodat};
    let file_type = match kind {
        DeviceKind::Char => FileType::CharacterDevice,
        DeviceKind::Block => FileType::BlockDevice,
        DeviceKind::Fifo => FileType::Fifo,
    };
    mknodat(
        CWD,
        path,
        file_type,
        Mode::from_raw_mode(0o600),
        makedev(major, minor),
    )
    .map_err(|e| {
        let action = if e == rustix::io::Errno::PERM && kind != DeviceKind::Fifo {
            "creating a device node (this needs root) at"
        } else {
            "creating a special file at"
        };
        Error::io(action, path, e.into())
    })
}

/// Sets the modification time of `path` itself (never opening it: a FIFO
/// would block).
fn set_mtime_nofollow(path: &Path, mtime: u64) -> Result<()> {
    use rustix::fs::{AtFlags, CWD, Timespec, Timestamps, utimensat};
    let at = Timespec {
        tv_sec: i64::try_from(mtime).unwrap_or(i64::MAX),
        tv_nsec: 0,
    };
    let times = Timestamps {
        last_access: at,
        last_modification: at,
    };
    utimensat(CWD, path, &times, AtFlags::SYMLINK_NOFOLLOW)
        .map_err(|e| Error::io("setting mtime of", path, e.into()))
}

fn refuse_dir(name: &str, existing: &Option<fs::Metadata>) -> Result<()> {
    match existing {
        Some(m) if m.is_dir() => Err(Error::unsafe_path(
            name,
            "a directory exists at this path in the target",
        )),
        _ => Ok(()),
    }
}

/// Ownership is restored where permitted (as root); elsewhere it is skipped.
fn chown(path: &Path, (uid, gid): (Option<u64>, Option<u64>)) {
    let uid = uid.and_then(|u| u32::try_from(u).ok());
    let gid = gid.and_then(|g| u32::try_from(g).ok());
    let _ = std::os::unix::fs::lchown(path, uid, gid);
}

fn copy_entry<R: Read>(
    name: &str,
    entry: &mut tar::Entry<'_, R>,
    out: &mut File,
    tmp: &Path,
) -> Result<u64> {
    let mut buf = vec![0u8; 256 * 1024];
    let mut total = 0u64;
    loop {
        let n = match entry.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(read_err(name, e)),
        };
        io::Write::write_all(out, &buf[..n]).map_err(|e| Error::io("writing", tmp, e))?;
        total += n as u64;
    }
}

impl RootVisitor for Extractor {
    fn visit(&mut self, root: &mut dyn Read) -> Result<()> {
        let mut archive = tar::Archive::new(crate::archive::HeaderGuard::new(root));
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
            if let Err(e) = self.extract_entry(entry) {
                result = Err(e);
                break;
            }
        }
        let dirs = self.finish_dirs();
        result.and(dirs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bson_framing_is_checked() {
        let doc = |n: u8| {
            let mut d = vec![12, 0, 0, 0, 0x10, b'a', 0, n, 0, 0, 0, 0];
            d[11] = 0;
            d
        };
        let good = [doc(1), doc(2)].concat();
        assert!(check_bson_framing(&mut &good[..], "x.bson").is_ok());
        let cut = &good[..good.len() - 3];
        let err = check_bson_framing(&mut &cut[..], "x.bson").unwrap_err();
        assert!(
            err.to_string().contains("dump/x.bson") && err.to_string().contains("at byte 12"),
            "{err}"
        );
        let mut no_nul = good.clone();
        no_nul[11] = 7;
        assert!(check_bson_framing(&mut &no_nul[..], "x.bson").is_err());
        let huge = [0xff, 0xff, 0xff, 0x7f, 0];
        assert!(
            check_bson_framing(&mut &huge[..], "x.bson")
                .unwrap_err()
                .to_string()
                .contains("length")
        );
    }

    #[test]
    fn a_journaled_extraction_is_undone_exactly() {
        use crate::journal::JournalEntry;
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("t");
        std::fs::create_dir_all(target.join("old")).unwrap();
        std::fs::write(target.join("old/kept.txt"), "previous").unwrap();
        std::fs::set_permissions(target.join("old"), fs::Permissions::from_mode(0o700)).unwrap();
        set_mtime_nofollow(&target.join("old"), 1_000_000).unwrap();
        std::fs::write(target.join("x"), "was a file").unwrap();
        std::os::unix::fs::symlink("somewhere", target.join("link")).unwrap();
        let before = tree(&target);
        let mut tar = tar::Builder::new(Vec::new());
        let dir_header = || {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(tar::EntryType::Directory);
            h.set_mode(0o755);
            h.set_size(0);
            h.set_cksum();
            h
        };
        tar.append_data(&mut dir_header(), "old", &b""[..]).unwrap();
        for (name, body) in [
            ("old/kept.txt", "new"),
            ("old/sub/new.txt", "n"),
            ("n.txt", "n"),
            ("link", "now a file"),
        ] {
            let mut h = tar::Header::new_gnu();
            h.set_size(body.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            tar.append_data(&mut h, name, body.as_bytes()).unwrap();
        }
        tar.append_data(&mut dir_header(), "x", &b""[..]).unwrap();
        let mut h = tar::Header::new_gnu();
        h.set_size(1);
        h.set_mode(0o644);
        h.set_cksum();
        tar.append_data(&mut h, "x/y", &b"y"[..]).unwrap();
        let bytes = tar.into_inner().unwrap();

        let journal = extract_journaled(&target, &bytes);
        let root = target.canonicalize().unwrap();
        assert_eq!(
            std::fs::read_to_string(root.join("old/kept.txt")).unwrap(),
            "new"
        );
        assert!(root.join("x").is_dir());
        let entries = journal.entries();
        assert!(entries.contains(&JournalEntry::Created(root.join("old/sub/new.txt"))));
        let replaced: Vec<_> = entries
            .iter()
            .filter_map(|e| match e {
                JournalEntry::Replaced { path, .. } => Some(path.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(
            replaced,
            vec![root.join("old/kept.txt"), root.join("link"), root.join("x")]
        );
        assert_eq!(
            fs::metadata(root.join("old")).unwrap().permissions().mode() & 0o7777,
            0o755
        );
        let undone = journal.undo().unwrap();
        assert_eq!(
            (undone.removed, undone.restored, undone.directories),
            (5, 3, 1),
            "{entries:?}"
        );
        assert_eq!(tree(&target), before, "exactly as it was, no stash left");
        let old = fs::metadata(root.join("old")).unwrap();
        assert_eq!(old.permissions().mode() & 0o7777, 0o700);
        assert_eq!(
            std::os::unix::fs::MetadataExt::mtime(&old),
            1_000_000,
            "directory metadata back too"
        );
    }

    #[test]
    fn settling_a_journal_drops_the_previous_versions() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("t");
        std::fs::create_dir_all(&target).unwrap();
        std::fs::write(target.join("a"), "previous").unwrap();
        let mut tar = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(3);
        h.set_mode(0o644);
        h.set_cksum();
        tar.append_data(&mut h, "a", &b"new"[..]).unwrap();
        let journal = extract_journaled(&target, &tar.into_inner().unwrap());
        assert_eq!(tree(&target).len(), 2, "the stash beside it");
        journal.settle().unwrap();
        assert_eq!(
            tree(&target),
            vec![("a".to_string(), "new".to_string())],
            "only the restored file"
        );
    }

    /// (relative name, contents or link target or "dir") of a whole tree.
    fn tree(root: &Path) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for e in walkdir::WalkDir::new(root).min_depth(1).sort_by_file_name() {
            let e = e.unwrap();
            let rel = e.path().strip_prefix(root).unwrap().display().to_string();
            let ft = e.file_type();
            let what = if ft.is_symlink() {
                std::fs::read_link(e.path()).unwrap().display().to_string()
            } else if ft.is_dir() {
                "dir".into()
            } else {
                std::fs::read_to_string(e.path()).unwrap()
            };
            out.push((rel, what));
        }
        out
    }

    /// Extracts `root_tar` into `target`, returning the journal.
    fn extract_journaled(target: &Path, root_tar: &[u8]) -> RestoreJournal {
        let journal = RestoreJournal::default();
        let mut x = Extractor::new(target, Arc::new(crate::NoProgress))
            .unwrap()
            .with_journal(journal.clone());
        x.visit(&mut &root_tar[..]).unwrap();
        journal
    }

    #[test]
    fn sanitizer_rules() {
        assert_eq!(sanitize_entry_path(b"./a/b").unwrap(), PathBuf::from("a/b"));
        assert_eq!(
            sanitize_entry_path(b"a/./b/").unwrap(),
            PathBuf::from("a/b")
        );
        for bad in [&b"/etc/passwd"[..], b"a/../../b", b"..", b"", b".", b"a\0b"] {
            assert!(
                sanitize_entry_path(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
