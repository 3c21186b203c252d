//! The system calls of extraction: special files, times and owners set
//! without following links, and the one way every entry lands in the
//! target (made under a temp name beside it, given its attributes, renamed
//! over the destination; the temp name removed on any failure).

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::error::{Error, Result};

use super::policy::DeviceKind;

/// What an entry's header says about its owner, mode and mtime; `None`
/// leaves that attribute alone.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Attributes {
    /// User and group ids (applied where permitted, i.e. as root).
    pub(super) owner: (Option<u64>, Option<u64>),
    /// Permission bits (never applied to a symlink).
    pub(super) mode: Option<u32>,
    /// Modification time, seconds since the epoch.
    pub(super) mtime: Option<u64>,
}

/// Makes an entry at `tmp` with `make`, applies `attributes` (owner first:
/// a chown clears setuid bits), then renames it over `dest`. On any
/// failure `tmp` is removed, so nothing is left beside `dest`.
pub(super) fn place(
    tmp: &Path,
    dest: &Path,
    attributes: Attributes,
    make: impl FnOnce(&Path) -> Result<()>,
) -> Result<()> {
    let result = make(tmp)
        .and_then(|()| set_attributes(tmp, attributes))
        .and_then(|()| fs::rename(tmp, dest).map_err(|e| Error::io("renaming into", dest, e)));
    if result.is_err() {
        let _ = fs::remove_file(tmp);
    }
    result
}

/// Applies `attributes` to `path` itself (never through a symlink, never
/// opening it: a FIFO would block).
fn set_attributes(path: &Path, attributes: Attributes) -> Result<()> {
    chown(path, attributes.owner);
    if let Some(mode) = attributes.mode {
        fs::set_permissions(path, fs::Permissions::from_mode(mode))
            .map_err(|e| Error::io("setting mode of", path, e))?;
    }
    match attributes.mtime {
        Some(mtime) => set_mtime_nofollow(path, mtime),
        None => Ok(()),
    }
}

/// Creates a device node or FIFO (device nodes need root, or CAP_MKNOD).
pub(super) fn make_device(path: &Path, kind: DeviceKind, major: u32, minor: u32) -> Result<()> {
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
pub(super) fn set_mtime_nofollow(path: &Path, mtime: u64) -> Result<()> {
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

/// Ownership is restored where permitted (as root); elsewhere it is skipped.
pub(super) fn chown(path: &Path, (uid, gid): (Option<u64>, Option<u64>)) {
    let uid = uid.and_then(|u| u32::try_from(u).ok());
    let gid = gid.and_then(|g| u32::try_from(g).ok());
    let _ = std::os::unix::fs::lchown(path, uid, gid);
}
