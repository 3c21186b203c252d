//! Backing up with credentials that may not delete: a moto server of this
//! test's own in its IAM-enforcing mode, a user whose policy denies
//! `s3:DeleteObject`. With `append_only=true`, create and copy work and
//! remove is refused before asking the store; without it, the store's
//! refusal shows.

use std::net::TcpStream;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::*;

/// Sets up the bucket, the user and its policy (the 4 requests moto lets
/// through unauthenticated); prints the user's key id and secret.
const SETUP: &str = r#"
import boto3, json, sys
kw = dict(endpoint_url=sys.argv[1], region_name="us-east-1",
          aws_access_key_id="test", aws_secret_access_key="test")
s3 = boto3.client("s3", **kw); iam = boto3.client("iam", **kw)
s3.create_bucket(Bucket="nodelete")
iam.create_user(UserName="controller")
policy = {"Version": "2012-10-17", "Statement": [
  {"Effect": "Allow", "Action": ["s3:ListBucket", "s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload"],
   "Resource": ["arn:aws:s3:::nodelete", "arn:aws:s3:::nodelete/*"]},
  {"Effect": "Deny", "Action": ["s3:DeleteObject"], "Resource": ["arn:aws:s3:::nodelete/*"]}]}
iam.put_user_policy(UserName="controller", PolicyName="no-delete", PolicyDocument=json.dumps(policy))
k = iam.create_access_key(UserName="controller")["AccessKey"]
print(k["AccessKeyId"], k["SecretAccessKey"])
"#;

/// Our moto server, stopped (by its pid) when dropped.
struct Moto(Child);

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts moto_server (beside the services' Python) enforcing IAM after
/// the setup's 4 requests; returns it and its endpoint once it answers.
fn iam_moto(python: &str) -> (Moto, String) {
    let bin = std::path::Path::new(python).with_file_name("moto_server");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(bin)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .env("INITIAL_NO_AUTH_ACTION_COUNT", "4")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let moto = Moto(child);
    let deadline = Instant::now() + Duration::from_secs(60);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "moto_server did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    (moto, format!("http://127.0.0.1:{port}"))
}

#[test]
fn create_and_copy_work_with_credentials_denied_s3_delete_object() {
    let Ok(python) = std::env::var("BACKUPS_TEST_PYTHON") else {
        return;
    };
    let (_moto, endpoint) = iam_moto(&python);
    let keys = python_args(SETUP, &[&endpoint]);
    let (key, secret) = keys.trim().split_once(' ').unwrap();
    let creds = [
        ("AWS_ACCESS_KEY_ID", key),
        ("AWS_SECRET_ACCESS_KEY", secret),
    ];
    let env = Env::new();
    let tree = sample_tree(env.path());
    let tree = tree.to_str().unwrap();
    let s3 = |store: &str, append_only: bool, args: &[&str]| {
        let mut all = vec![
            "--store",
            store,
            "--endpoint",
            &endpoint,
            "--region",
            "us-east-1",
            "--allow-http",
        ];
        if append_only {
            all.extend(["--store-option", "append_only=true"]);
        }
        all.extend(args);
        // Not Env::run: that names Env's local store.
        Command::new(BIN)
            .args(["--progress", "none"])
            .args(&all)
            .envs(creds)
            .env("BACKUPS_MODEL_UUID", MODEL)
            .env("BACKUPS_STATE_DIR", env.path().join("state"))
            .current_dir(env.path())
            .output()
            .unwrap()
    };

    // Without append_only the store's refusal shows (the commit lease
    // cannot be given back).
    let out = s3("s3://nodelete/plain", false, &["create", "--path", tree]);
    assert_eq!(out.status.code(), Some(6));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("AccessDenied") && err.contains("hint: these credentials may not delete"),
        "{err}"
    );

    let out = s3("s3://nodelete/ao", true, &["create", "--path", tree]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let id = String::from_utf8(out.stdout).unwrap().trim().to_string();

    // A copy into it, from a local store.
    env.ok(&["create", "--path", tree]);
    let out = env.run_with(
        &[
            "copy",
            "--all",
            "--to",
            "s3://nodelete/copies",
            "--to-store-option",
            &format!("endpoint={endpoint}"),
            "--to-store-option",
            "region=us-east-1",
            "--to-store-option",
            "allow_http=true",
            "--to-store-option",
            "append_only=true",
            "--json",
        ],
        &creds,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["Copied"].as_array().unwrap().len(), 1, "{report}");
    let out = s3("s3://nodelete/copies", true, &["verify", "--all"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // remove is refused by the tool itself; the backup stays.
    let out = s3("s3://nodelete/ao", true, &["remove", &id]);
    assert_eq!(out.status.code(), Some(6));
    assert!(String::from_utf8_lossy(&out.stderr).contains("append-only"));
    let out = s3("s3://nodelete/ao", true, &["list", "--json"]);
    let listed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(listed[0]["ID"], id.as_str());
}
