//! `backups diff` and the comparison `restore --dry-run` prints: files only
//! in the backup, only live, different (size, mode, SHA-256, symlink
//! target); with MongoDB, documents and indexes per collection.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use backups_core::test_util::{service_env, unique_name};
use serde_json::{Value, json};

use crate::support::*;

/// (path, reasons) of each different file.
fn reasons(diff: &Value) -> Vec<(String, Vec<String>)> {
    diff["Files"]["Different"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            let reasons = d["Reasons"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r.as_str().unwrap().to_string())
                .collect();
            (d["Path"].as_str().unwrap().to_string(), reasons)
        })
        .collect()
}

/// The backup's name of a path under the sample tree.
fn under(tree: &Path, rel: &str) -> String {
    format!("{}/{rel}", tree.strip_prefix("/").unwrap().display())
}

/// The sample tree changed four ways: contents (same size), mode, a file
/// deleted, a file added, a symlink retargeted.
fn change(tree: &Path) {
    std::fs::write(tree.join("etc/juju/agent.conf"), b"tag: machine-1\n").unwrap();
    std::fs::set_permissions(
        tree.join("etc/juju/certs/server.pem"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    std::fs::remove_file(tree.join("var/log/big.log")).unwrap();
    std::fs::write(tree.join("etc/juju/new.txt"), b"new").unwrap();
    std::fs::remove_file(tree.join("etc/current-agent")).unwrap();
    std::os::unix::fs::symlink("/etc/juju/other.conf", tree.join("etc/current-agent")).unwrap();
}

#[test]
fn diff_lists_exactly_what_changed_under_the_target() {
    let env = Env::new();
    let tree = sample_tree(env.path());
    let id = env.ok(&["create", "--path", tree.to_str().unwrap()]);
    let id = id.trim();

    let same = env.json(&["diff", id, "--target", "/", "--json"]);
    assert_eq!(same["Files"]["Counts"]["Different"], 0, "{same}");
    assert_eq!(same["Files"]["OnlyInBackup"], json!([]), "{same}");
    // The store and the tree's parents are outside what the backup covers.
    assert_eq!(same["Files"]["OnlyLive"], json!([]), "{same}");
    env.ok(&["diff", id, "--target", "/", "--exit-code"]);

    change(&tree);
    // Outside the backed-up tree: never listed.
    std::fs::write(env.path().join("stray"), b"x").unwrap();
    let diff = env.json(&["diff", id, "--target", "/", "--json"]);
    assert_eq!(
        diff["Files"]["OnlyInBackup"],
        json!([under(&tree, "var/log/big.log")]),
        "{diff}"
    );
    assert_eq!(
        diff["Files"]["OnlyLive"],
        json!([under(&tree, "etc/juju/new.txt")]),
        "{diff}"
    );
    assert_eq!(
        reasons(&diff),
        vec![
            (under(&tree, "etc/current-agent"), vec!["target".into()]),
            (under(&tree, "etc/juju/agent.conf"), vec!["sha256".into()]),
            (
                under(&tree, "etc/juju/certs/server.pem"),
                vec!["mode".into()]
            ),
        ]
    );
    let counts = &diff["Files"]["Counts"];
    assert_eq!(
        (
            &counts["OnlyInBackup"],
            &counts["OnlyLive"],
            &counts["Different"]
        ),
        (&json!(1), &json!(1), &json!(3))
    );
    let pem = &diff["Files"]["Different"][2];
    assert_eq!(pem["Backup"]["Mode"], "0600");
    assert_eq!(pem["Live"]["Mode"], "0644");
    let conf = &diff["Files"]["Different"][1];
    assert_eq!(conf["Backup"]["Size"], conf["Live"]["Size"]);
    assert_ne!(conf["Backup"]["SHA256"], conf["Live"]["SHA256"]);
    assert_eq!(
        diff["Files"]["Different"][0]["Live"]["Target"],
        "/etc/juju/other.conf"
    );
    assert_eq!(diff["DatabaseCompared"], false);

    let text = env.ok(&["diff", id, "--target", "/"]);
    assert!(
        text.contains("1 only in the backup, 1 only live, 3 different"),
        "{text}"
    );
    assert!(
        text.contains("certs/server.pem: mode 0600 in the backup, 0644 live"),
        "{text}"
    );
    assert!(text.contains("agent.conf: contents (SHA-256)"), "{text}");
    // Differences are not an error, unless asked.
    let (code, err) = env.fail(&["diff", id, "--target", "/", "--exit-code"]);
    assert_eq!(code, 14, "{err}");
}

#[test]
fn diff_reads_an_archive_file_and_restore_dry_run_shows_the_same_summary() {
    let env = Env::new();
    let tree = sample_tree(env.path());
    let id = env.ok(&["create", "--path", tree.to_str().unwrap()]);
    let id = id.trim();
    env.ok(&["restore", id, "--target", "restored"]);
    env.ok(&["download", id, "-o", "archive.tar.gz"]);
    let restored = env.path().join("restored").join(under(&tree, ""));
    let clean = env.json(&[
        "diff",
        "--file",
        "archive.tar.gz",
        "--target",
        "restored",
        "--json",
    ]);
    assert_eq!(clean["Files"]["Counts"]["Same"], clean_count(&clean));
    assert_eq!(reasons(&clean), vec![]);
    assert_eq!(clean["Files"]["OnlyInBackup"], json!([]));

    change(&restored);
    let text = env.ok(&["restore", id, "--target", "restored", "--dry-run"]);
    assert!(text.contains("Would restore"), "{text}");
    assert!(
        text.contains("Files under restored: 1 only in the backup, 1 only live, 3 different"),
        "{text}"
    );
    let dry = env.json(&["restore", id, "--target", "restored", "--dry-run", "--json"]);
    assert_eq!(dry["DryRun"], true);
    assert_eq!(dry["Files"], 5, "{dry}");
    let from_file = env.json(&[
        "diff",
        "--file",
        "archive.tar.gz",
        "--target",
        "restored",
        "--json",
    ]);
    assert_eq!(dry["Diff"]["Files"], from_file["Files"]);
    assert_eq!(
        dry["Diff"]["Files"]["OnlyLive"],
        json!([under(&tree, "etc/juju/new.txt")])
    );
    // As a plan (a hook): the plan's steps are under "Plan", the diff too.
    let planned = env.json(&[
        "restore",
        id,
        "--target",
        "restored",
        "--dry-run",
        "--json",
        "--stop-cmd",
        "true",
    ]);
    assert_eq!(planned["Diff"]["Files"], from_file["Files"]);
    assert!(
        planned["Plan"][0]
            .as_str()
            .unwrap()
            .starts_with("verify the whole archive")
    );
    let skipped = env.json(&[
        "restore",
        id,
        "--target",
        "restored",
        "--dry-run",
        "--json",
        "--no-diff",
    ]);
    assert!(skipped.get("Diff").is_none(), "{skipped}");
    // The dry runs changed nothing.
    assert_eq!(
        std::fs::read(restored.join("etc/juju/agent.conf")).unwrap(),
        b"tag: machine-1\n"
    );
}

/// Every entry of a clean diff is the same: the count of the backup's entries.
fn clean_count(diff: &Value) -> Value {
    let c = &diff["Files"]["Counts"];
    assert_eq!(c["Different"], 0, "{diff}");
    assert_eq!(c["OnlyLive"], 0, "{diff}");
    c["Same"].clone()
}

#[test]
fn an_encrypted_backup_needs_its_identity() {
    let env = Env::new();
    let tree = sample_tree(env.path());
    let recipient = env
        .ok(&["key", "generate", "-o", "key.txt"])
        .trim()
        .to_string();
    let id = env.ok(&[
        "create",
        "--path",
        tree.to_str().unwrap(),
        "--encrypt-to",
        &recipient,
    ]);
    let id = id.trim();
    let (code, err) = env.fail(&["diff", id, "--target", "/"]);
    assert_eq!(code, 13, "{err}");
    assert!(err.contains("--identity"), "{err}");
    let diff = env.json(&[
        "diff",
        id,
        "--target",
        "/",
        "--identity",
        "key.txt",
        "--json",
    ]);
    assert_eq!(reasons(&diff), vec![]);
    assert_eq!(diff["Files"]["OnlyInBackup"], json!([]));
}

#[test]
fn diff_counts_documents_and_indexes_per_collection() {
    let Some(uri) = service_env("BACKUPS_TEST_MONGO_URI") else {
        return;
    };
    let env = Env::new();
    let tree = sample_tree(env.path());
    let (src, dst) = (unique_name("diffsrc"), unique_name("diffdst"));
    python_mongo(
        "import sys; from pymongo import MongoClient; db = MongoClient(sys.argv[1])[sys.argv[2]]; \
         db.machines.insert_many([{'_id': i, 'life': 'alive'} for i in range(10)]); \
         db.machines.create_index('life'); \
         db.units.insert_many([{'_id': 'u%d' % i} for i in range(3)])",
        &uri,
        &src,
    );
    let mongo = [("BACKUPS_MONGO_URI", uri.as_str())];
    let created = env.run_with(
        &[
            "create",
            "--path",
            tree.to_str().unwrap(),
            "--include-db",
            &src,
        ],
        &mongo,
    );
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    let id = String::from_utf8(created.stdout)
        .unwrap()
        .trim()
        .to_string();
    python_mongo(
        "import sys; from pymongo import MongoClient; db = MongoClient(sys.argv[1])[sys.argv[2]]; \
         db.machines.delete_many({'_id': {'$in': [0, 1]}}); \
         db.machines.insert_many([{'_id': i, 'life': 'alive'} for i in (100, 101, 102)]); \
         db.machines.update_one({'_id': 5}, {'$set': {'life': 'dying'}}); \
         db.machines.create_index('x'); \
         db.extra.insert_many([{'_id': 1}, {'_id': 2}])",
        &uri,
        &src,
    );
    let diffed = env.run_with(&["diff", &id, "--target", "/", "--json"], &mongo);
    assert!(
        diffed.status.success(),
        "{}",
        String::from_utf8_lossy(&diffed.stderr)
    );
    let diff: Value = serde_json::from_slice(&diffed.stdout).unwrap();
    assert_eq!(diff["DatabaseCompared"], true);
    assert_eq!(
        diff["Collections"],
        json!([
            {
                "Namespace": format!("{src}.extra"),
                "BackupDocuments": 0, "LiveDocuments": 2,
                "OnlyInBackup": 0, "OnlyLive": 2, "Different": 0,
                "IndexesOnlyInBackup": [], "IndexesOnlyLive": ["_id_"],
                "IndexesDifferent": [],
            },
            {
                "Namespace": format!("{src}.machines"),
                "BackupDocuments": 10, "LiveDocuments": 11,
                "OnlyInBackup": 2, "OnlyLive": 3, "Different": 1,
                "IndexesOnlyInBackup": [], "IndexesOnlyLive": ["x_1"],
                "IndexesDifferent": [],
            },
            {
                "Namespace": format!("{src}.units"),
                "BackupDocuments": 3, "LiveDocuments": 3,
                "OnlyInBackup": 0, "OnlyLive": 0, "Different": 0,
                "IndexesOnlyInBackup": [], "IndexesOnlyLive": [],
                "IndexesDifferent": [],
            },
        ]),
        "{diff}"
    );
    let text = env.run_with(&["diff", &id, "--target", "/"], &mongo);
    let text = String::from_utf8(text.stdout).unwrap();
    assert!(
        text.contains(&format!(
            "{src}.machines: 10 documents in the backup, 11 live; 2 only in the backup, 3 only live, 1 different"
        )),
        "{text}"
    );
    assert!(text.contains("indexes only live: x_1"), "{text}");
    assert!(
        text.contains(&format!("{src}.units: the same (3 documents")),
        "{text}"
    );

    // A dry run into another database: nothing there yet.
    let dry = env.run_with(
        &[
            "restore",
            &id,
            "--target",
            "restored",
            "--dry-run",
            "--json",
            "--db-rename",
            &format!("{src}={dst}"),
        ],
        &mongo,
    );
    assert!(
        dry.status.success(),
        "{}",
        String::from_utf8_lossy(&dry.stderr)
    );
    let dry: Value = serde_json::from_slice(&dry.stdout).unwrap();
    let machines = &dry["Diff"]["Collections"][0];
    assert_eq!(machines["Namespace"], format!("{dst}.machines"), "{dry}");
    assert_eq!(
        (
            &machines["BackupDocuments"],
            &machines["LiveDocuments"],
            &machines["OnlyInBackup"]
        ),
        (&json!(10), &json!(0), &json!(10))
    );
    assert_eq!(machines["IndexesOnlyInBackup"], json!(["_id_", "life_1"]));
    python_mongo(
        "import sys; from pymongo import MongoClient; c = MongoClient(sys.argv[1]); \
         [c.drop_database(d) for d in c.list_database_names() if d.startswith(('diffsrc', 'diffdst'))]",
        &uri,
        &src,
    );
}
