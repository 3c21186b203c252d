//! `--version`, `completions bash|zsh|fish` (with backup ids from the
//! store), the hidden `man --out DIR` and `__complete-ids`.

use std::path::Path;
use std::process::Command;

use crate::support::{BIN, Env, sample_tree};

fn stdout(args: &[&str]) -> String {
    let out = Command::new(BIN).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "backups {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn version_is_one_line_with_the_commit_and_the_features() {
    let v = stdout(&["--version"]);
    assert_eq!(v.lines().count(), 1, "{v}");
    let line = v.trim_end();
    let rest = line
        .strip_prefix(&format!("backups {} (commit ", env!("CARGO_PKG_VERSION")))
        .unwrap_or_else(|| panic!("{line}"));
    let (commit, features) = rest.split_once("; ").unwrap();
    assert!(
        commit == "unknown"
            || (commit.len() == 12 && commit.chars().all(|c| c.is_ascii_hexdigit())),
        "{line}"
    );
    assert_eq!(features, "features: +zstd +age +server)");
    // The checkout's own HEAD, when the tests run in one.
    let head = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output();
    if let Ok(head) = head
        && head.status.success()
        && std::env::var_os("BACKUPS_GIT_COMMIT").is_none()
    {
        assert_eq!(commit, String::from_utf8_lossy(&head.stdout).trim());
    }
}

/// Runs the bash completion function for `words` (the last one being
/// completed) with `backups` on PATH, and returns what it offers.
fn bash_complete(script: &Path, words: &[&str]) -> Vec<String> {
    let bin_dir = Path::new(BIN).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Command::new("bash")
        .arg("-c")
        .arg(
            r#"source "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1))
               _backups_with_ids backups "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
               printf '%s\n' "${COMPREPLY[@]}""#,
        )
        .arg("_")
        .arg(script)
        .args(words)
        .env("PATH", path)
        .env_remove("BACKUPS_STORE")
        .env_remove("BACKUPS_CONFIG")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect()
}

#[test]
fn bash_completion_offers_the_stores_backup_ids_where_an_id_goes() {
    let env = Env::new();
    let tree = sample_tree(env.path());
    let first = env.ok(&["create", "--path", tree.to_str().unwrap(), "-q"]);
    let second = env.ok(&["create", "--path", tree.to_str().unwrap(), "-q"]);
    let mut ids = vec![first.trim().to_string(), second.trim().to_string()];
    ids.sort();
    let script = env.path().join("backups.bash");
    std::fs::write(&script, stdout(&["completions", "bash"])).unwrap();
    let store = env.store();
    let store = store.to_str().unwrap();
    for command in [
        "show", "download", "restore", "remove", "label", "notes", "verify",
    ] {
        let mut got = bash_complete(&script, &["backups", "--store", store, command, ""]);
        got.sort();
        assert_eq!(got, ids, "{command}");
    }
    // --store=URL is passed on as well (bash splits the word at `=`, or
    // not, depending on COMP_WORDBREAKS); a prefix narrows the ids.
    let prefix = &ids[0][..ids[0].len() - 3];
    let got = bash_complete(&script, &["backups", "--store", "=", store, "show", prefix]);
    assert!(got.contains(&ids[0]), "{got:?}");
    let joined = format!("--store={store}");
    let got = bash_complete(&script, &["backups", &joined, "show", prefix]);
    assert!(got.contains(&ids[0]), "{got:?}");
    // Not for an option, nor an option's value, nor another command.
    let got = bash_complete(&script, &["backups", "--store", store, "show", "--j"]);
    assert_eq!(got, ["--json"]);
    let got = bash_complete(
        &script,
        &["backups", "--store", store, "download", &ids[0], "-o", "zz"],
    );
    assert!(got.iter().all(|g| !ids.contains(g)), "{got:?}");
    let got = bash_complete(&script, &["backups", "--store", store, "list", ""]);
    assert!(got.iter().all(|g| !ids.contains(g)), "{got:?}");
    // A store that does not exist offers nothing (and is not created).
    let missing = env.path().join("nothing-here");
    let got = bash_complete(
        &script,
        &["backups", "--store", missing.to_str().unwrap(), "show", ""],
    );
    assert!(got.is_empty(), "{got:?}");
    assert!(!missing.exists());
}

#[test]
fn complete_ids_prints_nothing_for_an_unreachable_store_within_its_timeout() {
    // Nothing listens on port 9: the S3 store refuses, and the ids are
    // simply none (exit 0, nothing on stdout).
    let out = Command::new(BIN)
        .args([
            "--store",
            "s3://b/p",
            "--endpoint",
            "http://127.0.0.1:9",
            "--allow-http",
            "--region",
            "x",
            "__complete-ids",
            "--timeout-ms",
            "500",
        ])
        .env("AWS_ACCESS_KEY_ID", "a")
        .env("AWS_SECRET_ACCESS_KEY", "b")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(out.stdout.is_empty());
}

#[test]
fn zsh_and_fish_scripts_wrap_clap_s_with_the_ids() {
    let zsh = stdout(&["completions", "zsh"]);
    assert!(zsh.starts_with("#compdef backups"), "{}", &zsh[..40]);
    // clap's function renamed, ours in front of the registration.
    assert!(zsh.contains("\n_backups_clap() {\n"));
    let wrapper = zsh.find("\n_backups() {\n").unwrap();
    let tail = zsh
        .find("if [ \"$funcstack[1]\" = \"_backups\" ]; then")
        .unwrap();
    assert!(wrapper < tail);
    assert!(zsh.contains("__complete-ids"));
    let fish = stdout(&["completions", "fish"]);
    assert!(fish.contains("function __fish_backups_using_subcommand"));
    for command in [
        "show", "download", "restore", "remove", "label", "notes", "verify",
    ] {
        assert!(
            fish.contains(&format!(
                "complete -c backups -n \"__fish_backups_using_subcommand {command}\" -f -a \"(__backups_ids)\""
            )),
            "{command}"
        );
    }
    // Each shell parses its script, where it is installed.
    for (shell, script) in [
        ("zsh", &zsh),
        ("fish", &fish),
        ("bash", &stdout(&["completions", "bash"])),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("script");
        std::fs::write(&file, script).unwrap();
        if let Ok(out) = Command::new(shell).arg("-n").arg(&file).output() {
            assert!(
                out.status.success(),
                "{shell} -n: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

#[test]
fn man_writes_a_page_for_every_command_and_none_for_the_hidden_ones() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("man1");
    stdout(&["man", "--out", out.to_str().unwrap()]);
    let mut pages: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    pages.sort();
    // Every command, at every depth; not the hidden ones.
    for c in [
        "backups",
        "backups-create",
        "backups-list",
        "backups-show",
        "backups-download",
        "backups-upload",
        "backups-remove",
        "backups-forget",
        "backups-gc",
        "backups-unlock",
        "backups-restore",
        "backups-diff",
        "backups-verify",
        "backups-label",
        "backups-notes",
        "backups-key",
        "backups-key-generate",
        "backups-config",
        "backups-config-show",
        "backups-schedule",
        "backups-schedule-run",
        "backups-schedule-list",
        "backups-completions",
        "backups-copy",
        "backups-pitr",
        "backups-pitr-run",
        "backups-pitr-list",
        "backups-serve",
        "backups-token",
        "backups-token-generate",
    ] {
        assert!(pages.contains(&format!("{c}.1")), "{c}: {pages:?}");
    }
    assert_eq!(pages.len(), 30, "{pages:?}");
    let page = std::fs::read_to_string(out.join("backups-restore.1")).unwrap();
    assert!(
        page.starts_with(".ie") || page.contains(".TH"),
        "{}",
        &page[..80]
    );
    assert!(page.contains("target"), "the options are in the page");
}
