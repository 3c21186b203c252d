//! Metadata parser: never panics; whatever parses serialises and parses
//! back to the same value (round trip).
#![no_main]

use backups_core::Metadata;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = Metadata::from_json(data, "fuzz") {
        let again =
            Metadata::from_json(&m.to_json(), "fuzz round trip").expect("what we write, we read");
        assert_eq!(again, m, "round trip changes nothing");
    }
});
