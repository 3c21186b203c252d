//! The `backups` binary, run as a user would, against real local stores,
#![allow(clippy::unwrap_used)]
//! real Juju archives, GNU tar and openssl.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use flate2::Compression;
use flate2::write::GzEncoder;
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_backups");
const MODEL: &str = "0b6e3c52-8f1a-4c1e-9d3a-2f6c9a7e5b10";

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures/juju")
}

/// A temp dir with a store in it; runs the binary against that store.
struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    fn new() -> Self {
        Env {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn store(&self) -> PathBuf {
        self.path().join("store")
    }

    fn run(&self, args: &[&str]) -> Output {
        self.run_with(args, &[])
    }

    /// Runs with extra environment variables (`BACKUPS_MONGO_URI`...).
    fn run_with(&self, args: &[&str], envs: &[(&str, &str)]) -> Output {
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
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "backups {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs and expects failure; returns (exit code, stderr).
    fn fail(&self, args: &[&str]) -> (i32, String) {
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

    fn json(&self, args: &[&str]) -> Value {
        serde_json::from_str(&self.ok(args)).unwrap()
    }
}

/// Files, dirs, modes, an empty file, a symlink, a file with a long name.
fn sample_tree(root: &Path) -> PathBuf {
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

type Snapshot = BTreeMap<String, (char, u32, String)>;

/// name -> (kind, mode, SHA-1 of contents or link target) for a whole tree,
/// leaving out the store directory (opening a local store creates it).
fn snapshot(root: &Path) -> Snapshot {
    let mut out = BTreeMap::new();
    fn walk(root: &Path, dir: &Path, out: &mut Snapshot) {
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

fn first_id(env: &Env) -> String {
    env.json(&["list", "--json"])[0]["ID"]
        .as_str()
        .unwrap()
        .to_string()
}

fn sh(cmd: &str, dir: &Path) -> Output {
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

#[test]
fn empty_store_lists_nothing() {
    let env = Env::new();
    assert_eq!(env.ok(&["list"]), "No backups to display.\n");
    assert_eq!(env.json(&["list", "--json"]), Value::Array(vec![]));
}

#[test]
fn create_list_show_download_restore_round_trip() {
    let env = Env::new();
    let tree = sample_tree(env.path());
    let stdout = env.ok(&[
        "create",
        "--path",
        tree.to_str().unwrap(),
        "--notes",
        "before upgrade",
        "--label",
        "manual",
        "--label",
        "pre-upgrade",
    ]);
    let id = stdout.trim().to_string();
    assert!(id.ends_with(MODEL), "{id}");

    let table = env.ok(&["list"]);
    assert!(table.starts_with("ID "), "{table}");
    assert!(
        table.contains(&id)
            && table.contains("before upgrade")
            && table.contains("manual,pre-upgrade")
    );

    let meta = env.json(&["show", &id, "--json"]);
    assert_eq!(meta["ID"], id.as_str());
    assert_eq!(meta["ModelUUID"], MODEL);
    assert_eq!(meta["FormatVersion"], 1);
    assert_eq!(meta["ChecksumFormat"], "SHA-1, base64 encoded");
    assert_eq!(
        meta["FileBytes"],
        15 + 9000 + 300_000 + 9,
        "file contents of the sample tree"
    );
    let human = env.ok(&["show", &id]);
    for field in [
        "backup ID:",
        "checksum:",
        "size (B):",
        "stored:",
        "started:",
        "finished:",
        "notes:",
        "model ID:",
        "machine ID:",
        "created on host:",
        "juju version:",
        "series:",
        "controller UUID:",
        "HA nodes:",
        "sha256:",
        "labels:",
    ] {
        assert!(human.contains(field), "show lacks {field}: {human}");
    }

    // Download: byte count and checksum as an operator would check them.
    env.ok(&["download", &id, "-o", "b.tar.gz"]);
    let file = env.path().join("b.tar.gz");
    assert_eq!(
        std::fs::metadata(&file).unwrap().len(),
        meta["Size"].as_u64().unwrap()
    );
    let sha1 = sh("openssl dgst -sha1 -binary b.tar.gz | base64", env.path());
    assert_eq!(
        String::from_utf8_lossy(&sha1.stdout).trim(),
        meta["Checksum"].as_str().unwrap()
    );
    let via_stdout = env.run(&["download", &id, "-o", "-"]);
    assert!(via_stdout.status.success());
    assert_eq!(via_stdout.stdout, std::fs::read(&file).unwrap());

    // GNU tar reads the archive and root.tar.
    let gnu = env.path().join("gnu");
    std::fs::create_dir(&gnu).unwrap();
    sh(
        "tar xzf ../b.tar.gz && tar tf juju-backup/root.tar >/dev/null && mkdir root && tar xpf juju-backup/root.tar -C root",
        &gnu,
    );
    let listing = String::from_utf8(sh("tar tzf ../b.tar.gz", &gnu).stdout).unwrap();
    assert!(
        listing.starts_with("juju-backup/\njuju-backup/metadata.json\njuju-backup/root.tar\n"),
        "{listing}"
    );
    assert!(listing.contains("juju-backup/manifest.json"));
    let rel = tree.strip_prefix("/").unwrap();
    assert_eq!(snapshot(&gnu.join("root").join(rel)), snapshot(&tree));

    // Our restore gives the same tree; a dry run changes nothing.
    let dry = env.ok(&["restore", &id, "--target", "dry", "--dry-run"]);
    assert!(dry.starts_with("Would restore 5 files"), "{dry}");
    assert!(!env.path().join("dry").exists());
    let report = env.ok(&["restore", &id, "--target", "restored"]);
    assert!(report.starts_with("Restored 5 files"), "{report}");
    assert_eq!(
        snapshot(&env.path().join("restored").join(rel)),
        snapshot(&tree)
    );
}

#[test]
fn create_excludes_and_downloads() {
    let env = Env::new();
    let tree = sample_tree(env.path());
    let id = env
        .ok(&[
            "create",
            "--path",
            tree.to_str().unwrap(),
            "--exclude",
            "*.log",
            "--exclude",
            &format!("{}/etc/juju/certs", tree.display()),
            "--download",
            "copy.tar.gz",
        ])
        .trim()
        .to_string();
    let listing = String::from_utf8(
        sh(
            "tar xzOf copy.tar.gz juju-backup/root.tar | tar tf -",
            env.path(),
        )
        .stdout,
    )
    .unwrap();
    assert!(
        !listing.contains("big.log") && !listing.contains("server.pem"),
        "{listing}"
    );
    assert!(listing.contains("agent.conf"));
    assert_eq!(
        env.json(&["show", &id, "--json"])["Size"].as_u64().unwrap(),
        std::fs::metadata(env.path().join("copy.tar.gz"))
            .unwrap()
            .len()
    );
}

#[test]
fn zstd_archives_round_trip_and_are_detected_by_magic() {
    let env = Env::new();
    let tree = sample_tree(env.path());
    let id = env
        .ok(&[
            "create",
            "--path",
            tree.to_str().unwrap(),
            "--compression",
            "zstd",
            "--compression-level",
            "5",
        ])
        .trim()
        .to_string();
    env.ok(&["download", &id, "-o", "z.tar.zst"]);
    let head = std::fs::read(env.path().join("z.tar.zst")).unwrap();
    assert_eq!(&head[..4], &[0x28, 0xb5, 0x2f, 0xfd], "a zstd frame");
    env.ok(&["restore", &id, "--target", "restored"]);
    let rel = tree.strip_prefix("/").unwrap();
    assert_eq!(
        snapshot(&env.path().join("restored").join(rel)),
        snapshot(&tree)
    );
    // The file restores and uploads like a gzip archive.
    env.ok(&[
        "restore",
        "--file",
        "z.tar.zst",
        "--target",
        "again",
        "--dry-run",
    ]);
    let other = Env::new();
    let out = other.ok(&["upload", env.path().join("z.tar.zst").to_str().unwrap()]);
    assert!(out.contains(&id), "{out}");
    let (code, err) = env.fail(&[
        "create",
        "--path",
        tree.to_str().unwrap(),
        "--compression-level",
        "12",
    ]);
    assert_eq!(code, 2, "{err}");
}

struct Fixture {
    file: &'static str,
    id: &'static str,
    checksum: &'static str,
    size: u64,
    model: &'static str,
}

const FIXTURES: [Fixture; 4] = [
    Fixture {
        file: "valid-backup.tar.gz",
        id: "20200225-041241.e2a6a1e5-abea-4393-8593-5a45ae53ab97",
        checksum: "CnlHI2qyBXXpMFLPCEBx7gwOtf0=",
        size: 16160,
        model: "e2a6a1e5-abea-4393-8593-5a45ae53ab97",
    },
    Fixture {
        file: "valid-backup-ver-1.tar.gz",
        id: "20200303-155649.1be318f6-9460-4fe1-8eb4-b1df2db23b53",
        checksum: "Re1CfBK94SfHPwpRQVhn+Y5pCtE=",
        size: 15031,
        model: "1be318f6-9460-4fe1-8eb4-b1df2db23b53",
    },
    Fixture {
        file: "valid-backup-ver-2.tar.gz",
        id: "20200303-155649.1be318f6-9460-4fe1-8eb4-b1df2db23b53",
        checksum: "ypmdKdCiehvT8VjowCvOUL3NrsM=",
        size: 14532,
        model: "1be318f6-9460-4fe1-8eb4-b1df2db23b53",
    },
    Fixture {
        file: "missing-root-backup.tar.gz",
        id: "20200225-041241.e2a6a1e5-abea-4393-8593-5a45ae53ab97",
        checksum: "2Fu8pY1V3SlYxc97UjBipoVGyfQ=",
        size: 3483,
        model: "e2a6a1e5-abea-4393-8593-5a45ae53ab97",
    },
];

#[test]
fn juju_archives_upload_show_download_restore() {
    for fx in &FIXTURES {
        let env = Env::new();
        let src = fixtures().join(fx.file);
        let out = env.ok(&["upload", src.to_str().unwrap()]);
        assert_eq!(
            out,
            format!("Uploaded backup file, creating backup ID {}\n", fx.id),
            "{}",
            fx.file
        );
        assert!(env.ok(&["list"]).contains(fx.id));

        let meta = env.json(&["show", fx.id, "--json"]);
        assert_eq!(meta["ID"], fx.id);
        assert_eq!(
            meta["FileBytes"].is_u64(),
            meta["FileCount"].is_u64(),
            "measured at upload wherever there is a root.tar"
        );
        assert_eq!(meta["Checksum"], fx.checksum, "{}", fx.file);
        assert_eq!(meta["Size"], fx.size);
        assert_eq!(meta["ModelUUID"], fx.model);
        assert_eq!(meta["Version"], "2.8-beta1.1");
        assert!(
            meta.get("CAPrivateKey").is_none(),
            "the CA key is never printed"
        );

        env.ok(&["download", fx.id, "-o", "copy.tar.gz"]);
        assert_eq!(
            std::fs::read(env.path().join("copy.tar.gz")).unwrap(),
            std::fs::read(&src).unwrap(),
            "{}",
            fx.file
        );

        if fx.file.starts_with("missing-root") {
            let (code, err) = env.fail(&["restore", fx.id, "--target", "t"]);
            assert_eq!(code, 5, "{err}");
            assert!(err.contains("juju-backup/root.tar"), "{err}");
            assert!(!env.path().join("t").exists());
            continue;
        }
        let report = env.ok(&["restore", fx.id, "--target", "ours"]);
        assert!(report.contains("1 symlinks"), "{report}");
        let gnu = env.path().join("gnu");
        std::fs::create_dir_all(gnu.join("root")).unwrap();
        sh(
            "tar xzf ../copy.tar.gz && tar xpf juju-backup/root.tar -C root",
            &gnu,
        );
        let ours = snapshot(&env.path().join("ours"));
        assert_eq!(ours, snapshot(&gnu.join("root")), "{}", fx.file);
        let link = ours
            .iter()
            .find(|(k, v)| k.starts_with("var/lib/juju/tools/machine-") && v.0 == 'l')
            .expect("tools symlink");
        assert!(
            link.1.2.starts_with("/var/lib/juju/tools/2.8-beta1"),
            "absolute symlink kept as it was: {link:?}"
        );
        assert_eq!(ours["var/lib/juju/server.pem"].1, 0o600);
    }
}

#[test]
fn upload_is_idempotent_and_refuses_other_bytes_under_the_same_id() {
    let env = Env::new();
    let valid = fixtures().join("valid-backup.tar.gz");
    env.ok(&["upload", valid.to_str().unwrap()]);
    let again = env.ok(&["upload", valid.to_str().unwrap()]);
    assert!(again.contains("already uploaded"), "{again}");
    let other = fixtures().join("missing-root-backup.tar.gz");
    let (code, err) = env.fail(&["upload", other.to_str().unwrap()]);
    assert_eq!(code, 4, "{err}");
    assert!(
        err.contains("already exists") && err.contains("CnlHI2qyBXXpMFLPCEBx7gwOtf0="),
        "{err}"
    );
    assert_eq!(env.json(&["list", "--json"]).as_array().unwrap().len(), 1);
}

#[test]
fn upload_refuses_what_is_not_a_backup() {
    let env = Env::new();
    std::fs::write(
        env.path().join("plain.txt"),
        b"hello, this is not an archive\n",
    )
    .unwrap();
    let (code, err) = env.fail(&["upload", "plain.txt"]);
    assert_eq!(code, 5);
    assert!(err.contains("plain.txt") && err.contains("gzip"), "{err}");
    let (code, err) = env.fail(&["upload", "missing.tar.gz"]);
    assert_eq!(code, 7);
    assert!(err.contains("missing.tar.gz"), "{err}");
    assert_eq!(env.ok(&["list"]), "No backups to display.\n");
}

#[test]
fn remove_by_id_and_keep_latest() {
    let env = Env::new();
    let tree = sample_tree(env.path());
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(
            env.ok(&["create", "--path", tree.to_str().unwrap()])
                .trim()
                .to_string(),
        );
    }
    let (code, err) = env.fail(&[
        "remove",
        "20990101-000000.0b6e3c52-8f1a-4c1e-9d3a-2f6c9a7e5b10",
    ]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("not found"), "{err}");
    let (code, _) = env.fail(&["show", "../../etc/passwd"]);
    assert_eq!(code, 2);

    let dry = env.ok(&["remove", "--keep-latest", "1", "--dry-run"]);
    assert_eq!(
        dry,
        format!(
            "Would remove backup {}\nWould remove backup {}\n",
            ids[1], ids[0]
        )
    );
    assert_eq!(env.ok(&["remove", "--keep-latest", "1"]).lines().count(), 2);
    assert_eq!(first_id(&env), ids[2]);
    assert_eq!(
        env.ok(&["remove", &ids[2]]),
        format!("Removed backup {}\n", ids[2])
    );
    assert_eq!(env.ok(&["list"]), "No backups to display.\n");
    let leftovers: Vec<_> = std::fs::read_dir(env.store()).unwrap().collect();
    assert!(leftovers.is_empty(), "archives and sidecars are deleted");
}

#[test]
fn a_relative_store_directory_is_relative_to_the_current_one() {
    let env = Env::new();
    let tree = sample_tree(env.path());
    let run = |args: &[&str]| {
        Command::new(BIN)
            .args(["--store", "rel/store", "--progress", "none"])
            .args(args)
            .env_remove("BACKUPS_STORE")
            .env("BACKUPS_MODEL_UUID", MODEL)
            .current_dir(env.path())
            .output()
            .unwrap()
    };
    let out = run(&["create", "--path", tree.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let id = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(env.path().join(format!("rel/store/{id}.json")).exists());
    let listed = run(&["list"]);
    assert!(String::from_utf8_lossy(&listed.stdout).contains(&id));
}

#[test]
fn bad_store_url_is_a_storage_error() {
    let out = Command::new(BIN)
        .args(["--store", "ftp://example/x", "list"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(6));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("ftp://example/x") && err.contains("unsupported scheme"),
        "{err}"
    );
}

// ---- hostile archives -------------------------------------------------------

/// One crafted root.tar entry: raw name bytes, type, link name, data.
struct Raw {
    name: &'static [u8],
    kind: tar::EntryType,
    link: &'static [u8],
    data: &'static [u8],
}

fn raw(name: &'static [u8], kind: tar::EntryType, link: &'static [u8], data: &'static [u8]) -> Raw {
    Raw {
        name,
        kind,
        link,
        data,
    }
}

/// Builds an outer archive (Juju v1 metadata, the crafted root.tar) without
/// the tar crate's path checks, the way an attacker would.
fn hostile_archive(entries: &[Raw]) -> Vec<u8> {
    let mut inner = Vec::new();
    for e in entries {
        let mut h = tar::Header::new_old();
        h.as_old_mut().name[..e.name.len()].copy_from_slice(e.name);
        h.as_old_mut().linkname[..e.link.len()].copy_from_slice(e.link);
        h.set_entry_type(e.kind);
        h.set_mode(0o644);
        h.set_size(e.data.len() as u64);
        h.set_cksum();
        inner.extend_from_slice(h.as_bytes());
        inner.extend_from_slice(e.data);
        inner.resize(inner.len().div_ceil(512) * 512, 0);
    }
    inner.extend_from_slice(&[0; 1024]);
    juju_v1_archive("2021-01-01T00:00:00Z", &inner)
}

/// An outer archive: Juju v1 metadata started at `started`, then `root_tar`.
fn juju_v1_archive(started: &str, root_tar: &[u8]) -> Vec<u8> {
    let metadata =
        format!(r#"{{"ID":"","FormatVersion":1,"Started":"{started}","ModelUUID":"{MODEL}"}}"#);
    let mut outer = tar::Builder::new(GzEncoder::new(Vec::new(), Compression::default()));
    for (name, body) in [
        ("juju-backup/metadata.json", metadata.as_bytes()),
        ("juju-backup/root.tar", root_tar),
    ] {
        let mut h = tar::Header::new_gnu();
        h.set_size(body.len() as u64);
        h.set_mode(0o600);
        h.set_cksum();
        outer.append_data(&mut h, name, body).unwrap();
    }
    outer.into_inner().unwrap().finish().unwrap()
}

/// An archive whose root.tar holds `(name, type, mode, (major, minor))`
/// entries, made with the tar crate (well-formed, just special).
fn special_archive(entries: &[(&str, tar::EntryType, u32, (u32, u32))]) -> Vec<u8> {
    let mut inner = tar::Builder::new(Vec::new());
    for (name, kind, mode, (major, minor)) in entries {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(*kind);
        h.set_mode(*mode);
        h.set_mtime(1_600_000_000);
        h.set_size(if *kind == tar::EntryType::Regular {
            4
        } else {
            0
        });
        if matches!(kind, tar::EntryType::Char | tar::EntryType::Block) {
            h.set_device_major(*major).unwrap();
            h.set_device_minor(*minor).unwrap();
        }
        h.set_cksum();
        let data: &[u8] = if *kind == tar::EntryType::Regular {
            b"tool"
        } else {
            b""
        };
        inner.append_data(&mut h, name, data).unwrap();
    }
    juju_v1_archive("2021-02-03T00:00:00Z", &inner.into_inner().unwrap())
}

#[test]
fn hostile_device_node() {
    let env = Env::new();
    std::fs::copy(
        hostile_dir().join("device-nodes.tar.gz"),
        env.path().join("hostile.tar.gz"),
    )
    .unwrap();
    let before = snapshot(env.path());
    let (code, err) = env.fail(&["restore", "--file", "hostile.tar.gz", "--target", "target"]);
    assert_eq!(code, 5, "{err}");
    assert!(
        err.contains("dev/sda") && err.contains("--allow-devices"),
        "{err}"
    );
    assert_eq!(snapshot(env.path()), before, "nothing written anywhere");

    // A store may hold it (restores decide); the sidecar counts them, and a
    // restore by id without --allow-devices is refused before any write.
    env.ok(&["upload", "hostile.tar.gz"]);
    let id = first_id(&env);
    assert_eq!(env.json(&["show", &id, "--json"])["DeviceNodes"], 2);
    assert!(env.ok(&["show", &id]).contains("device nodes:"));
    let (code, err) = env.fail(&["restore", &id, "--target", "target"]);
    assert_eq!(code, 5, "{err}");
    assert!(
        err.contains("2 device nodes") && err.contains("--allow-devices"),
        "{err}"
    );
    assert_eq!(snapshot(env.path()), before, "nothing written anywhere");
}

#[test]
fn devices_and_fifos_are_created_only_when_allowed() {
    let env = Env::new();
    let a = special_archive(&[
        ("run", tar::EntryType::Directory, 0o755, (0, 0)),
        ("run/queue", tar::EntryType::Fifo, 0o620, (0, 0)),
        ("dev/null", tar::EntryType::Char, 0o666, (1, 3)),
    ]);
    std::fs::write(env.path().join("special.tar.gz"), &a).unwrap();
    let dry = env.ok(&[
        "restore",
        "--file",
        "special.tar.gz",
        "--target",
        "t",
        "--allow-devices",
        "--dry-run",
    ]);
    assert!(
        dry.contains("Special entries: 2 device nodes or FIFOs, 0 with setuid/setgid bits\n"),
        "{dry}"
    );
    let root = std::fs::metadata(env.path()).unwrap().uid() == 0;
    let out = env.run(&[
        "restore",
        "--file",
        "special.tar.gz",
        "--target",
        "t",
        "--allow-devices",
    ]);
    let t = env.path().join("t");
    if root {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let m = std::fs::symlink_metadata(t.join("run/queue")).unwrap();
        assert!(m.file_type().is_fifo());
        assert_eq!(m.mode() & 0o7777, 0o620);
        assert_eq!(m.mtime(), 1_600_000_000);
        let m = std::fs::symlink_metadata(t.join("dev/null")).unwrap();
        assert!(m.file_type().is_char_device());
        assert_eq!(m.rdev(), libc::makedev(1, 3));
        assert_eq!(m.mode() & 0o7777, 0o666);
        let names: Vec<_> = std::fs::read_dir(t.join("dev"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "no temporary names left: {names:?}");
    } else {
        // Without root a device node cannot be made: a clear error, no temp file left.
        assert_eq!(out.status.code(), Some(7));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("needs root"), "{err}");
        assert!(std::fs::read_dir(t.join("dev")).unwrap().next().is_none());
    }
}

#[test]
fn setuid_bits_are_dropped_unless_allowed() {
    let env = Env::new();
    let a = special_archive(&[
        ("bin", tar::EntryType::Directory, 0o2775, (0, 0)),
        ("bin/tool", tar::EntryType::Regular, 0o4755, (0, 0)),
    ]);
    std::fs::write(env.path().join("suid.tar.gz"), &a).unwrap();
    let mode = |p: &str| std::fs::metadata(env.path().join(p)).unwrap().mode() & 0o7777;

    let out = env.run(&["restore", "--file", "suid.tar.gz", "--target", "plain"]);
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bin/tool: setuid/setgid bits dropped"),
        "{err}"
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("2 with setuid/setgid bits (bits dropped)")
    );
    assert_eq!((mode("plain/bin"), mode("plain/bin/tool")), (0o775, 0o755));

    let out = env.ok(&[
        "restore",
        "--file",
        "suid.tar.gz",
        "--target",
        "kept",
        "--allow-setuid",
    ]);
    assert!(out.contains("(kept)"), "{out}");
    assert_eq!((mode("kept/bin"), mode("kept/bin/tool")), (0o2775, 0o4755));
}

#[test]
fn symlink_already_in_target_is_not_followed() {
    let env = Env::new();
    let outside = env.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::create_dir_all(env.path().join("target")).unwrap();
    std::os::unix::fs::symlink(&outside, env.path().join("target/etc")).unwrap();
    let a = hostile_archive(&[raw(b"etc/passwd", tar::EntryType::Regular, b"", b"pwned")]);
    std::fs::write(env.path().join("a.tar.gz"), a).unwrap();
    let (code, err) = env.fail(&["restore", "--file", "a.tar.gz", "--target", "target"]);
    assert_eq!(code, 5);
    assert!(
        err.contains("etc/passwd") && err.contains("symlink"),
        "{err}"
    );
    assert!(std::fs::read_dir(&outside).unwrap().next().is_none());
}

#[test]
fn tampered_archive_in_store_is_refused_before_restore() {
    let env = Env::new();
    let tree = sample_tree(env.path());
    let id = env
        .ok(&["create", "--path", tree.to_str().unwrap()])
        .trim()
        .to_string();
    let name = env.json(&["show", &id, "--json"])["Archive"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(name.starts_with(&id) && name.ends_with(".tar.gz"), "{name}");
    let archive = env.store().join(name);
    let mut bytes = std::fs::read(&archive).unwrap();
    let n = bytes.len();
    bytes[n - 100] ^= 0x55;
    std::fs::write(&archive, bytes).unwrap();
    let (code, err) = env.fail(&["restore", &id, "--target", "target"]);
    assert_eq!(code, 5, "{err}");
    assert!(err.contains(&id), "{err}");
    assert!(!env.path().join("target").exists());
    let (code, err) = env.fail(&["download", &id, "-o", "out.tar.gz"]);
    assert_eq!(code, 5);
    assert!(err.contains("mismatch"), "{err}");
    assert!(!env.path().join("out.tar.gz").exists());
}

// ---- crash safety -----------------------------------------------------------

/// A tree of incompressible data, so an upload takes a while.
fn random_tree(root: &Path, files: usize) -> PathBuf {
    let tree = root.join("big");
    std::fs::create_dir(&tree).unwrap();
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    for i in 0..files {
        let mut f = std::fs::File::create(tree.join(format!("blob{i}"))).unwrap();
        let mut buf = vec![0u8; 8 << 20];
        for chunk in buf.chunks_mut(8) {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            chunk.copy_from_slice(&seed.to_le_bytes());
        }
        f.write_all(&buf).unwrap();
    }
    tree
}

/// Starts `create` with plain progress and returns once it reports data
/// already streamed into the store.
fn create_until_streaming(env: &Env, tree: &Path) -> std::process::Child {
    let mut child = Command::new(BIN)
        .args([
            "--store",
            env.store().to_str().unwrap(),
            "--progress",
            "plain",
            "--part-size",
            "5",
            "create",
            "--path",
            tree.to_str().unwrap(),
        ])
        .env("BACKUPS_MODEL_UUID", MODEL)
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let stderr = BufReader::new(child.stderr.take().unwrap());
    for line in stderr.lines() {
        let line = line.unwrap();
        if line.starts_with("archiving: ") && !line.starts_with("archiving: 0/") {
            return child;
        }
    }
    let status = child.wait().unwrap();
    panic!("create finished ({status}) before it could be interrupted");
}

#[test]
fn create_killed_during_upload_leaves_nothing_visible() {
    let env = Env::new();
    let tree = random_tree(env.path(), 6);
    let mut child = create_until_streaming(&env, &tree);
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert!(!status.success());
    assert_eq!(env.ok(&["list"]), "No backups to display.\n");
    let sidecars = std::fs::read_dir(env.store())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "json")
        })
        .count();
    assert_eq!(sidecars, 0);
    // gc finds what the killed upload left, and deletes it only with --yes.
    let found = env.ok(&["gc", "--older-than", "0s"]);
    assert!(found.starts_with("KIND"), "{found}");
    assert!(
        found.contains("staging-file") || found.contains("orphan-archive"),
        "{found}"
    );
    env.ok(&["gc", "--older-than", "0s", "--yes"]);
    assert_eq!(env.ok(&["gc", "--older-than", "0s"]), "No garbage found.\n");
    assert_eq!(
        std::fs::read_dir(env.store()).unwrap().count(),
        0,
        "store is empty again"
    );
    // A later create succeeds and is the only backup listed.
    let small = sample_tree(env.path());
    let id = env
        .ok(&["create", "--path", small.to_str().unwrap()])
        .trim()
        .to_string();
    let list = env.json(&["list", "--json"]);
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["ID"], id.as_str());
}

// ---- object stores through the CLI -----------------------------------------

/// `var`, or `None` (the test is skipped) when unset outside CI.
fn service_env(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(v) => Some(v),
        Err(_) if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("{var} is not set under CI=true: start the services with scripts/services start")
        }
        Err(_) => {
            eprintln!("skipping: {var} is not set (scripts/services start; . .services/env)");
            None
        }
    }
}

fn cloud_round_trip(store: &str, flags: &[&str], envs: &[(&str, &str)]) {
    let env = Env::new();
    let tree = sample_tree(env.path());
    let run = |args: &[&str]| {
        let out = Command::new(BIN)
            .args(["--store", store, "--progress", "none"])
            .args(flags)
            .args(args)
            .envs(envs.iter().copied())
            .env("BACKUPS_MODEL_UUID", MODEL)
            .current_dir(env.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    assert_eq!(run(&["list"]), "No backups to display.\n");
    let id = run(&["create", "--path", tree.to_str().unwrap()])
        .trim()
        .to_string();
    assert!(run(&["list"]).contains(&id));
    let meta: Value = serde_json::from_str(&run(&["show", &id, "--json"])).unwrap();
    run(&["download", &id, "-o", "b.tar.gz"]);
    let sha1 = sh("openssl dgst -sha1 -binary b.tar.gz | base64", env.path());
    assert_eq!(
        String::from_utf8_lossy(&sha1.stdout).trim(),
        meta["Checksum"].as_str().unwrap()
    );
    run(&["restore", &id, "--target", "restored"]);
    let rel = tree.strip_prefix("/").unwrap();
    assert_eq!(
        snapshot(&env.path().join("restored").join(rel)),
        snapshot(&tree)
    );
    let fixture = fixtures().join("valid-backup.tar.gz");
    assert!(run(&["upload", fixture.to_str().unwrap()]).contains("20200225-041241"));
    run(&[
        "remove",
        &id,
        "20200225-041241.e2a6a1e5-abea-4393-8593-5a45ae53ab97",
    ]);
    assert_eq!(run(&["list"]), "No backups to display.\n");
}

fn unique_prefix() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("cli-{nanos:x}")
}

#[test]
fn s3_store_on_moto_through_the_cli() {
    let (Some(endpoint), Some(bucket)) = (
        service_env("BACKUPS_TEST_MOTO_ENDPOINT"),
        service_env("BACKUPS_TEST_MOTO_BUCKET"),
    ) else {
        return;
    };
    let store = format!("s3://{bucket}/{}", unique_prefix());
    cloud_round_trip(
        &store,
        &[
            "--endpoint",
            &endpoint,
            "--region",
            "us-east-1",
            "--allow-http",
        ],
        &[
            ("AWS_ACCESS_KEY_ID", "test"),
            ("AWS_SECRET_ACCESS_KEY", "test"),
        ],
    );
}

#[test]
fn s3_store_on_garage_through_the_cli() {
    let (Some(endpoint), Some(bucket), Some(key), Some(secret)) = (
        service_env("BACKUPS_TEST_GARAGE_ENDPOINT"),
        service_env("BACKUPS_TEST_GARAGE_BUCKET"),
        service_env("BACKUPS_TEST_GARAGE_KEY_ID"),
        service_env("BACKUPS_TEST_GARAGE_SECRET"),
    ) else {
        return;
    };
    let store = format!("s3://{bucket}/{}", unique_prefix());
    cloud_round_trip(
        &store,
        &[
            "--endpoint",
            &endpoint,
            "--region",
            "garage",
            "--allow-http",
        ],
        &[
            ("AWS_ACCESS_KEY_ID", &key),
            ("AWS_SECRET_ACCESS_KEY", &secret),
        ],
    );
}

#[test]
fn azure_store_on_azurite_through_the_cli() {
    let (Some(_), Some(container)) = (
        service_env("AZURITE_BLOB_STORAGE_URL"),
        service_env("BACKUPS_TEST_AZURITE_CONTAINER"),
    ) else {
        return;
    };
    let store = format!("az://{container}/{}", unique_prefix());
    cloud_round_trip(&store, &["--store-option", "use_emulator=true"], &[]);
}

#[test]
fn interrupted_create_aborts_its_upload() {
    let env = Env::new();
    let tree = random_tree(env.path(), 6);
    let child = create_until_streaming(&env, &tree);
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130));
    assert_eq!(env.ok(&["list"]), "No backups to display.\n");
    let left: Vec<_> = std::fs::read_dir(env.store())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(
        left.is_empty(),
        "the aborted multipart upload left {left:?}"
    );
}

// ---- MongoDB through the CLI ------------------------------------------------

fn python_mongo(script: &str, uri: &str, db: &str) -> String {
    let python =
        std::env::var("BACKUPS_TEST_PYTHON").expect("BACKUPS_TEST_PYTHON (scripts/services)");
    let out = Command::new(python)
        .args(["-c", script, uri, db])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn files_and_database_back_up_and_restore_together() {
    let Some(uri) = service_env("BACKUPS_TEST_MONGO_URI") else {
        return;
    };
    let env = Env::new();
    let tree = sample_tree(env.path());
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let (src, dst) = (format!("clisrc{nanos:x}"), format!("clidst{nanos:x}"));
    python_mongo(
        "import sys; from pymongo import MongoClient; db = MongoClient(sys.argv[1])[sys.argv[2]]; \
         db.machines.insert_many([{'_id': i, 'life': 'alive'} for i in range(7)]); \
         db.logs.insert_one({'_id': 1}); db.machines.create_index('life')",
        &uri,
        &src,
    );
    let out = Command::new(BIN)
        .args([
            "--store",
            env.store().to_str().unwrap(),
            "--progress",
            "none",
            "create",
            "--path",
            tree.to_str().unwrap(),
            "--include-db",
            &src,
            "--exclude-ns",
            "*.logs",
        ])
        .env("BACKUPS_MODEL_UUID", MODEL)
        .env("BACKUPS_MONGO_URI", &uri)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let id = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let shown = env.ok(&["show", &id]);
    assert!(
        shown.contains(&format!("{src}.machines: 7 documents")),
        "{shown}"
    );
    assert!(!shown.contains(".logs"), "{shown}");

    std::fs::write(env.path().join("uri"), format!("{uri}\n")).unwrap();
    let report = env.ok(&[
        "restore",
        &id,
        "--target",
        "restored",
        "--mongo-uri-file",
        "uri",
        "--db-rename",
        &format!("{src}={dst}"),
    ]);
    assert!(
        report.contains("Loaded 7 documents into 1 collections, built 1 indexes"),
        "{report}"
    );
    let rel = tree.strip_prefix("/").unwrap();
    assert_eq!(
        snapshot(&env.path().join("restored").join(rel)),
        snapshot(&tree)
    );
    let check = python_mongo(
        "import sys; from pymongo import MongoClient; db = MongoClient(sys.argv[1])[sys.argv[2]]; \
         print(db.machines.count_documents({'life': 'alive'}), sorted(i['name'] for i in db.machines.list_indexes())); \
         c = MongoClient(sys.argv[1]); [c.drop_database(d) for d in c.list_database_names() if d.startswith(('clisrc', 'clidst'))]",
        &uri,
        &dst,
    );
    assert_eq!(check.trim(), "7 ['_id_', 'life_1']");
}

#[test]
fn mongo_password_never_appears_in_output() {
    let env = Env::new();
    let tree = sample_tree(env.path());
    let out = Command::new(BIN)
        .args([
            "--store",
            env.store().to_str().unwrap(),
            "--progress",
            "plain",
            "create",
            "--path",
            tree.to_str().unwrap(),
        ])
        .env(
            "BACKUPS_MONGO_URI",
            "mongodb://backup:hunter2@127.0.0.1:1/?serverSelectionTimeoutMS=300",
        )
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(8));
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        all.contains("cannot reach MongoDB at mongodb://backup:***@127.0.0.1:1"),
        "{all}"
    );
    assert!(!all.contains("hunter2"), "{all}");
    assert_eq!(env.ok(&["list"]), "No backups to display.\n");
    let help = Command::new(BIN)
        .args(["create", "--help"])
        .env("BACKUPS_MONGO_URI", "mongodb://u:hunter2@h/")
        .output()
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&help.stdout).contains("hunter2"),
        "--help shows no env value"
    );
}

#[test]
fn missing_bucket_and_bad_credentials_are_clear_storage_errors() {
    let Some(endpoint) = service_env("BACKUPS_TEST_MOTO_ENDPOINT") else {
        return;
    };
    let run = |store: &str, key: &str| {
        Command::new(BIN)
            .args([
                "--store",
                store,
                "--endpoint",
                &endpoint,
                "--region",
                "us-east-1",
                "--allow-http",
                "list",
            ])
            .env("AWS_ACCESS_KEY_ID", key)
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .output()
            .unwrap()
    };
    let out = run("s3://no-such-bucket-here/x", "test");
    assert_eq!(out.status.code(), Some(6));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("s3://no-such-bucket-here/x")
            && err.contains("hint: the bucket or container does not exist"),
        "{err}"
    );

    let Some(garage) = service_env("BACKUPS_TEST_GARAGE_ENDPOINT") else {
        return;
    };
    let out = Command::new(BIN)
        .args([
            "--store",
            "s3://backups/x",
            "--endpoint",
            &garage,
            "--region",
            "garage",
            "--allow-http",
            "list",
        ])
        .env("AWS_ACCESS_KEY_ID", "GK000000000000000000000000")
        .env("AWS_SECRET_ACCESS_KEY", "0000")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(6));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("hint: access denied"), "{err}");
}

// ---- more hostile input: layout, sizes, bombs ---------------------------------

/// A gzip'd outer tar with exactly these (name, body) entries, in order.
fn gz_tar(entries: &[(&str, Vec<u8>)]) -> Vec<u8> {
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

fn metadata_json() -> Vec<u8> {
    format!(
        r#"{{"ID":"","FormatVersion":1,"Started":"2021-01-01T00:00:00Z","ModelUUID":"{MODEL}"}}"#
    )
    .into_bytes()
}

#[test]
fn a_held_lease_blocks_remove_with_the_holder_named() {
    let env = Env::new();
    let tree = sample_tree(env.path());
    let id = env
        .ok(&["create", "--path", tree.to_str().unwrap()])
        .trim()
        .to_string();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let lease = format!(
        r#"{{"Holder":"ctl-2 pid 77","Operation":"restore","Token":"x","Acquired":"2026-01-01T00:00:00Z","Expires":"{}"}}"#,
        time::OffsetDateTime::from_unix_timestamp(now as i64 + 600)
            .unwrap()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap()
    );
    std::fs::create_dir_all(env.store().join(".lease")).unwrap();
    std::fs::write(env.store().join(".lease/other.json"), lease).unwrap();
    let (code, err) = env.fail(&["remove", &id]);
    assert_eq!(code, 9, "{err}");
    assert!(
        err.contains("locked by ctl-2 pid 77 (restore) since 2026-01-01T00:00:00Z"),
        "{err}"
    );
    assert!(env.ok(&["list"]).contains(&id), "nothing removed");
    // unlock shows a live lease and keeps it; --force removes it.
    let kept = env.ok(&["unlock"]);
    assert!(
        kept.starts_with(
            "Kept the live lease of ctl-2 pid 77 (restore) since 2026-01-01T00:00:00Z"
        ) && kept.contains("--force"),
        "{kept}"
    );
    assert_eq!(env.json(&["unlock", "--json"])[0]["Removed"], false);
    assert!(env.fail(&["remove", &id]).1.contains("locked by ctl-2"));
    assert_eq!(
        env.ok(&["unlock", "--force"]),
        "Removed the live lease of ctl-2 pid 77 (restore) since 2026-01-01T00:00:00Z\n"
    );
    assert_eq!(env.ok(&["unlock"]), "No leases held.\n");
    env.ok(&["remove", &id]);
    assert!(
        std::fs::read_dir(env.store()).unwrap().next().is_none(),
        "no lease left behind"
    );
}

// ---- the hostile corpus (tests/hostile/) -------------------------------------

fn hostile_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/hostile")
}

/// One archive of the corpus: its file name, what the error must say, and
/// how it is made (`BACKUPS_WRITE_CORPUS=1` rewrites the files from these).
struct Case {
    file: &'static str,
    says: &'static str,
    /// Whether `upload` refuses it too (the store may hold device nodes:
    /// restores decide about those).
    upload_refused: bool,
    build: fn() -> Vec<u8>,
}

fn tiny_root_tar() -> Vec<u8> {
    let mut inner = Vec::new();
    let mut t = tar::Builder::new(&mut inner);
    let mut h = tar::Header::new_gnu();
    h.set_size(4);
    h.set_mode(0o644);
    h.set_cksum();
    t.append_data(&mut h, "etc/ok", &b"fine"[..]).unwrap();
    t.finish().unwrap();
    drop(t);
    inner
}

fn hostile_cases() -> Vec<Case> {
    let case = |file, says, build| Case {
        file,
        says,
        upload_refused: true,
        build,
    };
    vec![
        case("parent-dir.tar.gz", "etc/../../escape", || {
            hostile_archive(&[
                raw(b"etc/ok", tar::EntryType::Regular, b"", b"fine"),
                raw(b"etc/../../escape", tar::EntryType::Regular, b"", b"pwned"),
            ])
        }),
        case(
            "absolute-path.tar.gz",
            "/tmp/backups-hostile-absolute",
            || {
                hostile_archive(&[raw(
                    b"/tmp/backups-hostile-absolute",
                    tar::EntryType::Regular,
                    b"",
                    b"pwned",
                )])
            },
        ),
        // `outside` is a directory beside the target.
        case("symlink-escape.tar.gz", "link/pwned", || {
            hostile_archive(&[
                raw(b"link", tar::EntryType::Symlink, b"../outside", b""),
                raw(b"link/pwned", tar::EntryType::Regular, b"", b"pwned"),
            ])
        }),
        case("hardlink-absolute.tar.gz", "passwd", || {
            hostile_archive(&[raw(b"passwd", tar::EntryType::Link, b"/etc/passwd", b"")])
        }),
        case("hardlink-parent.tar.gz", "passwd", || {
            hostile_archive(&[raw(
                b"passwd",
                tar::EntryType::Link,
                b"../../../../etc/passwd",
                b"",
            )])
        }),
        Case {
            file: "device-nodes.tar.gz",
            says: "dev/sda",
            upload_refused: false,
            build: || {
                hostile_archive(&[
                    raw(b"dev/sda", tar::EntryType::Block, b"", b""),
                    raw(b"dev/null", tar::EntryType::Char, b"", b""),
                ])
            },
        },
        case("truncated-gzip.tar.gz", "truncated", || {
            let good = hostile_archive(&[raw(b"etc/ok", tar::EntryType::Regular, b"", &[7; 5000])]);
            good[..good.len() - 40].to_vec()
        }),
        case("duplicate-metadata.tar.gz", "duplicate entry", || {
            gz_tar(&[
                ("juju-backup/metadata.json", metadata_json()),
                ("juju-backup/root.tar", vec![0u8; 1024]),
                ("juju-backup/metadata.json", metadata_json()),
            ])
        }),
        case(
            "garbage-after-gzip.tar.gz",
            "unexpected data after the gzip stream",
            || {
                let mut a = gz_tar(&[
                    ("juju-backup/metadata.json", metadata_json()),
                    ("juju-backup/root.tar", vec![0u8; 1024]),
                ]);
                a.extend_from_slice(b"trailing garbage");
                a
            },
        ),
        // 100 MiB of metadata.json: refused at the 8 MiB limit, not read whole.
        case("huge-metadata.tar.gz", "larger than", || {
            let mut huge = b"{\"Notes\":\"".to_vec();
            huge.resize(100 << 20, b'a');
            huge.extend_from_slice(b"\"}");
            gz_tar(&[("juju-backup/metadata.json", huge)])
        }),
        // 100 MiB of manifest.json after a valid start.
        case("huge-manifest.tar.gz", "manifest.json is too large", || {
            let mut huge = b"{\"entries\":[".to_vec();
            huge.resize(100 << 20, b' ');
            gz_tar(&[
                ("juju-backup/metadata.json", metadata_json()),
                ("juju-backup/root.tar", tiny_root_tar()),
                ("juju-backup/manifest.json", huge),
            ])
        }),
        case(
            "invalid-utf8-metadata.tar.gz",
            "unreadable metadata.json",
            || {
                gz_tar(&[(
                    "juju-backup/metadata.json",
                    b"{\"Notes\":\"\xff\xfe\"}".to_vec(),
                )])
            },
        ),
        // 128 MiB of zeros after the end of the tar, about 128 KiB compressed.
        case(
            "bomb-after-tar-end.tar.gz",
            "unexpected data after the end of the tar",
            || {
                let mut raw = Vec::new();
                {
                    let mut t = tar::Builder::new(&mut raw);
                    let body = metadata_json();
                    let mut h = tar::Header::new_gnu();
                    h.set_size(body.len() as u64);
                    h.set_mode(0o600);
                    h.set_cksum();
                    t.append_data(&mut h, "juju-backup/metadata.json", &body[..])
                        .unwrap();
                    t.finish().unwrap();
                }
                let mut gz = GzEncoder::new(Vec::new(), Compression::best());
                gz.write_all(&raw).unwrap();
                let zeros = vec![0u8; 1 << 20];
                for _ in 0..128 {
                    gz.write_all(&zeros).unwrap();
                }
                gz.finish().unwrap()
            },
        ),
        // The mode field corrupted: the header checksum no longer matches.
        case("malformed-inner-header.tar.gz", "root.tar", || {
            let mut inner = tiny_root_tar();
            inner[100] ^= 0x55;
            gz_tar(&[
                ("juju-backup/metadata.json", metadata_json()),
                ("juju-backup/root.tar", inner),
            ])
        }),
        // A document claiming 64 bytes followed by only 10.
        case(
            "corrupt-bson-dump.tar.gz",
            "dump/juju/machines.bson",
            || {
                let mut bson = vec![64, 0, 0, 0];
                bson.extend_from_slice(&[1; 10]);
                gz_tar(&[
                    ("juju-backup/metadata.json", metadata_json()),
                    ("juju-backup/root.tar", tiny_root_tar()),
                    ("juju-backup/dump/juju/machines.bson", bson),
                ])
            },
        ),
        // A GNU long-name record of 64 MiB inside root.tar: refused at 1 MiB
        // before the tar crate would buffer it.
        case("giant-long-name.tar.gz", "larger than", || {
            let mut inner = Vec::new();
            let mut h = tar::Header::new_gnu();
            h.as_gnu_mut().unwrap().name[..13].copy_from_slice(b"././@LongLink");
            h.set_entry_type(tar::EntryType::GNULongName);
            h.set_size(64 << 20);
            h.set_mode(0o644);
            h.set_cksum();
            inner.extend_from_slice(h.as_bytes());
            inner.resize(inner.len() + (64 << 20), b'a');
            inner.extend_from_slice(&[0; 1024]);
            gz_tar(&[
                ("juju-backup/metadata.json", metadata_json()),
                ("juju-backup/root.tar", inner),
            ])
        }),
    ]
}

/// Every archive in tests/hostile/ is refused by restore (exit 5, the
/// offending entry named) with nothing written anywhere, and by upload.
#[test]
fn hostile_corpus_is_refused_and_nothing_is_written() {
    let dir = hostile_dir();
    let cases = hostile_cases();
    if std::env::var_os("BACKUPS_WRITE_CORPUS").is_some() {
        for case in &cases {
            std::fs::write(dir.join(case.file), (case.build)()).unwrap();
        }
    }
    let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tar.gz"))
        .collect();
    on_disk.sort();
    let mut named: Vec<String> = cases.iter().map(|c| c.file.to_string()).collect();
    named.sort();
    assert_eq!(
        on_disk, named,
        "every corpus file has a case and the other way round"
    );
    for case in &cases {
        let env = Env::new();
        std::fs::create_dir(env.path().join("outside")).unwrap();
        std::fs::copy(dir.join(case.file), env.path().join("a.tar.gz")).unwrap();
        let before = snapshot(env.path());
        let (code, err) = env.fail(&["restore", "--file", "a.tar.gz", "--target", "target"]);
        assert_eq!(code, 5, "{}: {err}", case.file);
        assert!(
            err.contains(case.says),
            "{}: the error should say {:?}: {err}",
            case.file,
            case.says
        );
        assert_eq!(
            snapshot(env.path()),
            before,
            "{}: nothing written",
            case.file
        );
        assert!(!Path::new("/tmp/backups-hostile-absolute").exists());
        let out = env.run(&["upload", "a.tar.gz"]);
        if case.upload_refused {
            assert_eq!(out.status.code(), Some(5), "{}: upload", case.file);
            assert_eq!(env.ok(&["list"]), "No backups to display.\n");
        } else {
            assert!(out.status.success(), "{}: upload", case.file);
        }
    }
}

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

/// Incompressible bytes (xorshift), so 3 MiB stay 3 MiB in the archive.
fn noise(len: usize, mut seed: u64) -> Vec<u8> {
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

    // A plan refuses before touching anything: the free-space preflight.
    let target = disk.0.join("t");
    std::fs::create_dir_all(&target).unwrap();
    std::fs::write(target.join("keep"), "keep").unwrap();
    let before = snapshot(&disk.0);
    let (code, err) = env.fail(&[
        "restore",
        &id,
        "--target",
        target.to_str().unwrap(),
        "--stop-cmd",
        "true",
        "--no-safety-backup",
        "--yes",
    ]);
    assert_eq!(code, 5, "{err}");
    assert!(err.contains("not enough free disk space"), "{err}");
    assert_eq!(snapshot(&disk.0), before, "nothing changed");

    // A plain restore runs out of space midway: a clear error naming the
    // file, and no temporary file left behind.
    let (code, err) = env.fail(&["restore", &id, "--target", target.to_str().unwrap()]);
    assert_eq!(code, 7, "{err}");
    assert!(
        err.contains("No space left on device") && err.contains("blob"),
        "{err}"
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

// ---- restore plan: hooks, safety backup, rollback ----------------------------

/// `restore ID --target / --safety-path LIVE EXTRA... --yes`.
fn in_place<'a>(id: &'a str, live: &'a Path, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "restore",
        id,
        "--target",
        "/",
        "--safety-path",
        live.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    args.push("--yes");
    args
}

/// The metadata of the store's (one) `pre-restore` safety backup.
fn safety_backup(env: &Env) -> Value {
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

/// A live directory whose `a.txt` is "new" in the backup and "old" now;
/// `conf/added/deep/b.txt` and `conf/c.txt` are only in the backup.
fn plan_setup(env: &Env) -> (PathBuf, String) {
    let live = env.path().join("live");
    std::fs::create_dir_all(live.join("conf/added/deep")).unwrap();
    std::fs::write(live.join("conf/a.txt"), "new").unwrap();
    std::fs::write(live.join("conf/added/deep/b.txt"), "b").unwrap();
    std::fs::write(live.join("conf/c.txt"), "c").unwrap();
    let live = live.canonicalize().unwrap();
    let id = env
        .ok(&["create", "--path", live.to_str().unwrap()])
        .trim()
        .to_string();
    std::fs::remove_dir_all(live.join("conf/added")).unwrap();
    std::fs::remove_file(live.join("conf/c.txt")).unwrap();
    std::fs::write(live.join("conf/a.txt"), "old").unwrap();
    std::fs::write(live.join("conf/only-now.txt"), "kept").unwrap();
    (live, id)
}

#[test]
fn restore_plan_runs_hooks_in_order_after_a_safety_backup() {
    let env = Env::new();
    let (live, id) = plan_setup(&env);
    let log = env.path().join("hooks.log");
    let l = log.display();
    let out = env.ok(&in_place(
        &id,
        &live,
        &[
            "--stop-cmd",
            &format!("echo stop >> {l}"),
            "--post-restore-cmd",
            &format!("echo post >> {l}"),
            "--start-cmd",
            &format!("echo start >> {l}"),
        ],
    ));
    assert!(out.starts_with("Restored"), "{out}");
    assert_eq!(
        std::fs::read_to_string(live.join("conf/a.txt")).unwrap(),
        "new"
    );
    assert_eq!(
        std::fs::read_to_string(live.join("conf/added/deep/b.txt")).unwrap(),
        "b"
    );
    assert_eq!(
        std::fs::read_to_string(&log).unwrap(),
        "stop\npost\nstart\n"
    );
    let safety = safety_backup(&env);
    assert_eq!(
        safety["ModelUUID"], MODEL,
        "the safety backup carries the target's model (BACKUPS_MODEL_UUID)"
    );
    // Without --yes and without a terminal, a plan refuses to start.
    let (code, err) = env.fail(&[
        "restore",
        &id,
        "--target",
        "/",
        "--safety-path",
        live.to_str().unwrap(),
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--yes"), "{err}");
}

#[test]
fn failing_post_restore_hook_rolls_back_to_the_live_state() {
    let env = Env::new();
    let (live, id) = plan_setup(&env);
    let before = snapshot(&live);
    let log = env.path().join("hooks.log");
    let l = log.display();
    let (code, err) = env.fail(&in_place(
        &id,
        &live,
        &[
            "--stop-cmd",
            &format!("echo stop >> {l}"),
            "--post-restore-cmd",
            "echo 'cannot rewrite agent.conf' >&2; exit 3",
            "--start-cmd",
            &format!("echo start >> {l}"),
        ],
    ));
    assert_eq!(code, 10, "{err}");
    assert!(
        err.contains("rolled back to safety backup") && err.contains("cannot rewrite agent.conf"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(live.join("conf/a.txt")).unwrap(),
        "old",
        "pre-restore state is back"
    );
    assert_eq!(
        std::fs::read_to_string(live.join("conf/only-now.txt")).unwrap(),
        "kept"
    );
    assert_eq!(
        snapshot(&live),
        before,
        "what the failed restore added is gone too"
    );
    assert_eq!(
        std::fs::read_to_string(&log).unwrap(),
        "stop\nstart\n",
        "services started again"
    );
}

#[test]
fn a_restore_killed_midway_is_undone_by_restoring_its_safety_backup() {
    let env = Env::new();
    let (live, id) = plan_setup(&env);
    let before = snapshot(&live);
    // The post-restore hook kills backups itself (its parent): files are
    // restored, services stopped, the lease still held.
    let out = env.run(&in_place(
        &id,
        &live,
        &["--post-restore-cmd", "kill -9 $PPID"],
    ));
    assert_eq!(out.status.code(), None, "killed by a signal");
    assert_eq!(
        std::fs::read_to_string(live.join("conf/added/deep/b.txt")).unwrap(),
        "b",
        "the killed restore had extracted its files"
    );
    let safety = safety_backup(&env)["ID"].as_str().unwrap().to_string();
    let journal = env.path().join(format!("state/restore-{safety}.journal"));
    assert!(journal.exists(), "the journal of the restore is on disk");
    assert!(
        std::fs::read_dir(env.store().join(".lease"))
            .unwrap()
            .next()
            .is_some(),
        "the killed process's lease is left behind"
    );
    // Recovery right away: the dead holder's lease (this host) is taken over.
    let out = env.run(&["restore", &safety, "--target", "/", "--yes"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("took back the interrupted restore: removed 4 paths it had added, put back 1 it had replaced"),
        "{err}"
    );
    assert_eq!(
        snapshot(&live),
        before,
        "back to the state before the killed restore"
    );
    assert!(!journal.exists(), "the journal is settled");
}

#[test]
fn a_rollback_puts_back_files_outside_the_safety_paths_too() {
    let env = Env::new();
    let (live, _) = plan_setup(&env);
    let other = env.path().join("other");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(other.join("o.txt"), "new").unwrap();
    let other = other.canonicalize().unwrap();
    let id = env
        .ok(&[
            "create",
            "--path",
            live.to_str().unwrap(),
            "--path",
            other.to_str().unwrap(),
        ])
        .trim()
        .to_string();
    std::fs::write(other.join("o.txt"), "old").unwrap();
    let (before_live, before_other) = (snapshot(&live), snapshot(&other));
    // The safety backup covers only `live`; `other/o.txt` is overwritten
    // too, and the journal keeps its previous version.
    let (code, err) = env.fail(&in_place(&id, &live, &["--post-restore-cmd", "exit 5"]));
    assert_eq!(code, 10, "{err}");
    assert_eq!(snapshot(&other), before_other, "outside the safety paths");
    assert_eq!(snapshot(&live), before_live);
}

#[test]
fn dry_run_plan_prints_the_steps_runs_the_checks_and_changes_nothing() {
    let env = Env::new();
    let (live, id) = plan_setup(&env);
    let before = snapshot(env.path());
    let log = env.path().join("hooks.log");
    let args = |extra: &[&'static str]| -> Vec<String> {
        let mut v: Vec<String> = [
            "restore",
            id.as_str(),
            "--target",
            "/",
            "--safety-path",
            live.to_str().unwrap(),
            "--dry-run",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        v.push("--stop-cmd".into());
        v.push(format!("echo stop >> {}", log.display()));
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };
    let run = |extra: &[&'static str]| {
        let a = args(extra);
        env.run(&a.iter().map(String::as_str).collect::<Vec<_>>())
    };
    let out = run(&[]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.starts_with("Plan:\n  1. verify the whole archive"),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "3. safety backup (label pre-restore) of {}",
            live.display()
        )) && text.contains("4. stop services: `echo stop >> ")
            && text.contains("7. start services: (no command)")
            && text.contains("Nothing was changed."),
        "{text}"
    );
    // The preflight checks run in a dry run too.
    let out = run(&["--target-version", "0.1"]);
    assert_eq!(out.status.code(), Some(5));
    assert!(String::from_utf8_lossy(&out.stderr).contains("newer than the target"));
    assert_eq!(snapshot(env.path()), before, "nothing changed, no hook run");
    assert_eq!(
        env.json(&["list", "--json"]).as_array().unwrap().len(),
        1,
        "no safety backup taken"
    );
}

/// Runs the binary on a pseudo-terminal (util-linux `script`) with `input`
/// typed in; returns the exit code and everything it printed.
fn on_a_terminal(env: &Env, args: &[&str], input: &str) -> (Option<i32>, String) {
    let quote = |a: &str| format!("'{}'", a.replace('\'', r"'\''"));
    let mut cmd = vec![
        quote(BIN),
        "--store".into(),
        quote(env.store().to_str().unwrap()),
        "--progress".into(),
        "none".into(),
    ];
    cmd.extend(args.iter().map(|a| quote(a)));
    let mut child = Command::new("script")
        .args(["-qec", &cmd.join(" "), "/dev/null"])
        .env("BACKUPS_MODEL_UUID", MODEL)
        .env("BACKUPS_STATE_DIR", env.path().join("state"))
        .current_dir(env.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("util-linux `script`");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code(), text)
}

#[test]
fn a_plan_on_a_terminal_asks_and_a_no_changes_nothing() {
    let env = Env::new();
    let (live, id) = plan_setup(&env);
    let before = snapshot(&live);
    let log = env.path().join("hooks.log");
    let stop = format!("echo stop >> {}", log.display());
    let args = [
        "restore",
        id.as_str(),
        "--target",
        "/",
        "--safety-path",
        live.to_str().unwrap(),
        "--stop-cmd",
        stop.as_str(),
    ];
    let (code, text) = on_a_terminal(&env, &args, "n\n");
    assert_eq!(code, Some(130), "{text}");
    assert!(
        text.contains("Restore into / (services will be stopped)? [y/N]")
            && text.contains("restore cancelled"),
        "{text}"
    );
    assert_eq!(snapshot(&live), before, "nothing changed");
    assert!(!log.exists(), "no hook ran");
    let (code, text) = on_a_terminal(&env, &args, "y\n");
    assert_eq!(code, Some(0), "{text}");
    assert_eq!(
        std::fs::read_to_string(live.join("conf/a.txt")).unwrap(),
        "new"
    );
    assert_eq!(std::fs::read_to_string(&log).unwrap(), "stop\n");
}

#[test]
fn an_in_place_restore_asks_first() {
    let env = Env::new();
    let (_, id) = plan_setup(&env);
    let (code, err) = env.fail(&["restore", &id, "--target", "/"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--yes"), "{err}");
}

#[test]
fn hooks_see_the_restore_and_their_output_is_shown() {
    let env = Env::new();
    let (live, id) = plan_setup(&env);
    let out = env.run(&in_place(&id, &live, &[
        "--post-restore-cmd",
        "echo \"$BACKUPS_HOOK of $BACKUPS_RESTORE_SOURCE into $BACKUPS_RESTORE_TARGET\"; echo on-stderr >&2",
    ]));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains(&format!("[post-restore] post-restore of {id} into /\n"))
            && err.contains("[post-restore] on-stderr\n"),
        "{err}"
    );
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("on-stderr"),
        "hook output stays off stdout"
    );
}

#[test]
fn a_hung_stop_hook_is_killed_at_its_timeout_and_changes_nothing() {
    let env = Env::new();
    let (live, id) = plan_setup(&env);
    let before = snapshot(&live);
    let pid_file = env.path().join("sleeper.pid");
    let stop = format!("sleep 600 & echo $! > {}; wait", pid_file.display());
    let (code, err) = env.fail(&in_place(
        &id,
        &live,
        &["--stop-cmd", &stop, "--hook-timeout", "1s"],
    ));
    assert_eq!(code, 12, "{err}");
    assert!(err.contains("timed out after 1s (--hook-timeout)"), "{err}");
    assert_eq!(snapshot(&live), before, "nothing changed");
    // The hook's child went with it (gone, or a zombie waiting for init).
    let pid = std::fs::read_to_string(&pid_file).unwrap();
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", pid.trim())).unwrap_or_default();
    assert!(
        stat.is_empty() || stat.contains(") Z "),
        "sleep 600 still runs: {stat}"
    );
}

#[test]
fn failing_stop_hook_changes_nothing() {
    let env = Env::new();
    let (live, id) = plan_setup(&env);
    let (code, err) = env.fail(&in_place(&id, &live, &["--stop-cmd", "exit 7"]));
    assert_eq!(code, 12, "{err}");
    assert!(err.contains("stop hook `exit 7` failed"), "{err}");
    assert_eq!(
        std::fs::read_to_string(live.join("conf/a.txt")).unwrap(),
        "old"
    );
}

#[test]
fn failed_restore_rolls_the_database_back_too() {
    let Some(uri) = service_env("BACKUPS_TEST_MONGO_URI") else {
        return;
    };
    let env = Env::new();
    let live = env.path().join("live");
    std::fs::create_dir_all(&live).unwrap();
    std::fs::write(live.join("a.txt"), "new").unwrap();
    let db = format!("rollback-{}", unique_prefix());
    let set = |v: &str| {
        python_mongo(
            &format!(
                "import sys; from pymongo import MongoClient; MongoClient(sys.argv[1])[sys.argv[2]].c.replace_one({{'_id': 1}}, {{'_id': 1, 'v': '{v}'}}, upsert=True)"
            ),
            &uri,
            &db,
        )
    };
    set("new");
    let added = |action: &str| {
        python_mongo(
            &format!(
                "import sys; from pymongo import MongoClient; c = MongoClient(sys.argv[1])[sys.argv[2]].added; c.{action}"
            ),
            &uri,
            &db,
        )
    };
    // `added` is in the backup only: the failed restore creates it and the
    // rollback must take it away again.
    added("insert_one({'_id': 1})");
    let run = |args: &[&str]| env.run_with(args, &[("BACKUPS_MONGO_URI", &uri)]);
    let out = run(&[
        "create",
        "--path",
        live.to_str().unwrap(),
        "--include-db",
        &db,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let id = String::from_utf8(out.stdout).unwrap().trim().to_string();
    set("old");
    added("drop()");
    let out = run(&[
        "restore",
        &id,
        "--target",
        "/",
        "--safety-path",
        live.to_str().unwrap(),
        "--safety-db",
        &db,
        "--post-restore-cmd",
        "exit 4",
        "--yes",
    ]);
    assert_eq!(
        out.status.code(),
        Some(10),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v = python_mongo(
        "import sys; from pymongo import MongoClient; c = MongoClient(sys.argv[1]); d = c[sys.argv[2]]; print(d.c.find_one({'_id': 1})['v'], sorted(d.list_collection_names())); c.drop_database(sys.argv[2])",
        &uri,
        &db,
    );
    assert_eq!(
        v.trim(),
        "old ['c']",
        "the database is back to its pre-restore state, without what the restore added"
    );
}

/// One BSON document `{_id: <id>, v: <v>}`, encoded by hand.
fn bson_doc(id: i32, v: &str) -> Vec<u8> {
    let mut body = vec![0x10];
    body.extend_from_slice(b"_id\0");
    body.extend_from_slice(&id.to_le_bytes());
    body.push(0x02);
    body.extend_from_slice(b"v\0");
    body.extend_from_slice(&(v.len() as i32 + 1).to_le_bytes());
    body.extend_from_slice(v.as_bytes());
    body.push(0);
    body.push(0);
    let mut doc = ((body.len() + 4) as i32).to_le_bytes().to_vec();
    doc.extend_from_slice(&body);
    doc
}

#[test]
fn a_failing_database_load_rolls_files_and_database_back() {
    let Some(uri) = service_env("BACKUPS_TEST_MONGO_URI") else {
        return;
    };
    let env = Env::new();
    let live = env.path().join("live");
    std::fs::create_dir_all(&live).unwrap();
    std::fs::write(live.join("a.txt"), "old").unwrap();
    let live = live.canonicalize().unwrap();
    let db = format!("loadfail-{}", unique_prefix());
    let other = format!("untouched-{}", unique_prefix());
    python_mongo(
        &format!(
            "import sys; from pymongo import MongoClient; c = MongoClient(sys.argv[1]); c[sys.argv[2]].c.insert_one({{'_id': 1, 'v': 'old'}}); c['{other}'].x.insert_one({{'_id': 1}})"
        ),
        &uri,
        &db,
    );
    // A backup whose files are "new" and whose dump holds `_id` 2 twice:
    // the load fails after the files were written and part of c loaded.
    let rel = live.join("a.txt");
    let rel = rel.to_str().unwrap().trim_start_matches('/');
    let mut root = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(3);
    h.set_mode(0o644);
    h.set_cksum();
    root.append_data(&mut h, rel, &b"new"[..]).unwrap();
    let root = root.into_inner().unwrap();
    let bson = [bson_doc(1, "new"), bson_doc(2, "new"), bson_doc(2, "again")].concat();
    let archive = gz_tar(&[
        ("juju-backup/metadata.json", metadata_json()),
        ("juju-backup/root.tar", root),
        (&format!("juju-backup/dump/{db}/c.bson"), bson),
        (
            &format!("juju-backup/dump/{db}/added.bson"),
            bson_doc(9, "added"),
        ),
    ]);
    std::fs::write(env.path().join("dup.tar.gz"), archive).unwrap();
    env.ok(&["upload", "dup.tar.gz"]);
    let id = first_id(&env);
    let out = env.run_with(
        &[
            "restore",
            &id,
            "--target",
            "/",
            "--safety-path",
            live.to_str().unwrap(),
            "--safety-db",
            &db,
            "--yes",
        ],
        &[("BACKUPS_MONGO_URI", &uri)],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(10), "{err}");
    assert!(
        err.contains("rolled back") && err.contains(&format!("{db}.c")),
        "{err}"
    );
    assert_eq!(std::fs::read_to_string(live.join("a.txt")).unwrap(), "old");
    let state = python_mongo(
        &format!(
            "import sys; from pymongo import MongoClient; c = MongoClient(sys.argv[1]); d = c[sys.argv[2]]; print(list(d.c.find()), sorted(d.list_collection_names())); c.drop_database(sys.argv[2]); c.drop_database('{other}')"
        ),
        &uri,
        &db,
    );
    assert_eq!(
        state.trim(),
        "[{'_id': 1, 'v': 'old'}] ['c']",
        "the database is as it was"
    );
    // The safety backup held only the database named by --safety-db.
    let safety = safety_backup(&env);
    let dbs: Vec<&String> = safety["Databases"]
        .as_object()
        .unwrap()
        .keys()
        .filter(|k| !k.starts_with("oplog"))
        .collect();
    assert!(
        !dbs.is_empty() && dbs.iter().all(|k| k.starts_with(&db)),
        "only {db}: {dbs:?}"
    );
}

#[test]
fn a_failing_start_hook_rolls_back_and_starts_again() {
    let env = Env::new();
    let (live, id) = plan_setup(&env);
    let before = snapshot(&live);
    let log = env.path().join("hooks.log");
    // The first start fails (the restored state does not come up); the
    // second, after the rollback, succeeds.
    let start = format!(
        "if [ -e {flag} ]; then echo start $BACKUPS_ROLLED_BACK >> {log}; else touch {flag}; echo 'jujud did not come up' >&2; exit 1; fi",
        flag = env.path().join("tried").display(),
        log = log.display()
    );
    let (code, err) = env.fail(&in_place(
        &id,
        &live,
        &[
            "--stop-cmd",
            &format!("echo stop >> {}", log.display()),
            "--start-cmd",
            &start,
        ],
    ));
    assert_eq!(code, 10, "{err}");
    assert!(err.contains("jujud did not come up"), "{err}");
    assert_eq!(snapshot(&live), before, "the pre-restore state is back");
    assert_eq!(
        std::fs::read_to_string(&log).unwrap(),
        "stop\nstart 1\n",
        "the start after the rollback says so"
    );
}

#[test]
fn without_a_safety_backup_a_failure_leaves_the_services_stopped() {
    let env = Env::new();
    let (_, id) = plan_setup(&env);
    let log = env.path().join("hooks.log");
    let (code, err) = env.fail(&[
        "restore",
        &id,
        "--target",
        "/",
        "--no-safety-backup",
        "--stop-cmd",
        &format!("echo stop >> {}", log.display()),
        "--post-restore-cmd",
        "exit 3",
        "--start-cmd",
        &format!("echo start >> {}", log.display()),
        "--yes",
    ]);
    assert_eq!(code, 12, "{err}");
    assert!(err.contains("services were left stopped"), "{err}");
    assert_eq!(std::fs::read_to_string(&log).unwrap(), "stop\n");
}

#[test]
fn preflight_refuses_another_controller_and_a_newer_backup() {
    let env = Env::new();
    let fixture = fixtures().join("valid-backup-ver-1.tar.gz");
    env.ok(&["upload", fixture.to_str().unwrap()]);
    let id = "20200303-155649.1be318f6-9460-4fe1-8eb4-b1df2db23b53";
    let base = [
        "restore",
        id,
        "--target",
        "t",
        "--no-safety-backup",
        "--yes",
    ];
    fn with<'a>(base: &[&'a str], extra: &[&'a str]) -> Vec<&'a str> {
        [base, extra].concat()
    }
    let (code, err) = env.fail(&with(
        &base,
        &[
            "--target-controller-uuid",
            "00000000-0000-4000-8000-000000000000",
        ],
    ));
    assert_eq!(code, 5, "{err}");
    assert!(
        err.contains("bda3b637-7972-47f7-87fd-a3f2d0c748a5")
            && err.contains("--allow-other-controller"),
        "{err}"
    );
    let (code, err) = env.fail(&with(&base, &["--target-version", "2.7.6"]));
    assert_eq!(code, 5, "{err}");
    assert!(err.contains("newer than the target"), "{err}");
    let (code, err) = env.fail(&with(&base, &["--target-version", "2.9.0"]));
    assert_eq!(code, 5, "{err}");
    assert!(err.contains("--allow-downgrade"), "{err}");
    assert!(
        !env.path().join("t").exists(),
        "preflight failures change nothing"
    );
    let out = env.ok(&with(
        &base,
        &[
            "--target-version",
            "2.9.0",
            "--allow-downgrade",
            "--target-controller-uuid",
            "bda3b637-7972-47f7-87fd-a3f2d0c748a5",
        ],
    ));
    assert!(out.starts_with("Restored"), "{out}");
}
