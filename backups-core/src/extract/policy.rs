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

/// Static checks over the entries of one `root.tar`.
#[derive(Debug, Default)]
pub(crate) struct Policy {
    symlinks: HashSet<PathBuf>,
    pub(crate) allow_devices: bool,
}

impl Policy {
    /// Checks that accept device nodes and FIFOs only if `allow_devices`.
    pub(crate) fn new(allow_devices: bool) -> Self {
        Policy {
            symlinks: HashSet::new(),
            allow_devices,
        }
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
