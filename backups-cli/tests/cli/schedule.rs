//! The config file (profiles, precedence, unknown keys, `config show`) and
//! schedules (`schedule list`, `schedule run --once`, the service under
//! SIGTERM, catch-up, retention), run as a user would: the real binary, a
//! config file in a temp HOME.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::*;

/// Runs the binary with HOME in `env` (so only the config files a test
/// writes are found), no store flag, and `envs` on top.
pub(crate) fn bare(env: &Env, args: &[&str], envs: &[(&str, &str)]) -> Output {
    command(env, args, envs).output().unwrap()
}

fn command(env: &Env, args: &[&str], envs: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(["--progress", "none"])
        .args(args)
        .env_remove("BACKUPS_STORE")
        .env_remove("BACKUPS_CONFIG")
        .env_remove("BACKUPS_PROFILE")
        .env_remove("BACKUPS_MONGO_URI")
        .env_remove("XDG_CONFIG_HOME")
        .env_remove("XDG_DATA_HOME")
        .env("HOME", env.path().join("home"))
        .env("BACKUPS_MODEL_UUID", MODEL)
        .env("BACKUPS_STATE_DIR", env.path().join("state"))
        .envs(envs.iter().copied())
        .current_dir(env.path());
    cmd
}

pub(crate) fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn json(out: Output) -> Value {
    serde_json::from_str(&ok(out)).unwrap()
}

/// Writes `text` as the config file at `path`; returns the path.
fn write_config(path: &Path, text: &str) -> PathBuf {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
    path.to_path_buf()
}

pub(crate) fn with_config(config: &Path) -> [(&str, &str); 1] {
    [("BACKUPS_CONFIG", config.to_str().unwrap())]
}

/// The backups in `store`, newest first.
pub(crate) fn listed(env: &Env, store: &Path) -> Vec<Value> {
    let out = bare(
        env,
        &["--store", store.to_str().unwrap(), "list", "--json"],
        &[],
    );
    json(out).as_array().unwrap().clone()
}

fn labels(meta: &Value) -> Vec<String> {
    meta["Labels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap().to_string())
        .collect()
}

pub(crate) fn status(env: &Env, name: &str) -> Option<Value> {
    let path = env.path().join(format!("state/schedule/{name}.json"));
    let text = std::fs::read_to_string(path).ok()?;
    serde_json::from_str(&text).ok()
}

/// Polls `done` every 100 ms until it holds, failing after a generous
/// deadline (never a pass/fail decision on time).
fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn sigterm(child: &Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn config_precedence_is_flag_then_profile_then_default() {
    let env = Env::new();
    let tree = sample_tree(env.path());
    let show = |args: &[&str], envs: &[(&str, &str)]| {
        let mut a = args.to_vec();
        a.extend(["config", "show", "--json"]);
        json(bare(&env, &a, envs))
    };

    // No config file: the built-in defaults.
    let s = show(&[], &[]);
    assert_eq!(s["Config"], Value::Null);
    let home_store = env.path().join("home/.local/share/backups");
    assert_eq!(s["Store"], home_store.to_str().unwrap());
    assert_eq!(s["Labels"], serde_json::json!(["manual"]));
    assert_eq!(s["Compression"], "gzip");

    // The user's config file is found in ~/.config/backups.
    let profile_store = env.path().join("profile-store");
    let user = write_config(
        &env.path().join("home/.config/backups/config.toml"),
        &format!(
            "[profile.default]\nstore = {:?}\npaths = [{:?}]\nlabels = [\"prod\"]\n\
             compression = \"zstd\"\nexcludes = [\"*.log\"]\n\n\
             [profile.other]\nstore = \"/srv/other\"\n",
            profile_store.to_str().unwrap(),
            tree.to_str().unwrap()
        ),
    );
    let s = show(&[], &[]);
    assert_eq!(s["Config"], user.to_str().unwrap());
    assert_eq!(s["Profile"], "default");
    assert_eq!(s["Store"], profile_store.to_str().unwrap());
    assert_eq!(s["Labels"], serde_json::json!(["prod"]));
    assert_eq!(s["Compression"], "zstd");

    // A flag, or its variable, beats the profile; --profile picks another.
    assert_eq!(show(&["--store", "/srv/flag"], &[])["Store"], "/srv/flag");
    assert_eq!(
        show(&[], &[("BACKUPS_STORE", "/srv/env")])["Store"],
        "/srv/env"
    );
    assert_eq!(show(&["--profile", "other"], &[])["Store"], "/srv/other");
    assert_eq!(
        show(&[], &[("BACKUPS_PROFILE", "other")])["Store"],
        "/srv/other"
    );

    // create takes paths, labels, excludes and compression from the profile...
    let id = ok(bare(&env, &["create"], &[])).trim().to_string();
    let made = listed(&env, &profile_store);
    assert_eq!(made.len(), 1);
    assert_eq!(made[0]["ID"], id.as_str());
    assert_eq!(labels(&made[0]), ["prod"]);
    let excluding = made[0]["FileCount"].as_u64().unwrap();
    // ...and its flags win over the profile.
    let flag_store = env.path().join("flag-store");
    ok(bare(
        &env,
        &[
            "--store",
            flag_store.to_str().unwrap(),
            "create",
            "--label",
            "mine",
        ],
        &[],
    ));
    assert_eq!(labels(&listed(&env, &flag_store)[0]), ["mine"]);
    // The profile's excludes applied (big.log left out) until a flag says
    // otherwise.
    let all_store = env.path().join("all-store");
    let store_flag = ["--store", all_store.to_str().unwrap()];
    ok(bare(
        &env,
        &[&store_flag[..], &["create", "--exclude", "none"]].concat(),
        &[],
    ));
    let everything = listed(&env, &all_store)[0]["FileCount"].as_u64().unwrap();
    assert_eq!(everything, excluding + 1);

    // --config (or BACKUPS_CONFIG) names another file.
    let other = write_config(
        &env.path().join("elsewhere.toml"),
        "[profile.default]\nstore = \"/srv/elsewhere\"\n",
    );
    let s = show(&["--config", other.to_str().unwrap()], &[]);
    assert_eq!(s["Store"], "/srv/elsewhere");
    assert_eq!(show(&[], &with_config(&other))["Store"], "/srv/elsewhere");

    // A profile that is not there is a usage error.
    let out = bare(&env, &["--profile", "nope", "config", "show"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no profile \"nope\""));
}

#[test]
fn an_unknown_key_is_an_error_naming_the_key_and_the_file() {
    let env = Env::new();
    for (text, key) in [
        ("[profile.default]\nstroe = \"/srv\"\n", "stroe"),
        (
            "[[schedule]]\nname = \"n\"\ncron = \"0 3 * * *\"\ncatchup = true\n",
            "catchup",
        ),
        ("colour = \"blue\"\n", "colour"),
    ] {
        let config = write_config(&env.path().join("bad.toml"), text);
        let out = bare(&env, &["list"], &with_config(&config));
        assert_eq!(out.status.code(), Some(2), "{text}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(&format!("unknown field `{key}`"))
                && err.contains(config.to_str().unwrap()),
            "{err}"
        );
    }
}

#[test]
fn config_show_redacts_passwords_and_secret_keys() {
    let env = Env::new();
    let config = write_config(
        &env.path().join("config.toml"),
        "[profile.default]\n\
         store = \"s3://bucket/prefix\"\n\
         endpoint = \"http://minio:hunter2@127.0.0.1:9000\"\n\
         mongo_uri = \"mongodb://admin:s3cret-pw@db1:27017/?authSource=admin\"\n\
         store_option = { aws_secret_access_key = \"wJalrXUtnFEMI\", aws_access_key_id = \"AKIAEXAMPLE\" }\n",
    );
    for args in [&["config", "show"][..], &["config", "show", "--json"]] {
        let shown = ok(bare(&env, args, &with_config(&config)));
        for secret in ["hunter2", "s3cret-pw", "wJalrXUtnFEMI"] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
        assert!(shown.contains("mongodb://admin:***@db1:27017"), "{shown}");
        assert!(shown.contains("http://minio:***@127.0.0.1:9000"), "{shown}");
        assert!(
            shown.contains("AKIAEXAMPLE"),
            "key ids are not secret: {shown}"
        );
    }
    let s = json(bare(
        &env,
        &["config", "show", "--json"],
        &with_config(&config),
    ));
    assert_eq!(s["StoreOption"]["aws_secret_access_key"], "***");
}

/// A config with one profile storing in `env`'s store and backing up the
/// sample tree, plus `schedules`.
pub(crate) fn schedule_config(env: &Env, schedules: &str) -> PathBuf {
    let tree = match env.path().join("data").canonicalize() {
        Ok(tree) => tree,
        Err(_) => sample_tree(env.path()),
    };
    write_config(
        &env.path().join("config.toml"),
        &format!(
            "[profile.default]\nstore = {:?}\npaths = [{:?}]\nlabels = [\"prod\"]\n\n{schedules}",
            env.store().to_str().unwrap(),
            tree.to_str().unwrap()
        ),
    )
}

#[test]
fn schedule_list_shows_each_jobs_next_runs() {
    let env = Env::new();
    let config = schedule_config(
        &env,
        "[[schedule]]\nname = \"nightly\"\ncron = \"30 3 * * *\"\nlabels = [\"offsite\"]\n\
         verify = \"drill\"\ncatch_up = true\n\n\
         [[schedule]]\nname = \"often\"\ncron = \"*/10 * * * * *\"\n",
    );
    let list = json(bare(
        &env,
        &["schedule", "list", "--json"],
        &with_config(&config),
    ));
    let jobs = list.as_array().unwrap();
    assert_eq!(jobs.len(), 2);
    assert_eq!(jobs[0]["Name"], "nightly");
    assert_eq!(jobs[0]["Cron"], "30 3 * * *");
    assert_eq!(jobs[0]["Verify"], "drill");
    assert_eq!(jobs[0]["CatchUp"], true);
    assert_eq!(
        jobs[0]["Labels"],
        serde_json::json!(["offsite", "scheduled", "schedule:nightly"])
    );
    let next: Vec<&str> = jobs[0]["Next"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    assert_eq!(next.len(), 3);
    assert!(next.iter().all(|t| t.ends_with("T03:30:00Z")), "{next:?}");
    assert!(next.windows(2).all(|w| w[0] < w[1]), "{next:?}");
    let often: Vec<&str> = jobs[1]["Next"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    assert!(
        often
            .iter()
            .all(|t| t[17..19].parse::<u32>().unwrap() % 10 == 0),
        "{often:?}"
    );
    let table = ok(bare(&env, &["schedule", "list"], &with_config(&config)));
    let lines: Vec<&str> = table.lines().collect();
    assert!(
        lines[0].starts_with("NAME") && lines[0].contains("NEXT RUNS"),
        "{table}"
    );
    assert!(
        lines[1].starts_with("nightly") && lines[1].contains(next[0]),
        "{table}"
    );
    assert!(lines[2].starts_with("often"), "{table}");

    // A bad cron expression is named with its schedule.
    let bad = schedule_config(&env, "[[schedule]]\nname = \"typo\"\ncron = \"0 3 * *\"\n");
    let out = bare(&env, &["schedule", "list"], &with_config(&bad));
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("typo") && err.contains("cron expression"),
        "{err}"
    );
}

/// Parses a textfile: metric name -> (schedule label -> value); checks
/// that each sample's metric has its HELP and TYPE lines first.
fn parse_metrics(text: &str) -> std::collections::BTreeMap<String, Vec<(String, f64)>> {
    let mut out = std::collections::BTreeMap::new();
    let mut described = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            assert!(kind == "gauge" || kind == "counter", "{line}");
            described.push(name.to_string());
            continue;
        }
        if line.starts_with("# HELP ") {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap();
        let (name, labels) = series.split_once('{').unwrap();
        assert!(described.contains(&name.to_string()), "{name} without TYPE");
        let job = labels
            .strip_prefix("schedule=\"")
            .and_then(|l| l.strip_suffix("\"}"))
            .unwrap();
        out.entry(name.to_string())
            .or_insert_with(Vec::new)
            .push((job.to_string(), value.parse::<f64>().unwrap()));
    }
    out
}

#[test]
fn schedule_run_once_makes_a_labelled_verified_backup_and_writes_status_and_metrics() {
    let env = Env::new();
    let config = schedule_config(
        &env,
        "[[schedule]]\nname = \"nightly\"\ncron = \"0 3 * * *\"\nlabels = [\"offsite\"]\n\
         verify = \"drill\"\n",
    );
    let metrics = env.path().join("textfile/backups.prom");
    let out = bare(
        &env,
        &[
            "schedule",
            "run",
            "--once",
            "nightly",
            "--metrics-file",
            metrics.to_str().unwrap(),
        ],
        &with_config(&config),
    );
    ok(out);
    let made = listed(&env, &env.store());
    assert_eq!(made.len(), 1);
    let backup = &made[0];
    assert_eq!(
        labels(backup),
        ["prod", "offsite", "scheduled", "schedule:nightly"]
    );
    assert_eq!(backup["Verification"]["Level"], "drill");
    assert_eq!(backup["Verification"]["Ok"], true);

    let s = status(&env, "nightly").unwrap();
    assert_eq!(s["Name"], "nightly");
    assert_eq!(s["Runs"], 1);
    assert_eq!(s["Failures"], 0);
    assert_eq!(s["LastError"], Value::Null);
    assert_eq!(s["LastBackup"], backup["ID"]);
    assert_eq!(s["LastSizeBytes"], backup["Size"]);
    assert!(s["LastSuccess"].as_str().unwrap().ends_with('Z'));
    assert!(s["LastVerified"].is_string());
    assert!(s["LastDurationSeconds"].as_f64().unwrap() >= 0.0);

    let m = parse_metrics(&std::fs::read_to_string(&metrics).unwrap());
    let value = |name: &str| m[name].iter().find(|(j, _)| j == "nightly").unwrap().1;
    assert_eq!(
        value("backups_schedule_last_size_bytes"),
        backup["Size"].as_f64().unwrap()
    );
    assert_eq!(value("backups_schedule_failures_total"), 0.0);
    assert_eq!(value("backups_schedule_runs_total"), 1.0);
    assert_eq!(value("backups_schedule_last_run_ok"), 1.0);
    assert!(value("backups_schedule_last_success_timestamp_seconds") > 1.7e9);
    assert!(value("backups_schedule_last_verified_timestamp_seconds") > 1.7e9);
    // 03:00 daily: a day between the next two runs.
    assert_eq!(
        value("backups_schedule_expected_interval_seconds"),
        86_400.0
    );
    assert_eq!(value("backups_schedule_last_verify_ok"), 1.0);
    assert_eq!(value("backups_schedule_store_reachable"), 1.0);
    let leftovers: Vec<_> = std::fs::read_dir(metrics.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers, ["backups.prom"], "no temp file left");

    // An unknown job is a usage error; a failing one exits with its error's
    // code and is recorded.
    let out = bare(
        &env,
        &["schedule", "run", "--once", "weekly"],
        &with_config(&config),
    );
    assert_eq!(out.status.code(), Some(2));
    std::fs::remove_dir_all(env.path().join("data")).unwrap();
    let out = bare(
        &env,
        &["schedule", "run", "--once", "nightly"],
        &with_config(&config),
    );
    assert_eq!(
        out.status.code(),
        Some(7),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s = status(&env, "nightly").unwrap();
    assert_eq!(
        (s["Runs"].as_u64(), s["Failures"].as_u64()),
        (Some(2), Some(1))
    );
    assert!(s["LastError"].as_str().unwrap().contains("data"), "{s}");
    assert_eq!(s["LastBackup"], backup["ID"], "the last success is kept");
}

#[test]
fn a_schedules_retention_removes_only_its_own_older_backups() {
    let env = Env::new();
    let config = schedule_config(
        &env,
        "[[schedule]]\nname = \"nightly\"\ncron = \"0 3 * * *\"\nretention = { keep_last = 2 }\n",
    );
    let manual = ok(bare(
        &env,
        &["create", "--label", "manual"],
        &with_config(&config),
    ));
    let mut made = Vec::new();
    for _ in 0..3 {
        ok(bare(
            &env,
            &["schedule", "run", "--once", "nightly"],
            &with_config(&config),
        ));
        made.push(status(&env, "nightly").unwrap()["LastBackup"].clone());
    }
    let ids: Vec<Value> = listed(&env, &env.store())
        .iter()
        .map(|m| m["ID"].clone())
        .collect();
    assert_eq!(
        ids,
        [made[2].clone(), made[1].clone(), Value::from(manual.trim())],
        "the oldest scheduled backup is gone, the manual one stays"
    );
}

#[test]
fn the_service_runs_a_seconds_cron_in_order_and_stops_on_sigterm() {
    let env = Env::new();
    let config = schedule_config(
        &env,
        "[[schedule]]\nname = \"tick\"\ncron = \"* * * * * *\"\n",
    );
    let log = std::fs::File::create(env.path().join("service.log")).unwrap();
    let mut child = command(&env, &["schedule", "run"], &with_config(&config))
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    wait_for("three runs", || {
        status(&env, "tick").is_some_and(|s| s["Runs"].as_u64() >= Some(3))
    });
    sigterm(&child);
    let exit = child.wait().unwrap();
    assert!(exit.success(), "{exit:?}");
    let log = std::fs::read_to_string(env.path().join("service.log")).unwrap();
    let s = status(&env, "tick").unwrap();
    let runs = s["Runs"].as_u64().unwrap() as usize;
    assert_eq!(s["Failures"], 0, "{log}");

    // One backup per recorded run, each later than the one before.
    let made = listed(&env, &env.store());
    assert_eq!(made.len(), runs, "{log}");
    let mut started: Vec<&str> = made
        .iter()
        .map(|m| m["Started"].as_str().unwrap())
        .collect();
    started.reverse();
    assert!(started.windows(2).all(|w| w[0] < w[1]), "{started:?}");
    assert_eq!(s["LastBackup"], made[0]["ID"]);
    assert!(
        made.iter()
            .all(|m| labels(m).contains(&"schedule:tick".to_string()))
    );

    // The log: each run starts only after the one before ended (the job
    // never overlaps itself); the service says it stops, and stopped last.
    let events: Vec<&str> = log
        .lines()
        .filter_map(|l| l.split_once(' ').map(|(_, e)| e))
        .filter(|e| e.contains(": started") || e.contains(": succeeded") || e.contains(": aborted"))
        .collect();
    let mut running = false;
    for e in &events {
        let starts = e.contains(": started");
        assert_ne!(starts, running, "overlap or stray end in {events:?}");
        running = starts;
    }
    let succeeded = events.iter().filter(|e| e.contains(": succeeded")).count();
    assert_eq!(succeeded, runs, "{log}");
    assert!(log.contains("scheduler: stopping"), "{log}");
    assert!(log.trim_end().ends_with("scheduler: stopped"), "{log}");
}

#[test]
fn a_run_missed_while_the_service_was_down_is_caught_up_once_at_start() {
    let env = Env::new();
    // Yearly, and last run long ago: only the catch-up can run in this test.
    let config = schedule_config(
        &env,
        "[[schedule]]\nname = \"yearly\"\ncron = \"0 3 1 1 *\"\ncatch_up = true\n\n\
         [[schedule]]\nname = \"no-catch-up\"\ncron = \"0 3 1 1 *\"\n",
    );
    let state = env.path().join("state/schedule");
    std::fs::create_dir_all(&state).unwrap();
    for name in ["yearly", "no-catch-up"] {
        std::fs::write(
            state.join(format!("{name}.json")),
            format!(r#"{{"name": "{name}", "last_run": "2020-01-01T03:00:00Z", "runs": 1}}"#),
        )
        .unwrap();
    }
    let log_path = env.path().join("service.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut child = command(&env, &["schedule", "run"], &with_config(&config))
        .stderr(log)
        .spawn()
        .unwrap();
    wait_for("the catch-up run", || {
        status(&env, "yearly").is_some_and(|s| s["Runs"] == 2)
    });
    wait_for("the next-run line", || {
        std::fs::read_to_string(&log_path)
            .unwrap()
            .contains("schedule yearly: next run at")
    });
    sigterm(&child);
    assert!(child.wait().unwrap().success());
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(
        log.contains("schedule yearly: started (catching up a missed run)"),
        "{log}"
    );
    assert_eq!(log.matches(": started").count(), 1, "{log}");
    // Never run, so its (old, snake_case) file is as it was written.
    assert_eq!(status(&env, "no-catch-up").unwrap()["runs"], 1);
    assert_eq!(listed(&env, &env.store()).len(), 1);
}

#[test]
fn sigterm_during_a_run_aborts_it_and_leaves_nothing_visible() {
    let env = Env::new();
    let locked = env.path().join("locked");
    // The lock hook keeps the run in flight until SIGTERM has been sent.
    let config = schedule_config(
        &env,
        &format!(
            "[[schedule]]\nname = \"slow\"\ncron = \"* * * * * *\"\n\n\
             [profile.slow]\nstore = {:?}\npaths = [{:?}]\nlock_cmd = \"touch {}; sleep 2\"\n",
            env.store().to_str().unwrap(),
            env.path().join("slow-data").to_str().unwrap(),
            locked.to_str().unwrap()
        ),
    );
    std::fs::create_dir_all(env.path().join("slow-data")).unwrap();
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("name = \"slow\"\n", "name = \"slow\"\nprofile = \"slow\"\n");
    std::fs::write(&config, text).unwrap();
    let log_path = env.path().join("service.log");
    let mut child = command(&env, &["schedule", "run"], &with_config(&config))
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .unwrap();
    wait_for("the run to start", || locked.exists());
    sigterm(&child);
    assert!(child.wait().unwrap().success());
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(
        log.contains("schedule slow: aborted (stopping); nothing committed"),
        "{log}"
    );
    assert!(!log.contains("succeeded"), "{log}");
    assert_eq!(listed(&env, &env.store()).len(), 0, "{log}");
    assert!(
        status(&env, "slow").is_none(),
        "an aborted run is not recorded"
    );
}
