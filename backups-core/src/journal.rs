//! The journal of a restore: every path it created and every file it
//! replaced, so that a failed or killed restore can be undone exactly.
//!
//! A replaced file is not lost when the new one is renamed over it: the
//! extractor first hard-links it to a stash name beside it
//! (`.<name>.backups-old-<pid>-<n>`), and the journal records the pair before
//! the link is made. Undoing renames every stash back and deletes what was
//! created, newest first; settling (after a successful restore) deletes the
//! stashes. A persisted journal is written entry by entry as the restore
//! goes, so a restore killed midway can be undone by the next one
//! ([`RestoreJournal::load`]).
//!
//! An existing directory keeps its place, but the restore may change its
//! mode, owner and mtime: those are recorded first and set back on undo.
//!
//! File format: records one after another, each a tag byte then
//! NUL-terminated fields: `C<path>\0` (created), `R<path>\0<stash>\0`
//! (replaced) or `D<path>\0<mode> <uid> <gid> <mtime>\0` (directory
//! metadata, decimal) or `N<namespace>\0...\0` (the database namespaces
//! before the load, the list ended by an empty field) or `A<name>\0` (the
//! name the database server knows the restore's loader by, see
//! [`crate::DatabaseLoader::client_name`]). A last record cut short by a
//! crash is ignored: the change it announced had not been made.

use std::ffi::OsStr;
use std::fs::{self, File};
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use crate::error::{Error, Result};

/// One change a restore made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JournalEntry {
    /// A path that did not exist before.
    Created(PathBuf),
    /// A path that existed; its old version is kept at `stash`.
    Replaced {
        /// The restored path.
        path: PathBuf,
        /// Where its previous version is kept until the restore settles.
        stash: PathBuf,
    },
    /// An existing directory whose metadata the restore may change.
    Directory {
        /// The directory.
        path: PathBuf,
        /// Its previous permission bits.
        mode: u32,
        /// Its previous owner.
        uid: u32,
        /// Its previous group.
        gid: u32,
        /// Its previous modification time (seconds since the epoch).
        mtime: i64,
    },
    /// The database namespaces that existed before the load began: undoing
    /// a killed restore drops those it added (the loader does, when the
    /// undoing restore has one).
    DatabaseBefore(Vec<String>),
    /// The name the database server knows the restore's loader by
    /// ([`crate::DatabaseLoader::client_name`]): undoing a killed restore
    /// first waits until none of that client's operations is still running
    /// at the server ([`crate::DatabaseLoader::quiesce`]).
    DatabaseClient(String),
}

/// What [`RestoreJournal::undo`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Undone {
    /// Created paths deleted.
    pub removed: usize,
    /// Replaced paths given their previous version back.
    pub restored: usize,
    /// Existing directories given their previous metadata back.
    pub directories: usize,
}

/// The changes of one restore (cheap to clone: clones share the journal).
#[derive(Debug, Clone, Default)]
pub struct RestoreJournal(Arc<Mutex<Inner>>);

#[derive(Debug, Default)]
struct Inner {
    entries: Vec<JournalEntry>,
    /// The journal file, written as entries are added.
    file: Option<File>,
    /// Where the journal file is (a persisted or loaded journal).
    path: Option<PathBuf>,
}

fn lock(j: &RestoreJournal) -> std::sync::MutexGuard<'_, Inner> {
    j.0.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Appends one record to the journal file, if the journal has one.
fn write_record(j: &mut Inner, entry: &JournalEntry) -> Result<()> {
    let Some(file) = &mut j.file else {
        return Ok(());
    };
    {
        let mut record = Vec::new();
        let paths: Vec<&Path> = match entry {
            JournalEntry::Created(p) => {
                record.push(b'C');
                vec![p]
            }
            JournalEntry::Replaced { path, stash } => {
                record.push(b'R');
                vec![path, stash]
            }
            JournalEntry::Directory { path, .. } => {
                record.push(b'D');
                vec![path]
            }
            JournalEntry::DatabaseBefore(names) => {
                record.push(b'N');
                for n in names {
                    record.extend_from_slice(n.as_bytes());
                    record.push(0);
                }
                record.push(0);
                vec![]
            }
            JournalEntry::DatabaseClient(name) => {
                record.push(b'A');
                record.extend_from_slice(name.as_bytes());
                record.push(0);
                vec![]
            }
        };
        for p in paths {
            record.extend_from_slice(p.as_os_str().as_bytes());
            record.push(0);
        }
        if let JournalEntry::Directory {
            mode,
            uid,
            gid,
            mtime,
            ..
        } = entry
        {
            record.extend_from_slice(format!("{mode} {uid} {gid} {mtime}").as_bytes());
            record.push(0);
        }
        file.write_all(&record)
            .map_err(|e| Error::io("writing journal", j.path.clone().unwrap_or_default(), e))?;
    }
    Ok(())
}

fn ignore_missing(result: io::Result<()>) -> io::Result<()> {
    match result {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

impl RestoreJournal {
    /// A journal kept in memory and in a new file at `path` (replaced if it
    /// exists), each entry written before the change it describes.
    pub fn persisted(path: &Path) -> Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            use std::os::unix::fs::DirBuilderExt;
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|e| Error::io("creating", dir, e))?;
        }
        // It names every path of the restore: private to its owner.
        let file = {
            use std::os::unix::fs::OpenOptionsExt;
            fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(path)
                .map_err(|e| Error::io("creating journal", path, e))?
        };
        Ok(RestoreJournal(Arc::new(Mutex::new(Inner {
            entries: Vec::new(),
            file: Some(file),
            path: Some(path.to_path_buf()),
        }))))
    }

    /// Reads a journal file written by [`RestoreJournal::persisted`].
    pub fn load(path: &Path) -> Result<Self> {
        let bytes = fs::read(path).map_err(|e| Error::io("reading journal", path, e))?;
        let bad = |reason: String| Error::invalid(path.display().to_string(), reason);
        let mut entries = Vec::new();
        let mut rest = &bytes[..];
        // Takes one NUL-terminated absolute path; None when cut short.
        let take = |rest: &mut &[u8]| -> Option<Result<PathBuf>> {
            let end = rest.iter().position(|b| *b == 0)?;
            let p = PathBuf::from(OsStr::from_bytes(&rest[..end]));
            *rest = &rest[end + 1..];
            Some(if p.is_absolute() {
                Ok(p)
            } else {
                Err(bad(format!(
                    "journal entry {} is not an absolute path",
                    p.display()
                )))
            })
        };
        while let Some((&tag, after)) = rest.split_first() {
            rest = after;
            let entry = match tag {
                b'C' => match take(&mut rest) {
                    Some(p) => JournalEntry::Created(p?),
                    None => break,
                },
                b'R' => match (take(&mut rest), take(&mut rest)) {
                    (Some(path), Some(stash)) => JournalEntry::Replaced {
                        path: path?,
                        stash: stash?,
                    },
                    _ => break,
                },
                b'D' => {
                    let Some(path) = take(&mut rest) else { break };
                    let Some(end) = rest.iter().position(|b| *b == 0) else {
                        break;
                    };
                    let fields = String::from_utf8_lossy(&rest[..end]).into_owned();
                    rest = &rest[end + 1..];
                    let n: Vec<i64> = fields
                        .split(' ')
                        .map(str::parse)
                        .collect::<std::result::Result<_, _>>()
                        .map_err(|_| bad(format!("bad directory record {fields:?}")))?;
                    let [mode, uid, gid, mtime] = n[..] else {
                        return Err(bad(format!("bad directory record {fields:?}")));
                    };
                    let small = |v: i64| {
                        u32::try_from(v)
                            .map_err(|_| bad(format!("bad directory record {fields:?}")))
                    };
                    JournalEntry::Directory {
                        path: path?,
                        mode: small(mode)?,
                        uid: small(uid)?,
                        gid: small(gid)?,
                        mtime,
                    }
                }
                b'N' => {
                    let mut names = Vec::new();
                    let mut complete = false;
                    while let Some(end) = rest.iter().position(|b| *b == 0) {
                        let name = String::from_utf8_lossy(&rest[..end]).into_owned();
                        rest = &rest[end + 1..];
                        if name.is_empty() {
                            complete = true;
                            break;
                        }
                        names.push(name);
                    }
                    if !complete {
                        break;
                    }
                    JournalEntry::DatabaseBefore(names)
                }
                b'A' => {
                    let Some(end) = rest.iter().position(|b| *b == 0) else {
                        break;
                    };
                    let name = String::from_utf8_lossy(&rest[..end]).into_owned();
                    rest = &rest[end + 1..];
                    JournalEntry::DatabaseClient(name)
                }
                other => return Err(bad(format!("unknown journal record {other:#04x}"))),
            };
            entries.push(entry);
        }
        Ok(RestoreJournal(Arc::new(Mutex::new(Inner {
            entries,
            file: None,
            path: Some(path.to_path_buf()),
        }))))
    }

    fn add(&self, entry: JournalEntry) -> Result<()> {
        let mut j = lock(self);
        write_record(&mut j, &entry)?;
        j.entries.push(entry);
        Ok(())
    }

    /// Records, in the journal file only, a temporary path about to be
    /// created: undoing a killed restore removes it if it is still there
    /// (a restore that is not killed removes its own temporary files).
    pub(crate) fn temporary(&self, path: &Path) -> Result<()> {
        write_record(&mut lock(self), &JournalEntry::Created(path.to_path_buf()))
    }

    /// Records a path that was just created.
    pub(crate) fn created(&self, path: &Path) -> Result<()> {
        self.add(JournalEntry::Created(path.to_path_buf()))
    }

    /// Records that `path` is about to be replaced, its current version
    /// kept at `stash` (call before making the stash).
    pub(crate) fn replacing(&self, path: &Path, stash: &Path) -> Result<()> {
        self.add(JournalEntry::Replaced {
            path: path.to_path_buf(),
            stash: stash.to_path_buf(),
        })
    }

    /// Records an existing directory's metadata before the restore changes it.
    pub(crate) fn directory(&self, path: &Path, meta: &fs::Metadata) -> Result<()> {
        use std::os::unix::fs::MetadataExt;
        self.add(JournalEntry::Directory {
            path: path.to_path_buf(),
            mode: meta.mode() & 0o7777,
            uid: meta.uid(),
            gid: meta.gid(),
            mtime: meta.mtime(),
        })
    }

    /// Records the database namespaces that exist before the load.
    pub(crate) fn database_before(&self, namespaces: &[String]) -> Result<()> {
        self.add(JournalEntry::DatabaseBefore(namespaces.to_vec()))
    }

    /// Records the name the database server knows the restore's loader by.
    pub(crate) fn database_client(&self, name: &str) -> Result<()> {
        self.add(JournalEntry::DatabaseClient(name.to_string()))
    }

    /// The name of the restore's database client, if it was recorded.
    pub fn database_client_name(&self) -> Option<String> {
        lock(self).entries.iter().find_map(|e| match e {
            JournalEntry::DatabaseClient(name) => Some(name.clone()),
            _ => None,
        })
    }

    /// The database namespaces recorded before the load, if any.
    pub fn namespaces_before(&self) -> Option<Vec<String>> {
        lock(self).entries.iter().find_map(|e| match e {
            JournalEntry::DatabaseBefore(names) => Some(names.clone()),
            _ => None,
        })
    }

    /// The changes recorded so far, oldest first.
    pub fn entries(&self) -> Vec<JournalEntry> {
        lock(self).entries.clone()
    }

    /// Takes the restore back, newest change first: created files, links and
    /// special files are deleted, created directories once empty (one that
    /// holds something else is left), and every replaced path gets its
    /// previous version back from its stash.
    pub fn undo(&self) -> Result<Undone> {
        let entries = std::mem::take(&mut lock(self).entries);
        let mut done = Undone::default();
        for entry in entries.iter().rev() {
            match entry {
                JournalEntry::Created(path) => {
                    if remove_created(path)? {
                        done.removed += 1;
                    }
                }
                JournalEntry::Replaced { path, stash } => {
                    let Ok(kept) = fs::symlink_metadata(stash) else {
                        continue; // the replacement never happened
                    };
                    use std::os::unix::fs::MetadataExt;
                    let same = |m: &fs::Metadata| m.dev() == kept.dev() && m.ino() == kept.ino();
                    if fs::symlink_metadata(path).is_ok_and(|m| same(&m)) {
                        // Killed before the new version was renamed over it:
                        // `path` is still the previous version (rename(2)
                        // between two links of one file does nothing).
                        fs::remove_file(stash)
                            .map_err(|e| Error::io("removing the previous version", stash, e))?;
                        done.restored += 1;
                        continue;
                    }
                    if fs::symlink_metadata(path).is_ok_and(|m| m.is_dir()) {
                        // A directory the restore made in its place.
                        fs::remove_dir(path).map_err(|e| Error::io("removing", path, e))?;
                    }
                    fs::rename(stash, path)
                        .map_err(|e| Error::io("putting back the previous version of", path, e))?;
                    done.restored += 1;
                }
                JournalEntry::Directory {
                    path,
                    mode,
                    uid,
                    gid,
                    mtime,
                } => {
                    use std::os::unix::fs::PermissionsExt;
                    if !fs::symlink_metadata(path).is_ok_and(|m| m.is_dir()) {
                        continue;
                    }
                    let _ = std::os::unix::fs::lchown(path, Some(*uid), Some(*gid));
                    fs::set_permissions(path, fs::Permissions::from_mode(*mode))
                        .map_err(|e| Error::io("setting back the mode of", path, e))?;
                    let at = rustix::fs::Timespec {
                        tv_sec: *mtime,
                        tv_nsec: 0,
                    };
                    rustix::fs::utimensat(
                        rustix::fs::CWD,
                        path,
                        &rustix::fs::Timestamps {
                            last_access: at,
                            last_modification: at,
                        },
                        rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
                    )
                    .map_err(|e| Error::io("setting back the mtime of", path, e.into()))?;
                    done.directories += 1;
                }
                // The database is the loader's to undo (see namespaces_before).
                JournalEntry::DatabaseBefore(_) | JournalEntry::DatabaseClient(_) => {}
            }
        }
        Ok(done)
    }

    /// The restore stands: deletes the stashed previous versions and the
    /// journal file.
    pub fn settle(&self) -> Result<()> {
        let (entries, path) = {
            let mut j = lock(self);
            j.file = None;
            (std::mem::take(&mut j.entries), j.path.take())
        };
        for entry in &entries {
            if let JournalEntry::Replaced { stash, .. } = entry {
                ignore_missing(fs::remove_file(stash))
                    .map_err(|e| Error::io("removing the previous version", stash, e))?;
            }
        }
        if let Some(path) = path {
            ignore_missing(fs::remove_file(&path))
                .map_err(|e| Error::io("removing journal", &path, e))?;
        }
        Ok(())
    }
}

/// Deletes one created path; false when it was gone or is a directory that
/// holds something else.
fn remove_created(path: &Path) -> Result<bool> {
    let meta = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(Error::io("inspecting", path, e)),
    };
    let result = if meta.is_dir() {
        match fs::remove_dir(path) {
            Err(e) if e.kind() == io::ErrorKind::DirectoryNotEmpty => return Ok(false),
            other => other,
        }
    } else {
        fs::remove_file(path)
    };
    match result {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(Error::io("removing", path, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_persisted_journal_loads_back_and_a_cut_record_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("j/restore-x.created");
        let j = RestoreJournal::persisted(&file).unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        j.created(&a).unwrap();
        j.replacing(&b, &dir.path().join(".b.old")).unwrap();
        j.directory(dir.path(), &std::fs::metadata(dir.path()).unwrap())
            .unwrap();
        let recorded = j.entries();
        drop(j);
        let mut bytes = std::fs::read(&file).unwrap();
        bytes.extend_from_slice(b"R/half\0/writ");
        std::fs::write(&file, &bytes).unwrap();
        let loaded = RestoreJournal::load(&file).unwrap();
        assert_eq!(loaded.entries(), recorded);
        assert_eq!(recorded[0], JournalEntry::Created(a));
        assert_eq!(
            recorded[1],
            JournalEntry::Replaced {
                path: b,
                stash: dir.path().join(".b.old")
            }
        );
        std::fs::write(&file, b"Crelative\0").unwrap();
        assert!(RestoreJournal::load(&file).is_err(), "only absolute paths");
        std::fs::write(&file, b"X/a\0").unwrap();
        assert!(RestoreJournal::load(&file).is_err(), "unknown record");
    }

    #[test]
    fn the_namespaces_before_a_load_round_trip_and_a_cut_list_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("restore-n.journal");
        let j = RestoreJournal::persisted(&file).unwrap();
        let a = dir.path().join("a");
        j.created(&a).unwrap();
        j.database_before(&["juju.machines".into(), "juju.units".into()])
            .unwrap();
        j.database_before(&[]).unwrap();
        j.database_client("backups-load-1-2").unwrap();
        let back = RestoreJournal::load(&file).unwrap();
        assert_eq!(
            back.database_client_name().as_deref(),
            Some("backups-load-1-2")
        );
        assert_eq!(
            back.namespaces_before(),
            Some(vec!["juju.machines".to_string(), "juju.units".to_string()])
        );
        assert_eq!(back.entries().len(), 4);
        // Cut inside the list: the record (and so the list) is ignored.
        let bytes = std::fs::read(&file).unwrap();
        let start = bytes.iter().position(|b| *b == b'N').unwrap();
        std::fs::write(&file, &bytes[..start + 8]).unwrap();
        let cut = RestoreJournal::load(&file).unwrap();
        assert_eq!(cut.namespaces_before(), None);
        assert_eq!(cut.entries(), vec![JournalEntry::Created(a)]);
    }

    #[test]
    fn undo_puts_back_replaced_versions_newest_first_and_settle_drops_them() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("conf");
        std::fs::write(&p, "original").unwrap();
        let j = RestoreJournal::default();
        // Replaced twice (duplicate entries in an archive): undo must end
        // with the original, not the first replacement.
        for (n, content) in ["first", "second"].iter().enumerate() {
            let stash = dir.path().join(format!(".conf.old{n}"));
            j.replacing(&p, &stash).unwrap();
            std::fs::hard_link(&p, &stash).unwrap();
            let tmp = dir.path().join(".tmp");
            std::fs::write(&tmp, content).unwrap();
            std::fs::rename(&tmp, &p).unwrap();
        }
        let created = dir.path().join("new");
        std::fs::write(&created, "n").unwrap();
        j.created(&created).unwrap();
        assert_eq!(
            j.undo().unwrap(),
            Undone {
                removed: 1,
                restored: 2,
                directories: 0
            }
        );
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "original");
        assert!(!created.exists());
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1, "no stash left after undo");

        let j = RestoreJournal::default();
        let stash = dir.path().join(".conf.old");
        j.replacing(&p, &stash).unwrap();
        std::fs::hard_link(&p, &stash).unwrap();
        j.settle().unwrap();
        assert!(!stash.exists() && p.exists());
    }
}
