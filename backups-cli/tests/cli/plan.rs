//! The restore plan: preflight, safety backup, hooks, rollback, prompts
//! on a terminal.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::support::*;

/// `restore ID --target / --safety-path LIVE EXTRA... --yes`.
fn in_place<'a>(id: &'a str, live: &'a Path, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "restore",
        id,
        "--target",
        "/",
        "--safety-path",
        live.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    args.push("--yes");
    args
}

/// A live directory whose `a.txt` is "new" in the backup and "old" now;
/// `conf/added/deep/b.txt` and `conf/c.txt` are only in the backup.
pub fn plan_setup(env: &Env) -> (PathBuf, String) {
    let live = env.path().join("live");
    std::fs::create_dir_all(live.join("conf/added/deep")).unwrap();
    std::fs::write(live.join("conf/a.txt"), "new").unwrap();
    std::fs::write(live.join("conf/added/deep/b.txt"), "b").unwrap();
    std::fs::write(live.join("conf/c.txt"), "c").unwrap();
    let live = live.canonicalize().unwrap();
    let id = env
        .ok(&["create", "--path", live.to_str().unwrap()])
        .trim()
        .to_string();
    std::fs::remove_dir_all(live.join("conf/added")).unwrap();
    std::fs::remove_file(live.join("conf/c.txt")).unwrap();
    std::fs::write(live.join("conf/a.txt"), "old").unwrap();
    std::fs::write(live.join("conf/only-now.txt"), "kept").unwrap();
    (live, id)
}

#[test]
fn restore_plan_runs_hooks_in_order_after_a_safety_backup() {
    let env = Env::new();
    let (live, id) = plan_setup(&env);
    let log = env.path().join("hooks.log");
    let l = log.display();
    let out = env.ok(&in_place(
        &id,
        &live,
        &[
            "--stop-cmd",
            &format!("echo stop >> {l}"),
            "--post-restore-cmd",
            &format!("echo post >> {l}"),
            "--start-cmd",
            &format!("echo start >> {l}"),
        ],
    ));
    assert!(out.starts_with("Restored"), "{out}");
    assert_eq!(
        std::fs::read_to_string(live.join("conf/a.txt")).unwrap(),
        "new"
    );
    assert_eq!(
        std::fs::read_to_string(live.join("conf/added/deep/b.txt")).unwrap(),
        "b"
    );
    assert_eq!(
        std::fs::read_to_string(&log).unwrap(),
        "stop\npost\nstart\n"
    );
    let safety = safety_backup(&env);
    assert_eq!(
        safety["ModelUUID"], MODEL,
        "the safety backup carries the target's model (BACKUPS_MODEL_UUID)"
    );
    // Without --yes and without a terminal, a plan refuses to start.
    let (code, err) = env.fail(&[
        "restore",
        &id,
        "--target",
        "/",
        "--safety-path",
        live.to_str().unwrap(),
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--yes"), "{err}");
}

#[test]
fn failing_post_restore_hook_rolls_back_to_the_live_state() {
    let env = Env::new();
    let (live, id) = plan_setup(&env);
    let before = snapshot(&live);
    let log = env.path().join("hooks.log");
    let l = log.display();
    let (code, err) = env.fail(&in_place(
        &id,
        &live,
        &[
            "--stop-cmd",
            &format!("echo stop >> {l}"),
            "--post-restore-cmd",
            "echo 'cannot rewrite agent.conf' >&2; exit 3",
            "--start-cmd",
            &format!("echo start >> {l}"),
        ],
    ));
    assert_eq!(code, 10, "{err}");
    assert!(
        err.contains("rolled back to safety backup") && err.contains("cannot rewrite agent.conf"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(live.join("conf/a.txt")).unwrap(),
        "old",
        "pre-restore state is back"
    );
    assert_eq!(
        std::fs::read_to_string(live.join("conf/only-now.txt")).unwrap(),
        "kept"
    );
    assert_eq!(
        snapshot(&live),
        before,
        "what the failed restore added is gone too"
    );
    assert_eq!(
        std::fs::read_to_string(&log).unwrap(),
        "stop\nstart\n",
        "services started again"
    );
}

#[test]
fn a_restore_killed_midway_is_undone_by_restoring_its_safety_backup() {
    let env = Env::new();
    let (live, id) = plan_setup(&env);
    let before = snapshot(&live);
    // The post-restore hook kills backups itself (its parent): files are
    // restored, services stopped, the lease still held.
    let out = env.run(&in_place(
        &id,
        &live,
        &["--post-restore-cmd", "kill -9 $PPID"],
    ));
    assert_eq!(out.status.code(), None, "killed by a signal");
    assert_eq!(
        std::fs::read_to_string(live.join("conf/added/deep/b.txt")).unwrap(),
        "b",
        "the killed restore had extracted its files"
    );
    let safety = safety_backup(&env)["ID"].as_str().unwrap().to_string();
    let journal = env.path().join(format!("state/restore-{safety}.journal"));
    assert!(journal.exists(), "the journal of the restore is on disk");
    assert!(
        std::fs::read_dir(env.store().join(".lease"))
            .unwrap()
            .next()
            .is_some(),
        "the killed process's lease is left behind"
    );
    // Recovery right away: the dead holder's lease (this host) is taken over.
    let out = env.run(&["restore", &safety, "--target", "/", "--yes"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("took back the interrupted restore: removed 4 paths it had added, put back 1 it had replaced"),
        "{err}"
    );
    assert_eq!(
        snapshot(&live),
        before,
        "back to the state before the killed restore"
    );
    assert!(!journal.exists(), "the journal is settled");
}

#[test]
fn a_rollback_puts_back_files_outside_the_safety_paths_too() {
    let env = Env::new();
    let (live, _) = plan_setup(&env);
    let other = env.path().join("other");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(other.join("o.txt"), "new").unwrap();
    let other = other.canonicalize().unwrap();
    let id = env
        .ok(&[
            "create",
            "--path",
            live.to_str().unwrap(),
            "--path",
            other.to_str().unwrap(),
        ])
        .trim()
        .to_string();
    std::fs::write(other.join("o.txt"), "old").unwrap();
    let (before_live, before_other) = (snapshot(&live), snapshot(&other));
    // The safety backup covers only `live`; `other/o.txt` is overwritten
    // too, and the journal keeps its previous version.
    let (code, err) = env.fail(&in_place(&id, &live, &["--post-restore-cmd", "exit 5"]));
    assert_eq!(code, 10, "{err}");
    assert_eq!(snapshot(&other), before_other, "outside the safety paths");
    assert_eq!(snapshot(&live), before_live);
}

#[test]
fn dry_run_plan_prints_the_steps_runs_the_checks_and_changes_nothing() {
    let env = Env::new();
    let (live, id) = plan_setup(&env);
    let before = snapshot(env.path());
    let log = env.path().join("hooks.log");
    let args = |extra: &[&'static str]| -> Vec<String> {
        let mut v: Vec<String> = [
            "restore",
            id.as_str(),
            "--target",
            "/",
            "--safety-path",
            live.to_str().unwrap(),
            "--dry-run",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        v.push("--stop-cmd".into());
        v.push(format!("echo stop >> {}", log.display()));
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };
    let run = |extra: &[&'static str]| {
        let a = args(extra);
        env.run(&a.iter().map(String::as_str).collect::<Vec<_>>())
    };
    let out = run(&[]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.starts_with("Plan:\n  1. verify the whole archive"),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "3. safety backup (label pre-restore) of the 1 live path the restore will replace, {}",
            live.display()
        )) && text.contains("4. stop services: `echo stop >> ")
            && text.contains("7. start services: (no command)")
            && text.contains("Nothing was changed."),
        "{text}"
    );
    // The preflight checks run in a dry run too.
    let out = run(&["--target-version", "0.1"]);
    assert_eq!(out.status.code(), Some(5));
    assert!(String::from_utf8_lossy(&out.stderr).contains("newer than the target"));
    assert_eq!(snapshot(env.path()), before, "nothing changed, no hook run");
    assert_eq!(
        env.json(&["list", "--json"]).as_array().unwrap().len(),
        1,
        "no safety backup taken"
    );
}

/// Runs the binary on a pseudo-terminal (util-linux `script`) with `input`
/// typed in; returns the exit code and everything it printed.
fn on_a_terminal(env: &Env, args: &[&str], input: &str) -> (Option<i32>, String) {
    let quote = |a: &str| format!("'{}'", a.replace('\'', r"'\''"));
    let mut cmd = vec![
        quote(BIN),
        "--store".into(),
        quote(env.store().to_str().unwrap()),
        "--progress".into(),
        "none".into(),
    ];
    cmd.extend(args.iter().map(|a| quote(a)));
    let mut child = Command::new("script")
        .args(["-qec", &cmd.join(" "), "/dev/null"])
        .env("BACKUPS_MODEL_UUID", MODEL)
        .env("BACKUPS_STATE_DIR", env.path().join("state"))
        .current_dir(env.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("util-linux `script`");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code(), text)
}

#[test]
fn a_plan_on_a_terminal_asks_and_a_no_changes_nothing() {
    let env = Env::new();
    let (live, id) = plan_setup(&env);
    let before = snapshot(&live);
    let log = env.path().join("hooks.log");
    let stop = format!("echo stop >> {}", log.display());
    let args = [
        "restore",
        id.as_str(),
        "--target",
        "/",
        "--safety-path",
        live.to_str().unwrap(),
        "--stop-cmd",
        stop.as_str(),
    ];
    let (code, text) = on_a_terminal(&env, &args, "n\n");
    assert_eq!(code, Some(130), "{text}");
    assert!(
        text.contains("Restore into / (services will be stopped)? [y/N]")
            && text.contains("restore cancelled"),
        "{text}"
    );
    assert_eq!(snapshot(&live), before, "nothing changed");
    assert!(!log.exists(), "no hook ran");
    let (code, text) = on_a_terminal(&env, &args, "y\n");
    assert_eq!(code, Some(0), "{text}");
    assert_eq!(
        std::fs::read_to_string(live.join("conf/a.txt")).unwrap(),
        "new"
    );
    assert_eq!(std::fs::read_to_string(&log).unwrap(), "stop\n");
}

#[test]
fn an_in_place_restore_asks_first() {
    let env = Env::new();
    let (_, id) = plan_setup(&env);
    let (code, err) = env.fail(&["restore", &id, "--target", "/"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--yes"), "{err}");
}

#[test]
fn hooks_see_the_restore_and_their_output_is_shown() {
    let env = Env::new();
    let (live, id) = plan_setup(&env);
    let out = env.run(&in_place(&id, &live, &[
        "--post-restore-cmd",
        "echo \"$BACKUPS_HOOK of $BACKUPS_RESTORE_SOURCE into $BACKUPS_RESTORE_TARGET\"; echo on-stderr >&2",
    ]));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains(&format!("[post-restore] post-restore of {id} into /\n"))
            && err.contains("[post-restore] on-stderr\n"),
        "{err}"
    );
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("on-stderr"),
        "hook output stays off stdout"
    );
}

#[test]
fn a_hung_stop_hook_is_killed_at_its_timeout_and_changes_nothing() {
    let env = Env::new();
    let (live, id) = plan_setup(&env);
    let before = snapshot(&live);
    let pid_file = env.path().join("sleeper.pid");
    let stop = format!("sleep 600 & echo $! > {}; wait", pid_file.display());
    let (code, err) = env.fail(&in_place(
        &id,
        &live,
        &["--stop-cmd", &stop, "--hook-timeout", "1s"],
    ));
    assert_eq!(code, 12, "{err}");
    assert!(err.contains("timed out after 1s (--hook-timeout)"), "{err}");
    assert_eq!(snapshot(&live), before, "nothing changed");
    // The hook's child went with it (gone, or a zombie waiting for init).
    let pid = std::fs::read_to_string(&pid_file).unwrap();
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", pid.trim())).unwrap_or_default();
    assert!(
        stat.is_empty() || stat.contains(") Z "),
        "sleep 600 still runs: {stat}"
    );
}

#[test]
fn failing_stop_hook_changes_nothing() {
    let env = Env::new();
    let (live, id) = plan_setup(&env);
    let (code, err) = env.fail(&in_place(&id, &live, &["--stop-cmd", "exit 7"]));
    assert_eq!(code, 12, "{err}");
    assert!(err.contains("stop hook `exit 7` failed"), "{err}");
    assert_eq!(
        std::fs::read_to_string(live.join("conf/a.txt")).unwrap(),
        "old"
    );
}

#[test]
fn a_failing_start_hook_rolls_back_and_starts_again() {
    let env = Env::new();
    let (live, id) = plan_setup(&env);
    let before = snapshot(&live);
    let log = env.path().join("hooks.log");
    // The first start fails (the restored state does not come up); the
    // second, after the rollback, succeeds.
    let start = format!(
        "if [ -e {flag} ]; then echo start $BACKUPS_ROLLED_BACK >> {log}; else touch {flag}; echo 'jujud did not come up' >&2; exit 1; fi",
        flag = env.path().join("tried").display(),
        log = log.display()
    );
    let (code, err) = env.fail(&in_place(
        &id,
        &live,
        &[
            "--stop-cmd",
            &format!("echo stop >> {}", log.display()),
            "--start-cmd",
            &start,
        ],
    ));
    assert_eq!(code, 10, "{err}");
    assert!(err.contains("jujud did not come up"), "{err}");
    assert_eq!(snapshot(&live), before, "the pre-restore state is back");
    assert_eq!(
        std::fs::read_to_string(&log).unwrap(),
        "stop\nstart 1\n",
        "the start after the rollback says so"
    );
}

#[test]
fn without_a_safety_backup_a_failure_leaves_the_services_stopped() {
    let env = Env::new();
    let (_, id) = plan_setup(&env);
    let log = env.path().join("hooks.log");
    let (code, err) = env.fail(&[
        "restore",
        &id,
        "--target",
        "/",
        "--no-safety-backup",
        "--stop-cmd",
        &format!("echo stop >> {}", log.display()),
        "--post-restore-cmd",
        "exit 3",
        "--start-cmd",
        &format!("echo start >> {}", log.display()),
        "--yes",
    ]);
    assert_eq!(code, 12, "{err}");
    assert!(err.contains("services were left stopped"), "{err}");
    assert_eq!(std::fs::read_to_string(&log).unwrap(), "stop\n");
}

#[test]
fn preflight_refuses_another_controller_and_a_newer_backup() {
    let env = Env::new();
    let fixture = fixtures().join("valid-backup-ver-1.tar.gz");
    env.ok(&["upload", fixture.to_str().unwrap()]);
    let id = "20200303-155649.1be318f6-9460-4fe1-8eb4-b1df2db23b53";
    let base = [
        "restore",
        id,
        "--target",
        "t",
        "--no-safety-backup",
        "--yes",
    ];
    fn with<'a>(base: &[&'a str], extra: &[&'a str]) -> Vec<&'a str> {
        [base, extra].concat()
    }
    let (code, err) = env.fail(&with(
        &base,
        &[
            "--target-controller-uuid",
            "00000000-0000-4000-8000-000000000000",
        ],
    ));
    assert_eq!(code, 5, "{err}");
    assert!(
        err.contains("bda3b637-7972-47f7-87fd-a3f2d0c748a5")
            && err.contains("--allow-other-controller"),
        "{err}"
    );
    let (code, err) = env.fail(&with(&base, &["--target-version", "2.7.6"]));
    assert_eq!(code, 5, "{err}");
    assert!(err.contains("newer than the target"), "{err}");
    let (code, err) = env.fail(&with(&base, &["--target-version", "2.9.0"]));
    assert_eq!(code, 5, "{err}");
    assert!(err.contains("--allow-downgrade"), "{err}");
    assert!(
        !env.path().join("t").exists(),
        "preflight failures change nothing"
    );
    let out = env.ok(&with(
        &base,
        &[
            "--target-version",
            "2.9.0",
            "--allow-downgrade",
            "--target-controller-uuid",
            "bda3b637-7972-47f7-87fd-a3f2d0c748a5",
        ],
    ));
    assert!(out.starts_with("Restored"), "{out}");
}

/// `--ensure-down`: while the old controller's address answers, the plan
/// refuses before changing anything; once nothing listens, it goes on.
#[test]
fn ensure_down_refuses_while_the_old_controller_answers() {
    let env = Env::new();
    let tree = sample_tree(env.path());
    let id = env
        .ok(&["create", "--path", tree.to_str().unwrap()])
        .trim()
        .to_string();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let alive = listener.local_addr().unwrap().to_string();
    let gone = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().to_string()
    };
    let restore = |addr: &str, extra: &[&str]| {
        let mut args = vec![
            "restore",
            id.as_str(),
            "--target",
            "t",
            "--no-safety-backup",
            "--yes",
            "--ensure-down",
            addr,
        ];
        args.extend_from_slice(extra);
        env.run(&args)
    };
    let out = restore(&alive, &[]);
    assert_eq!(
        out.status.code(),
        Some(5),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains(&format!("still answers at {alive}")));
    assert!(!env.path().join("t").exists(), "nothing written");
    let out = restore(&gone, &["--dry-run"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!(
        "refuse while the old controller answers at {gone}"
    )));
    let out = restore(&gone, &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(env.path().join("t").exists());
    drop(listener);
}
