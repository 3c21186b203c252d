//! What an archive entry may be: the static checks shared by the verify
//! pass and the extractor, and the counts both report.

use std::collections::HashSet;
use std::ffi::OsStr;
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use crate::error::{Error, Result};
use crate::sparse::SparseMap;

use super::path::sanitize_entry_path;

/// What a restore may create beyond files, directories and links. Both are
/// off by default: a backup is data, and a device node or a setuid binary
/// from an archive is a way in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ExtractOptions {
    /// Keep setuid/setgid bits (otherwise dropped, with a warning).
    pub allow_setuid: bool,
    /// Create device nodes and FIFOs (otherwise the archive is refused).
    pub allow_devices: bool,
}

impl ExtractOptions {
    /// Keeps (`true`) or drops setuid/setgid bits.
    pub fn with_setuid(mut self, allow: bool) -> Self {
        self.allow_setuid = allow;
        self
    }

    /// Creates (`true`) device nodes and FIFOs, or refuses archives that
    /// hold them.
    pub fn with_devices(mut self, allow: bool) -> Self {
        self.allow_devices = allow;
        self
    }
}

/// The kind of a special file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DeviceKind {
    /// A character device.
    Char,
    /// A block device.
    Block,
    /// A named pipe.
    Fifo,
}

/// What an accepted entry is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CheckedKind {
    /// A directory.
    Directory,
    /// A regular file of this many bytes.
    File(u64),
    /// A sparse file: its data segments and size (its stored data is the
    /// entry's contents).
    Sparse(SparseMap),
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

/// Static checks over the entries of one `root.tar`, with a model of the
/// tree the entries make, in order: which paths are directories (given
/// as entries or made as parents), symlinks, or other non-directories.
/// An entry the extractor could not place there (a symlink or file over a
/// directory that earlier entries were written into, a file's child) is
/// refused here, by the verify pass, before anything is written.
#[derive(Debug, Default)]
pub(crate) struct Policy {
    symlinks: HashSet<PathBuf>,
    /// Directories of the modelled tree.
    dirs: HashSet<PathBuf>,
    /// Files, hard links and devices of the modelled tree, by a hash of
    /// their path (8 bytes each, whatever the path's length; a collision,
    /// about 1 in 10^10 for a million entries, refuses an archive that
    /// is fine, never accepts one that is not).
    others: HashSet<u64>,
    pub(crate) allow_devices: bool,
}

/// The hash [`Policy`] keeps a non-directory's path by (fixed keys, so
/// the same in every run).
fn path_hash(path: &std::path::Path) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::hash::DefaultHasher::new();
    path.hash(&mut h);
    h.finish()
}

impl Policy {
    /// Checks that accept device nodes and FIFOs only if `allow_devices`.
    pub(crate) fn new(allow_devices: bool) -> Self {
        Policy {
            allow_devices,
            ..Policy::default()
        }
    }

    /// Checks `path`'s parents against the modelled tree (none may be a
    /// symlink or a non-directory made earlier), then records them as
    /// directories.
    fn check_parents(&mut self, name: &str, path: &std::path::Path) -> Result<()> {
        let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) else {
            return Ok(());
        };
        // A modelled directory stays one (nothing may replace it), so its
        // own parents were checked when it was recorded.
        if self.dirs.contains(parent) {
            return Ok(());
        }
        let mut ancestors: Vec<&std::path::Path> = parent
            .ancestors()
            .filter(|a| !a.as_os_str().is_empty())
            .collect();
        ancestors.reverse();
        for ancestor in ancestors {
            if self.symlinks.contains(ancestor) {
                return Err(Error::unsafe_path(
                    name,
                    format!(
                        "would be written through the symlink {:?} restored earlier",
                        ancestor.display().to_string()
                    ),
                ));
            }
            if self.others.contains(&path_hash(ancestor)) {
                return Err(Error::unsafe_path(
                    name,
                    format!(
                        "its parent {:?} is restored earlier as a file, not a directory",
                        ancestor.display().to_string()
                    ),
                ));
            }
            self.dirs.insert(ancestor.to_path_buf());
        }
        Ok(())
    }

    /// Records `path` as `kind` in the modelled tree; a non-directory may
    /// not replace a directory earlier entries were written into.
    fn record(&mut self, name: &str, path: &std::path::Path, kind: &CheckedKind) -> Result<()> {
        let hash = path_hash(path);
        match kind {
            CheckedKind::Directory => {
                self.symlinks.remove(path);
                self.others.remove(&hash);
                self.dirs.insert(path.to_path_buf());
            }
            _ if self.dirs.contains(path) => {
                return Err(Error::unsafe_path(
                    name,
                    format!(
                        "would replace the directory {:?} that earlier entries are restored into",
                        path.display().to_string()
                    ),
                ));
            }
            CheckedKind::Symlink(_) => {
                self.others.remove(&hash);
                self.symlinks.insert(path.to_path_buf());
            }
            _ => {
                self.symlinks.remove(path);
                self.others.insert(hash);
            }
        }
        Ok(())
    }
    /// A device node or FIFO entry (refused unless allowed).
    fn device(&self, name: &str, t: tar::EntryType, header: &tar::Header) -> Result<CheckedKind> {
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
                name,
                format!("{what} are not restored unless allowed (--allow-devices)"),
            ));
        }
        let number = |n: io::Result<Option<u32>>| {
            n.map(Option::unwrap_or_default)
                .map_err(|e| Error::unsafe_path(name, format!("device number: {e}")))
        };
        let (major, minor) = if kind == DeviceKind::Fifo {
            (0, 0)
        } else {
            (
                number(header.device_major())?,
                number(header.device_minor())?,
            )
        };
        Ok(CheckedKind::Device { kind, major, minor })
    }

    /// Checks one entry; `sparse` is the map the header guard read for it
    /// (see [`crate::archive::HeaderGuard::with_sparse_maps`]).
    pub(crate) fn check<R: Read>(
        &mut self,
        entry: &tar::Entry<'_, R>,
        sparse: Option<SparseMap>,
    ) -> Result<(String, PathBuf, CheckedKind)> {
        let raw = entry.path_bytes();
        let name = String::from_utf8_lossy(&raw).into_owned();
        let path = sanitize_entry_path(&raw).map_err(|r| Error::unsafe_path(&name, r))?;
        let header = entry.header();
        let sparse = sparse.filter(|_| header.entry_type() == tar::EntryType::Regular);
        let kind = if let Some(map) = sparse {
            CheckedKind::Sparse(map)
        } else {
            match header.entry_type() {
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
                    self.device(&name, t, header)?
                }
                other => {
                    return Err(Error::unsafe_path(
                        &name,
                        format!("unsupported entry type {other:?}"),
                    ));
                }
            }
        };
        self.check_parents(&name, &path)?;
        if let CheckedKind::HardLink(target) = &kind {
            if target
                .ancestors()
                .skip(1)
                .any(|a| self.symlinks.contains(a))
                || self.symlinks.contains(target)
            {
                return Err(Error::unsafe_path(
                    &name,
                    "hard link would resolve through a symlink",
                ));
            }
            if self.dirs.contains(target) {
                return Err(Error::unsafe_path(
                    &name,
                    format!(
                        "hard link to {:?}, a directory in the archive",
                        target.display().to_string()
                    ),
                ));
            }
        }
        self.record(&name, &path, &kind)?;
        Ok((name, path, kind))
    }
}

pub(crate) fn read_err(name: &str, e: io::Error) -> Error {
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
    /// Of those, bytes in the holes of sparse files (which take no space).
    pub hole_bytes: u64,
    /// Things adjusted on the way (dropped setuid bits...).
    pub warnings: Vec<String>,
}

/// Validates every entry of `root.tar` without writing anything.
pub(crate) fn count(stats: &mut ExtractStats, kind: &CheckedKind) {
    match kind {
        CheckedKind::Directory => stats.directories += 1,
        CheckedKind::File(n) => {
            stats.files += 1;
            stats.bytes += n;
        }
        CheckedKind::Sparse(map) => {
            stats.files += 1;
            stats.bytes += map.size();
            stats.hole_bytes += map.holes();
        }
        CheckedKind::Symlink(_) => stats.symlinks += 1,
        CheckedKind::HardLink(_) => stats.hard_links += 1,
        CheckedKind::Device { .. } => stats.devices += 1,
    }
}
