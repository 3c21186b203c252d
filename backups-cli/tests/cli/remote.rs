//! `--remote`: the commands through a `backups serve` on loopback with TLS
//! (a CA made by the test) print what they print against the store
//! itself, and the server's download resumes and fails cleanly.

use std::process::Command;
use std::sync::atomic::Ordering;

use serde_json::Value;

use crate::server::{Relay, Server, generate_token, wait_until};
use crate::support::*;

/// A store with one backup of a 3 MiB incompressible file (stored
/// uncompressed, so the archive is about as big), and its id.
fn store_with_a_big_backup(env: &Env) -> String {
    let data = env.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    sh(
        "head -c 3145728 /dev/urandom > data/blob; echo small > data/small",
        env.path(),
    );
    env.ok(&[
        "create",
        "--path",
        data.to_str().unwrap(),
        "--compression-level",
        "0",
    ]);
    first_id(env)
}

fn sha1_of(path: &std::path::Path, dir: &std::path::Path) -> String {
    let out = sh(
        &format!("openssl dgst -sha1 -binary '{}' | base64", path.display()),
        dir,
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[test]
fn list_show_and_download_through_a_server_match_the_store() {
    let env = Env::new();
    let id = store_with_a_big_backup(&env);
    let server = Server::start(&env, &[], &[]);
    let client = tempfile::tempdir().unwrap();
    let dir = client.path();

    let remote: Value = serde_json::from_str(&server.ok("read", dir, &["list", "--json"])).unwrap();
    assert_eq!(remote, env.json(&["list", "--json"]));
    assert_eq!(
        server.ok("read", dir, &["list"]),
        env.ok(&["list"]),
        "the table is the store's"
    );
    let shown: Value =
        serde_json::from_str(&server.ok("read", dir, &["show", &id, "--json"])).unwrap();
    assert_eq!(shown, env.json(&["show", &id, "--json"]));
    assert_eq!(
        server.ok("read", dir, &["show", &id]),
        env.ok(&["show", &id])
    );

    server.ok("read", dir, &["download", &id, "-o", "remote.tar.gz"]);
    env.ok(&["download", &id, "-o", "local.tar.gz"]);
    let remote_bytes = std::fs::read(dir.join("remote.tar.gz")).unwrap();
    assert_eq!(
        remote_bytes,
        std::fs::read(env.path().join("local.tar.gz")).unwrap()
    );
    assert_eq!(
        sha1_of(&dir.join("remote.tar.gz"), dir),
        shown["Checksum"].as_str().unwrap()
    );
    // To stdout, and refused over an existing file as against a store.
    let out = server.client("read", dir, &["download", &id, "-o", "-"]);
    assert!(out.status.success());
    assert_eq!(out.stdout, remote_bytes);
    let (code, err) = server.fail("read", dir, &["download", &id, "-o", "remote.tar.gz"]);
    assert_eq!(code, 2, "{err}");

    // The headers: length, SHA-1, ranges.
    let (status, _) = server.curl(&[
        "-H",
        &format!("Authorization: Bearer {}", server.token("read")),
        "-r",
        "100-",
        "-o",
        "/dev/null",
        &format!("{}/api/v1/backups/{id}/archive", server.url),
    ]);
    assert_eq!(status, 206);
    let head = Command::new("curl")
        .args(["-s", "-D", "-", "-o", "/dev/null", "--cacert"])
        .arg(server.dir.join("ca.pem"))
        .args([
            "-H",
            &format!("Authorization: Bearer {}", server.token("read")),
        ])
        .arg(format!("{}/api/v1/backups/{id}/archive", server.url))
        .output()
        .unwrap();
    let head = String::from_utf8_lossy(&head.stdout).to_lowercase();
    assert!(
        head.contains(&format!("content-length: {}", remote_bytes.len())),
        "{head}"
    );
    assert!(
        head.contains(&format!(
            "x-backups-sha1: {}",
            shown["Checksum"].as_str().unwrap().to_lowercase()
        )),
        "{head}"
    );

    // Missing ids: exit 3 as against a store.
    let missing = format!("20190101-000000.{MODEL}");
    let (code, err) = server.fail("read", dir, &["show", &missing]);
    assert_eq!(code, 3, "{err}");
    assert!(
        err.contains(&format!("backup {missing} not found")),
        "{err}"
    );
}

#[test]
fn upload_label_notes_verify_forget_and_remove_through_a_server() {
    let env = Env::new();
    let server = Server::start(&env, &[], &[]);
    let client = tempfile::tempdir().unwrap();
    let dir = client.path();
    let fixture = fixtures().join("valid-backup.tar.gz");
    let fixture = fixture.to_str().unwrap();

    let out = server.ok("append", dir, &["upload", fixture]);
    assert!(
        out.starts_with("Uploaded backup file, creating backup ID "),
        "{out}"
    );
    let id = out.trim().rsplit(' ').next().unwrap().to_string();
    let again = server.ok("append", dir, &["upload", fixture]);
    assert!(again.contains("already uploaded"), "{again}");
    assert_eq!(first_id(&env), id, "the store holds it");

    assert_eq!(
        server.ok(
            "append",
            dir,
            &["label", &id, "--add", "pinned", "--add", "x"]
        ),
        format!("{id}: pinned,x\n")
    );
    server.ok("append", dir, &["notes", &id, "before the upgrade"]);
    let shown = env.json(&["show", &id, "--json"]);
    assert_eq!(shown["Notes"], "before the upgrade");

    let verified: Value =
        serde_json::from_str(&server.ok("append", dir, &["verify", &id, "--read-data", "--json"]))
            .unwrap();
    assert_eq!(verified[0]["Ok"], true, "{verified}");
    assert_eq!(verified[0]["Level"], "read-data");
    let line = server.ok("append", dir, &["verify", "--latest"]);
    assert!(line.starts_with(&format!("{id}: stored ok")), "{line}");

    let remote: Value = serde_json::from_str(&server.ok(
        "operator",
        dir,
        &["forget", "--keep-last", "1", "--dry-run", "--json"],
    ))
    .unwrap();
    assert_eq!(
        remote,
        env.json(&["forget", "--keep-last", "1", "--dry-run", "--json"])
    );

    assert_eq!(
        server.ok("operator", dir, &["remove", &id]),
        format!("Removed backup {id}\n")
    );
    assert_eq!(env.ok(&["list"]), "No backups to display.\n");
    assert_eq!(
        server.ok("read", dir, &["list"]),
        "No backups to display.\n"
    );
}

#[test]
fn create_through_a_server_backs_up_its_profile_and_downloads_it() {
    let env = Env::new();
    let data = sample_tree(env.path());
    let config = env.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[profile.srv]\nstore = \"{}\"\npaths = [\"{}\"]\nlabels = [\"remote\"]\n",
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
    let dir = client.path();

    let out = server.ok(
        "append",
        dir,
        &["create", "--notes", "from afar", "--download", "new.tar.gz"],
    );
    let id = out.trim().to_string();
    let shown = env.json(&["show", &id, "--json"]);
    assert_eq!(shown["Notes"], "from afar");
    assert_eq!(shown["Labels"], serde_json::json!(["remote"]));
    assert!(shown["FileCount"].as_u64().unwrap() >= 5, "{shown}");
    assert_eq!(
        sha1_of(&dir.join("new.tar.gz"), dir),
        shown["Checksum"].as_str().unwrap()
    );
    // A caller cannot name what the server backs up.
    let (code, err) = server.fail("append", dir, &["create", "--path", "/etc"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("profile"), "{err}");
    // A read token may not create: exit 16, nothing made.
    let (code, err) = server.fail("read", dir, &["create"]);
    assert_eq!(code, 16, "{err}");
    assert_eq!(env.json(&["list", "--json"]).as_array().unwrap().len(), 1);
}

#[test]
fn a_download_cut_off_resumes_where_it_stopped() {
    let env = Env::new();
    let id = store_with_a_big_backup(&env);
    let server = Server::start(&env, &[], &[]);
    let relay = Relay::start(&server.url, 1 << 20);
    let client = tempfile::tempdir().unwrap();
    let dir = client.path().to_path_buf();
    let expected = env.json(&["show", &id, "--json"])["Checksum"]
        .as_str()
        .unwrap()
        .to_string();
    let download = {
        let (url, server_dir) = (relay.url.clone(), server.dir.clone());
        let (id, dir) = (id.clone(), dir.clone());
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
                .args(["download", &id, "-o", "resumed.tar.gz"])
                .current_dir(&dir)
                .output()
                .unwrap()
        })
    };
    wait_until("the relay to cut the first connection", || {
        relay.cut.load(Ordering::SeqCst)
    });
    assert!(!dir.join("resumed.tar.gz").exists());
    relay.release();
    let out = download.join().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(sha1_of(&dir.join("resumed.tar.gz"), &dir), expected);
    assert_eq!(
        std::fs::read(dir.join("resumed.tar.gz")).unwrap().len(),
        env.json(&["show", &id, "--json"])["Size"].as_u64().unwrap() as usize
    );
    let resumed = server.log_lines("status=206");
    assert!(!resumed.is_empty(), "no ranged request in the log");
    assert!(relay.relayed.load(Ordering::SeqCst) >= 1 << 20);
}

#[test]
fn a_server_killed_mid_download_leaves_no_file() {
    let env = Env::new();
    let id = store_with_a_big_backup(&env);
    let mut server = Server::start(&env, &[], &[]);
    let relay = Relay::start(&server.url, 1 << 20);
    let client = tempfile::tempdir().unwrap();
    let dir = client.path().to_path_buf();
    let download = {
        let (url, server_dir) = (relay.url.clone(), server.dir.clone());
        let (id, dir) = (id.clone(), dir.clone());
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
                .args(["download", &id, "-o", "lost.tar.gz"])
                .current_dir(&dir)
                .output()
                .unwrap()
        })
    };
    wait_until("the relay to cut the first connection", || {
        relay.cut.load(Ordering::SeqCst)
    });
    server.kill();
    relay.release();
    let out = download.join().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(6), "{err}");
    assert!(
        err.contains(&relay.url) && err.contains("unreachable"),
        "{err}"
    );
    let left: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "the download left {left:?}");
}

#[test]
fn plain_http_is_refused_except_on_loopback_when_asked() {
    let env = Env::new();
    let tokens = env.path().join("tokens");
    std::fs::write(&tokens, generate_token("t", "read").1 + "\n").unwrap();
    let tokens = tokens.to_str().unwrap();
    let (code, err) = env.fail(&["serve", "--listen", "127.0.0.1:0", "--tokens-file", tokens]);
    assert_eq!(code, 2);
    assert!(err.contains("refusing to serve plain HTTP"), "{err}");
    let (code, err) = env.fail(&[
        "serve",
        "--listen",
        "0.0.0.0:0",
        "--tokens-file",
        tokens,
        "--insecure-loopback",
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("loopback addresses"), "{err}");
}

#[test]
fn the_request_log_names_the_token_and_never_shows_it() {
    let env = Env::new();
    let server = Server::start(&env, &[], &[]);
    let client = tempfile::tempdir().unwrap();
    server.ok("read", client.path(), &["list"]);
    let (code, _) = server.fail(
        "read",
        client.path(),
        &[
            "remove",
            "20200225-041241.e2a6a1e5-abea-4393-8593-5a45ae53ab97",
        ],
    );
    assert_eq!(code, 16);
    let (status, _) = server.curl(&[&format!("{}/?token={}", server.url, server.token("read"))]);
    assert_eq!(status, 303);
    let list = server.log_lines("GET /api/v1/backups ");
    assert!(list[0].contains("token=read-token status=200"), "{list:?}");
    assert!(
        list[0].contains("bytes=") && list[0].contains("duration="),
        "{list:?}"
    );
    let refused = server.log_lines("DELETE /api/v1/backups/");
    assert!(
        refused[0].contains("token=read-token status=403"),
        "{refused:?}"
    );
    let log = server.log.lock().unwrap().join("\n");
    for role in ["read", "append", "operator"] {
        assert!(
            !log.contains(&server.token(role)),
            "a token is in the log:\n{log}"
        );
    }
}

#[test]
fn token_generate_prints_a_256_bit_token_once_and_its_line() {
    let (a, line) = generate_token("controller-0", "append");
    let (b, _) = generate_token("controller-0", "append");
    assert_ne!(a, b);
    let hex = a.strip_prefix("bk_").unwrap();
    assert_eq!(hex.len(), 64, "256 bits");
    assert!(hex.chars().all(|c| c.is_ascii_hexdigit()));
    let fields: Vec<&str> = line.split(' ').collect();
    assert_eq!(fields[1..], ["controller-0", "append"]);
    let digest = sh(
        &format!("printf %s '{a}' | openssl dgst -sha256 -r"),
        std::path::Path::new("/"),
    );
    let digest = String::from_utf8(digest.stdout).unwrap();
    assert_eq!(fields[0], digest.split(' ').next().unwrap());
    assert!(!line.contains(&a));
    let out = Command::new(BIN)
        .args(["token", "generate", "--name", "x y", "--role", "read"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = Command::new(BIN)
        .args(["token", "generate", "--name", "x", "--role", "admin"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

/// A server whose profile backs up `sample_tree` (and `extra` TOML lines).
fn profile_server(env: &Env, extra: &str) -> Server {
    let data = sample_tree(env.path());
    let config = env.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[profile.srv]\nstore = \"{}\"\npaths = [\"{}\"]\n{extra}",
            env.store().display(),
            data.display()
        ),
    )
    .unwrap();
    Server::start(
        env,
        &["--config", config.to_str().unwrap(), "--profile", "srv"],
        &[],
    )
}

#[test]
fn an_encrypted_backup_made_through_a_server_downloads_as_its_age_object() {
    let env = Env::new();
    let recipient = env
        .ok(&["key", "generate", "-o", "key.txt"])
        .trim()
        .to_string();
    let server = profile_server(&env, &format!("recipients = [\"{recipient}\"]\n"));
    let client = tempfile::tempdir().unwrap();
    let dir = client.path();
    let id = server.ok("append", dir, &["create"]).trim().to_string();
    let shown: Value =
        serde_json::from_str(&server.ok("read", dir, &["show", &id, "--json"])).unwrap();
    assert_eq!(shown["Encryption"]["Recipients"][0], recipient.as_str());
    server.ok("read", dir, &["download", &id, "-o", "b.tar.gz.age"]);
    let bytes = std::fs::read(dir.join("b.tar.gz.age")).unwrap();
    assert!(bytes.starts_with(b"age-encryption.org/v1"));
    assert_eq!(
        bytes.len() as u64,
        shown["Encryption"]["StoredSize"].as_u64().unwrap()
    );
    sh(
        &format!(
            "age -d -i '{}' -o b.tar.gz b.tar.gz.age",
            env.path().join("key.txt").display()
        ),
        dir,
    );
    assert_eq!(
        sha1_of(&dir.join("b.tar.gz"), dir),
        shown["Checksum"].as_str().unwrap()
    );
}

#[test]
fn ten_creates_at_once_through_a_server_make_ten_good_backups() {
    let env = Env::new();
    let server = std::sync::Arc::new(profile_server(&env, ""));
    let client = tempfile::tempdir().unwrap();
    let dir = client.path().to_path_buf();
    let creates: Vec<_> = (0..10)
        .map(|n| {
            let (server, dir) = (server.clone(), dir.clone());
            std::thread::spawn(move || {
                let notes = format!("create {n}");
                server.client("append", &dir, &["create", "--notes", &notes])
            })
        })
        .collect();
    let mut ids: Vec<String> = creates
        .into_iter()
        .map(|c| {
            let out = c.join().unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8(out.stdout).unwrap().trim().to_string()
        })
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 10, "{ids:?}");
    let verified: Value =
        serde_json::from_str(&env.ok(&["verify", "--all", "--read-data", "--json"])).unwrap();
    let verified = verified.as_array().unwrap();
    assert_eq!(verified.len(), 10);
    assert!(verified.iter().all(|v| v["Ok"] == true), "{verified:?}");
}

#[test]
fn with_a_client_ca_a_client_certificate_is_required_as_well_as_the_token() {
    let env = Env::new();
    // Certificates first (the server's and a client's from the same CA).
    let tls = env.path().join("tls");
    std::fs::create_dir_all(&tls).unwrap();
    crate::server::make_tls(&tls);
    sh(
        "openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
         -keyout client.key -out client.csr -subj /CN=controller-0 2>/dev/null && \
         printf 'extendedKeyUsage=clientAuth\\n' > client.cnf && \
         openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial \
         -out client.pem -days 2 -extfile client.cnf 2>/dev/null",
        &tls,
    );
    let (token, line) = generate_token("read-token", "read");
    std::fs::write(tls.join("read.token"), format!("{token}\n")).unwrap();
    std::fs::write(tls.join("tokens"), format!("{line}\n")).unwrap();
    let ca = tls.join("ca.pem");
    let server = Server::start(&env, &[], &["--client-ca", ca.to_str().unwrap()]);
    let whoami = format!("{}/api/v1/whoami", server.url);
    let auth = format!("Authorization: Bearer {token}");
    let (status, _) = server.curl(&["-H", &auth, &whoami]);
    assert_eq!(status, 0, "no client certificate: no TLS session");
    let (cert, key) = (tls.join("client.pem"), tls.join("client.key"));
    let (status, body) = server.curl(&[
        "--cert",
        cert.to_str().unwrap(),
        "--key",
        key.to_str().unwrap(),
        "-H",
        &auth,
        &whoami,
    ]);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, r#"{"Name":"read-token","Role":"read"}"#);
    let (status, _) = server.curl(&[
        "--cert",
        cert.to_str().unwrap(),
        "--key",
        key.to_str().unwrap(),
        &whoami,
    ]);
    assert_eq!(status, 401, "the certificate alone is not enough");
}

#[test]
fn restore_through_a_server_plans_first_then_restores_with_the_plans_token() {
    let env = Env::new();
    let tree = sample_tree(env.path());
    env.ok(&["create", "--path", tree.to_str().unwrap()]);
    let id = first_id(&env);
    let target = env.path().join("restored");
    std::fs::create_dir_all(&target).unwrap();
    let target = target.canonicalize().unwrap();
    let t = target.to_str().unwrap();
    let server = Server::start(&env, &[], &["--restore-target", t]);
    let client = tempfile::tempdir().unwrap();
    let dir = client.path();

    let (code, err) = server.fail("append", dir, &["restore", &id, "--target", t, "--yes"]);
    assert_eq!(code, 16, "{err}");
    let (code, err) = server.fail("operator", dir, &["restore", &id, "--target", "/", "--yes"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains(&format!("this server restores into {t}")),
        "{err}"
    );
    let (code, err) = server.fail("operator", dir, &["restore", &id, "--target", t]);
    assert_eq!(code, 2, "no terminal to confirm on, no --yes: {err}");
    assert_eq!(std::fs::read_dir(&target).unwrap().count(), 0);

    let plan: Value = serde_json::from_str(&server.ok(
        "operator",
        dir,
        &["restore", &id, "--target", t, "--dry-run", "--json"],
    ))
    .unwrap();
    assert_eq!(plan["DryRun"], true, "{plan}");
    assert_eq!(plan["ID"], id.as_str());
    assert_eq!(
        std::fs::read_dir(&target).unwrap().count(),
        0,
        "a plan changes nothing"
    );

    let report: Value = serde_json::from_str(&server.ok(
        "operator",
        dir,
        &["restore", &id, "--target", t, "--yes", "--json"],
    ))
    .unwrap();
    assert_eq!(report["DryRun"], false, "{report}");
    assert_eq!(report["Files"], plan["Files"]);
    let restored = target.join(tree.strip_prefix("/").unwrap());
    assert_eq!(snapshot(&restored), snapshot(&tree));

    // A plan's token is good once (and a made-up one not at all).
    let body = server.ok(
        "operator",
        dir,
        &["restore", &id, "--target", t, "--dry-run"],
    );
    assert!(
        body.starts_with(&format!("Would restore {id} on the server: ")),
        "{body}"
    );
    let auth = format!("Authorization: Bearer {}", server.token("operator"));
    let post = |path: &str, json: &str| {
        server.curl(&[
            "-X",
            "POST",
            "-H",
            &auth,
            "-H",
            "Content-Type: application/json",
            "-d",
            json,
            &format!("{}{path}", server.url),
        ])
    };
    let (status, planned) = post(
        &format!("/api/v1/backups/{id}/restore"),
        &format!(r#"{{"Target": "{t}"}}"#),
    );
    assert_eq!(status, 200, "{planned}");
    let token = serde_json::from_str::<Value>(&planned).unwrap()["Token"]
        .as_str()
        .unwrap()
        .to_string();
    let execute = format!(r#"{{"Token": "{token}"}}"#);
    let (status, body) = post("/api/v1/restore", &execute);
    assert_eq!(status, 200, "{body}");
    for token in [
        execute.as_str(),
        r#"{"Token": "00112233445566778899aabbccddeeff"}"#,
    ] {
        let (status, body) = post("/api/v1/restore", token);
        assert_eq!(status, 400, "{body}");
        assert!(body.contains("unknown, used or expired"), "{body}");
    }
    assert!(!server.log.lock().unwrap().join("\n").contains(&token));
}
