//! `backups forget` on a local store of uploaded archives whose start
//! times, models and labels the tests choose.

use serde_json::{Value, json};

use crate::support::*;

const OTHER_MODEL: &str = "e2a6a1e5-abea-4393-8593-5a45ae53ab97";

/// Uploads a minimal archive started at `started` (RFC 3339, UTC) for
/// `model` with `labels`; returns its id.
fn upload(env: &Env, started: &str, model: &str, labels: &[&str]) -> String {
    let meta = json!({
        "ID": "",
        "FormatVersion": 1,
        "Started": started,
        "ModelUUID": model,
        "Labels": labels,
    });
    let root = tar::Builder::new(Vec::new()).into_inner().unwrap();
    let archive = gz_tar(&[
        ("juju-backup/metadata.json", meta.to_string().into_bytes()),
        ("juju-backup/root.tar", root),
    ]);
    let stamp: String = started[..19]
        .chars()
        .filter(|c| c.is_ascii_digit() || *c == 'T')
        .collect::<String>()
        .replace('T', "-");
    let id = format!("{stamp}.{model}");
    let file = env.path().join(format!("{id}.tar.gz"));
    std::fs::write(&file, archive).unwrap();
    env.ok(&["upload", file.to_str().unwrap()]);
    id
}

/// Uploads one backup of [`MODEL`] per start time; returns the ids in order.
fn uploads(env: &Env, times: &[&str]) -> Vec<String> {
    times.iter().map(|t| upload(env, t, MODEL, &[])).collect()
}

/// Records in `id`'s sidecar that it was verified, with outcome `ok`.
fn mark_verified(env: &Env, id: &str, ok: bool) {
    let path = env.store().join(format!("{id}.json"));
    let mut meta: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    meta["Verification"] = json!({"Time": "2024-02-01T00:00:00Z", "Level": "stored", "Ok": ok});
    std::fs::write(&path, meta.to_string()).unwrap();
}

/// The ids in the store, newest first.
fn listed(env: &Env) -> Vec<String> {
    env.json(&["list", "--json"])
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["ID"].as_str().unwrap().to_string())
        .collect()
}

fn strs(v: &[&String]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// The ids of the decision's keep and remove lists.
fn decided(json: &Value) -> (Vec<String>, Vec<String>) {
    let ids = |k: &str| {
        json[k]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["ID"].as_str().unwrap().to_string())
            .collect()
    };
    (ids("Keep"), ids("Remove"))
}

#[test]
fn keep_daily_keeps_the_newest_of_each_day_and_removes_the_rest() {
    let env = Env::new();
    let ids = uploads(
        &env,
        &[
            "2024-01-06T18:00:00Z",
            "2024-01-06T06:00:00Z",
            "2024-01-03T12:00:00Z",
            "2024-01-03T09:00:00Z",
            "2024-01-01T10:00:00Z",
        ],
    );
    let table = env.ok(&["forget", "--keep-daily", "2"]);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(
        lines[0].split_whitespace().collect::<Vec<_>>(),
        ["ID", "ACTION", "REASONS"]
    );
    assert_eq!(lines.len(), 6, "{table}");
    assert!(
        lines[1].starts_with(&ids[0])
            && lines[1].contains(" KEEP ")
            && lines[1].ends_with("daily backup, newest backup"),
        "{table}"
    );
    assert!(lines[2].starts_with(&ids[1]) && lines[2].trim_end().ends_with("REMOVE"));
    assert!(lines[3].starts_with(&ids[2]) && lines[3].ends_with("KEEP    daily backup"));
    for (line, id) in lines[4..].iter().zip(&ids[3..]) {
        assert!(
            line.starts_with(id.as_str()) && line.ends_with("REMOVE"),
            "{table}"
        );
    }
    assert_eq!(listed(&env), strs(&[&ids[0], &ids[2]]));
    for id in [&ids[1], &ids[3], &ids[4]] {
        assert!(!env.store().join(format!("{id}.json")).exists());
        assert!(
            !env.store().join(format!("{id}.tar.gz")).exists(),
            "archive too"
        );
    }
    assert_eq!(env.ok(&["unlock"]), "No leases held.\n", "lease given back");
}

#[test]
fn json_is_exactly_keep_with_reasons_and_remove() {
    let env = Env::new();
    let ids = uploads(
        &env,
        &[
            "2024-01-10T12:00:00Z",
            "2024-01-09T12:00:00Z",
            "2024-01-07T12:00:00Z",
            "2023-12-01T00:00:00Z",
        ],
    );
    let out = env.json(&[
        "forget",
        "--keep-within",
        "3d",
        "--keep-monthly",
        "1",
        "--json",
    ]);
    assert_eq!(
        out,
        json!({
            "Keep": [
                {"ID": ids[0], "Reasons": ["within 3d", "monthly backup", "newest backup"]},
                {"ID": ids[1], "Reasons": ["within 3d"]},
            ],
            "Remove": [{"ID": ids[2]}, {"ID": ids[3]}],
        })
    );
    assert_eq!(listed(&env), strs(&[&ids[0], &ids[1]]));
}

#[test]
fn dry_run_changes_nothing() {
    let env = Env::new();
    let ids = uploads(
        &env,
        &[
            "2024-01-03T00:00:00Z",
            "2024-01-02T00:00:00Z",
            "2024-01-01T00:00:00Z",
        ],
    );
    let files = |env: &Env| {
        let mut v: Vec<_> = walkdir(env);
        v.sort();
        v
    };
    let before = files(&env);
    let out = env.run(&["forget", "--keep-last", "1", "--dry-run", "--json"]);
    assert!(out.status.success());
    let decision: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        decided(&decision),
        (vec![ids[0].clone()], vec![ids[1].clone(), ids[2].clone()])
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("dry run: nothing was changed"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(files(&env), before, "not a file changed");
    assert_eq!(listed(&env), ids);
    assert!(
        env.ok(&["forget", "--keep-last", "1", "--dry-run"])
            .contains("REMOVE")
    );
    assert_eq!(listed(&env), ids);
}

/// Every path under the store, with its size.
fn walkdir(env: &Env) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    let mut dirs = vec![env.store()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                dirs.push(e.path());
            }
            out.push((e.path().display().to_string(), e.metadata().unwrap().len()));
        }
    }
    out
}

#[test]
fn the_newest_the_newest_verified_and_pinned_are_never_removed() {
    let env = Env::new();
    let newest = upload(&env, "2024-01-05T00:00:00Z", MODEL, &[]);
    let plain = upload(&env, "2024-01-04T00:00:00Z", MODEL, &[]);
    let good = upload(&env, "2024-01-03T00:00:00Z", MODEL, &[]);
    let older_good = upload(&env, "2024-01-02T00:00:00Z", MODEL, &[]);
    let pinned = upload(&env, "2024-01-01T00:00:00Z", MODEL, &["pinned"]);
    let oldest = upload(&env, "2023-01-01T00:00:00Z", MODEL, &["manual"]);
    mark_verified(&env, &newest, false);
    mark_verified(&env, &good, true);
    mark_verified(&env, &older_good, true);
    let out = env.json(&["forget", "--keep-label", "release", "--json"]);
    assert_eq!(
        out,
        json!({
            "Keep": [
                {"ID": newest, "Reasons": ["newest backup"]},
                {"ID": good, "Reasons": ["newest verified backup"]},
                {"ID": pinned, "Reasons": ["pinned"]},
            ],
            "Remove": [{"ID": plain}, {"ID": older_good}, {"ID": oldest}],
        })
    );
    assert_eq!(listed(&env), [newest, good, pinned]);
}

/// `remove --keep-latest` is a retention run with forget's protections:
/// the newest verified and `pinned` backups stay, whatever N.
#[test]
fn remove_keep_latest_never_removes_a_pinned_or_the_newest_verified_backup() {
    let env = Env::new();
    let newest = upload(&env, "2024-01-05T00:00:00Z", MODEL, &[]);
    let plain = upload(&env, "2024-01-04T00:00:00Z", MODEL, &[]);
    let good = upload(&env, "2024-01-03T00:00:00Z", MODEL, &[]);
    let pinned = upload(&env, "2024-01-01T00:00:00Z", OTHER_MODEL, &["pinned"]);
    mark_verified(&env, &good, true);
    let dry = env.ok(&["remove", "--keep-latest", "1", "--dry-run"]);
    assert_eq!(
        dry,
        format!(
            "Kept backup {good} (newest verified backup)\nKept backup {pinned} (pinned)\nWould remove backup {plain}\n"
        )
    );
    assert_eq!(listed(&env).len(), 4, "a dry run removes nothing");
    let done = env.ok(&["remove", "--keep-latest", "1"]);
    assert!(
        done.contains(&format!("Removed backup {plain}\n")),
        "{done}"
    );
    assert_eq!(listed(&env), [newest, good, pinned]);
    let (code, err) = env.fail(&["remove", "--keep-latest", "0"]);
    assert_eq!(code, 2, "{err}");
}

#[test]
fn keep_label_keeps_the_labelled_backups() {
    let env = Env::new();
    let newest = upload(&env, "2024-01-03T00:00:00Z", MODEL, &[]);
    let release = upload(&env, "2024-01-02T00:00:00Z", MODEL, &["release"]);
    let other = upload(&env, "2024-01-01T00:00:00Z", MODEL, &["other"]);
    let out = env.json(&[
        "forget",
        "--keep-label",
        "release",
        "--keep-label",
        "x",
        "--json",
    ]);
    assert_eq!(
        out["Keep"][1],
        json!({"ID": release, "Reasons": ["has label release"]})
    );
    assert_eq!(decided(&out).1, [other]);
    assert_eq!(listed(&env), [newest, release]);
}

#[test]
fn a_policy_that_keeps_nothing_is_refused() {
    let env = Env::new();
    let ids = uploads(&env, &["2024-01-02T00:00:00Z", "2024-01-01T00:00:00Z"]);
    for args in [
        &["forget"][..],
        &["forget", "--keep-within", "0d"],
        &["forget", "--group-by", "none", "--json"],
    ] {
        let (code, err) = env.fail(args);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(err.contains("refusing to forget without a policy"), "{err}");
    }
    let (code, err) = env.fail(&["forget", "--keep-within", "1w"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("invalid unit 'w' found after number 1"),
        "{err}"
    );
    let (code, err) = env.fail(&["forget", "--keep-daily", "-1"]);
    assert_eq!(code, 2, "{err}");
    assert_eq!(listed(&env), ids, "nothing removed");
}

#[test]
fn unlimited_keeps_every_bucket() {
    let env = Env::new();
    let ids = uploads(
        &env,
        &[
            "2024-03-01T12:00:00Z",
            "2024-03-01T08:00:00Z",
            "2024-02-10T12:00:00Z",
            "2024-01-10T12:00:00Z",
        ],
    );
    let out = env.json(&["forget", "--keep-monthly", "unlimited", "--json"]);
    assert_eq!(
        decided(&out),
        (strs(&[&ids[0], &ids[2], &ids[3]]), vec![ids[1].clone()])
    );
}

#[test]
fn each_model_is_a_group_unless_group_by_none() {
    let env = Env::new();
    let a1 = upload(&env, "2024-01-04T00:00:00Z", MODEL, &[]);
    let b1 = upload(&env, "2024-01-03T00:00:00Z", OTHER_MODEL, &[]);
    let a2 = upload(&env, "2024-01-02T00:00:00Z", MODEL, &[]);
    let b2 = upload(&env, "2024-01-01T00:00:00Z", OTHER_MODEL, &[]);
    let by_model = env.json(&["forget", "--keep-last", "1", "--dry-run", "--json"]);
    assert_eq!(
        decided(&by_model),
        (vec![a1.clone(), b1.clone()], vec![a2.clone(), b2.clone()])
    );
    let all = env.json(&["forget", "--keep-last", "1", "--group-by", "none", "--json"]);
    assert_eq!(decided(&all), (vec![a1.clone()], vec![b1, a2, b2]));
    assert_eq!(listed(&env), [a1]);
    let (code, err) = env.fail(&["forget", "--keep-last", "1", "--group-by", "host"]);
    assert_eq!(code, 2, "{err}");
}

#[test]
fn forget_holds_the_lease_and_a_held_one_blocks_it() {
    let env = Env::new();
    let ids = uploads(&env, &["2024-01-02T00:00:00Z", "2024-01-01T00:00:00Z"]);
    let expires = time::OffsetDateTime::now_utc() + time::Duration::minutes(10);
    let lease = json!({
        "Holder": "ctl-2 pid 77",
        "Operation": "restore",
        "Token": "x",
        "Acquired": "2026-01-01T00:00:00Z",
        "Expires": expires.format(&time::format_description::well_known::Rfc3339).unwrap(),
    });
    std::fs::create_dir_all(env.store().join(".lease")).unwrap();
    std::fs::write(env.store().join(".lease/other.json"), lease.to_string()).unwrap();
    let (code, err) = env.fail(&["forget", "--keep-last", "1"]);
    assert_eq!(code, 9, "{err}");
    assert!(err.contains("locked by ctl-2 pid 77 (restore)"), "{err}");
    assert_eq!(listed(&env), ids, "nothing removed");
    // A dry run changes nothing and so needs no lease.
    env.ok(&["forget", "--keep-last", "1", "--dry-run"]);
}

/// restic's golden case 35 (`--keep-within 1h --keep-within-hourly 1d ...
/// --keep-within-yearly 9999y`) in small: the oldest backup lies within
/// 9999y in a year that already has a kept one, and restic keeps it
/// ("oldest yearly within"). All of restic's golden cases run in
/// backups-core (`retention::restic_golden`).
#[test]
fn keep_within_yearly_keeps_the_oldest_backup_as_restic_does() {
    let env = Env::new();
    let ids = uploads(
        &env,
        &[
            "2016-01-18T12:00:00Z",
            "2015-11-22T10:00:00Z",
            "2015-10-22T10:00:00Z",
            "2014-11-22T10:00:00Z",
            "2014-08-08T10:00:00Z",
        ],
    );
    let plan = env.json(&[
        "forget",
        "--keep-within",
        "1h",
        "--keep-within-monthly",
        "1y",
        "--keep-within-yearly",
        "9999y",
        "--dry-run",
        "--json",
    ]);
    let (keep, remove) = decided(&plan);
    assert_eq!(keep, ids, "{plan}");
    assert!(remove.is_empty(), "{plan}");
    let last = &plan["Keep"][4]["Reasons"];
    assert_eq!(*last, json!(["oldest yearly within 9999y"]), "{plan}");
}
