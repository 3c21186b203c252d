//! Immutable backups (`--immutable-for`) on moto, in buckets made with
//! `ObjectLockEnabledForBucket=true`: the archive and the commit record
//! carry the lock (boto3's `head_object`), the tool refuses to remove them
//! while it holds, labels and notes still change (as annotations beside the
//! locked record), forget keeps them with the reason, and the stores that
//! cannot lock refuse before writing anything. Archives stay below the
//! part size: moto ignores lock headers on multipart uploads.

use std::process::{Command, Output};

use backups_core::test_util::{service_env, unique_name};
use serde_json::Value;

use crate::cloud::moto_flags;
use crate::support::*;

/// Makes a bucket (argv 2) with Object Lock when argv 3 is `lock`.
const MAKE_BUCKET: &str = r#"
import boto3, sys
s3 = boto3.client("s3", endpoint_url=sys.argv[1], region_name="us-east-1",
                  aws_access_key_id="test", aws_secret_access_key="test")
s3.create_bucket(Bucket=sys.argv[2], ObjectLockEnabledForBucket=sys.argv[3] == "lock")
"#;

/// For each key (argv 3...) of bucket argv 2: its lock mode and how many
/// seconds from now its lock ends, or "missing"; then the bucket's count
/// of object versions under the first key's prefix.
const HEAD_LOCKS: &str = r#"
import boto3, datetime, json, sys
s3 = boto3.client("s3", endpoint_url=sys.argv[1], region_name="us-east-1",
                  aws_access_key_id="test", aws_secret_access_key="test")
out = {}
for key in sys.argv[3:]:
    try:
        h = s3.head_object(Bucket=sys.argv[2], Key=key)
    except Exception:
        out[key] = "missing"
        continue
    until = h.get("ObjectLockRetainUntilDate")
    now = datetime.datetime.now(datetime.timezone.utc)
    out[key] = {"Mode": h.get("ObjectLockMode"),
                "Secs": (until - now).total_seconds() if until else None}
print(json.dumps(out))
"#;

/// Every object version (live or not) under prefix argv 3 of bucket argv 2.
const VERSIONS: &str = r#"
import boto3, json, sys
s3 = boto3.client("s3", endpoint_url=sys.argv[1], region_name="us-east-1",
                  aws_access_key_id="test", aws_secret_access_key="test")
r = s3.list_object_versions(Bucket=sys.argv[2], Prefix=sys.argv[3])
print(json.dumps([v["Key"] for v in r.get("Versions", [])]))
"#;

/// The body of object argv 3 of bucket argv 2.
const GET: &str = r#"
import boto3, sys
s3 = boto3.client("s3", endpoint_url=sys.argv[1], region_name="us-east-1",
                  aws_access_key_id="test", aws_secret_access_key="test")
print(s3.get_object(Bucket=sys.argv[2], Key=sys.argv[3])["Body"].read().decode())
"#;

/// Puts object argv 3 (locked for a day) and argv 4 (not) in bucket argv 2.
const PUT_ORPHANS: &str = r#"
import boto3, datetime, sys
s3 = boto3.client("s3", endpoint_url=sys.argv[1], region_name="us-east-1",
                  aws_access_key_id="test", aws_secret_access_key="test")
until = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=1)
s3.put_object(Bucket=sys.argv[2], Key=sys.argv[3], Body=b"left by a killed create",
              ObjectLockMode="GOVERNANCE", ObjectLockRetainUntilDate=until,
              ChecksumAlgorithm="SHA256")
s3.put_object(Bucket=sys.argv[2], Key=sys.argv[4], Body=b"left by a killed create")
"#;

/// Puts the bytes argv 4 at key argv 3 of bucket argv 2.
const PUT: &str = r#"
import boto3, sys
s3 = boto3.client("s3", endpoint_url=sys.argv[1], region_name="us-east-1",
                  aws_access_key_id="test", aws_secret_access_key="test")
s3.put_object(Bucket=sys.argv[2], Key=sys.argv[3], Body=sys.argv[4].encode())
"#;

/// The moto endpoint, and a fresh bucket on it (with Object Lock or not).
fn moto_bucket(lock: bool) -> Option<(String, String)> {
    let endpoint = service_env("BACKUPS_TEST_MOTO_ENDPOINT")?;
    service_env("BACKUPS_TEST_PYTHON")?;
    let bucket = unique_name(if lock { "imm-lock" } else { "imm-plain" });
    let kind = if lock { "lock" } else { "plain" };
    python_args(MAKE_BUCKET, &[&endpoint, &bucket, kind]);
    Some((endpoint, bucket))
}

/// Runs the binary on `store` (moto's flags and keys); its whole output.
fn on(env: &Env, endpoint: &str, store: &str, args: &[&str]) -> Output {
    let (flags, creds) = moto_flags(endpoint);
    Command::new(BIN)
        .args(["--store", store, "--progress", "none"])
        .args(flags)
        .args(args)
        .envs(creds)
        .env("BACKUPS_MODEL_UUID", MODEL)
        .env("BACKUPS_STATE_DIR", env.path().join("state"))
        .current_dir(env.path())
        .output()
        .unwrap()
}

/// [`on`], which must succeed; its stdout.
fn ok_on(env: &Env, endpoint: &str, store: &str, args: &[&str]) -> String {
    let out = on(env, endpoint, store, args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The locks boto3 sees on `keys`.
fn head_locks(endpoint: &str, bucket: &str, keys: &[&str]) -> Value {
    let mut args = vec![endpoint, bucket];
    args.extend(keys);
    serde_json::from_str(&python_args(HEAD_LOCKS, &args)).unwrap()
}

/// Asserts `lock` (of [`head_locks`]) is `mode` and ends `secs` from now,
/// give or take a minute.
fn assert_locked(lock: &Value, mode: &str, secs: f64) {
    assert_eq!(lock["Mode"], mode, "{lock}");
    let left = lock["Secs"].as_f64().unwrap();
    assert!(
        (left - secs).abs() < 60.0,
        "ends in {left} s, not {secs}: {lock}"
    );
}

#[test]
fn immutable_backups_are_locked_on_moto_and_outlive_remove_and_forget() {
    let Some((endpoint, bucket)) = moto_bucket(true) else {
        return;
    };
    let env = Env::new();
    let tree = sample_tree(env.path());
    let tree = tree.to_str().unwrap();
    let prefix = unique_name("p");
    let store = format!("s3://{bucket}/{prefix}");
    let run = |args: &[&str]| ok_on(&env, &endpoint, &store, args);
    let create = ["create", "--path", tree, "--immutable-for", "2d"];
    let id = run(&create).trim().to_string();

    // The archive and the commit record carry the lock: now + 2 days.
    let shown: Value = serde_json::from_str(&run(&["show", &id, "--json"])).unwrap();
    let archive = format!("{prefix}/{}", shown["Archive"].as_str().unwrap());
    let record = format!("{prefix}/{id}.json");
    let locks = head_locks(&endpoint, &bucket, &[&archive, &record]);
    for key in [&archive, &record] {
        assert_locked(&locks[key.as_str()], "GOVERNANCE", 2.0 * 86400.0);
    }
    assert_eq!(shown["Immutable"]["Mode"], "governance", "{shown}");
    assert_eq!(shown["LockRequested"]["Mode"], "governance", "{shown}");
    let until = shown["Immutable"]["RetainUntil"]
        .as_str()
        .unwrap()
        .to_string();
    let table = run(&["list"]);
    assert!(
        table.lines().next().unwrap().contains("IMMUTABLE"),
        "{table}"
    );
    assert!(table.contains(&until[..10]), "{table}");

    // Labels and notes change; the locked record does not.
    run(&["label", &id, "--add", "keep"]);
    run(&["notes", &id, "after the lock"]);
    let listed: Value = serde_json::from_str(&run(&["list", "--json"])).unwrap();
    assert_eq!(listed[0]["Labels"], serde_json::json!(["manual", "keep"]));
    assert_eq!(listed[0]["Notes"], "after the lock");
    assert_eq!(listed[0]["Immutable"]["RetainUntil"], until.as_str());
    let written: Value =
        serde_json::from_str(&python_args(GET, &[&endpoint, &bucket, &record])).unwrap();
    assert_eq!(
        written["Labels"],
        serde_json::json!(["manual"]),
        "{written}"
    );
    assert_eq!(written["Notes"], "", "{written}");
    // A newer annotation that cannot be read is skipped, with a warning.
    let bad = format!("{prefix}/{id}.annotations/09999999999999999999.json");
    python_args(PUT, &[&endpoint, &bucket, &bad, "not json"]);
    let out = on(&env, &endpoint, &store, &["list", "--json"]);
    let listed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(listed[0]["Labels"], serde_json::json!(["manual", "keep"]));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&bad), "{err}");
    // gc lists it as an unreadable sidecar, and deletes it.
    let garbage = run(&["gc"]);
    assert!(
        garbage.contains("unreadable-sidecar") && garbage.contains(&bad),
        "{garbage}"
    );
    run(&["gc", "--yes"]);

    // remove is refused (exit 15) and leaves both objects in place.
    let out = on(&env, &endpoint, &store, &["remove", &id]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(15), "{err}");
    assert!(
        err.contains(&format!("retained until {until} (governance mode: --bypass-governance to override, if the credentials allow)")),
        "{err}"
    );
    let locks = head_locks(&endpoint, &bucket, &[&archive, &record]);
    assert_locked(&locks[archive.as_str()], "GOVERNANCE", 2.0 * 86400.0);
    assert_locked(&locks[record.as_str()], "GOVERNANCE", 2.0 * 86400.0);

    // forget keeps it, with the reason, and exits 0; gc leaves it be.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let newer = run(&create).trim().to_string();
    let report: Value =
        serde_json::from_str(&run(&["forget", "--keep-last", "1", "--json"])).unwrap();
    assert_eq!(report["Remove"], serde_json::json!([]), "{report}");
    let kept = &report["Keep"][1];
    assert_eq!(kept["ID"], id.as_str(), "{report}");
    assert_eq!(
        kept["Reasons"],
        serde_json::json!([format!("immutable until {until}")]),
        "{report}"
    );
    assert_eq!(run(&["gc"]).trim(), "No garbage found.");
    // gc never touches a locked object (an archive a killed create left).
    let locked = format!("{prefix}/20260101-000000.{MODEL}.aaaa.tar.gz");
    let unlocked = format!("{prefix}/20260101-000000.{MODEL}.bbbb.tar.gz");
    python_args(PUT_ORPHANS, &[&endpoint, &bucket, &locked, &unlocked]);
    let garbage: Value =
        serde_json::from_str(&run(&["gc", "--older-than", "0s", "--json"])).unwrap();
    let keys: Vec<&str> = garbage
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["Key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, vec![unlocked.as_str()], "{garbage}");
    run(&["gc", "--older-than", "0s", "--yes"]);
    let left = head_locks(&endpoint, &bucket, &[&locked, &unlocked]);
    assert_locked(&left[locked.as_str()], "GOVERNANCE", 86400.0);
    assert_eq!(left[unlocked.as_str()], "missing", "{left}");

    // verify reads the lock back.
    let verified = run(&["verify", &id]);
    assert!(
        verified.contains(&format!("locked (governance) until {until}")),
        "{verified}"
    );

    // --bypass-governance removes it for good: no version of the archive
    // or the record is left (the annotations' are, as any delete's in a
    // versioned bucket).
    run(&["remove", "--bypass-governance", &id]);
    let versions: Vec<String> = serde_json::from_str(&python_args(
        VERSIONS,
        &[&endpoint, &bucket, &format!("{prefix}/{id}")],
    ))
    .unwrap();
    assert!(
        !versions.contains(&archive) && !versions.contains(&record),
        "{versions:?}"
    );
    let listed: Value = serde_json::from_str(&run(&["list", "--json"])).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(listed[0]["ID"], newer.as_str());
}

#[test]
fn compliance_locks_upload_and_copy_on_moto() {
    let Some((endpoint, bucket)) = moto_bucket(true) else {
        return;
    };
    let env = Env::new();
    let prefix = unique_name("c");
    let store = format!("s3://{bucket}/{prefix}");
    let run = |args: &[&str]| ok_on(&env, &endpoint, &store, args);
    let fixture = fixtures().join("valid-backup.tar.gz");
    let fixture = fixture.to_str().unwrap();
    let uploaded = run(&[
        "upload",
        fixture,
        "--immutable-for",
        "1d",
        "--immutable-mode",
        "compliance",
    ]);
    let id = uploaded.trim().rsplit(' ').next().unwrap().to_string();
    let shown: Value = serde_json::from_str(&run(&["show", &id, "--json"])).unwrap();
    let archive = format!("{prefix}/{}", shown["Archive"].as_str().unwrap());
    let record = format!("{prefix}/{id}.json");
    let locks = head_locks(&endpoint, &bucket, &[&archive, &record]);
    for key in [&archive, &record] {
        assert_locked(&locks[key.as_str()], "COMPLIANCE", 86400.0);
    }
    // Compliance mode is not bypassed.
    let out = on(
        &env,
        &endpoint,
        &store,
        &["remove", "--bypass-governance", &id],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(15), "{err}");
    assert!(err.contains("compliance mode"), "{err}");

    // A copy from a local store into the bucket is locked too.
    let tree = sample_tree(env.path());
    let local = env.ok(&["create", "--path", tree.to_str().unwrap()]);
    let local = local.trim();
    let (_, creds) = moto_flags(&endpoint);
    let copied = format!("s3://{bucket}/{prefix}-copy");
    let out = env.run_with(
        &[
            "copy",
            local,
            "--to",
            &copied,
            "--to-store-option",
            &format!("endpoint={endpoint}"),
            "--to-store-option",
            "region=us-east-1",
            "--to-store-option",
            "allow_http=true",
            "--immutable-for",
            "3d",
            "--json",
        ],
        &creds,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let shown: Value =
        serde_json::from_str(&ok_on(&env, &endpoint, &copied, &["show", local, "--json"])).unwrap();
    let archive = format!("{prefix}-copy/{}", shown["Archive"].as_str().unwrap());
    let record = format!("{prefix}-copy/{local}.json");
    let locks = head_locks(&endpoint, &bucket, &[&archive, &record]);
    for key in [&archive, &record] {
        assert_locked(&locks[key.as_str()], "GOVERNANCE", 3.0 * 86400.0);
    }
}

#[test]
fn stores_that_cannot_lock_refuse_before_writing() {
    // A local store: exit 2, nothing written.
    let env = Env::new();
    let tree = sample_tree(env.path());
    let tree = tree.to_str().unwrap();
    let (code, err) = env.fail(&["create", "--path", tree, "--immutable-for", "30d"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("cannot make immutable backups in")
            && err.contains("a local directory cannot lock"),
        "{err}"
    );
    assert_eq!(env.ok(&["list"]), "No backups to display.\n");
    let (code, err) = env.fail(&["create", "--path", tree, "--immutable-for", "11y"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("warning: --immutable-for 11y is longer than 10 years"),
        "{err}"
    );
    let (code, err) = env.fail(&["create", "--path", tree, "--immutable-mode", "compliance"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("needs --immutable-for"), "{err}");
    // The profile's keys are the flags'.
    let config = env.path().join("config.toml");
    std::fs::write(
        &config,
        "[profile.default]\nimmutable_for = \"2d\"\nimmutable_mode = \"compliance\"\n",
    )
    .unwrap();
    let config = config.to_str().unwrap();
    let (code, err) = env.fail(&["--config", config, "create", "--path", tree]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("cannot make immutable backups in"), "{err}");
    let shown = env.ok(&["--config", config, "config", "show"]);
    assert!(
        shown.contains("immutable_for = \"2d\"")
            && shown.contains("immutable_mode = \"compliance\""),
        "{shown}"
    );

    // A bucket without Object Lock: exit 6, and not one object in it.
    let Some((endpoint, bucket)) = moto_bucket(false) else {
        return;
    };
    let store = format!("s3://{bucket}/p");
    let fixture = fixtures().join("valid-backup.tar.gz");
    for args in [
        &["create", "--path", tree, "--immutable-for", "30d"][..],
        &[
            "upload",
            fixture.to_str().unwrap(),
            "--immutable-for",
            "30d",
        ][..],
    ] {
        let out = on(&env, &endpoint, &store, args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(6), "{err}");
        assert!(
            err.contains(&format!("bucket {bucket} has no Object Lock configuration")),
            "{err}"
        );
    }
    let versions = python_args(VERSIONS, &[&endpoint, &bucket, ""]);
    assert_eq!(versions.trim(), "[]", "{versions}");
}
