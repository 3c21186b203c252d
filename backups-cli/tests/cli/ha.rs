//! HA controllers: the member a dump reads from (`--read-from`) and the
//! replica-set preflight of a restore. SecantusDB runs a replica set of
//! one, so these tests show what one member can: the member recorded, a
//! secondary asked for and refused, and a backup of a 3-node controller
//! loaded with the re-add warning. The decisions for bigger sets
//! (refused while more than one member is alive unless --force-ha,
//! unreachable members refused) are tested on recorded replSetGetStatus
//! replies in backups-mongo's topology module.

use backups_core::test_util::{service_env, unique_name};

use crate::support::*;

#[test]
fn a_dump_records_the_member_it_read_from() {
    let Some(uri) = service_env("BACKUPS_TEST_MONGO_URI") else {
        return;
    };
    let env = Env::new();
    let tree = sample_tree(env.path());
    let db = unique_name("ha");
    python_mongo(
        "import sys; from pymongo import MongoClient; MongoClient(sys.argv[1])[sys.argv[2]].machines.insert_one({'_id': 0})",
        &uri,
        &db,
    );
    let mongo = [("BACKUPS_MONGO_URI", uri.as_str())];
    let create = |from: &str| {
        env.run_with(
            &[
                "create",
                "--path",
                tree.to_str().unwrap(),
                "--include-db",
                &db,
                "--read-from",
                from,
            ],
            &mongo,
        )
    };
    let out = create("primary");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let id = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let shown = env.json(&["show", &id, "--json"]);
    let host = uri
        .split("://")
        .nth(1)
        .and_then(|r| r.split(['/', '?']).next())
        .unwrap();
    assert_eq!(shown["DumpedFrom"], host, "{shown}");
    assert_eq!(shown["ReplicaSet"], "secantus", "{shown}");
    let text = env.ok(&["show", &id]);
    assert!(
        text.lines().any(|l| l.starts_with("dumped from:")
            && l.ends_with(&format!(" {host} (replica set secantus)"))),
        "{text}"
    );
    // "nearest" is the one member too; a secondary there is none of.
    assert!(create("nearest").status.success());
    let out = create("secondary");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("finding the secondary member of") && err.contains("is not a secondary"),
        "{err}"
    );
    let out = create("leader");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("use primary, secondary or nearest"));
}

#[test]
fn a_restore_onto_a_smaller_replica_set_says_to_re_add_members() {
    let Some(uri) = service_env("BACKUPS_TEST_MONGO_URI") else {
        return;
    };
    let env = Env::new();
    // A Juju backup of a controller with HANodes 3.
    let fixture = fixtures().join("valid-backup-ver-1.tar.gz");
    let db = unique_name("ha3");
    let out = env.run_with(
        &[
            "restore",
            "--file",
            fixture.to_str().unwrap(),
            "--target",
            "t",
            "--db-rename",
            &format!("juju={db}"),
        ],
        &[("BACKUPS_MONGO_URI", uri.as_str())],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("the backup's controller had 3 HA nodes; replica set secantus has 1")
            && err.contains("juju enable-ha"),
        "{err}"
    );
}
