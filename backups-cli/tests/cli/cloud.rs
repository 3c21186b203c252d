//! Cloud stores through the CLI: S3 on moto and Garage, Azure on Azurite.

use std::process::Command;

use backups_core::test_util::{service_env, unique_name};
use serde_json::Value;

use crate::support::*;

/// Runs the binary against `store` with `flags` and `envs`, in `dir`
/// (state under it too), expecting success; returns stdout.
pub(crate) fn cloud_cli(
    store: &str,
    flags: &[&str],
    envs: &[(&str, &str)],
    dir: &std::path::Path,
    args: &[&str],
) -> String {
    let out = Command::new(BIN)
        .args(["--store", store, "--progress", "none"])
        .args(flags)
        .args(args)
        .envs(envs.iter().copied())
        .env("BACKUPS_MODEL_UUID", MODEL)
        .env("BACKUPS_STATE_DIR", dir.join("state"))
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The flags and credentials of the moto store at `endpoint`.
pub(crate) fn moto_flags(endpoint: &str) -> ([&str; 5], [(&'static str, &'static str); 2]) {
    (
        [
            "--endpoint",
            endpoint,
            "--region",
            "us-east-1",
            "--allow-http",
        ],
        [
            ("AWS_ACCESS_KEY_ID", "test"),
            ("AWS_SECRET_ACCESS_KEY", "test"),
        ],
    )
}

fn cloud_round_trip(store: &str, flags: &[&str], envs: &[(&str, &str)]) {
    let env = Env::new();
    let tree = sample_tree(env.path());
    let run = |args: &[&str]| cloud_cli(store, flags, envs, env.path(), args);
    assert_eq!(run(&["list"]), "No backups to display.\n");
    let id = run(&["create", "--path", tree.to_str().unwrap()])
        .trim()
        .to_string();
    assert!(run(&["list"]).contains(&id));
    let meta: Value = serde_json::from_str(&run(&["show", &id, "--json"])).unwrap();
    run(&["download", &id, "-o", "b.tar.gz"]);
    let sha1 = sh("openssl dgst -sha1 -binary b.tar.gz | base64", env.path());
    assert_eq!(
        String::from_utf8_lossy(&sha1.stdout).trim(),
        meta["Checksum"].as_str().unwrap()
    );
    run(&["restore", &id, "--target", "restored"]);
    let rel = tree.strip_prefix("/").unwrap();
    assert_eq!(
        snapshot(&env.path().join("restored").join(rel)),
        snapshot(&tree)
    );
    let fixture = fixtures().join("valid-backup.tar.gz");
    assert!(run(&["upload", fixture.to_str().unwrap()]).contains("20200225-041241"));
    run(&[
        "remove",
        &id,
        "20200225-041241.e2a6a1e5-abea-4393-8593-5a45ae53ab97",
    ]);
    assert_eq!(run(&["list"]), "No backups to display.\n");
}

#[test]
fn s3_store_on_moto_through_the_cli() {
    let (Some(endpoint), Some(bucket)) = (
        service_env("BACKUPS_TEST_MOTO_ENDPOINT"),
        service_env("BACKUPS_TEST_MOTO_BUCKET"),
    ) else {
        return;
    };
    let store = format!("s3://{bucket}/{}", unique_name("cli"));
    cloud_round_trip(
        &store,
        &[
            "--endpoint",
            &endpoint,
            "--region",
            "us-east-1",
            "--allow-http",
        ],
        &[
            ("AWS_ACCESS_KEY_ID", "test"),
            ("AWS_SECRET_ACCESS_KEY", "test"),
        ],
    );
}

#[test]
fn s3_store_on_garage_through_the_cli() {
    let (Some(endpoint), Some(bucket), Some(key), Some(secret)) = (
        service_env("BACKUPS_TEST_GARAGE_ENDPOINT"),
        service_env("BACKUPS_TEST_GARAGE_BUCKET"),
        service_env("BACKUPS_TEST_GARAGE_KEY_ID"),
        service_env("BACKUPS_TEST_GARAGE_SECRET"),
    ) else {
        return;
    };
    let store = format!("s3://{bucket}/{}", unique_name("cli"));
    cloud_round_trip(
        &store,
        &[
            "--endpoint",
            &endpoint,
            "--region",
            "garage",
            "--allow-http",
        ],
        &[
            ("AWS_ACCESS_KEY_ID", &key),
            ("AWS_SECRET_ACCESS_KEY", &secret),
        ],
    );
}

#[test]
fn azure_store_on_azurite_through_the_cli() {
    let (Some(_), Some(container)) = (
        service_env("AZURITE_BLOB_STORAGE_URL"),
        service_env("BACKUPS_TEST_AZURITE_CONTAINER"),
    ) else {
        return;
    };
    let store = format!("az://{container}/{}", unique_name("cli"));
    cloud_round_trip(&store, &["--store-option", "use_emulator=true"], &[]);
}

#[test]
fn missing_bucket_and_bad_credentials_are_clear_storage_errors() {
    let Some(endpoint) = service_env("BACKUPS_TEST_MOTO_ENDPOINT") else {
        return;
    };
    let run = |store: &str, key: &str| {
        Command::new(BIN)
            .args([
                "--store",
                store,
                "--endpoint",
                &endpoint,
                "--region",
                "us-east-1",
                "--allow-http",
                "list",
            ])
            .env("AWS_ACCESS_KEY_ID", key)
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .output()
            .unwrap()
    };
    let out = run("s3://no-such-bucket-here/x", "test");
    assert_eq!(out.status.code(), Some(6));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("s3://no-such-bucket-here/x")
            && err.contains("hint: the bucket or container does not exist"),
        "{err}"
    );

    let Some(garage) = service_env("BACKUPS_TEST_GARAGE_ENDPOINT") else {
        return;
    };
    let out = Command::new(BIN)
        .args([
            "--store",
            "s3://backups/x",
            "--endpoint",
            &garage,
            "--region",
            "garage",
            "--allow-http",
            "list",
        ])
        .env("AWS_ACCESS_KEY_ID", "GK000000000000000000000000")
        .env("AWS_SECRET_ACCESS_KEY", "0000")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(6));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("hint: access denied"), "{err}");
}

/// object_store's own environment conventions configure an S3 store:
/// `AWS_ENDPOINT` and `AWS_ALLOW_HTTP` (and the usual credentials and
/// region), with no `--endpoint`/`--allow-http` flags and no `BACKUPS_*`
/// store variables. Every command used to fail with "URL scheme is not
/// allowed".
#[test]
fn s3_store_configured_by_object_stores_aws_environment() {
    let (Some(endpoint), Some(bucket)) = (
        service_env("BACKUPS_TEST_MOTO_ENDPOINT"),
        service_env("BACKUPS_TEST_MOTO_BUCKET"),
    ) else {
        return;
    };
    let env = Env::new();
    let tree = sample_tree(env.path());
    let store = format!("s3://{bucket}/{}", unique_name("cli-aws-env"));
    let run = |args: &[&str]| {
        // Nothing inherited: no AWS_* or BACKUPS_* variable of the caller's
        // can configure the store instead of these.
        let out = Command::new(BIN)
            .args(["--store", &store, "--progress", "none"])
            .args(args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", env.path())
            .env("AWS_ENDPOINT", &endpoint)
            .env("AWS_ALLOW_HTTP", "true")
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_REGION", "us-east-1")
            .env("BACKUPS_MODEL_UUID", MODEL)
            .env("BACKUPS_STATE_DIR", env.path().join("state"))
            .current_dir(env.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "backups {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    assert_eq!(run(&["list"]), "No backups to display.\n");
    let id = run(&["create", "--path", tree.to_str().unwrap()])
        .trim()
        .to_string();
    assert!(id.ends_with(MODEL), "{id}");
    let listed: Value = serde_json::from_str(&run(&["list", "--json"])).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(listed[0]["ID"], id.as_str());
    run(&["restore", &id, "--target", "restored"]);
    let rel = tree.strip_prefix("/").unwrap();
    assert_eq!(
        snapshot(&env.path().join("restored").join(rel)),
        snapshot(&tree)
    );
    run(&["remove", &id]);
    assert_eq!(run(&["list"]), "No backups to display.\n");
}

/// Server-side encryption (SSE-S3) is object_store's configuration: set it
/// with --store-option, and moto reports it on every object written.
#[test]
fn s3_server_side_encryption_is_a_store_option() {
    let (Some(endpoint), Some(bucket), Some(python)) = (
        service_env("BACKUPS_TEST_MOTO_ENDPOINT"),
        service_env("BACKUPS_TEST_MOTO_BUCKET"),
        service_env("BACKUPS_TEST_PYTHON"),
    ) else {
        return;
    };
    let env = Env::new();
    let tree = sample_tree(env.path());
    let prefix = unique_name("sse");
    let store = format!("s3://{bucket}/{prefix}");
    let (flags, creds) = moto_flags(&endpoint);
    let mut args = flags.to_vec();
    args.extend(["--store-option", "aws_server_side_encryption=AES256"]);
    cloud_cli(
        &store,
        &args,
        &creds,
        env.path(),
        &["create", "--path", tree.to_str().unwrap()],
    );
    let script = r#"
import sys, boto3
s3 = boto3.client("s3", endpoint_url=sys.argv[1], region_name="us-east-1",
                  aws_access_key_id="test", aws_secret_access_key="test")
keys = [o["Key"] for o in s3.list_objects_v2(Bucket=sys.argv[2], Prefix=sys.argv[3])["Contents"]]
for k in sorted(keys):
    print(k.rsplit(".", 1)[-1], s3.head_object(Bucket=sys.argv[2], Key=k).get("ServerSideEncryption"))
"#;
    let out = Command::new(python)
        .args(["-c", script, &endpoint, &bucket, &prefix])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = String::from_utf8(out.stdout).unwrap();
    assert_eq!(report, "gz AES256\njson AES256\n", "archive and sidecar");
}

/// The lifecycle commands on a real S3 server: label, notes, verify and
/// forget edit and remove through the store's lease and atomic sidecar
/// rewrites.
#[test]
fn labels_verification_and_forget_on_moto() {
    let (Some(endpoint), Some(bucket)) = (
        service_env("BACKUPS_TEST_MOTO_ENDPOINT"),
        service_env("BACKUPS_TEST_MOTO_BUCKET"),
    ) else {
        return;
    };
    let env = Env::new();
    let tree = sample_tree(env.path());
    let store = format!("s3://{bucket}/{}", unique_name("life"));
    let (flags, creds) = moto_flags(&endpoint);
    let run = |args: &[&str]| cloud_cli(&store, &flags, &creds, env.path(), args);
    let first = run(&["create", "--path", tree.to_str().unwrap()])
        .trim()
        .to_string();
    let second = run(&["create", "--path", tree.to_str().unwrap()])
        .trim()
        .to_string();
    assert_ne!(first, second);
    run(&["label", &first, "--add", "golden"]);
    run(&["notes", &first, "kept by hand"]);
    assert!(
        run(&["verify", "--all", "--read-data"])
            .matches("read-data ok")
            .count()
            == 2
    );
    let meta: Value = serde_json::from_str(&run(&["show", &first, "--json"])).unwrap();
    assert_eq!(meta["Labels"], serde_json::json!(["manual", "golden"]));
    assert_eq!(meta["Notes"], "kept by hand");
    assert_eq!(meta["Verification"]["Ok"], true);
    let plan: Value =
        serde_json::from_str(&run(&["forget", "--keep-last", "1", "--dry-run", "--json"])).unwrap();
    assert_eq!(plan["Remove"], serde_json::json!([{"ID": first}]), "{plan}");
    run(&["forget", "--keep-last", "1", "--keep-label", "golden"]);
    let listed = run(&["list"]);
    assert!(
        listed.contains(&first) && listed.contains(&second),
        "{listed}"
    );
    run(&["remove", &first, &second]);
    assert_eq!(run(&["list"]), "No backups to display.\n");
}
