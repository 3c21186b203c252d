//! A restored file's contents rewritten ([`crate::rewrite`]): which
//! entries qualify, and their new bytes.

use std::io::Read;
use std::path::Path;

use crate::error::Result;
use crate::rewrite::{MAX_REWRITE_FILE, Rewrites};

use super::policy::read_err;

/// The name (relative path) under which a regular file of `size` bytes at
/// `rel` is rewritten, if the rules are given and cover it; its contents
/// are checked when read ([`rewrite_entry`]).
pub(super) fn qualifies(rewrites: Option<&Rewrites>, rel: &Path, size: u64) -> Option<String> {
    (size <= MAX_REWRITE_FILE && rewrites?.applies_to_rel_path(rel))
        .then(|| rel.to_string_lossy().into_owned())
}

/// A file's contents after the rules: the original bytes when they are not
/// UTF-8 or nothing matched.
pub(super) struct Rewritten {
    pub(super) bytes: Vec<u8>,
    pub(super) replacements: u64,
}

/// Reads the whole entry (at most [`MAX_REWRITE_FILE`] bytes, checked by
/// [`qualifies`]) and rewrites it if it is UTF-8 text.
pub(super) fn rewrite_entry(name: &str, entry: &mut dyn Read, rw: &Rewrites) -> Result<Rewritten> {
    let mut bytes = Vec::new();
    entry
        .take(MAX_REWRITE_FILE)
        .read_to_end(&mut bytes)
        .map_err(|e| read_err(name, e))?;
    let replaced = match std::str::from_utf8(&bytes) {
        Ok(text) => match rw.rewrite_str(text) {
            (_, 0) => None,
            (new, n) => Some((new.into_owned().into_bytes(), n)),
        },
        Err(_) => None,
    };
    Ok(match replaced {
        Some((bytes, replacements)) => Rewritten {
            bytes,
            replacements,
        },
        None => Rewritten {
            bytes,
            replacements: 0,
        },
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use crate::archive::reader::RootVisitor;
    use crate::extract::{ExtractOptions, Extractor, RootCheck};
    use crate::journal::RestoreJournal;
    use crate::progress::NoProgress;
    use crate::rewrite::{MAX_REWRITE_FILE, Rewrites};

    fn root_tar(files: &[(&str, Vec<u8>)]) -> Vec<u8> {
        let mut tar = tar::Builder::new(Vec::new());
        for (name, body) in files {
            let mut h = tar::Header::new_gnu();
            h.set_size(body.len() as u64);
            h.set_mode(0o640);
            h.set_cksum();
            tar.append_data(&mut h, name, &body[..]).unwrap();
        }
        tar.into_inner().unwrap()
    }

    #[test]
    fn only_small_utf8_files_in_scope_are_rewritten_and_the_journal_undoes_it() {
        let mut big = b"10.0.0.5\n".to_vec();
        big.resize(MAX_REWRITE_FILE as usize + 1, b'x');
        let binary = b"\xff\xfe 10.0.0.5 \x00".to_vec();
        let files = [
            ("etc/a.conf", b"api: 10.0.0.5:17070 10.0.0.50\n".to_vec()),
            ("etc/bin", binary.clone()),
            ("etc/big", big.clone()),
            ("etc/other.txt", b"10.0.0.5\n".to_vec()),
        ];
        let tar = root_tar(&files);
        let rw = Arc::new(
            Rewrites::parse(["10.0.0.5=10.0.9.9"])
                .unwrap()
                .with_paths(&["*.conf".into(), "etc/bin".into(), "etc/big".into()])
                .unwrap(),
        );

        let mut check = RootCheck::new(ExtractOptions::default()).with_rewrites(Some(rw.clone()));
        check.visit(&mut &tar[..]).unwrap();
        let expected: std::collections::BTreeMap<String, u64> =
            [("etc/a.conf".to_string(), 1)].into();
        assert_eq!(check.rewritten.files, expected, "the dry run's count");

        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("t");
        std::fs::create_dir_all(target.join("etc")).unwrap();
        std::fs::write(target.join("etc/a.conf"), "previous").unwrap();
        let journal = RestoreJournal::default();
        let mut x = Extractor::new(&target, Arc::new(NoProgress))
            .unwrap()
            .with_journal(journal.clone())
            .with_rewrites(rw);
        x.visit(&mut &tar[..]).unwrap();
        assert_eq!(x.rewritten, expected);
        assert_eq!(
            x.stats.bytes,
            files.iter().map(|f| f.1.len() as u64).sum::<u64>()
        );
        let read = |p: &str| std::fs::read(target.join(p)).unwrap();
        assert_eq!(read("etc/a.conf"), b"api: 10.0.9.9:17070 10.0.0.50\n");
        assert_eq!(read("etc/bin"), binary, "not UTF-8: untouched");
        assert_eq!(read("etc/big"), big, "over the size limit: untouched");
        assert_eq!(read("etc/other.txt"), b"10.0.0.5\n", "out of scope");
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(target.join("etc/a.conf"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o7777, 0o640, "the entry's mode");
        }
        journal.undo().unwrap();
        assert_eq!(read("etc/a.conf"), b"previous", "the rollback puts it back");
        assert!(!target.join("etc/bin").exists());
    }
}
