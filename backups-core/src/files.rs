//! The file set to back up: root paths, exclude globs, and the scan that
//! stats every entry (without reading any file) so `root.tar`'s exact size
//! is known before a byte is written.

use std::collections::BTreeSet;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

use globset::{Glob, GlobSet, GlobSetBuilder};

use crate::error::{Error, Result};
use crate::sparse::SparseMap;

/// What to back up: absolute or relative paths (each followed through
/// symlinks at the root, never below it) minus the excludes.
///
/// An exclude pattern containing `/` matches the whole absolute path
/// (`/var/lib/juju/*.log`); one without matches any file or directory name
/// (`*.tmp`). An excluded directory is skipped with everything below it.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct FileSet {
    /// Roots to back up.
    pub paths: Vec<PathBuf>,
    /// Glob patterns to leave out.
    pub excludes: Vec<String>,
    /// Paths saved as themselves, after the roots: a symlink as a link
    /// (not followed), a directory without its contents; one that does
    /// not exist is left out. A restore plan's safety backup saves the
    /// live paths the restore will replace this way.
    pub single: Vec<PathBuf>,
}

impl FileSet {
    /// These roots, nothing excluded.
    pub fn new(paths: Vec<PathBuf>) -> Self {
        FileSet {
            paths,
            excludes: Vec::new(),
            single: Vec::new(),
        }
    }

    /// Also saves these paths, each as itself (see [`FileSet::single`]).
    pub fn with_single(mut self, single: Vec<PathBuf>) -> Self {
        self.single = single;
        self
    }

    /// Leaves out what matches these glob patterns.
    pub fn with_excludes(mut self, excludes: Vec<String>) -> Self {
        self.excludes = excludes;
        self
    }
}

/// The kind of a scanned entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryKind {
    /// A directory.
    Directory,
    /// A regular file of `size` bytes at scan time.
    File {
        /// Size in bytes when stat'ed.
        size: u64,
    },
    /// A regular file with holes: only its data segments are stored.
    Sparse {
        /// Where its data is, and its size, at scan time.
        map: SparseMap,
    },
    /// A symbolic link, kept as a link.
    Symlink {
        /// The link's target, exactly as stored on disk.
        target: PathBuf,
    },
    /// Another name of a regular file met earlier in the scan (the same
    /// device and inode): stored as a hard link, as GNU tar stores it, so
    /// a restore makes a hard link, not a copy.
    HardLink {
        /// The name in `root.tar` of the file it links to.
        target: PathBuf,
    },
}

/// The names of files with more than one link met so far, by device and
/// inode.
type LinkNames = std::collections::HashMap<(u64, u64), PathBuf>;

/// One stat'ed entry of the file set.
#[derive(Debug, Clone)]
pub struct FileEntry {
    /// Its name in `root.tar`: the absolute path without the leading `/`,
    /// its bytes exactly (a name need not be UTF-8; GNU tar headers carry
    /// bytes).
    pub name: PathBuf,
    /// What it is.
    pub kind: EntryKind,
    /// Permission bits (including setuid/setgid/sticky).
    pub mode: u32,
    /// Modification time, seconds since the epoch.
    pub mtime: i64,
    /// Owner user id.
    pub uid: u32,
    /// Owner group id.
    pub gid: u32,
}

impl FileEntry {
    /// Where it is on disk: `/` and its name (kept once, not twice, so a
    /// scan of many files holds less).
    pub fn source(&self) -> PathBuf {
        Path::new("/").join(&self.name)
    }
}

/// The result of scanning a [`FileSet`].
#[derive(Debug, Default)]
pub struct ScannedFiles {
    /// Entries in archive order: parents before children, names sorted.
    pub entries: Vec<FileEntry>,
    /// Things left out, each with its reason (sockets, devices, vanished files).
    pub warnings: Vec<String>,
}

impl FileSet {
    fn exclude_set(&self) -> Result<(GlobSet, GlobSet)> {
        let mut full = GlobSetBuilder::new();
        let mut name = GlobSetBuilder::new();
        for pattern in &self.excludes {
            let glob = Glob::new(pattern).map_err(|e| Error::InvalidInput {
                what: crate::error::InputKind::ExcludePattern,
                value: pattern.clone(),
                reason: e.to_string(),
            })?;
            if pattern.contains('/') {
                full.add(glob);
            } else {
                name.add(glob);
            }
        }
        let build = |b: GlobSetBuilder, p: &str| {
            b.build().map_err(|e| Error::InvalidInput {
                what: crate::error::InputKind::ExcludePattern,
                value: p.to_string(),
                reason: e.to_string(),
            })
        };
        Ok((build(full, "")?, build(name, "")?))
    }

    /// Stats every entry under the roots. Reads no file contents.
    pub(crate) fn scan(&self) -> Result<ScannedFiles> {
        let (full, names) = self.exclude_set()?;
        let excluded = |path: &Path| {
            full.is_match(path) || path.file_name().is_some_and(|n| names.is_match(n))
        };
        let mut out = ScannedFiles::default();
        let mut seen: BTreeSet<PathBuf> = BTreeSet::new();
        let mut links = LinkNames::new();
        let seen = &mut (&mut seen, &mut links);
        for root in &self.paths {
            let root = root
                .canonicalize()
                .map_err(|e| Error::io("cannot back up", root, e))?;
            // Parent directories first, so extraction recreates them with their modes.
            if let Some(parent) = root.parent() {
                push_ancestors(&mut out, seen, parent)?;
            }
            let walker = walkdir::WalkDir::new(&root)
                .follow_links(false)
                .follow_root_links(false)
                .sort_by_file_name()
                .into_iter()
                .filter_entry(|e| !excluded(e.path()));
            for item in walker {
                let item = match item {
                    Ok(item) => item,
                    Err(e) => {
                        let path = e.path().map(Path::to_path_buf).unwrap_or(root.clone());
                        match e.into_io_error() {
                            Some(io) if io.kind() == std::io::ErrorKind::NotFound => {
                                out.warnings
                                    .push(format!("{}: vanished during scan", path.display()));
                                continue;
                            }
                            Some(io) => return Err(Error::io("scanning", path, io)),
                            None => {
                                return Err(Error::io(
                                    "scanning",
                                    path,
                                    std::io::Error::other("filesystem loop"),
                                ));
                            }
                        }
                    }
                };
                let meta = item
                    .metadata()
                    .map_err(|e| Error::io("stat", item.path(), e.into()))?;
                push_entry(&mut out, seen, item.path(), &meta)?;
            }
        }
        for path in &self.single {
            // The parent resolved, the last component kept as it is.
            let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
                continue;
            };
            let parent = match parent.canonicalize() {
                Ok(p) => p,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(Error::io("cannot back up", parent, e)),
            };
            let path = parent.join(name);
            let meta = match std::fs::symlink_metadata(&path) {
                Ok(m) => m,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(Error::io("stat", &path, e)),
            };
            push_ancestors(&mut out, seen, &parent)?;
            push_entry(&mut out, seen, &path, &meta)?;
        }
        Ok(out)
    }
}

/// `dir` and its ancestors, outermost first ("/" itself has no entry).
fn push_ancestors(
    out: &mut ScannedFiles,
    seen: &mut (&mut BTreeSet<PathBuf>, &mut LinkNames),
    dir: &Path,
) -> Result<()> {
    let dirs: Vec<&Path> = dir.ancestors().collect();
    for dir in dirs.into_iter().rev() {
        if dir.parent().is_none() {
            continue;
        }
        let meta = std::fs::symlink_metadata(dir).map_err(|e| Error::io("stat", dir, e))?;
        push_entry(out, seen, dir, &meta)?;
    }
    Ok(())
}

fn push_entry(
    out: &mut ScannedFiles,
    (seen, links): &mut (&mut BTreeSet<PathBuf>, &mut LinkNames),
    path: &Path,
    meta: &std::fs::Metadata,
) -> Result<()> {
    let name = archive_name(path)?;
    if !seen.insert(name.clone()) {
        return Ok(());
    }
    let ft = meta.file_type();
    let first_name = (ft.is_file() && meta.nlink() > 1)
        .then(|| {
            links
                .entry((meta.dev(), meta.ino()))
                .or_insert_with(|| name.clone())
                .clone()
        })
        .filter(|first| *first != name);
    let kind = if let Some(target) = first_name {
        EntryKind::HardLink { target }
    } else if ft.is_dir() {
        EntryKind::Directory
    } else if ft.is_file() {
        match sparse_map(path, meta) {
            Some(map) => EntryKind::Sparse { map },
            None => EntryKind::File { size: meta.len() },
        }
    } else if ft.is_symlink() {
        let target = std::fs::read_link(path).map_err(|e| Error::io("reading link", path, e))?;
        EntryKind::Symlink { target }
    } else {
        out.warnings.push(format!(
            "{}: skipped (not a file, directory or symlink)",
            path.display()
        ));
        return Ok(());
    };
    out.entries.push(FileEntry {
        name,
        kind,
        mode: meta.mode() & 0o7777,
        mtime: meta.mtime(),
        uid: meta.uid(),
        gid: meta.gid(),
    });
    Ok(())
}

/// The data map of a file that may have holes (fewer blocks allocated than
/// its size needs); `None` for any other file, or one that cannot be
/// opened here (reading it later reports that).
fn sparse_map(path: &Path, meta: &std::fs::Metadata) -> Option<SparseMap> {
    if meta.blocks().saturating_mul(512) >= meta.len() {
        return None;
    }
    let file = std::fs::File::open(path).ok()?;
    SparseMap::probe(&file, meta.len()).ok().flatten()
}

/// `/var/lib/juju` -> `var/lib/juju` (bytes kept as they are); refuses
/// anything not absolute and normal.
fn archive_name(path: &Path) -> Result<PathBuf> {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::RootDir => {}
            Component::Normal(p) => out.push(p),
            _ => {
                return Err(Error::io(
                    "cannot back up",
                    path,
                    std::io::Error::other("path is not absolute and normalised"),
                ));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scan_orders_parents_first_and_applies_excludes() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap().join("r");
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::write(root.join("sub/a.txt"), b"hello").unwrap();
        std::fs::write(root.join("sub/skip.tmp"), b"x").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", root.join("link")).unwrap();
        let set = FileSet {
            paths: vec![root.clone()],
            excludes: vec!["*.tmp".into()],
            single: vec![],
        };
        let scanned = set.scan().unwrap();
        let names: Vec<_> = scanned.entries.iter().map(|e| e.name.clone()).collect();
        let r = archive_name(&root).unwrap();
        let tail: Vec<_> = names.iter().skip_while(|n| **n != r).cloned().collect();
        assert_eq!(
            tail,
            vec![
                r.clone(),
                r.join("link"),
                r.join("sub"),
                r.join("sub/a.txt")
            ]
        );
        let link = scanned
            .entries
            .iter()
            .find(|e| e.name.ends_with("link"))
            .unwrap();
        assert_eq!(
            link.kind,
            EntryKind::Symlink {
                target: "/etc/passwd".into()
            }
        );
        assert!(
            names[0].components().count() == 1,
            "ancestors come first: {names:?}"
        );
    }

    #[test]
    fn missing_root_names_the_path() {
        let set = FileSet {
            paths: vec!["/definitely/not/here".into()],
            excludes: vec![],
            single: vec![],
        };
        let err = set.scan().unwrap_err();
        assert!(err.to_string().contains("/definitely/not/here"), "{err}");
    }

    #[test]
    fn single_paths_are_saved_as_themselves() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        std::fs::create_dir_all(root.join("d/inner")).unwrap();
        std::fs::write(root.join("d/inner/f"), b"x").unwrap();
        std::fs::write(root.join("file"), b"y").unwrap();
        std::os::unix::fs::symlink("d", root.join("link")).unwrap();
        let set = FileSet::new(vec![]).with_single(vec![
            root.join("link"),
            root.join("d"),
            root.join("file"),
            root.join("missing"),
            root.join("nodir/missing"),
        ]);
        let scanned = set.scan().unwrap();
        let r = archive_name(&root).unwrap();
        let kinds: Vec<_> = scanned
            .entries
            .iter()
            .filter_map(|e| {
                let rest = e.name.strip_prefix(&r).ok()?;
                (!rest.as_os_str().is_empty()).then(|| (rest.display().to_string(), e.kind.clone()))
            })
            .collect();
        assert_eq!(
            kinds,
            vec![
                (
                    "link".to_string(),
                    EntryKind::Symlink {
                        target: PathBuf::from("d")
                    }
                ),
                ("d".to_string(), EntryKind::Directory),
                ("file".to_string(), EntryKind::File { size: 1 }),
            ]
        );
    }
}
