//! Files and a MongoDB database backed up and restored together.

use std::process::Command;

use backups_core::test_util::{service_env, unique_name};

use crate::support::*;

#[test]
fn files_and_database_back_up_and_restore_together() {
    let Some(uri) = service_env("BACKUPS_TEST_MONGO_URI") else {
        return;
    };
    let env = Env::new();
    let tree = sample_tree(env.path());
    let (src, dst) = (unique_name("clisrc"), unique_name("clidst"));
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
