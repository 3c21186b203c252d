//! Tests of the extractor: journaled extraction undone exactly, small
//! files in flight kept in the archive's order.

use super::super::sys::set_mtime_nofollow;
use super::*;

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

#[test]
fn small_files_in_flight_keep_the_archive_order() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("t");
    let mut tar = tar::Builder::new(Vec::new());
    let file = |tar: &mut tar::Builder<Vec<u8>>, name: &str, body: &str| {
        let mut h = tar::Header::new_gnu();
        h.set_size(body.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        tar.append_data(&mut h, name, body.as_bytes()).unwrap();
    };
    for i in 0..200 {
        file(&mut tar, &format!("many/{i}"), &i.to_string());
    }
    file(&mut tar, "a", "first");
    file(&mut tar, "a", "second");
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Link);
    h.set_size(0);
    h.set_cksum();
    tar.append_link(&mut h, "b", "a").unwrap();
    file(&mut tar, "x", "a file");
    file(&mut tar, "x/y", "below a file");
    let bytes = tar.into_inner().unwrap();
    let mut x = Extractor::new(&target, Arc::new(crate::progress::NoProgress)).unwrap();
    let err = x.visit(&mut &bytes[..]).unwrap_err().to_string();
    assert!(
        err.contains("restored earlier as a file, not a directory"),
        "{err}"
    );
    let root = target.canonicalize().unwrap();
    assert_eq!(fs::read_to_string(root.join("a")).unwrap(), "second");
    assert_eq!(fs::read_to_string(root.join("b")).unwrap(), "second");
    assert_eq!(fs::read_to_string(root.join("x")).unwrap(), "a file");
    for i in 0..200 {
        assert_eq!(
            fs::read_to_string(root.join(format!("many/{i}"))).unwrap(),
            i.to_string()
        );
    }
    let left: Vec<_> = tree(&target)
        .into_iter()
        .filter(|(name, _)| name.contains(".backups-"))
        .collect();
    assert!(left.is_empty(), "no temp names left: {left:?}");
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
    let mut x = Extractor::new(target, Arc::new(crate::progress::NoProgress))
        .unwrap()
        .with_journal(journal.clone());
    x.visit(&mut &root_tar[..]).unwrap();
    journal
}
