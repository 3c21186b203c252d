//! Messages and flags that say what to do (issue 20 item 13): a file as
//! restore target, a wrong passphrase, an http:// endpoint, `m` against
//! `min`, `create --require-encryption`, zstd's level 0 and name, the
//! `--rewrite` listing.

use crate::support::*;

fn created(env: &Env, extra: &[&str]) -> String {
    let tree = sample_tree(env.path());
    let mut args = vec!["create", "--path", tree.to_str().unwrap()];
    args.extend_from_slice(extra);
    let out = env.ok(&args);
    out.trim().rsplit(' ').next().unwrap().to_string()
}

#[test]
fn a_regular_file_as_restore_target_is_named_as_such() {
    let env = Env::new();
    let id = created(&env, &[]);
    std::fs::write(env.path().join("afile"), b"x").unwrap();
    let (code, err) = env.fail(&["restore", &id, "--target", "afile"]);
    assert_eq!(code, 7, "{err}");
    assert!(
        err.contains("afile") && err.contains("is a file, not a directory"),
        "{err}"
    );
}

#[test]
fn a_wrong_passphrase_gets_a_passphrase_hint() {
    let env = Env::new();
    std::fs::write(env.path().join("pass"), "right\n").unwrap();
    std::fs::write(env.path().join("wrong"), "wrong\n").unwrap();
    let id = created(&env, &["--passphrase-file", "pass"]);
    for extra in [&["--passphrase-file", "wrong"][..], &[]] {
        let mut args = vec!["restore", id.as_str(), "--target", "t"];
        args.extend_from_slice(extra);
        let (code, err) = env.fail(&args);
        assert_eq!(code, 13, "{err}");
        assert!(
            err.contains("passphrase") && err.contains("--passphrase-file"),
            "{err}"
        );
        assert!(!err.contains("--identity"), "{err}");
    }
}

#[test]
fn an_http_endpoint_without_allow_http_hints_at_it() {
    let env = Env::new();
    let out = std::process::Command::new(BIN)
        .args([
            "--store",
            "s3://bucket/p",
            "--endpoint",
            "http://127.0.0.1:9",
            "list",
        ])
        .env("AWS_ACCESS_KEY_ID", "x")
        .env("AWS_SECRET_ACCESS_KEY", "y")
        .env("AWS_REGION", "us-east-1")
        .env_remove("AWS_ALLOW_HTTP")
        .env_remove("BACKUPS_ALLOW_HTTP")
        .current_dir(env.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(6), "{err}");
    assert!(
        err.contains("hint: an http:// endpoint needs --allow-http"),
        "{err}"
    );
}

#[test]
fn minutes_are_min_and_a_bare_m_is_refused_outside_retention() {
    let env = Env::new();
    std::fs::create_dir_all(env.store()).unwrap();
    let (code, err) = env.fail(&["gc", "--older-than", "10m"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("10min") && err.contains("months"), "{err}");
    assert_eq!(
        env.ok(&["gc", "--older-than", "10min"]),
        "No garbage found.\n"
    );
    let id = created(&env, &[]);
    let (code, err) = env.fail(&["restore", &id, "--target", "t", "--hook-timeout", "5m"]);
    assert_eq!(code, 2, "{err}");
    // In retention, m stays restic's months.
    env.ok(&["forget", "--keep-within", "1m", "--dry-run"]);
}

#[test]
fn create_require_encryption_refuses_a_plain_backup() {
    let env = Env::new();
    let tree = sample_tree(env.path());
    let path = tree.to_str().unwrap();
    let (code, err) = env.fail(&["create", "--path", path, "--require-encryption"]);
    assert_eq!(code, 13, "{err}");
    assert!(err.contains("--encrypt-to"), "{err}");
    assert_eq!(env.ok(&["list"]), "No backups to display.\n");
    std::fs::write(env.path().join("pass"), "pw\n").unwrap();
    env.ok(&[
        "create",
        "--path",
        path,
        "--require-encryption",
        "--passphrase-file",
        "pass",
    ]);
}

#[test]
fn zstd_level_0_is_refused_and_show_names_the_compression() {
    let env = Env::new();
    let tree = sample_tree(env.path());
    let path = tree.to_str().unwrap();
    let (code, err) = env.fail(&[
        "create",
        "--path",
        path,
        "--compression",
        "zstd",
        "--compression-level",
        "0",
    ]);
    assert_eq!(code, 2, "{err}");
    let zstd = env.ok(&["create", "--path", path, "--compression", "zstd"]);
    let zstd = zstd.trim().rsplit(' ').next().unwrap().to_string();
    let zstd = zstd.split(':').next().unwrap().to_string();
    assert!(env.ok(&["show", &zstd]).contains("\ncompression:"), "named");
    let shown = env.json(&["show", &zstd, "--json"]);
    assert_eq!(shown["Compression"], "zstd", "{shown}");
    let human = env.ok(&["show", &zstd]);
    let line = human
        .lines()
        .find(|l| l.starts_with("compression:"))
        .unwrap();
    assert!(line.ends_with(" zstd"), "{human}");
}

#[test]
fn the_rewrite_listing_shows_ten_files_unless_verbose() {
    let env = Env::new();
    let tree = env.path().join("conf");
    std::fs::create_dir_all(&tree).unwrap();
    for i in 0..12 {
        std::fs::write(tree.join(format!("f{i:02}.conf")), b"api 10.0.0.5:17070\n").unwrap();
    }
    let tree = tree.canonicalize().unwrap();
    let out = env.ok(&["create", "--path", tree.to_str().unwrap()]);
    let id = first_id(&env);
    assert!(out.contains(&id));
    let rewrite = |target: &str, verbose: bool| {
        let mut args = vec![
            "restore",
            id.as_str(),
            "--target",
            target,
            "--rewrite",
            "10.0.0.5=10.0.0.9",
        ];
        if verbose {
            args.push("--verbose");
        }
        env.ok(&args)
    };
    let short = rewrite("a", false);
    assert_eq!(short.matches("  file ").count(), 10, "{short}");
    assert!(
        short.contains("... and 2 more files (--verbose lists them all)"),
        "{short}"
    );
    let long = rewrite("b", true);
    assert_eq!(long.matches("  file ").count(), 12, "{long}");
}

/// Hard links are stored as GNU tar stores them (a link entry, listed by
/// `tar -tv` as `link to`) and restored as hard links, not copies.
#[test]
fn hard_links_are_restored_as_hard_links() {
    use std::os::unix::fs::MetadataExt;
    let env = Env::new();
    let tree = env.path().join("src");
    std::fs::create_dir_all(tree.join("sub")).unwrap();
    std::fs::write(tree.join("a"), b"shared contents").unwrap();
    std::fs::hard_link(tree.join("a"), tree.join("sub/b")).unwrap();
    let tree = tree.canonicalize().unwrap();
    let id = env
        .ok(&["create", "--path", tree.to_str().unwrap()])
        .trim()
        .to_string();
    env.ok(&["download", &id, "-o", "out.tar.gz"]);
    sh("tar -xzf out.tar.gz juju-backup/root.tar", env.path());
    let listed = String::from_utf8(sh("tar -tvf juju-backup/root.tar", env.path()).stdout).unwrap();
    let rel = tree.strip_prefix("/").unwrap().display().to_string();
    assert!(
        listed.contains(&format!("{rel}/sub/b link to {rel}/a")),
        "{listed}"
    );
    env.ok(&["restore", &id, "--target", "t"]);
    let t = env.path().join("t").join(&rel);
    let (a, b) = (
        std::fs::metadata(t.join("a")).unwrap(),
        std::fs::metadata(t.join("sub/b")).unwrap(),
    );
    assert_eq!(a.ino(), b.ino(), "one file, two names");
    assert_eq!(a.nlink(), 2);
    assert_eq!(std::fs::read(t.join("sub/b")).unwrap(), b"shared contents");
    let same = env.json(&["diff", &id, "--target", "/", "--json"]);
    assert_eq!(same["Files"]["Counts"]["Different"], 0, "{same}");
}
