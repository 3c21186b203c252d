//! The pre-restore backup a killed restore needs (issue 20, item 2): while
//! its journal is pending in the state directory, `forget` keeps it
//! (reason `pending-recovery`), `remove` refuses it unless --force, `list`
//! and `show` mark it, `gc` and `restore --dry-run` say how to recover;
//! and the documented recovery then works.

use std::path::Path;

use serde_json::Value;

use crate::plan::plan_setup;
use crate::support::*;

/// A plan restore of `id` in place over `live`, SIGKILLed by its own
/// post-restore hook (the journal naming its safety backup is left on
/// disk); returns the safety backup's id.
fn killed_restore(env: &Env, id: &str, live: &Path) -> String {
    let out = env.run(&[
        "restore",
        id,
        "--target",
        "/",
        "--safety-path",
        live.to_str().unwrap(),
        "--post-restore-cmd",
        "kill -9 $PPID",
        "--yes",
    ]);
    assert_eq!(out.status.code(), None, "killed by a signal");
    safety_backup(env)["ID"].as_str().unwrap().to_string()
}

fn reasons(decision: &Value, id: &str) -> Vec<String> {
    decision["Keep"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["ID"] == id)
        .map(|k| {
            k["Reasons"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r.as_str().unwrap().to_string())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn forget_and_remove_keep_the_pre_restore_backup_a_killed_restore_needs() {
    let env = Env::new();
    let (live, id) = plan_setup(&env);
    let before = snapshot(&live);
    let safety = killed_restore(&env, &id, &live);
    let journal = env.path().join(format!("state/restore-{safety}.journal"));
    assert!(journal.exists());
    // A later manual backup: the safety backup is no longer the newest.
    let tree = sample_tree(env.path());
    let later = env
        .ok(&["create", "--path", tree.to_str().unwrap()])
        .trim()
        .to_string();

    // forget keeps it, dry run or not.
    for dry in [true, false] {
        let mut args = vec!["forget", "--keep-label", "manual", "--json"];
        if dry {
            args.push("--dry-run");
        }
        let decision = env.json(&args);
        assert!(
            reasons(&decision, &safety).contains(&"pending-recovery".to_string()),
            "{decision}"
        );
        assert!(
            !decision["Remove"].to_string().contains(&safety),
            "{decision}"
        );
    }

    // remove refuses it, naming the journal.
    let (code, err) = env.fail(&["remove", &safety]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains(&journal.display().to_string()) && err.contains("--force"),
        "{err}"
    );

    // list and show mark it; the others are not marked.
    let table = env.ok(&["list"]);
    let line = table.lines().find(|l| l.starts_with(&safety)).unwrap();
    assert!(line.contains("(pending recovery)"), "{table}");
    let other = table.lines().find(|l| l.starts_with(&later)).unwrap();
    assert!(!other.contains("pending"), "{table}");
    let list = env.json(&["list", "--json"]);
    for m in list.as_array().unwrap() {
        let marked = m["PendingRecovery"] == true;
        assert_eq!(marked, m["ID"] == safety.as_str(), "{m}");
    }
    let shown = env.ok(&["show", &safety]);
    assert!(shown.contains("pending recovery: yes"), "{shown}");
    assert_eq!(
        env.json(&["show", &safety, "--json"])["PendingRecovery"],
        true
    );

    // gc and a restore's dry run say a journal is pending and how to recover.
    let recover = format!("backups restore {safety} --target / --yes");
    let scratch = env.path().join("dry-run-target");
    for args in [
        vec!["gc"],
        vec![
            "restore",
            &later,
            "--target",
            scratch.to_str().unwrap(),
            "--dry-run",
        ],
    ] {
        let out = env.run(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{args:?}: {err}");
        assert!(
            err.contains(&journal.display().to_string()) && err.contains(&recover),
            "{args:?}: {err}"
        );
    }

    // Issue 20 item 11: restored under another target its absolute paths
    // would nest (T/T/...): refused, naming the right command, nothing written.
    let elsewhere = env.path().join("elsewhere");
    let (code, err) = env.fail(&[
        "restore",
        &safety,
        "--target",
        elsewhere.to_str().unwrap(),
        "--yes",
    ]);
    assert_eq!(code, 5, "{err}");
    assert!(
        err.contains("pre-restore safety backup") && err.contains("--target /"),
        "{err}"
    );
    assert!(
        !elsewhere.exists(),
        "nothing written under the other target"
    );

    // The documented recovery works: the backup it needs is still there.
    let out = env.run(&["restore", &safety, "--target", "/", "--yes"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(snapshot(&live), before, "the killed restore is undone");
    assert!(!journal.exists());
    // Settled: nothing is protected any more.
    assert!(!env.ok(&["list"]).contains("pending recovery"));
}

#[test]
fn remove_force_removes_a_needed_backup_with_a_warning() {
    let env = Env::new();
    let (live, id) = plan_setup(&env);
    let safety = killed_restore(&env, &id, &live);
    let out = env.run(&["remove", &safety, "--force"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("warning: removing") && err.contains(&format!("restore-{safety}.journal")),
        "{err}"
    );
    assert!(!env.store().join(format!("{safety}.json")).exists());
}
