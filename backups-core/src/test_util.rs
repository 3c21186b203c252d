//! Helpers shared by the tests of every crate in the workspace: looking up
//! the test services' environment, names no other test run uses, and small
//! file trees to back up.
//!
//! Behind the `test-util` feature, like [`crate::conformance`] and
//! [`crate::fault`].

#![allow(clippy::unwrap_used)] // test support: a panic is how a test fails

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// The model UUID tests give their backups.
pub const MODEL: &str = "0b6e3c52-8f1a-4c1e-9d3a-2f6c9a7e5b10";

/// The value of the environment variable `var`, set by `scripts/services`
/// (`. .services/env`) for a test service (moto, Garage, Azurite, MongoDB).
///
/// When it is unset the test should be skipped: this prints "skipping" and
/// returns `None`, except under `CI=true`, where a missing service is a
/// failure and this panics.
pub fn service_env(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(v) => Some(v),
        Err(_) if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("{var} is not set under CI=true: start the services with scripts/services start")
        }
        Err(_) => {
            eprintln!(
                "skipping: {var} is not set (run scripts/services start, then . .services/env)"
            );
            None
        }
    }
}

/// A name starting with `prefix` that no other call, test or test process
/// returns: `prefix-<nanoseconds>-<pid>-<counter>`, in lowercase hex and
/// digits, usable as a key prefix, a database name or a file name.
pub fn unique_name(prefix: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "{prefix}-{:x}-{}-{}",
        nanos & 0xffff_ffff_ffff_ffff,
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    )
}

/// `len` incompressible bytes (xorshift from `seed`, which must not be 0):
/// the same `seed` always gives the same bytes.
pub fn noise(len: usize, mut seed: u64) -> Vec<u8> {
    assert_ne!(seed, 0, "xorshift never leaves 0");
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        out.extend_from_slice(&seed.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Builds a small tree (nested dirs, an empty file, a 0600 file, a relative
/// symlink) in `root/tree` and returns its canonical path.
pub fn sample_tree(root: &Path) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let tree = root.join("tree");
    std::fs::create_dir_all(tree.join("etc/app")).expect("mkdir");
    std::fs::write(tree.join("etc/app/config.yaml"), b"answer: 42\n").expect("write");
    std::fs::write(tree.join("etc/app/empty"), b"").expect("write");
    std::fs::write(tree.join("secret.pem"), vec![b'k'; 70_000]).expect("write");
    std::fs::set_permissions(
        tree.join("secret.pem"),
        std::fs::Permissions::from_mode(0o600),
    )
    .expect("chmod");
    std::os::unix::fs::symlink("etc/app/config.yaml", tree.join("current")).expect("symlink");
    tree.canonicalize().expect("canonicalize")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_names_differ_and_keep_their_prefix() {
        let (a, b) = (unique_name("t"), unique_name("t"));
        assert_ne!(a, b);
        assert!(a.starts_with("t-") && b.starts_with("t-"), "{a} {b}");
        assert!(
            a.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
            "{a}"
        );
    }

    #[test]
    fn noise_is_repeatable_and_does_not_compress() {
        assert_eq!(noise(1000, 7), noise(1000, 7));
        assert_ne!(noise(1000, 7), noise(1000, 8));
        assert_eq!(noise(1001, 7).len(), 1001);
        let distinct: std::collections::BTreeSet<u8> = noise(4096, 7).into_iter().collect();
        assert!(distinct.len() > 200, "{} distinct bytes", distinct.len());
    }
}
