//! Schedules at the edges (issue 20, items 10 and 13): a corrupt status
//! file stops no job (a warning naming it, the job treated as never run,
//! the file rewritten at its next run), a job that never succeeded exports
//! a last-success time of 0, and a cron that never fires is refused.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::*;

/// Runs the binary with the config file `config` (HOME in `env`, no store flag).
fn command(env: &Env, config: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(["--progress", "none"])
        .args(args)
        .env_remove("BACKUPS_STORE")
        .env_remove("BACKUPS_PROFILE")
        .env_remove("BACKUPS_MONGO_URI")
        .env("BACKUPS_CONFIG", config)
        .env("HOME", env.path().join("home"))
        .env("BACKUPS_MODEL_UUID", MODEL)
        .env("BACKUPS_STATE_DIR", env.path().join("state"))
        .current_dir(env.path());
    cmd
}

fn run(env: &Env, config: &Path, args: &[&str]) -> Output {
    command(env, config, args).output().unwrap()
}

/// A config with a default profile backing up the sample tree into the
/// env's store, a `broken` profile whose path does not exist, and `schedules`.
fn config(env: &Env, schedules: &str) -> PathBuf {
    let tree = sample_tree(env.path());
    let path = env.path().join("config.toml");
    std::fs::write(
        &path,
        format!(
            "[profile.default]\nstore = {store:?}\npaths = [{tree:?}]\n\n\
             [profile.broken]\nstore = {store:?}\npaths = [{missing:?}]\n\n{schedules}",
            store = env.store().to_str().unwrap(),
            tree = tree.to_str().unwrap(),
            missing = env.path().join("missing").to_str().unwrap(),
        ),
    )
    .unwrap();
    path
}

fn status_file(env: &Env, name: &str) -> PathBuf {
    env.path().join(format!("state/schedule/{name}.json"))
}

fn parsed_status(env: &Env, name: &str) -> Option<Value> {
    serde_json::from_slice(&std::fs::read(status_file(env, name)).ok()?).ok()
}

fn corrupt(env: &Env, name: &str) {
    let path = status_file(env, name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, "garbage\n").unwrap();
}

/// Asserts success; returns stderr.
fn succeeded(out: &Output) -> String {
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{err}");
    err
}

/// A warning in `err` names the status file of `name`.
fn warns_of(err: &str, env: &Env, name: &str) {
    let file = status_file(env, name).display().to_string();
    assert!(
        err.lines()
            .any(|l| l.contains("warning") && l.contains(&file) && l.contains("never run")),
        "a warning naming {file}: {err}"
    );
}

const JOBS: &str = "[[schedule]]\nname = \"nc\"\ncron = \"0 3 * * *\"\n\n\
                    [[schedule]]\nname = \"other\"\ncron = \"0 4 * * *\"\n";

#[test]
fn a_corrupt_status_file_stops_no_job_and_is_rewritten_at_its_next_run() {
    let env = Env::new();
    let config = config(&env, JOBS);
    corrupt(&env, "nc");

    let out = run(&env, &config, &["schedule", "list", "--json"]);
    let err = succeeded(&out);
    warns_of(&err, &env, "nc");
    let rows: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rows[0]["Name"], "nc");
    assert_eq!(rows[0]["LastRun"], Value::Null, "treated as never run");

    // Another job runs; the corrupt file is left as it is.
    let err = succeeded(&run(&env, &config, &["schedule", "run", "--once", "other"]));
    warns_of(&err, &env, "nc");
    assert_eq!(parsed_status(&env, "other").unwrap()["Runs"], 1);
    assert_eq!(
        std::fs::read_to_string(status_file(&env, "nc")).unwrap(),
        "garbage\n"
    );

    // The job itself runs, and its file is rewritten.
    succeeded(&run(&env, &config, &["schedule", "run", "--once", "nc"]));
    let s = parsed_status(&env, "nc").expect("rewritten as JSON");
    assert_eq!(
        (s["Runs"].as_u64(), s["Failures"].as_u64()),
        (Some(1), Some(0))
    );
    let err = succeeded(&run(&env, &config, &["schedule", "list"]));
    assert!(!err.contains("warning"), "{err}");
}

#[test]
fn the_service_runs_a_job_whose_status_file_is_corrupt() {
    let env = Env::new();
    let config = config(
        &env,
        "[[schedule]]\nname = \"nc\"\ncron = \"* * * * * *\"\n",
    );
    corrupt(&env, "nc");
    let child = command(&env, &config, &["schedule", "run"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Polls for the outcome (a generous deadline, never a decision on time).
    let deadline = Instant::now() + Duration::from_secs(120);
    let ran = || parsed_status(&env, "nc").is_some_and(|s| s["Runs"].as_u64() >= Some(1));
    while !ran() {
        assert!(Instant::now() < deadline, "the job never ran");
        std::thread::sleep(Duration::from_millis(100));
    }
    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let out = child.wait_with_output().unwrap();
    let err = succeeded(&out);
    warns_of(&err, &env, "nc");
}

#[test]
fn a_job_that_never_succeeded_exports_a_last_success_of_0() {
    let env = Env::new();
    let config = config(
        &env,
        "[[schedule]]\nname = \"bad\"\ncron = \"0 3 * * *\"\nprofile = \"broken\"\n",
    );
    let metrics = env.path().join("backups.prom");
    let out = run(
        &env,
        &config,
        &[
            "schedule",
            "run",
            "--once",
            "bad",
            "--metrics-file",
            metrics.to_str().unwrap(),
        ],
    );
    assert_eq!(
        out.status.code(),
        Some(7),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&metrics).unwrap();
    assert!(
        text.lines()
            .any(|l| l == "backups_schedule_last_success_timestamp_seconds{schedule=\"bad\"} 0"),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l == "backups_schedule_last_run_ok{schedule=\"bad\"} 0"),
        "{text}"
    );
}

#[test]
fn a_cron_that_never_fires_is_refused() {
    let env = Env::new();
    let config = config(
        &env,
        "[[schedule]]\nname = \"feb31\"\ncron = \"0 0 31 2 *\"\n",
    );
    for args in [
        &["schedule", "list"][..],
        &["schedule", "run", "--once", "feb31"],
    ] {
        let out = run(&env, &config, args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("schedule feb31")
                && err.contains("0 0 31 2 *")
                && err.contains("never fires"),
            "{err}"
        );
    }
}
