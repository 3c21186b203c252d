//! Rewrite rules over arbitrary text and BSON: never panics; the count
//! agrees with the rewrite; nothing is left to rewrite afterwards (no NEW
//! holds an OLD); a rewritten document is well formed.
#![no_main]

use backups_core::rewrite::Rewrites;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(rw) = Rewrites::parse(["10.0.0.5=10.0.9.9", "10.0.0.5:17070=api", "host-a=h"]) else {
        return;
    };
    if let Ok(text) = std::str::from_utf8(data) {
        let (out, n) = rw.rewrite_str(text);
        assert_eq!(rw.count(text), n);
        assert_eq!(rw.count(&out), 0, "nothing left to rewrite: {out:?}");
        if n == 0 {
            assert_eq!(out, text);
        }
    }
    match rw.rewrite_bson(data) {
        Ok(Some((out, n))) => {
            assert!(n > 0);
            assert_eq!(rw.count_bson(data), Ok(n));
            assert_eq!(rw.count_bson(&out), Ok(0), "a well-formed, rewritten document");
        }
        Ok(None) => assert_eq!(rw.count_bson(data), Ok(0)),
        Err(_) => assert!(rw.count_bson(data).is_err()),
    }
});
