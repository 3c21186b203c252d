//! The store's lease, seen from the CLI: held leases block and are named.

use crate::support::*;

#[test]
fn a_held_lease_blocks_remove_with_the_holder_named() {
    let env = Env::new();
    let tree = sample_tree(env.path());
    let id = env
        .ok(&["create", "--path", tree.to_str().unwrap()])
        .trim()
        .to_string();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let lease = format!(
        r#"{{"Holder":"ctl-2 pid 77","Operation":"restore","Token":"x","Acquired":"2026-01-01T00:00:00Z","Expires":"{}"}}"#,
        time::OffsetDateTime::from_unix_timestamp(now as i64 + 600)
            .unwrap()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap()
    );
    std::fs::create_dir_all(env.store().join(".lease")).unwrap();
    std::fs::write(env.store().join(".lease/other.json"), lease).unwrap();
    let (code, err) = env.fail(&["remove", &id]);
    assert_eq!(code, 9, "{err}");
    assert!(
        err.contains("locked by ctl-2 pid 77 (restore) since 2026-01-01T00:00:00Z"),
        "{err}"
    );
    assert!(env.ok(&["list"]).contains(&id), "nothing removed");
    // unlock shows a live lease and keeps it; --force removes it.
    let kept = env.ok(&["unlock"]);
    assert!(
        kept.starts_with(
            "Kept the live lease of ctl-2 pid 77 (restore) since 2026-01-01T00:00:00Z"
        ) && kept.contains("--force"),
        "{kept}"
    );
    assert_eq!(env.json(&["unlock", "--json"])[0]["Removed"], false);
    assert!(env.fail(&["remove", &id]).1.contains("locked by ctl-2"));
    assert_eq!(
        env.ok(&["unlock", "--force"]),
        "Removed the live lease of ctl-2 pid 77 (restore) since 2026-01-01T00:00:00Z\n"
    );
    assert_eq!(env.ok(&["unlock"]), "No leases held.\n");
    env.ok(&["remove", &id]);
    assert!(
        std::fs::read_dir(env.store()).unwrap().next().is_none(),
        "no lease left behind"
    );
}
