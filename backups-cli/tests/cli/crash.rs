//! A create killed or interrupted midway leaves nothing visible.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use backups_core::test_util::noise;

use crate::support::*;

/// A tree of incompressible data, so an upload takes a while.
pub fn random_tree(root: &Path, files: usize) -> PathBuf {
    let tree = root.join("big");
    std::fs::create_dir(&tree).unwrap();
    for i in 0..files {
        let blob = noise(8 << 20, 0x9e37_79b9_7f4a_7c15 + i as u64);
        std::fs::write(tree.join(format!("blob{i}")), blob).unwrap();
    }
    tree
}

/// Starts `create` (with `extra` arguments) with plain progress and returns
/// once it reports data already streamed into the store.
pub fn create_until_streaming(env: &Env, tree: &Path, extra: &[&str]) -> std::process::Child {
    let mut child = Command::new(BIN)
        .args([
            "--store",
            env.store().to_str().unwrap(),
            "--progress",
            "plain",
            "--part-size",
            "5",
            "create",
            "--path",
            tree.to_str().unwrap(),
        ])
        .args(extra)
        .current_dir(env.path())
        .env("BACKUPS_MODEL_UUID", MODEL)
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let stderr = BufReader::new(child.stderr.take().unwrap());
    for line in stderr.lines() {
        let line = line.unwrap();
        if line.starts_with("archiving: ") && !line.starts_with("archiving: 0/") {
            return child;
        }
    }
    let status = child.wait().unwrap();
    panic!("create finished ({status}) before it could be interrupted");
}

#[test]
fn create_killed_during_upload_leaves_nothing_visible() {
    let env = Env::new();
    let tree = random_tree(env.path(), 6);
    let mut child = create_until_streaming(&env, &tree, &[]);
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert!(!status.success());
    assert_eq!(env.ok(&["list"]), "No backups to display.\n");
    let sidecars = std::fs::read_dir(env.store())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "json")
        })
        .count();
    assert_eq!(sidecars, 0);
    // gc finds what the killed upload left, and deletes it only with --yes.
    let found = env.ok(&["gc", "--older-than", "0s"]);
    assert!(found.starts_with("KIND"), "{found}");
    assert!(
        found.contains("staging-file") || found.contains("orphan-archive"),
        "{found}"
    );
    env.ok(&["gc", "--older-than", "0s", "--yes"]);
    assert_eq!(env.ok(&["gc", "--older-than", "0s"]), "No garbage found.\n");
    assert_eq!(
        std::fs::read_dir(env.store()).unwrap().count(),
        0,
        "store is empty again"
    );
    // A later create succeeds and is the only backup listed.
    let small = sample_tree(env.path());
    let id = env
        .ok(&["create", "--path", small.to_str().unwrap()])
        .trim()
        .to_string();
    let list = env.json(&["list", "--json"]);
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["ID"], id.as_str());
}

#[test]
fn interrupted_create_aborts_its_upload() {
    let env = Env::new();
    let tree = random_tree(env.path(), 6);
    let child = create_until_streaming(&env, &tree, &[]);
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130));
    assert_eq!(env.ok(&["list"]), "No backups to display.\n");
    let left: Vec<_> = std::fs::read_dir(env.store())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(
        left.is_empty(),
        "the aborted multipart upload left {left:?}"
    );
}
