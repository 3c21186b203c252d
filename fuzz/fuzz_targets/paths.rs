//! Path sanitiser: an accepted path is relative, has no `..`, and joined to
//! a root stays under it.
#![no_main]

use std::path::{Component, Path};

use backups_core::internals::sanitize_entry_path;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = sanitize_entry_path(data) {
        assert!(p.is_relative(), "{p:?} is relative");
        assert!(
            p.components().all(|c| matches!(c, Component::Normal(_))),
            "{p:?} has only normal components"
        );
        let root = Path::new("/sandbox/root");
        assert!(
            root.join(&p).starts_with(root),
            "{p:?} stays under the root"
        );
    }
});
