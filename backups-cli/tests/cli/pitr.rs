//! Point-in-time recovery through the CLI: `pitr run` ships the oplog,
//! `restore --to-time` brings a database back to one second, a missing
//! slice is a gap that `pitr list` shows and a restore refuses.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use backups_core::test_util::{service_env, unique_name};
use serde_json::Value;

use crate::support::*;

/// Sets `v` of document 1 (inserting it) once the server's clock is past
/// second `after`; prints the write's oplog position.
const WRITE: &str = "import sys, time; from pymongo import MongoClient; c = MongoClient(sys.argv[1]); \
    after = int(sys.argv[4])\n\
    while int(c.admin.command('hello')['localTime'].timestamp()) <= after: time.sleep(0.05)\n\
    with c.start_session() as s:\n\
    \x20   c[sys.argv[2]].docs.update_one({'_id': 1}, {'$set': {'v': int(sys.argv[3])}}, upsert=True, session=s)\n\
    \x20   print(s.operation_time.time, s.operation_time.inc)";

fn write(uri: &str, db: &str, v: u32, after: u32) -> (u32, u32) {
    let out = python_args(WRITE, &[uri, db, &v.to_string(), &after.to_string()]);
    let mut it = out.split_whitespace().map(|n| n.parse::<u32>().unwrap());
    (it.next().unwrap(), it.next().unwrap())
}

fn value(uri: &str, db: &str) -> String {
    python_mongo(
        "import sys; from pymongo import MongoClient; \
         d = MongoClient(sys.argv[1])[sys.argv[2]].docs.find_one({'_id': 1}); print(d and d['v'])",
        uri,
        db,
    )
    .trim()
    .to_string()
}

fn rfc3339(seconds: u32) -> String {
    time::OffsetDateTime::from_unix_timestamp(i64::from(seconds))
        .unwrap()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

/// The records of the committed slices, from the local store's files.
fn slice_records(env: &Env) -> Vec<(std::path::PathBuf, Value)> {
    let mut out = Vec::new();
    let Ok(sets) = std::fs::read_dir(env.store().join("pitr")) else {
        return out;
    };
    for set in sets {
        for f in std::fs::read_dir(set.unwrap().path()).unwrap() {
            let path = f.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().to_string();
            if name.ends_with(".json") && name != "progress.json" {
                let v: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
                out.push((path, v));
            }
        }
    }
    out
}

fn pos(v: &Value) -> (u32, u32) {
    let (a, b) = v.as_str().unwrap().split_once(':').unwrap();
    (a.parse().unwrap(), b.parse().unwrap())
}

/// Waits (up to 5 minutes: the shared server is slow) until a committed
/// slice holds `at`.
fn wait_shipped(env: &Env, at: (u32, u32)) {
    let deadline = Instant::now() + Duration::from_secs(300);
    while !slice_records(env)
        .iter()
        .any(|(_, r)| pos(&r["First"]) <= at && at <= pos(&r["Last"]))
    {
        assert!(Instant::now() < deadline, "no slice holds {at:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The base backup's consistent point (`OplogEnd`) from `list --json`.
fn base_end(env: &Env) -> (u32, u32) {
    let list = env.json(&["list", "--json"]);
    pos(&list[0]["OplogEnd"])
}

/// Every write is made after the slice holding the one before is
/// committed, so each is in a later slice than the one before: the slices
/// holding the third write lie strictly between the second's and the
/// fourth's, whatever the shipper's timing, and deleting them leaves a gap
/// with slices on both sides. (The test was flaky when the second and
/// third writes could share the first slice: its deletion left no slice
/// before the gap, and gaps were only looked for between slices.)
#[test]
fn a_restore_to_a_second_replays_the_slices_up_to_it_and_a_gap_is_refused() {
    let Some(uri) = service_env("BACKUPS_TEST_MONGO_URI") else {
        return;
    };
    let env = Env::new();
    let db = unique_name("pitr2_t");
    write(&uri, &db, 1, 0);
    env.ok(&["create", "--mongo-uri", &uri, "--include-db", &db]);
    let base = base_end(&env);
    // Encrypted slices: a restore needs the identity.
    let key = env.path().join("key.txt");
    let made = env.run(&["key", "generate", "-o", key.to_str().unwrap()]);
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&made.stdout),
        String::from_utf8_lossy(&made.stderr)
    );
    let recipient = said
        .split_whitespace()
        .find(|w| w.starts_with("age1"))
        .unwrap_or_else(|| panic!("no recipient in {said}"));
    let shipper = Command::new(BIN)
        .args(["--store", env.store().to_str().unwrap(), "pitr", "run"])
        .args([
            "--mongo-uri",
            &uri,
            "--slice",
            "1s",
            "--encrypt-to",
            recipient,
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // In a second after the base's: the base's stretch then holds a
    // second of its own before the gap.
    let t2 = write(&uri, &db, 2, base.0);
    wait_shipped(&env, t2);
    let t3 = write(&uri, &db, 3, t2.0);
    wait_shipped(&env, t3);
    let t4 = write(&uri, &db, 4, t3.0);
    wait_shipped(&env, t4);
    let killed = Command::new("kill")
        .args(["-TERM", &shipper.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let shipped = shipper.wait_with_output().unwrap();
    let said = String::from_utf8_lossy(&shipped.stderr);
    assert!(shipped.status.success(), "{said}");
    assert!(said.contains("Shipped"), "{said}");

    // Each second restores to exactly its own value.
    let target = env.path().join("target");
    let (code, err) = env.fail(&[
        "restore",
        "--to-time",
        &rfc3339(t2.0),
        "--target",
        target.to_str().unwrap(),
        "--mongo-uri",
        &uri,
        "--dry-run",
    ]);
    assert_eq!(code, 13, "{err}");
    assert!(err.contains(".bson.gz.age"), "{err}");
    for (t, v) in [(t2, "2"), (t3, "3")] {
        let restored = unique_name("pitr2_r");
        let out = env.ok(&[
            "restore",
            "--to-time",
            &rfc3339(t.0),
            "--target",
            target.to_str().unwrap(),
            "--mongo-uri",
            &uri,
            "--db-rename",
            &format!("{db}={restored}"),
            "--no-safety-backup",
            "--yes",
            "--identity",
            key.to_str().unwrap(),
        ]);
        assert!(out.contains("Point in time"), "{out}");
        assert_eq!(
            value(&uri, &restored),
            v,
            "restored to {}: {out}",
            rfc3339(t.0)
        );
    }

    // The slice holding the third write goes missing: a gap, and a
    // restore into it is refused, naming what is covered.
    // (Every slice holding it: a shipper that re-read a late entry may
    // have committed two that overlap.)
    let holding: Vec<_> = slice_records(&env)
        .into_iter()
        .filter(|(_, r)| pos(&r["First"]) <= t3 && t3 <= pos(&r["Last"]))
        .collect();
    assert!(!holding.is_empty(), "no slice holds the third write");
    for (path, record) in holding {
        std::fs::remove_file(&path).unwrap();
        std::fs::remove_file(path.with_file_name(record["Object"].as_str().unwrap())).unwrap();
    }
    let list = env.json(&["pitr", "list", "--json"]);
    let sets = list["ReplicaSets"].as_array().unwrap();
    assert_eq!(sets.len(), 1, "{list}");
    let gaps = sets[0]["Gaps"].as_array().unwrap();
    // RFC 3339 UTC times sort as text.
    let at = rfc3339(t3.0);
    assert!(
        gaps.iter().any(|g| g["Reason"] == "missing slice"
            && g["From"].as_str().unwrap() <= at.as_str()
            && at.as_str() <= g["To"].as_str().unwrap()),
        "no missing-slice gap around {at}: {list}"
    );
    let ranges = sets[0]["Ranges"].as_array().unwrap();
    assert!(
        ranges
            .iter()
            .any(|r| r["To"].as_str().unwrap() < at.as_str()),
        "{list}"
    );
    // In the gap, and after it (the base's stretch ends at the gap).
    for t in [t3.0, t4.0] {
        let (code, err) = env.fail(&[
            "restore",
            "--to-time",
            &rfc3339(t),
            "--target",
            target.to_str().unwrap(),
            "--mongo-uri",
            &uri,
            "--db-rename",
            &format!("{db}=pitr2_never"),
            "--dry-run",
        ]);
        assert_eq!(code, 5, "{}: {err}", rfc3339(t));
        assert!(err.contains("gap") && err.contains("covering"), "{err}");
    }
    // Beyond the last slice: refused too.
    let (code, err) = env.fail(&[
        "restore",
        "--to-time",
        &rfc3339(t4.0 + 3600),
        "--target",
        target.to_str().unwrap(),
        "--mongo-uri",
        &uri,
        "--dry-run",
    ]);
    assert_eq!(code, 5, "{err}");
    assert!(err.contains("beyond the last slice"), "{err}");
}

/// `schedule run` runs a `[[pitr]]` entry's shipper next to the schedules
/// (its profile's store and MongoDB URI), writes its status and metrics,
/// and a SIGTERM commits the current slice: with a slice of 60 s, the
/// write made just before the stop is committed only by the stop.
#[test]
fn schedule_run_ships_a_pitr_entry_and_a_sigterm_commits_the_open_slice() {
    let Some(uri) = service_env("BACKUPS_TEST_MONGO_URI") else {
        return;
    };
    let env = Env::new();
    let db = unique_name("pitr2_s");
    write(&uri, &db, 1, 0);
    env.ok(&["create", "--mongo-uri", &uri, "--include-db", &db]);
    let base = base_end(&env);
    let config = env.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[profile.default]\nstore = {:?}\nmongo_uri = {uri:?}\n\n\
             [[schedule]]\nname = \"yearly\"\ncron = \"0 0 1 1 *\"\n\n\
             [[pitr]]\nslice = \"60s\"\n",
            env.store().to_str().unwrap()
        ),
    )
    .unwrap();
    let state = env.path().join("state");
    let metrics = env.path().join("metrics/backups.prom");
    std::fs::create_dir_all(metrics.parent().unwrap()).unwrap();
    let log_path = env.path().join("service.log");
    let service = Command::new(BIN)
        .args(["--progress", "none", "schedule", "run", "--metrics-file"])
        .arg(&metrics)
        .env_remove("BACKUPS_STORE")
        .env_remove("BACKUPS_MONGO_URI")
        .env("BACKUPS_CONFIG", &config)
        .env("BACKUPS_STATE_DIR", &state)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .unwrap();
    // The status is written once the shipper has found where it goes on
    // from (the base's point: a write made now is shipped).
    let status_path = state.join("schedule/pitr-default.json");
    let deadline = Instant::now() + Duration::from_secs(300);
    while !status_path.exists() {
        assert!(
            Instant::now() < deadline,
            "no shipper status: {}",
            std::fs::read_to_string(&log_path).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let t2 = write(&uri, &db, 2, base.0);
    let killed = Command::new("kill")
        .args(["-TERM", &service.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let exit = service.wait_with_output().unwrap();
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(exit.status.success(), "{log}");
    assert!(log.contains("pitr-default: stopped"), "{log}");
    assert!(
        slice_records(&env)
            .iter()
            .any(|(_, r)| pos(&r["First"]) <= t2 && t2 <= pos(&r["Last"])),
        "the write before the stop is in no slice: {log}"
    );
    let status: Value = serde_json::from_slice(&std::fs::read(&status_path).unwrap()).unwrap();
    assert!(status["Slices"].as_u64() >= Some(1), "{status}");
    assert!(status["LastError"].is_null(), "{status}");
    let prom =
        std::fs::read_to_string(env.path().join("metrics/backups-pitr-default.prom")).unwrap();
    let end: u64 = prom
        .lines()
        .find(|l| l.starts_with("backups_pitr_last_slice_end_timestamp_seconds{"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{prom}"));
    assert!(end >= u64::from(t2.0), "{prom}");
    // A restore to the write's second has what it needs.
    let out = env.ok(&[
        "restore",
        "--to-time",
        &rfc3339(t2.0),
        "--target",
        env.path().join("target").to_str().unwrap(),
        "--mongo-uri",
        &uri,
        "--db-rename",
        &format!("{db}=pitr2_never"),
        "--dry-run",
    ]);
    assert!(out.contains("Point in time"), "{out}");
}

/// Starts `pitr run --slice 1s` into `env`'s store.
fn start_shipper(env: &Env, uri: &str) -> std::process::Child {
    Command::new(BIN)
        .args(["--store", env.store().to_str().unwrap(), "pitr", "run"])
        .args(["--mongo-uri", uri, "--slice", "1s"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn stop_shipper(shipper: std::process::Child) {
    let killed = Command::new("kill")
        .args(["-TERM", &shipper.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let shipped = shipper.wait_with_output().unwrap();
    assert!(
        shipped.status.success(),
        "{}",
        String::from_utf8_lossy(&shipped.stderr)
    );
}

/// `forget` removes the slices only a forgotten base replayed, `verify
/// --slices` checks the rest (and fails on a damaged one), and `gc` finds
/// a slice object that was never committed.
#[test]
fn forget_verify_and_gc_know_the_slices() {
    let Some(uri) = service_env("BACKUPS_TEST_MONGO_URI") else {
        return;
    };
    let env = Env::new();
    let db = unique_name("pitr2_l");
    write(&uri, &db, 1, 0);
    env.ok(&["create", "--mongo-uri", &uri, "--include-db", &db]);
    let first_base = base_end(&env);
    let shipper = start_shipper(&env, &uri);
    let t2 = write(&uri, &db, 2, first_base.0);
    wait_shipped(&env, t2);
    let old_end = slice_records(&env)
        .iter()
        .map(|(_, r)| pos(&r["Last"]))
        .max()
        .unwrap();
    // The second base starts two seconds after every slice so far ended:
    // its replay (from a second before its start) needs none of them.
    write(&uri, &db, 3, old_end.0 + 1);
    env.ok(&["create", "--mongo-uri", &uri, "--include-db", &db]);
    let t4 = write(&uri, &db, 4, base_end(&env).0);
    wait_shipped(&env, t4);
    stop_shipper(shipper);

    let said = env.ok(&["verify", "--slices", "--read-data"]);
    assert!(said.contains(": ok ("), "{said}");
    let before = slice_records(&env);
    let old: Vec<String> = before
        .iter()
        .filter(|(_, r)| pos(&r["Last"]) <= old_end)
        .map(|(_, r)| r["Object"].as_str().unwrap().to_string())
        .collect();
    assert!(!old.is_empty());
    let forgot = env.json(&["forget", "--keep-last", "1", "--group-by", "none", "--json"]);
    let mut removed: Vec<String> = forgot["Slices"][0]["Remove"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o.as_str().unwrap().to_string())
        .collect();
    removed.sort();
    assert!(old.iter().all(|o| removed.contains(o)), "{forgot}");
    let after = slice_records(&env);
    assert_eq!(after.len(), before.len() - removed.len());
    assert!(after.iter().all(|(_, r)| pos(&r["Last"]) > old_end));
    assert!(
        after
            .iter()
            .any(|(_, r)| pos(&r["First"]) <= t4 && t4 <= pos(&r["Last"]))
    );
    // What is left is continuous from the kept base, and restores.
    let list = env.json(&["pitr", "list", "--json"]);
    assert_eq!(
        list["ReplicaSets"][0]["Gaps"],
        serde_json::json!([]),
        "{list}"
    );
    assert_eq!(
        list["ReplicaSets"][0]["Ranges"].as_array().unwrap().len(),
        1,
        "{list}"
    );
    env.ok(&[
        "restore",
        "--to-time",
        &rfc3339(t4.0),
        "--target",
        env.path().join("target").to_str().unwrap(),
        "--mongo-uri",
        &uri,
        "--db-rename",
        &format!("{db}=pitr2_never"),
        "--dry-run",
    ]);
    env.ok(&["verify", "--slices"]);

    // A damaged slice fails verification, naming it.
    let (record_path, record) = &after[0];
    let object = record_path.with_file_name(record["Object"].as_str().unwrap());
    let good = std::fs::read(&object).unwrap();
    let mut bad = good.clone();
    bad.push(0);
    std::fs::write(&object, &bad).unwrap();
    let (code, err) = env.fail(&["verify", "--slices"]);
    assert_eq!(code, 5, "{err}");
    let said = env.run(&["verify", "--slices", "--json"]);
    assert_eq!(said.status.code(), Some(5));
    let report: Value = serde_json::from_slice(&said.stdout).unwrap();
    let set = &report["ReplicaSets"][0];
    assert_eq!(set["Ok"], false, "{report}");
    assert_eq!(set["Problems"][0]["Object"], record["Object"], "{report}");
    assert!(
        set["Problems"][0]["Problem"]
            .as_str()
            .unwrap()
            .contains("size"),
        "{report}"
    );
    assert_eq!(report["Backups"], serde_json::json!([]), "{report}");
    std::fs::write(&object, &good).unwrap();

    // A slice object without a record is garbage.
    let stray = record_path.with_file_name("0000000001.0000000001-0000000001.0000000002.bson.gz");
    std::fs::write(&stray, &good).unwrap();
    let garbage = env.json(&["gc", "--older-than", "0s", "--json"]);
    let found: Vec<&Value> = garbage
        .as_array()
        .unwrap()
        .iter()
        .filter(|g| g["Kind"] == "uncommitted-slice")
        .collect();
    assert_eq!(found.len(), 1, "{garbage}");
    env.ok(&["gc", "--older-than", "0s", "--yes"]);
    assert!(!stray.exists());
    assert!(object.exists());
}

/// `--read-from` picks the member the oplog is read from; the shared
/// server is a set of one, its primary: asking for a secondary is refused
/// at start, naming the member, and nothing is shipped.
#[test]
fn pitr_run_reads_from_the_member_asked_for() {
    let Some(uri) = service_env("BACKUPS_TEST_MONGO_URI") else {
        return;
    };
    let env = Env::new();
    let (code, err) = env.fail(&[
        "pitr",
        "run",
        "--mongo-uri",
        &uri,
        "--read-from",
        "secondary",
    ]);
    assert_ne!(code, 0);
    assert!(err.contains("not a secondary"), "{err}");
    assert!(slice_records(&env).is_empty());
    let (code, err) = env.fail(&["pitr", "run", "--mongo-uri", &uri, "--read-from", "oldest"]);
    assert_eq!(code, 2, "{err}");
}
