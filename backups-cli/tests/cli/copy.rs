//! `backups copy`: local to local, local to moto, moto to Azurite and
//! Garage; a killed copy resumed; a corrupt source refused; skips,
//! conflicts and the JSON report; append-only targets.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use backups_core::test_util::{service_env, unique_name};
use serde_json::Value;

use crate::cloud::{cloud_cli, moto_flags};
use crate::crash::random_tree;
use crate::support::*;

/// The sidecars (`<id>.json`) directly in a local store.
fn sidecars(store: &Path) -> Vec<String> {
    let Ok(dir) = std::fs::read_dir(store) else {
        return Vec::new();
    };
    let mut names: Vec<String> = dir
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".json"))
        .collect();
    names.sort();
    names
}

/// The ids of a `--json` list, in order.
fn ids(list: &Value) -> Vec<String> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|m| m["ID"].as_str().unwrap().to_string())
        .collect()
}

/// Two backups of `env`'s store, the first labelled `keep` with notes.
fn two_backups(env: &Env) -> (String, String) {
    let tree = sample_tree(env.path());
    let path = tree.to_str().unwrap();
    let first = env.ok(&[
        "create",
        "--path",
        path,
        "--label",
        "keep",
        "--notes",
        "offsite me",
    ]);
    let second = env.ok(&["create", "--path", path]);
    (first.trim().to_string(), second.trim().to_string())
}

#[test]
fn copy_to_a_local_store_reports_skips_and_refuses_conflicts() {
    let env = Env::new();
    let (first, second) = two_backups(&env);
    let target = env.path().join("offsite");
    let to = target.to_str().unwrap();
    let report = env.json(&["copy", "--all", "--to", to, "--json"]);
    let copied = report["Copied"].as_array().unwrap();
    assert_eq!(copied.len(), 2, "{report}");
    assert_eq!(copied[0]["ID"], first.as_str(), "oldest first");
    assert!(copied[0]["Bytes"].as_u64().unwrap() > 0);
    assert_eq!(report["Skipped"], Value::Array(vec![]));
    assert_eq!(report["Failed"], Value::Array(vec![]));

    // The copies are the same backups, labels and notes included.
    let source_list = env.json(&["list", "--json"]);
    let target_list = list_at(&env, &target);
    assert_eq!(ids(&target_list), ids(&source_list));
    let shown = show_at(&env, &target, &first);
    let original = env.json(&["show", &first, "--json"]);
    for key in ["Checksum", "SHA256", "Size", "Notes", "Labels", "Started"] {
        assert_eq!(shown[key], original[key], "{key}");
    }
    assert_eq!(
        shown["CopiedFrom"]["Store"],
        env.store().to_str().unwrap(),
        "{shown}"
    );
    assert!(
        shown["CopiedFrom"]["Time"]
            .as_str()
            .unwrap()
            .starts_with("20")
    );
    // The bytes are the same: the target's own check passes.
    let out = at(&env, &target, &["verify", "--all"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Again: both skipped, exit 0; text output says so.
    let again = env.ok(&["copy", "--all", "--to", to]);
    assert!(
        again.contains(&format!("Skipped {first}: ")) && again.contains("same checksum"),
        "{again}"
    );

    // The target holds other bytes under the second id: refused, exit 4,
    // both checksums named; the first is still skipped.
    let sidecar = target.join(format!("{second}.json"));
    let mut meta: Value = serde_json::from_slice(&std::fs::read(&sidecar).unwrap()).unwrap();
    let ours = meta["Checksum"].as_str().unwrap().to_string();
    meta["Checksum"] = "dGhlaXIgYnl0ZXM=".into();
    std::fs::write(&sidecar, meta.to_string()).unwrap();
    let out = env.run(&["copy", "--all", "--to", to, "--json"]);
    assert_eq!(out.status.code(), Some(4));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["Skipped"][0]["ID"], first.as_str());
    assert_eq!(report["Failed"][0]["ID"], second.as_str());
    let error = report["Failed"][0]["Error"].as_str().unwrap();
    assert!(
        error.contains("dGhlaXIgYnl0ZXM=") && error.contains(&ours),
        "{error}"
    );
    assert_eq!(
        std::fs::read(&sidecar).unwrap(),
        meta.to_string().into_bytes(),
        "nothing in the target is replaced"
    );
}

/// Runs the binary with `--store store` in `env`'s directory.
fn at(env: &Env, store: &Path, args: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .args(["--store", store.to_str().unwrap(), "--progress", "none"])
        .args(args)
        .env("BACKUPS_STATE_DIR", env.path().join("state"))
        .current_dir(env.path())
        .output()
        .unwrap()
}

fn list_at(env: &Env, store: &Path) -> Value {
    serde_json::from_slice(&at(env, store, &["list", "--json"]).stdout).unwrap()
}

fn show_at(env: &Env, store: &Path, id: &str) -> Value {
    serde_json::from_slice(&at(env, store, &["show", id, "--json"]).stdout).unwrap()
}

#[test]
fn a_flipped_byte_in_the_source_is_refused_and_nothing_appears_in_the_target() {
    let env = Env::new();
    let (first, second) = two_backups(&env);
    let meta = env.json(&["show", &second, "--json"]);
    let archive = env.store().join(meta["Archive"].as_str().unwrap());
    let mut bytes = std::fs::read(&archive).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    std::fs::write(&archive, bytes).unwrap();
    let target = env.path().join("offsite");
    let out = env.run(&["copy", &second, "--to", target.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(5));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&second) && err.contains("mismatch"), "{err}");
    assert!(sidecars(&target).is_empty(), "{:?}", sidecars(&target));
    assert_eq!(
        String::from_utf8(at(&env, &target, &["list"]).stdout).unwrap(),
        "No backups to display.\n"
    );
    // --all goes on past it: the intact one is copied, exit 5 all the same.
    let out = env.run(&["copy", "--all", "--to", target.to_str().unwrap(), "--json"]);
    assert_eq!(out.status.code(), Some(5));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["Copied"][0]["ID"], first.as_str());
    assert_eq!(report["Failed"][0]["ID"], second.as_str());
    assert_eq!(sidecars(&target), vec![format!("{first}.json")]);
}

#[test]
fn a_copy_killed_midway_is_resumed_by_running_it_again() {
    let env = Env::new();
    let big = random_tree(env.path(), 4);
    let big = big.to_str().unwrap();
    let mut made = Vec::new();
    for _ in 0..3 {
        made.push(env.ok(&["create", "--path", big]).trim().to_string());
    }
    let target = env.path().join("offsite");
    let mut child = Command::new(BIN)
        .args([
            "--store",
            env.store().to_str().unwrap(),
            "--progress",
            "plain",
        ])
        .args([
            "--part-size",
            "5",
            "copy",
            "--all",
            "--to",
            target.to_str().unwrap(),
        ])
        .env("BACKUPS_STATE_DIR", env.path().join("state"))
        .current_dir(env.path())
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    // Killed (SIGKILL) once the second backup's bytes are streaming.
    let second = format!("copying {}: ", made[1]);
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let mut killed = false;
    for line in stderr.lines() {
        let line = line.unwrap();
        if line.starts_with(&second) && !line.starts_with(&format!("{second}0/")) {
            child.kill().unwrap();
            killed = true;
            break;
        }
    }
    assert!(killed, "the copy finished before it could be killed");
    assert!(!child.wait().unwrap().success());
    assert_eq!(sidecars(&target), vec![format!("{}.json", made[0])]);

    let report = env.json(&["copy", "--all", "--to", target.to_str().unwrap(), "--json"]);
    assert_eq!(report["Skipped"][0]["ID"], made[0].as_str(), "{report}");
    let copied: Vec<&str> = report["Copied"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["ID"].as_str().unwrap())
        .collect();
    assert_eq!(copied, vec![made[1].as_str(), made[2].as_str()]);
    let out = at(&env, &target, &["verify", "--all"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // What the killed copy left is garbage that gc finds, not a backup.
    let garbage =
        String::from_utf8(at(&env, &target, &["gc", "--older-than", "0s"]).stdout).unwrap();
    assert!(
        garbage.contains("orphan-archive") || garbage.contains("staging-file"),
        "{garbage}"
    );
}

#[test]
fn dry_run_writes_nothing_and_latest_with_label_picks_one() {
    let env = Env::new();
    let (first, _second) = two_backups(&env);
    let target = env.path().join("offsite");
    let to = target.to_str().unwrap();
    let report = env.json(&["copy", "--all", "--to", to, "--dry-run", "--json"]);
    assert_eq!(report["DryRun"], true);
    assert_eq!(report["Copied"].as_array().unwrap().len(), 2);
    assert!(sidecars(&target).is_empty());
    let report = env.json(&["copy", "--latest", "--label", "keep", "--to", to, "--json"]);
    assert_eq!(report["Copied"].as_array().unwrap().len(), 1);
    assert_eq!(report["Copied"][0]["ID"], first.as_str());
    assert_eq!(sidecars(&target), vec![format!("{first}.json")]);
}

#[test]
fn an_append_only_target_is_written_and_never_deleted_from() {
    let env = Env::new();
    let (first, second) = two_backups(&env);
    let target = env.path().join("offsite");
    let to = target.to_str().unwrap();
    let report = env.json(&[
        "copy",
        "--all",
        "--to",
        to,
        "--to-store-option",
        "append_only=true",
        "--json",
    ]);
    assert_eq!(report["Copied"].as_array().unwrap().len(), 2, "{report}");
    let out = at(
        &env,
        &target,
        &["--store-option", "append_only=true", "remove", &first],
    );
    assert_eq!(out.status.code(), Some(6));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("append-only"), "{err}");
    assert_eq!(
        sidecars(&target),
        vec![format!("{first}.json"), format!("{second}.json")]
    );
}

#[test]
fn copies_from_local_to_moto_and_from_moto_to_azurite_and_garage() {
    let (Some(moto), Some(bucket)) = (
        service_env("BACKUPS_TEST_MOTO_ENDPOINT"),
        service_env("BACKUPS_TEST_MOTO_BUCKET"),
    ) else {
        return;
    };
    let env = Env::new();
    let (first, second) = two_backups(&env);
    let moto_url = format!("s3://{bucket}/{}", unique_name("copy"));
    let (flags, creds) = moto_flags(&moto);
    let report: Value = serde_json::from_slice(
        &env.run_with(
            &[
                "copy",
                "--all",
                "--to",
                &moto_url,
                "--to-store-option",
                &format!("endpoint={moto}"),
                "--to-store-option",
                "region=us-east-1",
                "--to-store-option",
                "allow_http=true",
                "--json",
            ],
            &creds,
        )
        .stdout,
    )
    .unwrap();
    assert_eq!(report["Copied"].as_array().unwrap().len(), 2, "{report}");
    let on_moto = |args: &[&str]| cloud_cli(&moto_url, &flags, &creds, env.path(), args);
    let listed: Value = serde_json::from_str(&on_moto(&["list", "--json"])).unwrap();
    assert_eq!(ids(&listed), vec![second.clone(), first.clone()]);

    if let (Some(_), Some(container)) = (
        service_env("AZURITE_BLOB_STORAGE_URL"),
        service_env("BACKUPS_TEST_AZURITE_CONTAINER"),
    ) {
        let az = format!("az://{container}/{}", unique_name("copy"));
        let copy = [
            "copy",
            "--all",
            "--to",
            &az,
            "--to-store-option",
            "use_emulator=true",
            "--json",
        ];
        let report: Value = serde_json::from_str(&on_moto(&copy)).unwrap();
        assert_eq!(report["Copied"].as_array().unwrap().len(), 2, "{report}");
        let report: Value = serde_json::from_str(&on_moto(&copy)).unwrap();
        assert_eq!(report["Skipped"].as_array().unwrap().len(), 2, "{report}");
        let on_az = |args: &[&str]| {
            cloud_cli(
                &az,
                &["--store-option", "use_emulator=true"],
                &[],
                env.path(),
                args,
            )
        };
        on_az(&["verify", "--all"]);
        let shown: Value = serde_json::from_str(&on_az(&["show", &first, "--json"])).unwrap();
        assert_eq!(shown["CopiedFrom"]["Store"], moto_url.as_str());
        assert_eq!(shown["Labels"], serde_json::json!(["keep"]));
    }

    if let (Some(garage), Some(gbucket), Some(key), Some(secret)) = (
        service_env("BACKUPS_TEST_GARAGE_ENDPOINT"),
        service_env("BACKUPS_TEST_GARAGE_BUCKET"),
        service_env("BACKUPS_TEST_GARAGE_KEY_ID"),
        service_env("BACKUPS_TEST_GARAGE_SECRET"),
    ) {
        let url = format!("s3://{gbucket}/{}", unique_name("copy"));
        let options = [
            format!("endpoint={garage}"),
            "region=garage".into(),
            "allow_http=true".into(),
            format!("access_key_id={key}"),
            format!("secret_access_key={secret}"),
        ];
        let mut copy = vec!["copy", "--all", "--to", url.as_str(), "--json"];
        for o in &options {
            copy.extend(["--to-store-option", o.as_str()]);
        }
        let report: Value = serde_json::from_str(&on_moto(&copy)).unwrap();
        assert_eq!(report["Copied"].as_array().unwrap().len(), 2, "{report}");
        let garage_env = [
            ("AWS_ACCESS_KEY_ID", key.as_str()),
            ("AWS_SECRET_ACCESS_KEY", secret.as_str()),
        ];
        let garage_flags = [
            "--endpoint",
            garage.as_str(),
            "--region",
            "garage",
            "--allow-http",
        ];
        let verified = cloud_cli(
            &url,
            &garage_flags,
            &garage_env,
            env.path(),
            &["verify", "--all"],
        );
        assert!(
            verified.contains(&first) && verified.contains(&second),
            "{verified}"
        );
    }
}

#[test]
fn encrypted_backups_travel_as_they_are_and_plain_ones_can_be_sealed_for_the_target() {
    let env = Env::new();
    let recipient = crate::crypt::generate_key(&env, "key.txt");
    let tree = sample_tree(env.path());
    let path = tree.to_str().unwrap();
    let sealed = env.ok(&["create", "--path", path, "--encrypt-to", &recipient]);
    let sealed = sealed.trim();
    let plain = env.ok(&["create", "--path", path]);
    let plain = plain.trim();
    let target = env.path().join("offsite");
    let to = target.to_str().unwrap();

    // Without a key: the encrypted one is copied byte for byte.
    env.ok(&["copy", sealed, "--to", to]);
    let source_meta = env.json(&["show", sealed, "--json"]);
    let copied = show_at(&env, &target, sealed);
    assert_eq!(copied["Encryption"], source_meta["Encryption"]);
    let stored = |store: &Path, meta: &Value| {
        std::fs::read(store.join(meta["Archive"].as_str().unwrap())).unwrap()
    };
    assert_eq!(stored(&target, &copied), stored(&env.store(), &source_meta));

    // The plain one, sealed for the target's recipient on the way.
    env.ok(&["copy", plain, "--to", to, "--encrypt-to", &recipient]);
    let resealed = show_at(&env, &target, plain);
    let original = env.json(&["show", plain, "--json"]);
    assert_eq!(resealed["Checksum"], original["Checksum"]);
    assert_eq!(
        resealed["Encryption"]["Recipients"],
        serde_json::json!([recipient])
    );
    assert!(original.get("Encryption").is_none());
    let out = at(
        &env,
        &target,
        &[
            "download",
            plain,
            "--decrypt",
            "-i",
            "key.txt",
            "-o",
            "plain.tar.gz",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let sha1 = sh(
        "openssl dgst -sha1 -binary plain.tar.gz | base64",
        env.path(),
    );
    assert_eq!(
        String::from_utf8_lossy(&sha1.stdout).trim(),
        original["Checksum"].as_str().unwrap()
    );
    let out = at(&env, &target, &["verify", "--all"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_schedule_copies_its_verified_backup_to_the_copy_to_profiles() {
    use crate::schedule::{bare, listed, ok, schedule_config, status, with_config};
    let env = Env::new();
    let offsite = env.path().join("offsite");
    let config = schedule_config(
        &env,
        &format!(
            "[profile.offsite]\nstore = {:?}\n\n[[schedule]]\nname = \"nightly\"\n\
             cron = \"0 3 * * *\"\nverify = \"stored\"\ncopy_to = [\"offsite\"]\n",
            offsite.to_str().unwrap()
        ),
    );
    let metrics = env.path().join("backups.prom");
    let args = ["schedule", "run", "--once", "nightly", "--metrics-file"];
    let mut args = args.to_vec();
    args.push(metrics.to_str().unwrap());
    ok(bare(&env, &args, &with_config(&config)));
    let made = listed(&env, &env.store());
    let copied = listed(&env, &offsite);
    assert_eq!(copied.len(), 1);
    assert_eq!(copied[0]["ID"], made[0]["ID"]);
    assert_eq!(copied[0]["Checksum"], made[0]["Checksum"]);
    assert_eq!(
        copied[0]["CopiedFrom"]["Store"],
        env.store().to_str().unwrap()
    );
    let s = status(&env, "nightly").unwrap();
    assert!(s["Copies"]["offsite"]["LastSuccess"].is_string(), "{s}");
    assert_eq!(s["Copies"]["offsite"]["LastError"], Value::Null);
    let text = std::fs::read_to_string(&metrics).unwrap();
    let line = text
        .lines()
        .find(|l| {
            l.starts_with(
                "backups_schedule_last_copy_success_timestamp_seconds{schedule=\"nightly\",target=\"offsite\"} ",
            )
        })
        .unwrap_or_else(|| panic!("no copy metric in\n{text}"));
    let value: f64 = line.rsplit_once(' ').unwrap().1.parse().unwrap();
    assert!(value > 1.7e9, "{line}");
    assert!(
        text.contains("backups_copy_last_run_ok{schedule=\"nightly\",target=\"offsite\"} 1"),
        "{text}"
    );
}

#[test]
fn to_profile_takes_the_target_store_from_the_config_file() {
    use crate::schedule::{bare, listed, ok, schedule_config, with_config};
    let env = Env::new();
    let offsite = env.path().join("offsite");
    let config = schedule_config(
        &env,
        &format!(
            "[profile.offsite]\nstore = {:?}\n",
            offsite.to_str().unwrap()
        ),
    );
    let made = env.ok(&[
        "create",
        "--path",
        env.path().join("data").to_str().unwrap(),
    ]);
    let args = ["copy", "--latest", "--to-profile", "offsite", "--json"];
    let report: Value =
        serde_json::from_str(&ok(bare(&env, &args, &with_config(&config)))).unwrap();
    assert_eq!(report["Copied"][0]["ID"], made.trim(), "{report}");
    assert_eq!(listed(&env, &offsite).len(), 1);
    let out = bare(
        &env,
        &["copy", "--latest", "--to-profile", "nowhere"],
        &with_config(&config),
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nowhere"));
}
