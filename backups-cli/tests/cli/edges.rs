//! Issue 20, "nothing lost at the edges": archives that verify but could
//! not be restored, secrets deep in metadata, control characters on the
//! terminal, file names that are not UTF-8.

use base64::Engine;
use serde_json::Value;
use sha1::Digest;

use crate::hostile::{hostile_archive, raw};
use crate::support::*;

/// Puts `archive` in the store as a backup, the way a store written by
/// someone else (or by an older version that accepted it) would hold it:
/// a plain archive uploaded first, then its bytes replaced and its
/// sidecar's size and checksum made to match. Returns the id.
pub(crate) fn plant(env: &Env, archive: &[u8]) -> String {
    let plain = hostile_archive(&[raw(b"etc/ok", tar::EntryType::Regular, b"", b"fine")]);
    std::fs::write(env.path().join("plain.tar.gz"), plain).unwrap();
    env.ok(&["upload", "plain.tar.gz"]);
    let id = first_id(env);
    let sidecar = env.store().join(format!("{id}.json"));
    let mut meta: Value = serde_json::from_slice(&std::fs::read(&sidecar).unwrap()).unwrap();
    let name = meta["Archive"].as_str().unwrap().to_string();
    std::fs::write(env.store().join(name), archive).unwrap();
    let sha1 = sha1::Sha1::digest(archive);
    meta["Checksum"] = base64::engine::general_purpose::STANDARD.encode(sha1).into();
    meta["Size"] = archive.len().into();
    meta.as_object_mut().unwrap().remove("SHA256");
    std::fs::write(&sidecar, meta.to_string()).unwrap();
    id
}

/// Issue 20 item 4: `esc/evil` (a file), then `esc -> /outside` (a
/// symlink over the directory it is in). Each entry is fine alone; the
/// tree they make is not. A store that took it before `upload` checked
/// the tree: `verify --read-data` fails it (it said ok); `restore --file`
/// refuses it before writing anything (it wrote `esc/evil`, then stopped
/// with exit 5). The corpus case `symlink-over-directory.tar.gz` shows
/// `upload` refusing it.
#[test]
fn a_tree_the_restore_could_not_make_fails_verify_and_writes_nothing() {
    let env = Env::new();
    let hostile = hostile_archive(&[
        raw(b"esc/evil", tar::EntryType::Regular, b"", b"pwned"),
        raw(b"esc", tar::EntryType::Symlink, b"/outside", b""),
    ]);
    let id = plant(&env, &hostile);
    let out = env.run(&["verify", &id, "--read-data"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(5), "{stdout}");
    assert!(
        stdout.contains("read-data FAILED") && stdout.contains("\"esc\""),
        "{stdout}"
    );
    std::fs::write(env.path().join("esc.tar.gz"), &hostile).unwrap();
    let before = snapshot(env.path());
    let (code, err) = env.fail(&["restore", "--file", "esc.tar.gz", "--target", "target"]);
    assert_eq!(code, 5, "{err}");
    assert!(err.contains("\"esc\"") && err.contains("directory"), "{err}");
    assert_eq!(snapshot(env.path()), before, "nothing written");
}

/// Issue 20 item 4, against the live target: a symlink where the target
/// holds a directory is refused by the check a dry run and a restore with
/// hooks make first, before a hook runs or a byte is written (a restore
/// with hooks stopped the services, wrote `aaa`, then failed).
#[test]
fn a_symlink_over_a_live_directory_is_refused_before_anything_runs() {
    let env = Env::new();
    let a = hostile_archive(&[
        raw(b"aaa", tar::EntryType::Regular, b"", b"first"),
        raw(b"conf", tar::EntryType::Symlink, b"/elsewhere", b""),
    ]);
    std::fs::write(env.path().join("a.tar.gz"), a).unwrap();
    std::fs::create_dir_all(env.path().join("target/conf")).unwrap();
    let before = snapshot(env.path());
    for extra in [&["--dry-run"][..], &["--stop-cmd", "touch stopped", "--yes"]] {
        let mut args = vec!["restore", "--file", "a.tar.gz", "--target", "target"];
        args.extend_from_slice(extra);
        let (code, err) = env.fail(&args);
        assert_eq!(code, 5, "{extra:?}: {err}");
        assert!(err.contains("conf") && err.contains("directory exists"), "{err}");
        assert_eq!(snapshot(env.path()), before, "{extra:?}: nothing written or run");
    }
}
