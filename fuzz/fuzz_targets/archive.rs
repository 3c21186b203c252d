//! Archive reader + extractor on arbitrary bytes: never panics, and
//! never writes outside the target directory.
#![no_main]

use std::path::Path;
use std::sync::Arc;

use backups_core::NoProgress;
use backups_core::archive::reader::read_archive;
use backups_core::extract::Extractor;
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
    let Ok(mut extractor) = Extractor::new(&target, Arc::new(NoProgress)) else {
        return;
    };
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
});
