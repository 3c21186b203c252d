//! Safe by default (a restore plan saves what it replaces without being
//! asked) and ordered service hooks across nodes.

use crate::plan::plan_setup;
use crate::support::*;

/// The root.tar member names of a stored backup, through GNU tar.
fn stored_names(env: &Env, id: &str) -> Vec<String> {
    let archive = env.path().join(format!("{id}.tar.gz"));
    env.ok(&["download", id, "-o", archive.to_str().unwrap()]);
    let root = env.path().join(format!("{id}.root.tar"));
    let out = std::process::Command::new("tar")
        .args([
            "xzf",
            archive.to_str().unwrap(),
            "-O",
            "juju-backup/root.tar",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    std::fs::write(&root, &out.stdout).unwrap();
    let out = std::process::Command::new("tar")
        .args(["tf", root.to_str().unwrap()])
        .output()
        .unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn a_plan_saves_what_it_replaces_without_being_asked_and_rolls_back() {
    let env = Env::new();
    let (live, id) = plan_setup(&env);
    let before = snapshot(&live);
    let log = env.path().join("hooks.log");
    let l = log.display();
    // No --safety-path: the hooks alone make it a plan with a safety backup.
    let (code, err) = env.fail(&[
        "restore",
        &id,
        "--target",
        "/",
        "--stop-cmd",
        &format!("echo stop >> {l}"),
        "--post-restore-cmd",
        "echo 'agent.conf not rewritten' >&2; exit 3",
        "--start-cmd",
        &format!("echo start >> {l}"),
        "--yes",
    ]);
    assert_eq!(code, 10, "{err}");
    assert!(err.contains("rolled back to safety backup"), "{err}");
    assert_eq!(snapshot(&live), before, "the live state is back, exactly");
    assert_eq!(std::fs::read_to_string(&log).unwrap(), "stop\nstart\n");
    // The safety backup holds the one live file the restore replaced, not
    // the live files it leaves alone nor those it only adds.
    let safety = safety_backup(&env);
    let names = stored_names(&env, safety["ID"].as_str().unwrap());
    let rel = live.strip_prefix("/").unwrap().display().to_string();
    let under: Vec<&str> = names
        .iter()
        .filter_map(|n| n.strip_prefix(&format!("{rel}/")))
        .collect();
    assert_eq!(under, ["", "conf/", "conf/a.txt"], "{names:?}");
}

#[test]
fn the_dry_run_plan_counts_the_paths_the_safety_backup_saves() {
    let env = Env::new();
    let (_, id) = plan_setup(&env);
    let out = env.ok(&["restore", &id, "--target", "/", "--dry-run"]);
    assert!(
        out.contains(
            "3. safety backup (label pre-restore) of the 1 live path the restore will replace\n"
        ),
        "{out}"
    );
    let out = env.run(&[
        "restore",
        &id,
        "--target",
        "/",
        "--dry-run",
        "--no-safety-backup",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("warning: no safety backup (--no-safety-backup)"),
        "{err}"
    );
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .contains("no safety backup: a failure cannot be rolled back")
    );
}

/// `--stop-cmd` and `--start-cmd` repeat and run in the order given; a stop
/// failing part-way starts again exactly what it had stopped.
#[test]
fn stop_and_start_commands_run_in_order_across_nodes() {
    let env = Env::new();
    let (live, id) = plan_setup(&env);
    let log = env.path().join("hooks.log");
    let step = |what: &str| format!("echo {what} >> {}", log.display());
    let restore = |stop_leader: &str| {
        env.run(&[
            "restore",
            &id,
            "--target",
            "/",
            "--stop-cmd",
            &step("stop-node-1"),
            "--stop-cmd",
            &step("stop-node-2"),
            "--stop-cmd",
            stop_leader,
            "--start-cmd",
            &step("start-leader"),
            "--start-cmd",
            &step("start-node-2"),
            "--start-cmd",
            &step("start-node-1"),
            "--yes",
        ])
    };
    let out = restore(&step("stop-leader"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(&log).unwrap(),
        "stop-node-1\nstop-node-2\nstop-leader\nstart-leader\nstart-node-2\nstart-node-1\n"
    );
    assert_eq!(
        std::fs::read_to_string(live.join("conf/a.txt")).unwrap(),
        "new"
    );

    // The leader's stop fails: the two data nodes stopped are started
    // again, in order, and nothing else changes.
    std::fs::write(live.join("conf/a.txt"), "old").unwrap();
    std::fs::remove_file(&log).unwrap();
    let before = snapshot(&live);
    let out = restore(&format!("{}; exit 4", step("stop-leader")));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("stop") && err.contains("exit status: 4"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(&log).unwrap(),
        "stop-node-1\nstop-node-2\nstop-leader\nstart-node-2\nstart-node-1\n"
    );
    assert_eq!(snapshot(&live), before, "nothing restored");
}

#[test]
fn the_dry_run_lists_each_ordered_hook() {
    let env = Env::new();
    let (_, id) = plan_setup(&env);
    let out = env.ok(&[
        "restore",
        &id,
        "--target",
        "/",
        "--dry-run",
        "--stop-cmd",
        "ssh n1 stop",
        "--stop-cmd",
        "stop leader",
        "--start-cmd",
        "start leader",
    ]);
    assert!(
        out.contains("4. stop services (1/2): `ssh n1 stop`\n")
            && out.contains("5. stop services (2/2): `stop leader`\n")
            && out.contains("8. start services: `start leader`\n"),
        "{out}"
    );
}

/// With a database, the safety backup holds the collections the load will
/// replace: not the live ones it leaves alone, nor other databases.
#[test]
fn the_safety_backup_saves_the_collections_the_load_replaces() {
    let Some(uri) = backups_core::test_util::service_env("BACKUPS_TEST_MONGO_URI") else {
        return;
    };
    let env = Env::new();
    let (live, _) = plan_setup(&env);
    let db = backups_core::test_util::unique_name("safe");
    python_mongo(
        "import sys; from pymongo import MongoClient; db = MongoClient(sys.argv[1])[sys.argv[2]]; \
         db.machines.insert_many([{'_id': i} for i in range(5)]); db.units.insert_one({'_id': 0})",
        &uri,
        &db,
    );
    let mongo = [("BACKUPS_MONGO_URI", uri.as_str())];
    let out = env.run_with(
        &[
            "create",
            "--path",
            live.to_str().unwrap(),
            "--include-db",
            &db,
        ],
        &mongo,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let id = String::from_utf8(out.stdout).unwrap().trim().to_string();
    // Live now: machines changed, units gone, settings added.
    python_mongo(
        "import sys; from pymongo import MongoClient; db = MongoClient(sys.argv[1])[sys.argv[2]]; \
         db.machines.insert_one({'_id': 99}); db.units.drop(); db.settings.insert_one({'_id': 1})",
        &uri,
        &db,
    );
    let out = env.run_with(
        &[
            "restore",
            &id,
            "--target",
            "/",
            "--post-restore-cmd",
            "exit 3",
            "--yes",
        ],
        &mongo,
    );
    assert_eq!(
        out.status.code(),
        Some(10),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let safety = safety_backup(&env);
    let saved: Vec<&String> = safety["Databases"]
        .as_object()
        .unwrap()
        .keys()
        .filter(|k| !k.starts_with("oplog.bson"))
        .collect();
    assert_eq!(saved, [&format!("{db}.machines")], "{safety}");
    // The rollback put the live database back: 6 machines, settings, no units.
    let counts = python_mongo(
        "import sys; from pymongo import MongoClient; db = MongoClient(sys.argv[1])[sys.argv[2]]; \
         print(db.machines.count_documents({}), sorted(db.list_collection_names()))",
        &uri,
        &db,
    );
    assert_eq!(counts.trim(), "6 ['machines', 'settings']");
}
