//! `create --lock-cmd/--unlock-cmd`: the unlock runs after success,
//! failure and Ctrl-C, and sees BACKUPS_BACKUP_OK; a locked backup of files
//! (or a point-in-time database) is listed as CLEAN.

use std::process::Command;

use crate::crash::{create_until_streaming, random_tree};
use crate::support::*;

const LOCK: &str = "echo locked >> hooks.log";
const UNLOCK: &str = "echo \"unlocked $BACKUPS_BACKUP_OK\" >> hooks.log";

fn hooks_log(env: &Env) -> String {
    std::fs::read_to_string(env.path().join("hooks.log")).unwrap_or_default()
}

#[test]
fn a_locked_backup_is_clean_and_unlock_sees_the_outcome() {
    let env = Env::new();
    let tree = sample_tree(env.path());
    let plain = env
        .ok(&["create", "--path", tree.to_str().unwrap()])
        .trim()
        .to_string();
    let id = env
        .ok(&[
            "create",
            "--path",
            tree.to_str().unwrap(),
            "--lock-cmd",
            LOCK,
            "--unlock-cmd",
            UNLOCK,
            "--label",
            "locked",
        ])
        .trim()
        .to_string();
    assert_eq!(hooks_log(&env), "locked\nunlocked 1\n");
    let list = env.ok(&["list"]);
    let line = |id: &str| {
        list.lines()
            .find(|l| l.starts_with(id))
            .unwrap()
            .to_string()
    };
    assert!(line(&id).contains(" yes "), "{list}");
    assert!(line(&plain).contains(" no "), "{list}");
    assert!(env.ok(&["show", &id]).contains("clean:"));
    assert_eq!(env.json(&["show", &id, "--json"])["Locked"], true);

    // A create that fails still unlocks, with BACKUPS_BACKUP_OK=0.
    std::fs::remove_file(env.path().join("hooks.log")).unwrap();
    let (_, err) = env.fail(&[
        "create",
        "--path",
        "/nonexistent/backups-test",
        "--lock-cmd",
        LOCK,
        "--unlock-cmd",
        UNLOCK,
    ]);
    assert!(err.contains("nonexistent"), "{err}");
    assert_eq!(hooks_log(&env), "locked\nunlocked 0\n");

    // A lock that fails stops the backup (exit 12) and still unlocks.
    std::fs::remove_file(env.path().join("hooks.log")).unwrap();
    let (code, err) = env.fail(&[
        "create",
        "--path",
        tree.to_str().unwrap(),
        "--lock-cmd",
        "echo cannot lock >&2; exit 3",
        "--unlock-cmd",
        UNLOCK,
    ]);
    assert_eq!(code, 12, "{err}");
    assert!(err.contains("cannot lock"), "{err}");
    assert_eq!(hooks_log(&env), "unlocked 0\n");
    assert_eq!(env.json(&["list", "--json"]).as_array().unwrap().len(), 2);
}

#[test]
fn ctrl_c_during_a_locked_backup_still_unlocks() {
    let env = Env::new();
    let tree = random_tree(env.path(), 6);
    let child = create_until_streaming(&env, &tree, &["--lock-cmd", LOCK, "--unlock-cmd", UNLOCK]);
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130));
    assert_eq!(hooks_log(&env), "locked\nunlocked 0\n");
    assert_eq!(env.ok(&["list"]), "No backups to display.\n");
}

/// BOSH's consistent backup across nodes: `--lock-cmd` and `--unlock-cmd`
/// repeat and run in the order given (lock every node, back up, unlock in
/// reverse); a lock failing part-way unlocks exactly what was locked (the
/// failing node's included), and the backup is not made.
#[test]
fn ordered_locks_unlock_in_reverse_and_a_partial_lock_unlocks_what_it_locked() {
    let env = Env::new();
    let tree = sample_tree(env.path());
    let hook = |what: &str, node: &str| match what {
        "lock" => format!("echo 'lock {node}' >> hooks.log"),
        _ => format!("echo \"unlock {node} $BACKUPS_BACKUP_OK\" >> hooks.log"),
    };
    let (la, lb, lc) = (hook("lock", "a"), hook("lock", "b"), hook("lock", "c"));
    let (uc, ub, ua) = (
        hook("unlock", "c"),
        hook("unlock", "b"),
        hook("unlock", "a"),
    );
    let t = tree.to_str().unwrap();
    env.ok(&[
        "create",
        "--path",
        t,
        "--lock-cmd",
        &la,
        "--lock-cmd",
        &lb,
        "--lock-cmd",
        &lc,
        "--unlock-cmd",
        &uc,
        "--unlock-cmd",
        &ub,
        "--unlock-cmd",
        &ua,
    ]);
    assert_eq!(
        hooks_log(&env),
        "lock a\nlock b\nlock c\nunlock c 1\nunlock b 1\nunlock a 1\n"
    );

    // Node b's lock fails: a and b are unlocked (in reverse), c is never
    // locked nor unlocked, and nothing is stored.
    std::fs::remove_file(env.path().join("hooks.log")).unwrap();
    let fail_b = "echo 'lock b' >> hooks.log; echo 'node b refused' >&2; exit 4".to_string();
    let (code, err) = env.fail(&[
        "create",
        "--path",
        t,
        "--lock-cmd",
        &la,
        "--lock-cmd",
        &fail_b,
        "--lock-cmd",
        &lc,
        "--unlock-cmd",
        &uc,
        "--unlock-cmd",
        &ub,
        "--unlock-cmd",
        &ua,
    ]);
    assert_eq!(code, 12, "{err}");
    assert!(err.contains("node b refused"), "{err}");
    assert_eq!(hooks_log(&env), "lock a\nlock b\nunlock b 0\nunlock a 0\n");
    assert_eq!(env.json(&["list", "--json"]).as_array().unwrap().len(), 1);
}
