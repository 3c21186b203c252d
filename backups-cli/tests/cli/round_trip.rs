//! Create, list, show, download, restore and remove on a local store.

use std::process::Command;

use serde_json::Value;

use crate::support::*;

#[test]
fn empty_store_lists_nothing() {
    let env = Env::new();
    // An existing, empty store (a missing one is no store: store_paths.rs).
    std::fs::create_dir(env.store()).unwrap();
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
    // Stored as `.tar.zst`, and `show` names the compression.
    let stored: Vec<String> = std::fs::read_dir(env.store())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(&id) && !n.ends_with(".json"))
        .collect();
    assert!(
        stored.len() == 1 && stored[0].ends_with(".tar.zst"),
        "{stored:?}"
    );
    let show = env.ok(&["show", &id]);
    assert!(show.contains("zstd"), "{show}");
    let gc = env.ok(&["gc"]);
    assert!(
        gc.contains("No garbage"),
        "a .tar.zst archive is not garbage: {gc}"
    );
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
    let uploaded = std::fs::read_dir(other.store())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .any(|n| n.starts_with(&id) && n.ends_with(".tar.zst"));
    assert!(uploaded, "an uploaded zstd archive is stored as .tar.zst");
    other.ok(&["remove", &id]);
    let left: Vec<_> = std::fs::read_dir(other.store())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(
        left.iter().all(|n| !n.to_string_lossy().starts_with(&id)),
        "{left:?}"
    );
    let (code, err) = env.fail(&[
        "create",
        "--path",
        tree.to_str().unwrap(),
        "--compression",
        "zstd",
        "--compression-level",
        "0",
    ]);
    assert_eq!(code, 2, "level 0 is refused: {err}");
    let (code, err) = env.fail(&[
        "create",
        "--path",
        tree.to_str().unwrap(),
        "--compression-level",
        "12",
    ]);
    assert_eq!(code, 2, "{err}");
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
