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
    meta["Checksum"] = base64::engine::general_purpose::STANDARD
        .encode(sha1)
        .into();
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
    assert!(
        err.contains("\"esc\"") && err.contains("directory"),
        "{err}"
    );
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
    for extra in [
        &["--dry-run"][..],
        &["--stop-cmd", "touch stopped", "--yes"],
    ] {
        let mut args = vec!["restore", "--file", "a.tar.gz", "--target", "target"];
        args.extend_from_slice(extra);
        let (code, err) = env.fail(&args);
        assert_eq!(code, 5, "{extra:?}: {err}");
        assert!(
            err.contains("conf") && err.contains("directory exists"),
            "{err}"
        );
        assert_eq!(
            snapshot(env.path()),
            before,
            "{extra:?}: nothing written or run"
        );
    }
}

/// Issue 20 item 8: notes with ESC, BEL and CR (from an uploaded archive
/// and from `backups notes`) reach the terminal escaped; `list` cuts
/// them to the terminal's width, `show` prints them whole; `--json` is
/// unchanged.
#[test]
fn control_characters_in_notes_are_escaped_and_list_fits_the_terminal() {
    let env = Env::new();
    let notes = "\u{1b}[31mred\u{7}\rforged\nsecond line of a long note that goes on and on";
    let meta = serde_json::json!({
        "ID": "", "FormatVersion": 1, "Started": "2021-01-01T00:00:00Z",
        "ModelUUID": MODEL, "Notes": notes,
    });
    let archive = gz_tar(&[
        ("juju-backup/metadata.json", meta.to_string().into_bytes()),
        ("juju-backup/root.tar", vec![0u8; 1024]),
    ]);
    std::fs::write(env.path().join("a.tar.gz"), archive).unwrap();
    env.ok(&["upload", "a.tar.gz"]);
    let id = first_id(&env);
    let escaped = "\\x1b[31mred\\x07\\rforged\\nsecond line of a long note that goes on and on";
    let raw_control = |s: &str| s.chars().any(|c| c.is_control() && c != '\n');

    let list = env.ok(&["list"]);
    assert!(!raw_control(&list), "{list:?}");
    assert!(
        list.contains(escaped),
        "not cut without a terminal: {list:?}"
    );
    assert_eq!(list.lines().count(), 2, "one line per backup: {list:?}");
    let shown = env.ok(&["show", &id]);
    assert!(!raw_control(&shown), "{shown:?}");
    let notes_line = shown.lines().find(|l| l.starts_with("notes:")).unwrap();
    assert!(notes_line.ends_with(&format!(" {escaped}")), "{shown:?}");
    assert_eq!(
        env.json(&["show", &id, "--json"])["Notes"],
        notes,
        "JSON as stored"
    );

    let out = env.run_with(&["list"], &[("COLUMNS", "140")]);
    let cut = String::from_utf8(out.stdout).unwrap();
    let row = cut.lines().nth(1).unwrap();
    assert_eq!(row.chars().count(), 140, "{row:?}");
    assert!(
        row.ends_with('…') && row.contains("\\x1b[31mred"),
        "{row:?}"
    );

    env.ok(&["notes", &id, "\u{1b}]0;title\u{7}new"]);
    let list = env.ok(&["list"]);
    assert!(list.contains("\\x1b]0;title\\x07new"), "{list:?}");
}

/// Issue 20 item 8: labels are `[A-Za-z0-9._:/-]{1,64}`; others (empty,
/// with a comma, a newline, a space, too long) are refused with exit 2,
/// at create and at `label --add`.
#[test]
fn labels_outside_the_label_alphabet_are_refused() {
    let env = Env::new();
    let tree = sample_tree(env.path());
    let path = tree.to_str().unwrap();
    let long = "l".repeat(65);
    for bad in ["", "a,b", "x\ny", "a b", "\u{1b}[2J", long.as_str()] {
        let (code, err) = env.fail(&["create", "--path", path, "--label", bad]);
        assert_eq!(code, 2, "{bad:?}: {err}");
    }
    assert!(!env.store().exists(), "a refused create makes no store");
    let id = env
        .ok(&["create", "--path", path, "--label", "pre-upgrade:2.9/a_b.c"])
        .trim()
        .to_string();
    let (code, err) = env.fail(&["label", &id, "--add", "a,b"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("','"), "{err}");
    assert_eq!(
        env.json(&["show", &id, "--json"])["Labels"],
        serde_json::json!(["pre-upgrade:2.9/a_b.c"])
    );
}

/// Issue 20 item 8: `restore -v` prints file names from the archive with
/// their control characters escaped (an escape sequence or a newline in
/// a name could forge output).
#[test]
fn restore_verbose_escapes_file_names() {
    let env = Env::new();
    let a = hostile_archive(&[
        raw(b"etc/\x1b[2Jclear", tar::EntryType::Regular, b"", b"one"),
        raw(b"etc/two\nlines", tar::EntryType::Regular, b"", b"two"),
    ]);
    std::fs::write(env.path().join("a.tar.gz"), a).unwrap();
    let out = env.run(&["restore", "--file", "a.tar.gz", "--target", "t", "-v"]);
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(out.status.success(), "{err}");
    assert!(err.contains("etc/\\x1b[2Jclear"), "{err:?}");
    assert!(err.contains("etc/two\\nlines"), "{err:?}");
    assert!(
        !err.contains('\u{1b}') && !err.contains("two\nlines"),
        "{err:?}"
    );
    assert_eq!(
        std::fs::read(env.path().join("t/etc/two\nlines")).unwrap(),
        b"two"
    );
}

/// Issue 20 item 9: a file name that is not UTF-8 is backed up with its
/// exact bytes (create used to exit 7), GNU tar lists those bytes,
/// `restore` writes them back, `diff` finds nothing changed, and
/// `--rewrite` with `--rewrite-path` rewrites the file.
#[test]
fn a_file_name_that_is_not_utf8_is_backed_up_and_restored_byte_for_byte() {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    let env = Env::new();
    let src = env.path().join("src");
    std::fs::create_dir_all(src.join("d\u{e9}j\u{e0}")).unwrap();
    let bad = OsStr::from_bytes(b"bad\xff\xfename");
    std::fs::write(src.join(bad), b"addr 10.0.0.5\n").unwrap();
    std::fs::write(src.join("d\u{e9}j\u{e0}").join(bad), b"inner").unwrap();
    let src = src.canonicalize().unwrap();
    let id = env
        .ok(&["create", "--path", src.to_str().unwrap()])
        .trim()
        .to_string();

    // GNU tar, the independent reader, lists the exact bytes.
    env.ok(&["download", &id, "-o", "out.tar.gz"]);
    sh("tar -xzf out.tar.gz juju-backup/root.tar", env.path());
    let listed = sh(
        "tar --quoting-style=literal -tf juju-backup/root.tar",
        env.path(),
    )
    .stdout;
    let rel = src
        .strip_prefix("/")
        .unwrap()
        .as_os_str()
        .as_bytes()
        .to_vec();
    let want = [&rel[..], b"/bad\xff\xfename\n"].concat();
    assert!(
        listed.windows(want.len()).any(|w| w == want),
        "{}",
        String::from_utf8_lossy(&listed)
    );

    env.ok(&["restore", &id, "--target", "t"]);
    let restored = env.path().join("t").join(OsStr::from_bytes(&rel));
    assert_eq!(
        std::fs::read(restored.join(bad)).unwrap(),
        b"addr 10.0.0.5\n"
    );
    assert_eq!(
        std::fs::read(restored.join("d\u{e9}j\u{e0}").join(bad)).unwrap(),
        b"inner"
    );

    let same = env.json(&["diff", &id, "--target", "/", "--json"]);
    assert_eq!(same["Files"]["Counts"]["Different"], 0, "{same}");
    assert_eq!(
        same["Files"]["OnlyInBackup"],
        serde_json::json!([]),
        "{same}"
    );
    assert_eq!(same["Files"]["OnlyLive"], serde_json::json!([]), "{same}");

    env.ok(&[
        "restore",
        &id,
        "--target",
        "r",
        "--rewrite",
        "10.0.0.5=10.0.0.9",
        "--rewrite-path",
        "**/bad*",
    ]);
    let rewritten = env.path().join("r").join(OsStr::from_bytes(&rel)).join(bad);
    assert_eq!(std::fs::read(rewritten).unwrap(), b"addr 10.0.0.9\n");
}
