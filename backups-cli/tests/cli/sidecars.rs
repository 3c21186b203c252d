//! Sidecars that cannot be read (issue 20, item 1): not JSON, zero bytes,
//! another id, fields missing. Every command that lists skips each with
//! one warning naming the object; `gc` lists them (kind
//! `unreadable-sidecar`) and deletes them with --yes; `remove ID` deletes
//! one; a schedule's run (create, then retention) succeeds beside them.

use std::path::PathBuf;

use serde_json::Value;

use crate::support::*;

/// The bad sidecars: (id, bytes).
fn bad_sidecars() -> Vec<(String, Vec<u8>)> {
    let id = |stamp: &str| format!("{stamp}.{MODEL}");
    vec![
        (id("20261001-000000"), b"{bad\n".to_vec()),
        (id("20261002-000000"), Vec::new()),
        (
            id("20261003-000000"),
            format!(
                r#"{{"ID":"20200101-000000.{MODEL}","Started":"2026-10-03T00:00:00Z","Checksum":"x","Size":10}}"#
            )
            .into_bytes(),
        ),
        (
            id("20261004-000000"),
            format!(r#"{{"ID":"{}"}}"#, id("20261004-000000")).into_bytes(),
        ),
    ]
}

/// Writes the bad sidecars into `env`'s store; returns their ids.
fn put_bad_sidecars(env: &Env) -> Vec<String> {
    bad_sidecars()
        .into_iter()
        .map(|(id, bytes)| {
            std::fs::write(env.store().join(format!("{id}.json")), bytes).unwrap();
            id
        })
        .collect()
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Each bad sidecar is named in exactly one warning line of `err`, which
/// calls it a sidecar (not an "invalid archive ... metadata.json").
fn warns_once_each(err: &str, bad: &[String]) {
    for id in bad {
        let lines: Vec<&str> = err
            .lines()
            .filter(|l| l.contains(&format!("{id}.json")))
            .collect();
        assert_eq!(lines.len(), 1, "one warning for {id}: {err}");
        assert!(
            lines[0].starts_with("warning: skipping unreadable sidecar"),
            "{err}"
        );
    }
    assert!(!err.contains("invalid archive"), "{err}");
    assert!(!err.contains("metadata.json"), "{err}");
}

fn ids_of(list: &Value) -> Vec<String> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|m| m["ID"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn an_unreadable_sidecar_blocks_no_command_and_gc_and_remove_delete_it() {
    let env = Env::new();
    let tree = sample_tree(env.path());
    let path = tree.to_str().unwrap();
    let older = env.ok(&["create", "--path", path]).trim().to_string();
    let newer = env.ok(&["create", "--path", path]).trim().to_string();
    let bad = put_bad_sidecars(&env);

    // list, as a table and as JSON (which leaves them out).
    let out = env.run(&["list"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let table = String::from_utf8(out.stdout.clone()).unwrap();
    assert!(table.contains(&older) && table.contains(&newer), "{table}");
    assert!(bad.iter().all(|id| !table.contains(id.as_str())), "{table}");
    warns_once_each(&stderr(&out), &bad);
    let out = env.run(&["list", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let list: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(ids_of(&list), [newer.clone(), older.clone()]);
    warns_once_each(&stderr(&out), &bad);

    // verify --all checks the readable ones.
    let out = env.run(&["verify", "--all"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        String::from_utf8(out.stdout.clone())
            .unwrap()
            .lines()
            .count(),
        2
    );
    warns_once_each(&stderr(&out), &bad);

    // show names the sidecar and says what to do.
    let (code, err) = env.fail(&["show", &bad[0]]);
    assert_eq!(code, 5, "{err}");
    assert!(
        err.contains(&format!("unreadable sidecar {}.json", bad[0]))
            && err.contains("backups gc")
            && !err.contains("invalid archive"),
        "{err}"
    );

    // gc lists each (fresh ones too) as unreadable-sidecar.
    let out = env.run(&["gc", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let garbage: Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut found: Vec<(String, String)> = garbage
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            (
                g["Kind"].as_str().unwrap().to_string(),
                g["Key"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    found.sort();
    let want: Vec<(String, String)> = bad
        .iter()
        .map(|id| ("unreadable-sidecar".to_string(), format!("{id}.json")))
        .collect();
    assert_eq!(found, want);

    // forget applies the policy to the readable ones.
    let out = env.run(&["forget", "--keep-last", "1", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    warns_once_each(&stderr(&out), &bad);
    let decision: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(decision["Remove"], serde_json::json!([{"ID": older}]));

    // remove ID deletes one; gc --yes the others.
    let out = env.run(&["remove", &bad[0]]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!env.store().join(format!("{}.json", bad[0])).exists());
    let out = env.run(&["gc", "--yes"]);
    assert!(out.status.success(), "{}", stderr(&out));
    for id in &bad {
        assert!(!env.store().join(format!("{id}.json")).exists(), "{id}");
    }
    let out = env.run(&["list", "--json"]);
    assert!(stderr(&out).is_empty(), "{}", stderr(&out));
    assert_eq!(
        ids_of(&serde_json::from_slice(&out.stdout).unwrap()),
        [newer]
    );
}

#[test]
fn a_scheduled_run_succeeds_and_applies_retention_beside_an_unreadable_sidecar() {
    let env = Env::new();
    let tree = sample_tree(env.path());
    let config: PathBuf = env.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[profile.default]\nstore = {:?}\npaths = [{:?}]\n\n\
             [[schedule]]\nname = \"nightly\"\ncron = \"0 3 * * *\"\n\
             retention = {{ keep_last = 1 }}\n",
            env.store().to_str().unwrap(),
            tree.to_str().unwrap()
        ),
    )
    .unwrap();
    let envs = [("BACKUPS_CONFIG", config.to_str().unwrap())];
    let run = || env.run_with(&["schedule", "run", "--once", "nightly"], &envs);
    let out = run();
    assert!(out.status.success(), "{}", stderr(&out));
    let first = first_id(&env);
    let bad = put_bad_sidecars(&env);

    let out = run();
    let err = stderr(&out);
    assert!(out.status.success(), "the run succeeds: {err}");
    assert!(
        err.contains("retention kept 1 and removed 1")
            && err.contains("skipped 4 unreadable sidecar(s)"),
        "{err}"
    );
    for id in &bad {
        assert!(err.contains(&format!("{id}.json")), "{id} named: {err}");
    }
    let list = env.json(&["list", "--json"]);
    let ids = ids_of(&list);
    assert_eq!(ids.len(), 1, "the older scheduled backup was removed");
    assert_ne!(ids[0], first);
}
