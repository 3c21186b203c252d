//! `backups serve` over the test services: a Garage (S3) store, whose
//! ranged gets resume a cut download, and a profile with a MongoDB
//! database (SecantusDB, databases `srv_*`) that `create --remote` dumps.

use std::process::Command;
use std::sync::atomic::Ordering;

use backups_core::test_util::{service_env, unique_name};

use crate::server::{Relay, Server, wait_until};
use crate::support::*;

#[test]
fn a_download_from_an_s3_store_resumes_through_the_server() {
    let (Some(endpoint), Some(bucket), Some(key), Some(secret)) = (
        service_env("BACKUPS_TEST_GARAGE_ENDPOINT"),
        service_env("BACKUPS_TEST_GARAGE_BUCKET"),
        service_env("BACKUPS_TEST_GARAGE_KEY_ID"),
        service_env("BACKUPS_TEST_GARAGE_SECRET"),
    ) else {
        return;
    };
    let env = Env::new();
    let store = format!("s3://{bucket}/{}", unique_name("srv"));
    let creds = [
        ("AWS_ACCESS_KEY_ID", key.as_str()),
        ("AWS_SECRET_ACCESS_KEY", secret.as_str()),
    ];
    let flags = [
        "--endpoint",
        &endpoint,
        "--region",
        "garage",
        "--allow-http",
    ];
    sh(
        "mkdir data && head -c 2097152 /dev/urandom > data/blob",
        env.path(),
    );
    let out = Command::new(BIN)
        .args(["--store", &store, "--progress", "none"])
        .args(flags)
        .args(["create", "--path", "data", "--compression-level", "0"])
        .envs(creds)
        .env("BACKUPS_MODEL_UUID", MODEL)
        .env("BACKUPS_STATE_DIR", env.path().join("state"))
        .current_dir(env.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let id = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let server = Server::start_on(&env, &store, &creds, &flags, &[]);
    let client = tempfile::tempdir().unwrap();
    let dir = client.path();
    let shown: serde_json::Value =
        serde_json::from_str(&server.ok("read", dir, &["show", &id, "--json"])).unwrap();

    let relay = Relay::start(&server.url, 512 * 1024);
    let download = {
        let (url, server_dir, id, dir) = (
            relay.url.clone(),
            server.dir.clone(),
            id.clone(),
            dir.to_path_buf(),
        );
        std::thread::spawn(move || {
            Command::new(BIN)
                .args([
                    "--remote",
                    &url,
                    "--progress",
                    "none",
                    "--remote-token-file",
                ])
                .arg(server_dir.join("read.token"))
                .arg("--remote-ca")
                .arg(server_dir.join("ca.pem"))
                .args(["download", &id, "-o", "b.tar.gz"])
                .current_dir(&dir)
                .output()
                .unwrap()
        })
    };
    wait_until("the relay to cut the connection", || {
        relay.cut.load(Ordering::SeqCst)
    });
    relay.release();
    let out = download.join().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let sha1 = sh("openssl dgst -sha1 -binary b.tar.gz | base64", dir);
    assert_eq!(
        String::from_utf8(sha1.stdout).unwrap().trim(),
        shown["Checksum"].as_str().unwrap()
    );
    assert!(!server.log_lines("status=206").is_empty());
    server.ok("operator", dir, &["remove", &id]);
}

#[test]
fn create_through_a_server_dumps_the_profiles_database() {
    let Some(uri) = service_env("BACKUPS_TEST_MONGO_URI") else {
        return;
    };
    let env = Env::new();
    let db = unique_name("srv").replace('-', "_");
    python_mongo(
        "import sys; from pymongo import MongoClient; db = MongoClient(sys.argv[1])[sys.argv[2]]; \
         db.machines.insert_many([{'_id': i} for i in range(7)])",
        &uri,
        &db,
    );
    let data = sample_tree(env.path());
    let config = env.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[profile.srv]\nstore = \"{}\"\npaths = [\"{}\"]\nmongo_uri = \"{uri}\"\ninclude_dbs = [\"{db}\"]\n",
            env.store().display(),
            data.display()
        ),
    )
    .unwrap();
    let server = Server::start(
        &env,
        &["--config", config.to_str().unwrap(), "--profile", "srv"],
        &[],
    );
    let client = tempfile::tempdir().unwrap();
    let id = server
        .ok("append", client.path(), &["create", "--label", "remote"])
        .trim()
        .to_string();
    let shown = env.json(&["show", &id, "--json"]);
    assert_eq!(shown["Databases"][format!("{db}.machines")], 7, "{shown}");
    assert_eq!(shown["Labels"], serde_json::json!(["remote"]));
    // The URI (and so any password) is in neither the answer nor the log.
    assert!(!server.log.lock().unwrap().join("\n").contains(&uri));
    python_mongo(
        "import sys; from pymongo import MongoClient; MongoClient(sys.argv[1]).drop_database(sys.argv[2])",
        &uri,
        &db,
    );
}
