//! The files side of a diff. Each entry of `root.tar` is checked with the
//! extractor's rules, its contents hashed (SHA-256) as they stream, and
//! compared with what is at the same path under the target: type,
//! permission bits, size, then — only for regular files of equal size —
//! the live file's SHA-256; symlinks by target.
//!
//! "Only live" is looked for only in the directories the backup covers,
//! one level deep: a directory is covered when the backup holds it empty,
//! holds a file, symlink or device directly in it, or covers its parent.
//! The parents the backup records only to recreate their modes (`var`,
//! `var/lib` above `var/lib/juju`) are not covered, so a diff against `/`
//! lists nothing of the rest of the disk. A live directory the backup
//! lacks is listed once, with a trailing `/`, and not descended into.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::error::Result;
use crate::extract::{CheckedKind, DeviceKind, Policy, read_err};

/// What a path is, on either side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum FileKind {
    /// A regular file (a hard link in the backup counts as the file it
    /// links to).
    File,
    /// A directory.
    Directory,
    /// A symbolic link.
    Symlink,
    /// A character device.
    CharDevice,
    /// A block device.
    BlockDevice,
    /// A named pipe.
    Fifo,
    /// A socket (live only).
    Socket,
}

/// One side of a [`FileDifference`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
#[non_exhaustive]
pub struct FileState {
    /// What it is.
    #[serde(rename = "Type")]
    pub kind: FileKind,
    /// Size in bytes (regular files).
    pub size: Option<u64>,
    /// Permission bits in octal, e.g. `0644` (not for symlinks).
    pub mode: Option<String>,
    /// SHA-256 of the contents, hex (regular files; on the live side only
    /// when the sizes are equal).
    #[serde(rename = "SHA256")]
    pub sha256: Option<String>,
    /// A symlink's target.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
}

impl FileState {
    fn new(kind: FileKind, mode: Option<u32>) -> Self {
        FileState {
            kind,
            size: None,
            mode: mode.map(|m| format!("{m:04o}")),
            sha256: None,
            target: None,
        }
    }

    fn file(size: u64, mode: u32, sha256: Option<String>) -> Self {
        FileState {
            size: Some(size),
            sha256,
            ..FileState::new(FileKind::File, Some(mode))
        }
    }

    fn symlink(target: &Path) -> Self {
        FileState {
            target: Some(target.display().to_string()),
            ..FileState::new(FileKind::Symlink, None)
        }
    }
}

/// A path both sides have, differently.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
#[non_exhaustive]
pub struct FileDifference {
    /// The path under the target, as the backup names it (no leading `/`).
    pub path: String,
    /// What differs: `type`, `size`, `mode`, `sha256` or `target`.
    pub reasons: Vec<&'static str>,
    /// What the backup holds.
    pub backup: FileState,
    /// What is there now.
    pub live: FileState,
}

/// How many paths fall in each group.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
#[non_exhaustive]
pub struct FileCounts {
    /// Paths only the backup has.
    pub only_in_backup: u64,
    /// Paths only the live side has.
    pub only_live: u64,
    /// Paths that differ.
    pub different: u64,
    /// Paths that are the same on both sides.
    pub same: u64,
}

/// The files of a backup against the live files under the target. Paths
/// are relative to the target, as the backup names them; an only-live
/// directory ends in `/`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
#[non_exhaustive]
pub struct FilesDiff {
    /// The size of each group.
    pub counts: FileCounts,
    /// Paths only the backup has (a restore would create them), sorted.
    pub only_in_backup: Vec<String>,
    /// Paths only the live side has, in directories the backup covers (a
    /// restore leaves them), sorted.
    pub only_live: Vec<String>,
    /// Paths on both sides that differ (a restore would replace them).
    pub different: Vec<FileDifference>,
}

impl FilesDiff {
    /// Whether no path differs, none is only in the backup and none only live.
    pub fn is_same(&self) -> bool {
        self.only_in_backup.is_empty() && self.only_live.is_empty() && self.different.is_empty()
    }
}

/// What the backup holds at a path: kept for the only-live pass and for
/// the hard links that point at it.
#[derive(Debug, Clone)]
enum Held {
    Directory,
    File {
        size: u64,
        mode: u32,
        sha256: String,
    },
    Other,
}

/// Compares `root.tar` with the live files under a target.
#[derive(Debug)]
pub(super) struct FileDiffer {
    target: PathBuf,
    policy: Policy,
    held: BTreeMap<PathBuf, Held>,
    diff: FilesDiff,
    warnings: Vec<String>,
}

impl FileDiffer {
    pub(super) fn new(target: PathBuf) -> Self {
        FileDiffer {
            target,
            // Nothing is created: device nodes are compared, not refused.
            policy: Policy::new(true),
            held: BTreeMap::new(),
            diff: FilesDiff::default(),
            warnings: Vec::new(),
        }
    }

    /// The comparison, sorted, and what could not be compared.
    pub(super) fn finish(mut self) -> (FilesDiff, Vec<String>) {
        self.diff.only_in_backup.sort();
        self.diff.only_live.sort();
        self.diff.different.sort_by(|a, b| a.path.cmp(&b.path));
        let d = &mut self.diff;
        d.counts.only_in_backup = d.only_in_backup.len() as u64;
        d.counts.only_live = d.only_live.len() as u64;
        d.counts.different = d.different.len() as u64;
        (self.diff, self.warnings)
    }

    /// Compares every entry of `root`, then lists the covered directories'
    /// live entries the backup lacks.
    pub(super) fn visit_root(&mut self, root: &mut dyn Read) -> Result<()> {
        let sparse = crate::archive::SparseSlot::default();
        let guard = crate::archive::HeaderGuard::new(root).with_sparse_maps(sparse.clone());
        let mut archive = tar::Archive::new(guard);
        let entries = archive.entries().map_err(|e| read_err("(start)", e))?;
        for entry in entries {
            let mut entry = entry.map_err(|e| read_err("(header)", e))?;
            let (name, path, kind) = self.policy.check(&entry, sparse.take())?;
            let mode = entry.header().mode().map_err(|e| read_err(&name, e))? & 0o7777;
            let (backup, held) = match kind {
                CheckedKind::File(size) => {
                    let (read, sha256) = hash(&mut entry).map_err(|e| read_err(&name, e))?;
                    if read != size {
                        return Err(read_err(
                            &name,
                            io::Error::new(io::ErrorKind::UnexpectedEof, "entry cut short"),
                        ));
                    }
                    (
                        FileState::file(size, mode, Some(sha256.clone())),
                        Held::File { size, mode, sha256 },
                    )
                }
                // Compared as the file it restores to, its holes read as zeros.
                CheckedKind::Sparse(map) => {
                    let sha256 = hash_sparse(&mut entry, &map).map_err(|e| read_err(&name, e))?;
                    let size = map.size();
                    (
                        FileState::file(size, mode, Some(sha256.clone())),
                        Held::File { size, mode, sha256 },
                    )
                }
                CheckedKind::Directory => (
                    FileState::new(FileKind::Directory, Some(mode)),
                    Held::Directory,
                ),
                CheckedKind::Symlink(target) => (FileState::symlink(&target), Held::Other),
                CheckedKind::HardLink(target) => match self.held.get(&target) {
                    Some(held @ Held::File { size, mode, sha256 }) => (
                        FileState::file(*size, *mode, Some(sha256.clone())),
                        held.clone(),
                    ),
                    // A link to something that is not a file of the backup:
                    // a restore refuses it; compare it as an empty file.
                    _ => (FileState::file(0, mode, None), Held::Other),
                },
                CheckedKind::Device { kind, .. } => {
                    let kind = match kind {
                        DeviceKind::Char => FileKind::CharDevice,
                        DeviceKind::Block => FileKind::BlockDevice,
                        DeviceKind::Fifo => FileKind::Fifo,
                    };
                    (FileState::new(kind, Some(mode)), Held::Other)
                }
            };
            self.compare(&path, backup);
            self.held.insert(path, held);
        }
        self.only_live();
        Ok(())
    }

    /// Classifies one backup entry against what is at its path now.
    fn compare(&mut self, path: &Path, backup: FileState) {
        let shown = path.display().to_string();
        let live_path = self.target.join(path);
        let meta = match fs::symlink_metadata(&live_path) {
            Ok(meta) => meta,
            Err(e) if is_missing(&e) => {
                self.diff.only_in_backup.push(shown);
                return;
            }
            Err(e) => {
                self.warnings
                    .push(format!("{}: not compared: {e}", live_path.display()));
                return;
            }
        };
        let mut live = live_state(&live_path, &meta);
        let mut reasons = Vec::new();
        if live.kind != backup.kind {
            reasons.push("type");
        } else if live.kind == FileKind::Symlink {
            if live.target != backup.target {
                reasons.push("target");
            }
        } else {
            if live.size != backup.size {
                reasons.push("size");
            }
            if live.mode != backup.mode {
                reasons.push("mode");
            }
            if live.kind == FileKind::File && live.size == backup.size {
                match fs::File::open(&live_path).and_then(|mut f| hash(&mut f)) {
                    Ok((_, sha256)) => {
                        if Some(&sha256) != backup.sha256.as_ref() {
                            reasons.push("sha256");
                        }
                        live.sha256 = Some(sha256);
                    }
                    Err(e) => {
                        self.warnings.push(format!(
                            "{}: contents not compared: {e}",
                            live_path.display()
                        ));
                    }
                }
            }
        }
        if reasons.is_empty() {
            self.diff.counts.same += 1;
        } else {
            self.diff.different.push(FileDifference {
                path: shown,
                reasons,
                backup,
                live,
            });
        }
    }

    /// Lists what the covered directories hold live that the backup lacks.
    fn only_live(&mut self) {
        let mut has_child: BTreeSet<&Path> = BTreeSet::new();
        let mut has_leaf: BTreeSet<&Path> = BTreeSet::new();
        for (path, held) in &self.held {
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                has_child.insert(parent);
                if !matches!(held, Held::Directory) {
                    has_leaf.insert(parent);
                }
            }
        }
        // Parents sort before their children.
        let mut covered: BTreeSet<&Path> = BTreeSet::new();
        for (path, held) in &self.held {
            if !matches!(held, Held::Directory) {
                continue;
            }
            let path = path.as_path();
            if !has_child.contains(path)
                || has_leaf.contains(path)
                || path.parent().is_some_and(|p| covered.contains(p))
            {
                covered.insert(path);
            }
        }
        let mut found = Vec::new();
        for dir in covered {
            let live_dir = self.target.join(dir);
            // Only a real directory (what is there instead is a difference).
            if !fs::symlink_metadata(&live_dir).is_ok_and(|m| m.is_dir()) {
                continue;
            }
            let listing = match fs::read_dir(&live_dir) {
                Ok(listing) => listing,
                Err(e) => {
                    self.warnings
                        .push(format!("{}: not listed: {e}", live_dir.display()));
                    continue;
                }
            };
            for item in listing {
                let item = match item {
                    Ok(item) => item,
                    Err(e) => {
                        self.warnings
                            .push(format!("{}: not listed: {e}", live_dir.display()));
                        break;
                    }
                };
                let rel = dir.join(item.file_name());
                if self.held.contains_key(&rel) {
                    continue;
                }
                let is_dir = item.file_type().is_ok_and(|t| t.is_dir());
                let shown = rel.display().to_string();
                found.push(if is_dir { format!("{shown}/") } else { shown });
            }
        }
        self.diff.only_live.extend(found);
    }
}

/// Whether a stat error means nothing is there (a parent being a file
/// counts).
fn is_missing(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
    )
}

/// What is at `path` now (contents not read).
fn live_state(path: &Path, meta: &fs::Metadata) -> FileState {
    let ft = meta.file_type();
    let mode = meta.mode() & 0o7777;
    if ft.is_symlink() {
        let target = fs::read_link(path).unwrap_or_default();
        FileState::symlink(&target)
    } else if ft.is_dir() {
        FileState::new(FileKind::Directory, Some(mode))
    } else if ft.is_file() {
        FileState::file(meta.len(), mode, None)
    } else {
        let kind = if ft.is_char_device() {
            FileKind::CharDevice
        } else if ft.is_block_device() {
            FileKind::BlockDevice
        } else if ft.is_fifo() {
            FileKind::Fifo
        } else {
            FileKind::Socket
        };
        FileState::new(kind, Some(mode))
    }
}

/// Bytes read and the hex SHA-256 of everything `reader` holds.
/// The SHA-256 of a sparse entry's file: its data segments from `entry`,
/// zeros in the holes (the map is checked: in order, within the size).
fn hash_sparse(entry: &mut dyn Read, map: &crate::sparse::SparseMap) -> io::Result<String> {
    let mut hasher = Sha256::new();
    let zeros = vec![0u8; 64 * 1024];
    let feed_zeros = |hasher: &mut Sha256, mut n: u64| {
        while n > 0 {
            let k = n.min(zeros.len() as u64) as usize;
            hasher.update(&zeros[..k]);
            n -= k as u64;
        }
    };
    let mut buf = vec![0u8; 256 * 1024];
    let mut pos = 0u64;
    for seg in map.segments() {
        feed_zeros(&mut hasher, seg.offset.saturating_sub(pos));
        let mut left = seg.len;
        while left > 0 {
            let k = left.min(buf.len() as u64) as usize;
            entry.read_exact(&mut buf[..k])?;
            hasher.update(&buf[..k]);
            left -= k as u64;
        }
        pos = seg.end();
    }
    feed_zeros(&mut hasher, map.size().saturating_sub(pos));
    Ok(hex::encode(hasher.finalize()))
}

fn hash(reader: &mut dyn Read) -> io::Result<(u64, String)> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut total = 0u64;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(&buf[..n]);
        total += n as u64;
    }
    Ok((total, hex::encode(hasher.finalize())))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `root.tar` of (name, kind, mode, body or link target).
    fn root_tar(entries: &[(&str, tar::EntryType, u32, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, kind, mode, body) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(*kind);
            h.set_mode(*mode);
            if kind.is_symlink() || kind.is_hard_link() {
                h.set_size(0);
                b.append_link(&mut h, name, std::str::from_utf8(body).unwrap())
                    .unwrap();
            } else {
                h.set_size(body.len() as u64);
                h.set_cksum();
                b.append_data(&mut h, name, *body).unwrap();
            }
        }
        b.into_inner().unwrap()
    }

    fn mode(path: &Path, mode: u32) {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn entries_are_classified_and_only_covered_directories_listed() {
        use tar::EntryType::{Directory, Link, Regular, Symlink};
        let dir = tempfile::tempdir().unwrap();
        let t = dir.path();
        let tar = root_tar(&[
            ("var", Directory, 0o755, b""),
            ("var/lib", Directory, 0o755, b""),
            ("var/lib/juju", Directory, 0o750, b""),
            ("var/lib/juju/same", Regular, 0o644, b"same"),
            // Compared as the file it links to.
            ("var/lib/juju/hard", Link, 0o644, b"var/lib/juju/same"),
            ("var/lib/juju/content", Regular, 0o644, b"aaaa"),
            ("var/lib/juju/size", Regular, 0o644, b"abc"),
            ("var/lib/juju/mode", Regular, 0o600, b"m"),
            ("var/lib/juju/gone", Regular, 0o644, b"g"),
            ("var/lib/juju/link", Symlink, 0o777, b"/etc/one"),
            ("var/lib/juju/sub", Directory, 0o755, b""),
            ("var/lib/juju/sub/deep", Directory, 0o755, b""),
        ]);
        fs::create_dir_all(t.join("var/lib/juju/sub/deep")).unwrap();
        fs::create_dir_all(t.join("var/lib/other")).unwrap();
        fs::write(t.join("var/unrelated"), b"x").unwrap();
        mode(&t.join("var/lib/juju"), 0o750);
        let j = t.join("var/lib/juju");
        fs::write(j.join("same"), b"same").unwrap();
        fs::write(j.join("hard"), b"same").unwrap();
        mode(&j.join("hard"), 0o644);
        fs::write(j.join("content"), b"bbbb").unwrap();
        fs::write(j.join("size"), b"abcd").unwrap();
        fs::write(j.join("mode"), b"m").unwrap();
        mode(&j.join("mode"), 0o644);
        mode(&j.join("same"), 0o644);
        mode(&j.join("content"), 0o644);
        mode(&j.join("size"), 0o644);
        std::os::unix::fs::symlink("/etc/two", j.join("link")).unwrap();
        fs::write(j.join("sub/deep/new"), b"n").unwrap();
        fs::create_dir(j.join("newdir")).unwrap();
        for d in [
            "var",
            "var/lib",
            "var/lib/juju/sub",
            "var/lib/juju/sub/deep",
        ] {
            mode(&t.join(d), 0o755);
        }

        let mut differ = FileDiffer::new(t.to_path_buf());
        differ.visit_root(&mut &tar[..]).unwrap();
        let (diff, warnings) = differ.finish();
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(diff.only_in_backup, vec!["var/lib/juju/gone"]);
        // var and var/lib are only parents: their other entries are not listed.
        assert_eq!(
            diff.only_live,
            vec!["var/lib/juju/newdir/", "var/lib/juju/sub/deep/new"]
        );
        let reasons: Vec<(&str, Vec<&str>)> = diff
            .different
            .iter()
            .map(|d| (d.path.as_str(), d.reasons.clone()))
            .collect();
        assert_eq!(
            reasons,
            vec![
                ("var/lib/juju/content", vec!["sha256"]),
                ("var/lib/juju/link", vec!["target"]),
                ("var/lib/juju/mode", vec!["mode"]),
                ("var/lib/juju/size", vec!["size"]),
            ]
        );
        let content = &diff.different[0];
        assert_eq!(content.backup.mode.as_deref(), Some("0644"));
        assert_eq!(
            content.backup.sha256.as_deref(),
            Some(hex::encode(Sha256::digest(b"aaaa")).as_str())
        );
        assert_eq!(
            content.live.sha256.as_deref(),
            Some(hex::encode(Sha256::digest(b"bbbb")).as_str())
        );
        // Sizes differ: the live file is not read.
        assert_eq!(diff.different[3].live.sha256, None);
        assert_eq!(diff.counts.same, 7, "{diff:?}");
        assert_eq!(diff.counts.different, 4);
    }

    #[test]
    fn a_missing_target_has_everything_only_in_the_backup() {
        use tar::EntryType::{Directory, Regular};
        let dir = tempfile::tempdir().unwrap();
        let tar = root_tar(&[
            ("etc", Directory, 0o755, b""),
            ("etc/a", Regular, 0o644, b"a"),
        ]);
        let mut differ = FileDiffer::new(dir.path().join("nowhere"));
        differ.visit_root(&mut &tar[..]).unwrap();
        let (diff, _) = differ.finish();
        assert_eq!(diff.only_in_backup, vec!["etc", "etc/a"]);
        assert!(diff.only_live.is_empty() && diff.different.is_empty());
    }
}
