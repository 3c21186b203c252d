//! Wrong store paths never look like empty stores (issue 20, item 12):
//! read commands on a missing local store exit 6 "no store at PATH", a
//! regular file is no store, only create and upload make one, a relative
//! `store` in a config file is relative to that file, and unknown local
//! store options are refused like S3's.

use std::path::Path;
use std::process::{Command, Output};

use crate::support::*;

/// Runs the binary in `cwd` with `--store store` (when given) and `envs`.
fn run_in(cwd: &Path, store: Option<&Path>, args: &[&str], envs: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(["--progress", "none"]);
    if let Some(s) = store {
        cmd.args(["--store", s.to_str().unwrap()]);
    }
    cmd.args(args)
        .env_remove("BACKUPS_STORE")
        .env_remove("BACKUPS_CONFIG")
        .env_remove("BACKUPS_PROFILE")
        .env("HOME", cwd.join("home"))
        .env("BACKUPS_MODEL_UUID", MODEL)
        .env("BACKUPS_STATE_DIR", cwd.join("state"))
        .envs(envs.iter().copied())
        .current_dir(cwd)
        .output()
        .unwrap()
}

fn failed(out: &Output) -> (i32, String) {
    assert!(!out.status.success(), "unexpectedly succeeded");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const SOME_ID: &str = "20240101-000000.0b6e3c52-8f1a-4c1e-9d3a-2f6c9a7e5b10";

#[test]
fn read_commands_on_a_missing_store_exit_6_and_create_nothing() {
    let env = Env::new();
    let missing = env.path().join("no/such/dir");
    let reads: [&[&str]; 9] = [
        &["list"],
        &["list", "--json"],
        &["show", SOME_ID],
        &["gc"],
        &["forget", "--keep-last", "1"],
        &["verify", "--all"],
        &["remove", SOME_ID],
        &["label", SOME_ID, "--add", "x"],
        &["unlock"],
    ];
    for args in reads {
        let (code, err) = failed(&run_in(env.path(), Some(&missing), args, &[]));
        assert_eq!(code, 6, "{args:?}: {err}");
        assert!(
            err.contains(&format!(
                "no store at {} (create one with `backups create`)",
                missing.display()
            )),
            "{args:?}: {err}"
        );
        assert!(!missing.exists(), "{args:?} created the store");
        assert!(!env.path().join("no").exists(), "{args:?} created a parent");
    }
    // create makes it.
    let tree = sample_tree(env.path());
    let out = run_in(
        env.path(),
        Some(&missing),
        &["create", "--path", tree.to_str().unwrap()],
        &[],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(missing.is_dir());
    let out = run_in(env.path(), Some(&missing), &["list", "--json"], &[]);
    assert!(out.status.success());
}

#[test]
fn upload_makes_a_missing_store() {
    let env = Env::new();
    let store = env.path().join("fresh");
    let archive = fixtures().join("valid-backup.tar.gz");
    let out = run_in(
        env.path(),
        Some(&store),
        &["upload", archive.to_str().unwrap()],
        &[],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(store.is_dir());
}

#[test]
fn a_regular_file_is_no_store() {
    let env = Env::new();
    let file = env.path().join("not-a-dir");
    std::fs::write(&file, "x").unwrap();
    let tree = sample_tree(env.path());
    for args in [&["list"][..], &["create", "--path", tree.to_str().unwrap()]] {
        let (code, err) = failed(&run_in(env.path(), Some(&file), args, &[]));
        assert_eq!(code, 6, "{args:?}: {err}");
        assert!(
            err.contains(&format!(
                "no store at {}: it is not a directory",
                file.display()
            )),
            "{args:?}: {err}"
        );
    }
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "x");
}

#[test]
fn a_relative_store_in_a_config_file_is_relative_to_that_file() {
    let env = Env::new();
    let tree = sample_tree(env.path());
    let conf_dir = env.path().join("etc/backups");
    std::fs::create_dir_all(&conf_dir).unwrap();
    let config = conf_dir.join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[profile.default]\nstore = \"store\"\npaths = [{:?}]\n",
            tree.to_str().unwrap()
        ),
    )
    .unwrap();
    let elsewhere = env.path().join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    let envs = [("BACKUPS_CONFIG", config.to_str().unwrap())];
    let out = run_in(&elsewhere, None, &["create"], &envs);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let id = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(conf_dir.join(format!("store/{id}.json")).is_file());
    assert!(!elsewhere.join("store").exists(), "not under the cwd");
    let out = run_in(&elsewhere, None, &["config", "show", "--json"], &envs);
    let shown: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(shown["Store"], conf_dir.join("store").to_str().unwrap());
}

#[test]
fn unknown_local_store_options_are_refused_like_s3s() {
    let env = Env::new();
    let tree = sample_tree(env.path());
    env.ok(&["create", "--path", tree.to_str().unwrap()]);
    let (code, err) = env.fail(&["--store-option", "no_such_option=1", "list"]);
    assert_eq!(code, 6, "{err}");
    assert!(
        err.contains("unknown store option \"no_such_option\""),
        "{err}"
    );
    // S3 refuses the same way.
    let s3 = Path::new("s3://bucket/prefix");
    let (code, s3) = failed(&run_in(
        env.path(),
        Some(s3),
        &["--store-option", "no_such_option=1", "list"],
        &[],
    ));
    assert_eq!(code, 6, "{s3}");
    assert!(
        s3.contains("unknown store option \"no_such_option\""),
        "{s3}"
    );
    // The local store's own option is still taken.
    env.ok(&["--store-option", "group_access=true", "list"]);
}
