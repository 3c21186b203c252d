//! `verify` at its three levels, the record it leaves in the sidecar (shown
//! by `list` and `show`), and `label` and `notes`.

use backups_core::test_util::{service_env, unique_name};
use serde_json::Value;

use crate::support::*;

fn created(env: &Env, extra: &[&str]) -> String {
    let tree = sample_tree(env.path());
    let mut args = vec!["create", "--path", tree.to_str().unwrap()];
    args.extend_from_slice(extra);
    env.ok(&args).trim().to_string()
}

#[test]
fn verify_records_each_level_and_a_damaged_backup_fails() {
    let env = Env::new();
    let id = created(&env, &[]);
    assert!(env.ok(&["list"]).contains(" - "), "never verified yet");
    let out = env.ok(&["verify", "--latest"]);
    assert!(out.starts_with(&format!("{id}: stored ok")), "{out}");
    assert!(env.ok(&["list"]).contains("stored ok"));
    let out = env.ok(&["verify", &id, "--read-data"]);
    assert!(
        out.contains("read-data ok") && out.contains("manifest verified"),
        "{out}"
    );
    let scratch = env.path().join("scratch");
    std::fs::create_dir_all(&scratch).unwrap();
    let out = env.ok(&[
        "verify",
        "--all",
        "--drill",
        "--scratch-dir",
        scratch.to_str().unwrap(),
    ]);
    assert!(
        out.contains("drill ok") && out.contains("as recorded"),
        "{out}"
    );
    assert_eq!(
        std::fs::read_dir(&scratch).unwrap().count(),
        0,
        "scratch removed"
    );
    let shown = env.ok(&["show", &id]);
    assert!(
        shown.contains("verified:") && shown.contains("drill ok"),
        "{shown}"
    );
    let json = env.json(&["show", &id, "--json"]);
    assert_eq!(json["Verification"]["Level"], "drill");
    assert_eq!(json["Verification"]["Ok"], true);

    // Damage the stored archive: verify fails (exit 5) and says so, and
    // the sidecar records the failure.
    let name = json["Archive"].as_str().unwrap().to_string();
    let archive = env.store().join(name);
    let mut bytes = std::fs::read(&archive).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x11;
    std::fs::write(&archive, bytes).unwrap();
    let out = env.run(&["verify", &id, "--json"]);
    assert_eq!(out.status.code(), Some(5));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v[0]["ID"], id.as_str());
    assert_eq!(v[0]["Ok"], false);
    assert!(v[0]["Detail"].as_str().unwrap().contains("mismatch"), "{v}");
    assert!(env.ok(&["list"]).contains("stored FAILED"));
    let (code, err) = env.fail(&[
        "verify",
        "20200101-000000.0b6e3c52-8f1a-4c1e-9d3a-2f6c9a7e5b10",
    ]);
    assert_eq!(code, 3, "{err}");
}

#[test]
fn encrypted_backups_verify_without_a_key_but_read_their_data_only_with_one() {
    let env = Env::new();
    let recipient = env
        .ok(&["key", "generate", "-o", "key.txt"])
        .trim()
        .to_string();
    let id = created(&env, &["--encrypt-to", &recipient]);
    assert!(env.ok(&["verify", &id]).contains("stored ok"));
    let (code, err) = env.fail(&["verify", &id, "--read-data"]);
    assert_eq!(code, 13, "{err}");
    assert!(
        env.ok(&["verify", &id, "--read-data", "-i", "key.txt"])
            .contains("read-data ok")
    );
}

#[test]
fn labels_and_notes_are_edited_in_place() {
    let env = Env::new();
    let id = created(&env, &[]);
    assert_eq!(
        env.ok(&["label", &id, "--add", "pinned", "--add", "golden"])
            .trim(),
        format!("{id}: manual,pinned,golden")
    );
    assert_eq!(
        env.ok(&["label", &id, "--remove", "manual"]).trim(),
        format!("{id}: pinned,golden")
    );
    env.ok(&["notes", &id, "known good before the upgrade"]);
    let json = env.json(&["show", &id, "--json"]);
    assert_eq!(json["Labels"], serde_json::json!(["pinned", "golden"]));
    assert_eq!(json["Notes"], "known good before the upgrade");
    let (code, _) = env.fail(&["label", &id]);
    assert_eq!(code, 2, "nothing to do is a usage error");
    let (code, _) = env.fail(&[
        "notes",
        "20200101-000000.0b6e3c52-8f1a-4c1e-9d3a-2f6c9a7e5b10",
        "x",
    ]);
    assert_eq!(code, 3);
}

#[test]
fn a_drill_loads_into_scratch_databases_and_drops_them() {
    let Some(uri) = service_env("BACKUPS_TEST_MONGO_URI") else {
        return;
    };
    let env = Env::new();
    let src = unique_name("drillsrc").replace('-', "_");
    python_mongo(
        "import sys; from pymongo import MongoClient; db = MongoClient(sys.argv[1])[sys.argv[2]]; \
         db.machines.insert_many([{'_id': i} for i in range(9)]); db.units.insert_one({'_id': 1})",
        &uri,
        &src,
    );
    let id = created(&env, &["--mongo-uri", &uri, "--include-db", &src]);
    let out = env.ok(&["verify", &id, "--drill", "--mongo-uri", &uri]);
    assert!(
        out.contains("drill ok") && out.contains("2 collections"),
        "{out}"
    );
    let left = python_mongo(
        "import sys; from pymongo import MongoClient; \
         print([d for d in MongoClient(sys.argv[1]).list_database_names() if d.startswith('backups_drill_' + sys.argv[2])])",
        &uri,
        &src,
    );
    assert_eq!(left.trim(), "[]", "the scratch databases are gone");
    // The source database was not touched.
    let count = python_mongo(
        "import sys; from pymongo import MongoClient; print(MongoClient(sys.argv[1])[sys.argv[2]].machines.count_documents({}))",
        &uri,
        &src,
    );
    assert_eq!(count.trim(), "9");
}

/// A backup with a database restored or drilled without a MongoDB URI says
/// the database was left out, rather than passing in silence.
#[test]
fn a_database_left_out_is_said_so() {
    let env = Env::new();
    let fixture = fixtures().join("valid-backup.tar.gz");
    let id = env
        .ok(&["upload", fixture.to_str().unwrap()])
        .trim()
        .rsplit(' ')
        .next()
        .unwrap()
        .to_string();
    let out = env.run(&["restore", &id, "--target", "t"]);
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("database dump") && err.contains("not loaded"),
        "{err}"
    );
    let out = env.run(&["restore", &id, "--target", "d", "--dry-run"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("would not load"), "{err}");
    let out = env.ok(&["verify", &id, "--drill"]);
    assert!(
        out.contains("drill ok") && out.contains("was not drilled"),
        "{out}"
    );
}
