//! Full disks: clear errors, nothing lost, nothing left behind.

use std::path::{Path, PathBuf};
use std::process::Command;

use backups_core::test_util::noise;

use crate::support::*;

// ---- full disks ---------------------------------------------------------------

/// A 1 MiB tmpfs, unmounted when dropped (mounting needs root; outside CI
/// a machine without it skips, under CI=true it fails).
struct SmallDisk(PathBuf);

impl SmallDisk {
    fn mount(at: PathBuf) -> Option<Self> {
        std::fs::create_dir_all(&at).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
            .arg(&at)
            .output()
            .unwrap();
        if out.status.success() {
            return Some(SmallDisk(at));
        }
        let why = String::from_utf8_lossy(&out.stderr);
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("cannot mount a small tmpfs for the full-disk test under CI=true: {why}");
        }
        eprintln!("skipping: cannot mount a tmpfs ({why})");
        None
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn full_disks_are_clear_errors_and_lose_nothing() {
    let env = Env::new();
    let Some(disk) = SmallDisk::mount(env.path().join("small")) else {
        return;
    };
    let data = env.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    for i in 0..3 {
        std::fs::write(data.join(format!("blob{i}")), noise(1 << 20, i + 1)).unwrap();
    }
    let id = env
        .ok(&["create", "--path", data.to_str().unwrap()])
        .trim()
        .to_string();

    // A store on the full disk: the create fails, nothing is listed and no
    // staging file is left behind.
    let small_store = disk.0.join("store");
    let out = Command::new(BIN)
        .args([
            "--store",
            small_store.to_str().unwrap(),
            "--progress",
            "none",
        ])
        .args(["create", "--path", data.to_str().unwrap()])
        .env("BACKUPS_MODEL_UUID", MODEL)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(6), "{err}");
    assert!(
        err.contains("No space left on device") && err.contains("hint: that filesystem is full"),
        "{err}"
    );
    let left: Vec<_> = std::fs::read_dir(&small_store)
        .map(|d| d.map(|e| e.unwrap().file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "nothing left in the store: {left:?}");

    // Every restore refuses before touching anything: the free-space
    // preflight, with a plan (hooks), plainly, and in a dry run (exit 7,
    // what it needs and what is free).
    let target = disk.0.join("t");
    std::fs::create_dir_all(&target).unwrap();
    std::fs::write(target.join("keep"), "keep").unwrap();
    let before = snapshot(&disk.0);
    let t = target.to_str().unwrap();
    for args in [
        &[
            "restore",
            &id,
            "--target",
            t,
            "--stop-cmd",
            "true",
            "--no-safety-backup",
            "--yes",
        ][..],
        &["restore", &id, "--target", t],
        &["restore", &id, "--target", t, "--dry-run"],
    ] {
        let (code, err) = env.fail(args);
        assert_eq!(code, 7, "{args:?}: {err}");
        assert!(
            err.contains("not enough free disk space: needs 3.6 MiB")
                && err.contains("free on its filesystem")
                && err.contains(t),
            "{args:?}: {err}"
        );
        assert_eq!(snapshot(&disk.0), before, "{args:?}: nothing changed");
    }

    // Past the check (--ignore-free-space) a restore runs out of space
    // midway: a clear error naming the file, and what it wrote is taken
    // back (no temporary file, no partial file left behind).
    let (code, err) = env.fail(&[
        "restore",
        &id,
        "--target",
        t,
        "--ignore-free-space",
        "--no-safety-backup",
    ]);
    assert_eq!(code, 7, "{err}");
    assert!(
        err.contains("No space left on device") && err.contains("blob"),
        "{err}"
    );
    assert_eq!(
        snapshot(&disk.0),
        before,
        "what the restore wrote was taken back"
    );
    let mut temps = Vec::new();
    for e in walk_all(&target) {
        if e.to_string_lossy().contains(".backups-tmp-") {
            temps.push(e);
        }
    }
    assert!(temps.is_empty(), "temporary files left: {temps:?}");
    assert_eq!(
        std::fs::read_to_string(target.join("keep")).unwrap(),
        "keep"
    );
}

fn walk_all(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(root) {
        for e in entries {
            let p = e.unwrap().path();
            if p.is_dir() && !p.is_symlink() {
                out.extend(walk_all(&p));
            }
            out.push(p);
        }
    }
    out
}
