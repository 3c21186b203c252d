//! Arguments that would do nothing, or the wrong thing, are refused with
//! the reason (issue 20, item 13): `--keep-daily 0`, counts too large,
//! ids whose time does not exist, a label both added and removed,
//! downloads over an existing file or into a directory; and `verify` on
//! an empty store says there is nothing to verify.

use crate::support::*;

#[test]
fn a_keep_count_of_0_or_too_large_is_refused_with_the_reason() {
    let env = Env::new();
    let tree = sample_tree(env.path());
    env.ok(&["create", "--path", tree.to_str().unwrap()]);
    let (code, err) = env.fail(&["forget", "--keep-daily", "0"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("0 keeps nothing"), "{err}");
    assert!(!err.contains("give at least one --keep-*"), "{err}");
    let (code, err) = env.fail(&["forget", "--keep-last", "99999999999"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("too large"), "{err}");
    let listed = env.json(&["list", "--json"]);
    assert_eq!(listed.as_array().unwrap().len(), 1, "nothing removed");
}

#[test]
fn an_id_whose_time_does_not_exist_is_refused() {
    let env = Env::new();
    std::fs::create_dir(env.store()).unwrap();
    for id in [
        format!("20260101-246060.{MODEL}"),
        format!("20261301-000000.{MODEL}"),
    ] {
        let (code, err) = env.fail(&["show", &id]);
        assert_eq!(code, 2, "{id}: {err}");
        assert!(
            err.contains("invalid backup id") && err.contains("not a valid date and time"),
            "{id}: {err}"
        );
    }
}

#[test]
fn a_label_both_added_and_removed_is_refused() {
    let env = Env::new();
    let tree = sample_tree(env.path());
    let id = env
        .ok(&["create", "--path", tree.to_str().unwrap()])
        .trim()
        .to_string();
    let (code, err) = env.fail(&["label", &id, "--add", "pinned", "--remove", "pinned"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("\"pinned\" is both added and removed"),
        "{err}"
    );
    assert_eq!(
        env.json(&["show", &id, "--json"])["Labels"],
        serde_json::json!(["manual"])
    );
}

#[test]
fn download_refuses_an_existing_file_without_force_and_a_directory() {
    let env = Env::new();
    let tree = sample_tree(env.path());
    let id = env
        .ok(&["create", "--path", tree.to_str().unwrap()])
        .trim()
        .to_string();
    let existing = env.path().join("existing.tar.gz");
    std::fs::write(&existing, "keep me").unwrap();
    let (code, err) = env.fail(&["download", &id, "-o", existing.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("refusing to overwrite") && err.contains("--force"),
        "{err}"
    );
    assert_eq!(std::fs::read_to_string(&existing).unwrap(), "keep me");
    env.ok(&["download", &id, "-o", existing.to_str().unwrap(), "--force"]);
    assert_ne!(std::fs::read(&existing).unwrap(), b"keep me");

    // A directory is refused before anything is fetched: nothing appears in it.
    let dir = env.path().join("dir");
    std::fs::create_dir(&dir).unwrap();
    let (code, err) = env.fail(&["download", &id, "-o", dir.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("it is a directory"), "{err}");
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
    // (Not even a missing backup is looked up first.)
    let (code, err) = env.fail(&[
        "download",
        &format!("20200101-000000.{MODEL}"),
        "-o",
        dir.to_str().unwrap(),
    ]);
    assert_eq!(code, 2, "{err}");
}

#[test]
fn verify_latest_or_all_on_an_empty_store_says_there_are_no_backups() {
    let env = Env::new();
    std::fs::create_dir(env.store()).unwrap();
    for args in [&["verify", "--latest"][..], &["verify", "--all"]] {
        let out = env.ok(args);
        assert_eq!(out, "No backups to verify.\n", "{args:?}");
    }
    assert_eq!(env.ok(&["verify", "--all", "--json"]), "[]\n");
}
