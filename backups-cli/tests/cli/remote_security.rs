//! The server's refusals: no token, a wrong one, a token of the wrong
//! role, a path-traversal id, an oversized upload, a stalled body and a
//! hostile archive are refused without changing the store or holding up
//! other requests; many downloads at once all arrive intact.

use std::io::Write;
use std::process::{Command, Stdio};

use crate::hostile::{hostile_archive, raw};
use crate::server::{Server, wait_until};
use crate::support::*;

fn spool_files(server: &Server) -> Vec<String> {
    std::fs::read_dir(&server.spool)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .filter(|n| n.starts_with(".backups-upload-"))
        .collect()
}

#[test]
fn no_token_a_wrong_token_or_the_wrong_role_change_nothing() {
    let env = Env::new();
    sample_tree(env.path());
    env.ok(&["create", "--path", "data"]);
    let id = first_id(&env);
    let server = Server::start(&env, &[], &[]);
    let client = tempfile::tempdir().unwrap();
    let dir = client.path();
    let before = snapshot(&env.store());
    let fixture = fixtures().join("valid-backup.tar.gz");
    let fixture = fixture.to_str().unwrap();

    // No token, and a token the server does not know: 401.
    let (status, body) = server.curl(&[&format!("{}/api/v1/backups", server.url)]);
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("\"Kind\":\"unauthorized\""), "{body}");
    let (status, _) = server.curl(&[
        "-X",
        "DELETE",
        "-H",
        "Authorization: Bearer bk_0000",
        &format!("{}/api/v1/backups/{id}", server.url),
    ]);
    assert_eq!(status, 401);
    let wrong = dir.join("wrong.token");
    std::fs::write(&wrong, format!("{}x\n", server.token("operator"))).unwrap();
    let out = Command::new(BIN)
        .args(["--remote", &server.url, "--remote-token-file"])
        .arg(&wrong)
        .arg("--remote-ca")
        .arg(server.dir.join("ca.pem"))
        .args(["remove", &id])
        .current_dir(dir)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(16));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no valid token"));

    // read: no create, upload, label, verify; append: no remove, forget.
    let refused: [(&str, Vec<&str>); 7] = [
        ("read", vec!["create"]),
        ("read", vec!["upload", fixture]),
        ("read", vec!["label", &id, "--add", "x"]),
        ("read", vec!["verify", &id]),
        ("append", vec!["remove", &id]),
        ("append", vec!["remove", "--keep-latest", "1"]),
        ("append", vec!["forget", "--keep-last", "1"]),
    ];
    for (role, args) in &refused {
        let (code, err) = server.fail(role, dir, args);
        assert_eq!(code, 16, "{role} {args:?}: {err}");
        assert!(err.contains("not permitted for the"), "{err}");
        assert!(err.contains("HTTP 403"), "{err}");
    }
    // A drill unpacks an archive on the server: operator only.
    let (status, body) = server.curl(&[
        "-X",
        "POST",
        "-H",
        &format!("Authorization: Bearer {}", server.token("append")),
        "-H",
        "Content-Type: application/json",
        "-d",
        r#"{"Level":"drill"}"#,
        &format!("{}/api/v1/backups/{id}/verify", server.url),
    ]);
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("drill"), "{body}");
    assert_eq!(snapshot(&env.store()), before, "the store changed");

    // A token is never sent in clear text to another machine.
    let token = dir.join("op.token");
    std::fs::write(&token, server.token("operator")).unwrap();
    let out = Command::new(BIN)
        .args(["--remote", "http://192.0.2.1:9", "--remote-token-file"])
        .arg(&token)
        .arg("list")
        .current_dir(dir)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("only for a loopback server"), "{err}");
    assert!(env.ok(&["list"]).contains(&id));
}

#[test]
fn a_path_traversal_id_is_refused() {
    let env = Env::new();
    sample_tree(env.path());
    env.ok(&["create", "--path", "data"]);
    let server = Server::start(&env, &[], &[]);
    let before = snapshot(&env.store());
    let auth = format!("Authorization: Bearer {}", server.token("operator"));
    for path in [
        "/api/v1/backups/..%2f..%2fetc%2fpasswd",
        "/api/v1/backups/..%2fstore/archive",
        "/api/v1/backups/%2e%2e%2f%2e%2e%2fetc%2fpasswd/archive",
    ] {
        for method in ["GET", "DELETE"] {
            let (status, body) =
                server.curl(&["-X", method, "-H", &auth, &format!("{}{path}", server.url)]);
            assert!(
                status == 400 || status == 404 || status == 405,
                "{method} {path}: {status} {body}"
            );
            assert!(!body.contains("root:"), "{body}");
        }
    }
    let (status, body) = server.curl(&[
        "-H",
        &auth,
        &format!("{}/api/v1/backups/..%2f..%2fetc%2fpasswd", server.url),
    ]);
    assert_eq!(status, 400);
    assert!(body.contains("\"Kind\":\"usage\""), "{body}");
    assert_eq!(snapshot(&env.store()), before);
}

#[test]
fn an_oversized_upload_is_refused_and_nothing_is_kept() {
    let env = Env::new();
    let server = Server::start(&env, &[], &["--max-upload", "1KiB"]);
    let client = tempfile::tempdir().unwrap();
    let fixture = fixtures().join("valid-backup.tar.gz");
    let (code, err) = server.fail(
        "append",
        client.path(),
        &["upload", fixture.to_str().unwrap()],
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("upload limit (1024 bytes"), "{err}");
    // Without a length up front (chunked): cut off at the limit.
    let (status, body) = server.curl(&[
        "-X",
        "POST",
        "-T",
        fixture.to_str().unwrap(),
        "-H",
        "Transfer-Encoding: chunked",
        "-H",
        &format!("Authorization: Bearer {}", server.token("append")),
        &format!("{}/api/v1/backups", server.url),
    ]);
    assert_eq!(status, 413, "{body}");
    wait_until("the spool file to go", || spool_files(&server).is_empty());
    assert!(!env.store().exists() || env.ok(&["list"]) == "No backups to display.\n");
}

#[test]
fn a_stalled_upload_does_not_hold_up_other_requests() {
    let env = Env::new();
    sample_tree(env.path());
    env.ok(&["create", "--path", "data"]);
    let id = first_id(&env);
    let server = Server::start(&env, &[], &[]);
    let client = tempfile::tempdir().unwrap();
    let dir = client.path();
    let mut stalled = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "--cacert"])
        .arg(server.dir.join("ca.pem"))
        .args(["-X", "POST", "-T", "-", "-H"])
        .arg(format!("Authorization: Bearer {}", server.token("append")))
        .arg(format!("{}/api/v1/backups", server.url))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut body = stalled.stdin.take().unwrap();
    body.write_all(&[0x1f; 65536]).unwrap();
    body.flush().unwrap();
    wait_until("the upload to reach the server", || {
        !spool_files(&server).is_empty()
    });

    // While it stalls: list, show and a download all answer.
    assert!(server.ok("read", dir, &["list"]).contains(&id));
    server.ok("read", dir, &["show", &id]);
    server.ok("read", dir, &["download", &id, "-o", "b.tar.gz"]);
    assert_eq!(
        spool_files(&server).len(),
        1,
        "the stalled upload is still open"
    );

    // When its body ends, it is refused (not an archive) and cleaned up.
    drop(body);
    let out = stalled.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "422");
    wait_until("the spool file to go", || spool_files(&server).is_empty());
    assert_eq!(env.json(&["list", "--json"]).as_array().unwrap().len(), 1);
}

#[test]
fn a_hostile_archive_is_refused_through_the_server() {
    let env = Env::new();
    let server = Server::start(&env, &[], &[]);
    let client = tempfile::tempdir().unwrap();
    let evil = client.path().join("evil.tar.gz");
    std::fs::write(
        &evil,
        hostile_archive(&[raw(b"../../escape", tar::EntryType::Regular, b"", b"x")]),
    )
    .unwrap();
    let (code, err) = server.fail("append", client.path(), &["upload", evil.to_str().unwrap()]);
    assert_eq!(code, 5, "{err}");
    assert!(err.contains("escape"), "{err}");
    assert_eq!(
        server.ok("read", client.path(), &["list"]),
        "No backups to display.\n"
    );
    wait_until("the spool file to go", || spool_files(&server).is_empty());
}

#[test]
fn fifty_downloads_at_once_all_arrive_intact() {
    let env = Env::new();
    sample_tree(env.path());
    env.ok(&["create", "--path", "data"]);
    let id = first_id(&env);
    let checksum = env.json(&["show", &id, "--json"])["Checksum"]
        .as_str()
        .unwrap()
        .to_string();
    let server = std::sync::Arc::new(Server::start(&env, &[], &[]));
    let client = tempfile::tempdir().unwrap();
    let dir = client.path().to_path_buf();
    let downloads: Vec<_> = (0..50)
        .map(|n| {
            let (server, dir, id) = (server.clone(), dir.clone(), id.clone());
            std::thread::spawn(move || {
                let name = format!("b{n}.tar.gz");
                server.client("read", &dir, &["download", &id, "-o", &name])
            })
        })
        .collect();
    for d in downloads {
        let out = d.join().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    for n in 0..50 {
        let out = sh(
            &format!("openssl dgst -sha1 -binary b{n}.tar.gz | base64"),
            &dir,
        );
        assert_eq!(
            String::from_utf8(out.stdout).unwrap().trim(),
            checksum,
            "b{n}"
        );
    }
}
