//! The harness: the `backups` binary run in a temp dir against a local
//! store ([`Env`]), the trees it backs up, snapshots of what is on disk,
//! and the archive builders and tools more than one area uses.

use std::collections::BTreeMap;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use flate2::Compression;
use flate2::write::GzEncoder;
use serde_json::Value;

pub use backups_core::test_util::MODEL;

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_backups");

/// The directory of the real Juju archives (`valid-backup.tar.gz`...).
pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures/juju")
}

/// A temp dir with a store in it; runs the binary against that store.
pub struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    pub fn new() -> Self {
        Env {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn store(&self) -> PathBuf {
        self.path().join("store")
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.run_with(args, &[])
    }

    /// Runs with extra environment variables (`BACKUPS_MONGO_URI`...).
    pub fn run_with(&self, args: &[&str], envs: &[(&str, &str)]) -> Output {
        Command::new(BIN)
            .args([
                "--store",
                self.store().to_str().unwrap(),
                "--progress",
                "none",
            ])
            .args(args)
            .env_remove("BACKUPS_STORE")
            .env("BACKUPS_MODEL_UUID", MODEL)
            .env("BACKUPS_STATE_DIR", self.path().join("state"))
            .envs(envs.iter().copied())
            .current_dir(self.path())
            .output()
            .unwrap()
    }

    /// Runs and expects success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "backups {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs and expects failure; returns (exit code, stderr).
    pub fn fail(&self, args: &[&str]) -> (i32, String) {
        let out = self.run(args);
        assert!(
            !out.status.success(),
            "backups {args:?} unexpectedly succeeded"
        );
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8(out.stderr).unwrap(),
        )
    }

    pub fn json(&self, args: &[&str]) -> Value {
        serde_json::from_str(&self.ok(args)).unwrap()
    }
}

/// The tree the CLI tests back up: files, dirs, modes, an empty file, a
/// symlink, a file with a long name (5 files, 15 + 9000 + 300000 + 9 bytes).
/// Not [`backups_core::test_util::sample_tree`]: the assertions on counts,
/// sizes and the long name are about this one.
pub fn sample_tree(root: &Path) -> PathBuf {
    let tree = root.join("data");
    std::fs::create_dir_all(tree.join("etc/juju/certs")).unwrap();
    std::fs::create_dir_all(tree.join("var/log")).unwrap();
    std::fs::write(tree.join("etc/juju/agent.conf"), b"tag: machine-0\n").unwrap();
    std::fs::write(tree.join("etc/juju/certs/server.pem"), vec![b'p'; 9000]).unwrap();
    std::fs::set_permissions(
        tree.join("etc/juju/certs/server.pem"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    std::fs::write(tree.join("etc/juju/empty"), b"").unwrap();
    std::fs::write(tree.join("var/log/big.log"), vec![b'l'; 300_000]).unwrap();
    std::fs::write(tree.join(format!("etc/{}", "n".repeat(150))), b"long name").unwrap();
    std::fs::set_permissions(
        tree.join("etc/juju"),
        std::fs::Permissions::from_mode(0o750),
    )
    .unwrap();
    std::os::unix::fs::symlink("/etc/juju/agent.conf", tree.join("etc/current-agent")).unwrap();
    tree.canonicalize().unwrap()
}

/// name -> (kind, mode, SHA-1 of contents or link target).
pub type Snapshot = BTreeMap<String, (char, u32, String)>;

/// name -> (kind, mode, SHA-1 of contents or link target) for a whole tree,
/// leaving out the store directory (opening a local store creates it).
pub fn snapshot(root: &Path) -> Snapshot {
    let mut out = BTreeMap::new();
    pub fn walk(root: &Path, dir: &Path, out: &mut Snapshot) {
        use sha1::Digest;
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for p in entries {
            let m = p.symlink_metadata().unwrap();
            let rel = p.strip_prefix(root).unwrap().display().to_string();
            if rel == "store" {
                continue;
            }
            let ft = m.file_type();
            if m.is_symlink() {
                let t = std::fs::read_link(&p).unwrap();
                out.insert(rel, ('l', 0, t.display().to_string()));
            } else if ft.is_fifo() || ft.is_char_device() || ft.is_block_device() {
                let kind = if ft.is_fifo() { 'p' } else { 'c' };
                out.insert(rel, (kind, m.mode() & 0o7777, m.rdev().to_string()));
            } else if m.is_dir() {
                out.insert(rel, ('d', m.mode() & 0o7777, String::new()));
                walk(root, &p, out);
            } else {
                let sum = sha1::Sha1::digest(std::fs::read(&p).unwrap());
                out.insert(rel, ('f', m.mode() & 0o7777, format!("{sum:x}")));
            }
        }
    }
    walk(root, root, &mut out);
    out
}

/// The id of the newest backup in `env`'s store.
pub fn first_id(env: &Env) -> String {
    env.json(&["list", "--json"])[0]["ID"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Runs `cmd` with `sh -c` in `dir` and expects success.
pub fn sh(cmd: &str, dir: &Path) -> Output {
    let out = Command::new("sh")
        .args(["-c", cmd])
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{cmd}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A gzip'd outer tar with exactly these (name, body) entries, in order.
pub fn gz_tar(entries: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut outer = tar::Builder::new(GzEncoder::new(Vec::new(), Compression::default()));
    for (name, body) in entries {
        let mut h = tar::Header::new_gnu();
        h.set_size(body.len() as u64);
        h.set_mode(0o600);
        h.set_cksum();
        outer.append_data(&mut h, name, &body[..]).unwrap();
    }
    outer.into_inner().unwrap().finish().unwrap()
}

/// Juju v1 `metadata.json` of a backup of [`MODEL`] started 2021-01-01.
pub fn metadata_json() -> Vec<u8> {
    format!(
        r#"{{"ID":"","FormatVersion":1,"Started":"2021-01-01T00:00:00Z","ModelUUID":"{MODEL}"}}"#
    )
    .into_bytes()
}

/// Runs a pymongo `script` with `uri` and `db` as its arguments; returns its stdout.
pub fn python_mongo(script: &str, uri: &str, db: &str) -> String {
    python_args(script, &[uri, db])
}

/// Runs a Python script (the services' interpreter, with pymongo) with
/// these arguments; returns its stdout.
pub fn python_args(script: &str, args: &[&str]) -> String {
    let python =
        std::env::var("BACKUPS_TEST_PYTHON").expect("BACKUPS_TEST_PYTHON (scripts/services)");
    let out = Command::new(python)
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The metadata of the store's (one) `pre-restore` safety backup.
pub fn safety_backup(env: &Env) -> Value {
    let list = env.json(&["list", "--json"]);
    let found: Vec<&Value> = list
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["Labels"][0] == "pre-restore")
        .collect();
    assert_eq!(found.len(), 1, "one safety backup: {list}");
    found[0].clone()
}
