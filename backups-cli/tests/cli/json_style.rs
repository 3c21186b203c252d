//! One JSON style: every command's `--json` (and the schedule's status
//! file) has PascalCase keys, the sidecar's and Juju's metadata.json style;
//! only data keys (namespaces, paths, store option names) are as they are.

use serde_json::Value;

use crate::support::*;

/// Keys whose object values are data maps: their keys are namespaces,
/// paths or option names, not field names.
const DATA_MAPS: &[&str] = &["Databases", "StoreOption", "Files", "Collections"];

fn pascal(key: &str) -> bool {
    let mut chars = key.chars();
    chars.next().is_some_and(|c| c.is_ascii_uppercase()) && chars.all(|c| c.is_ascii_alphanumeric())
}

/// Every field key of `value` that is not PascalCase, with its path.
fn bad_keys(value: &Value, path: &str, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                if !pascal(k) {
                    out.push(format!("{path}.{k}"));
                }
                let here = format!("{path}.{k}");
                match v {
                    // A data map's own keys are data; its values may hold fields.
                    Value::Object(inner) if DATA_MAPS.contains(&k.as_str()) => {
                        for (dk, dv) in inner {
                            bad_keys(dv, &format!("{here}[{dk}]"), out);
                        }
                    }
                    _ => bad_keys(v, &here, out),
                }
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                bad_keys(v, &format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

/// The number of field keys checked (so that an empty answer cannot pass).
fn count_keys(value: &Value) -> usize {
    match value {
        Value::Object(map) => map.len() + map.values().map(count_keys).sum::<usize>(),
        Value::Array(items) => items.iter().map(count_keys).sum(),
        _ => 0,
    }
}

fn check(what: &str, value: &Value) {
    let mut bad = Vec::new();
    bad_keys(value, "", &mut bad);
    assert!(
        bad.is_empty(),
        "{what}: keys not in PascalCase: {bad:?}\n{value:#}"
    );
    assert!(count_keys(value) > 0, "{what}: no keys to check: {value}");
}

#[test]
fn every_json_output_has_pascal_case_keys() {
    let env = Env::new();
    let tree = sample_tree(env.path());
    let t = tree.to_str().unwrap();
    let old = env
        .ok(&["create", "--path", t, "--notes", "old"])
        .trim()
        .to_string();
    let id = env.ok(&["create", "--path", t]).trim().to_string();
    let target = env.path().join("target");
    std::fs::create_dir_all(&target).unwrap();
    // An orphan archive for gc to list.
    let archive = std::fs::read_dir(env.store())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with(".tar.gz"))
        .unwrap();
    std::fs::copy(&archive, env.store().join("20200101-000000.orphan.tar.gz")).unwrap();
    let config = env.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[profile.default]\nstore = {:?}\npaths = [{t:?}]\n\
             [profile.default.store_option]\ngroup_access = \"false\"\n\n\
             [[schedule]]\nname = \"nightly\"\ncron = \"0 3 * * *\"\nverify = \"read-data\"\n\
             retention = {{ keep_daily = 7 }}\n\n\
             [[schedule]]\nname = \"old\"\ncron = \"0 4 * * *\"\n",
            env.store().to_str().unwrap()
        ),
    )
    .unwrap();
    let c = config.to_str().unwrap();
    let offsite = env.path().join("offsite");

    let outputs: Vec<(&str, Vec<&str>)> = vec![
        ("list", vec!["list", "--json"]),
        ("show", vec!["show", &id, "--json"]),
        ("verify", vec!["verify", &id, "--json"]),
        (
            "forget",
            vec!["forget", "--keep-last", "1", "--dry-run", "--json"],
        ),
        ("gc", vec!["gc", "--older-than", "0s", "--json"]),
        (
            "diff",
            vec!["diff", &id, "--target", target.to_str().unwrap(), "--json"],
        ),
        (
            "restore --dry-run",
            vec![
                "restore",
                &old,
                "--target",
                target.to_str().unwrap(),
                "--dry-run",
                "--json",
            ],
        ),
        (
            "copy",
            vec!["copy", "--all", "--to", offsite.to_str().unwrap(), "--json"],
        ),
        (
            "schedule list",
            vec!["--config", c, "schedule", "list", "--json"],
        ),
        (
            "config show",
            vec!["--config", c, "config", "show", "--json"],
        ),
    ];
    for (what, args) in &outputs {
        check(what, &env.json(args));
    }

    // The values are spelled as the CLI and config file spell them.
    let schedules = env.json(&["--config", c, "schedule", "list", "--json"]);
    assert_eq!(schedules[0]["Verify"], "read-data", "{schedules}");
    let verified = env.json(&["verify", &id, "--read-data", "--json"]);
    assert_eq!(verified[0]["Level"], "read-data", "{verified}");
    let forget = env.json(&["forget", "--keep-last", "1", "--dry-run", "--json"]);
    assert_eq!(forget["Remove"][0]["ID"], old.as_str(), "{forget}");
    assert_eq!(forget["Keep"][0]["ID"], id.as_str(), "{forget}");

    // The schedule's status file (what notify_url posts) too, and a file
    // an older version wrote with snake_case keys still reads.
    env.ok(&["--config", c, "schedule", "run", "--once", "nightly"]);
    let status_dir = env.path().join("state/schedule");
    let status: Value =
        serde_json::from_slice(&std::fs::read(status_dir.join("nightly.json")).unwrap()).unwrap();
    check("schedule status file", &status);
    assert_eq!(status["Runs"], 1, "{status}");
    assert_eq!(status["LastVerifyOk"], true, "{status}");
    std::fs::write(
        status_dir.join("old.json"),
        r#"{"name": "old", "last_run": "2020-01-01T04:00:00Z", "last_success": "2020-01-01T04:00:00Z", "runs": 1}"#,
    )
    .unwrap();
    let schedules = env.json(&["--config", c, "schedule", "list", "--json"]);
    assert_eq!(schedules[1]["Name"], "old", "{schedules}");
    assert_eq!(
        schedules[1]["LastSuccess"], "2020-01-01T04:00:00Z",
        "{schedules}"
    );
}
