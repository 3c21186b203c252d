//! Archive reader + extractor on arbitrary bytes: never panics, never
//! writes outside the target directory, and its journal accounts for
//! everything (undoing it leaves the sandbox empty, which is what a rollback
//! relies on).
#![no_main]

use std::path::Path;
use std::sync::Arc;

use backups_core::NoProgress;
use backups_core::journal::RestoreJournal;
use backups_core::internals::{Extractor, read_archive};
use libfuzzer_sys::fuzz_target;

fn files_under(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            out.push(e.path());
        }
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let Ok(sandbox) = tempfile::tempdir() else {
        return;
    };
    let target = sandbox.path().join("target");
    let journal = RestoreJournal::default();
    let Ok(extractor) = Extractor::new(&target, Arc::new(NoProgress)) else {
        return;
    };
    let mut extractor = extractor.with_journal(journal.clone());
    let _ = read_archive(data, "fuzz", Some(&mut extractor), Arc::new(NoProgress));
    // Only the target may have appeared in the sandbox.
    for p in files_under(sandbox.path()) {
        assert_eq!(
            p,
            target,
            "something was written outside the target: {}",
            p.display()
        );
    }
    // As root (directory modes cannot stop the deletion), undoing the
    // journal leaves nothing behind.
    let root = std::fs::metadata(sandbox.path()).is_ok_and(|m| {
        use std::os::unix::fs::MetadataExt;
        m.uid() == 0
    });
    if root {
        journal.undo().expect("the extraction can be undone");
        let left = files_under(sandbox.path());
        assert!(left.is_empty(), "not journaled: {left:?}");
    }
});
