//! MongoDB through the CLI: files and a database backed up and restored
//! together, and a failed restore rolling the database back.

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

#[test]
fn failed_restore_rolls_the_database_back_too() {
    let Some(uri) = service_env("BACKUPS_TEST_MONGO_URI") else {
        return;
    };
    let env = Env::new();
    let live = env.path().join("live");
    std::fs::create_dir_all(&live).unwrap();
    std::fs::write(live.join("a.txt"), "new").unwrap();
    let db = unique_name("rollback");
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
    let db = unique_name("loadfail");
    let other = unique_name("untouched");
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
