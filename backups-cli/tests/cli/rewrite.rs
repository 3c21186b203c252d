//! `restore --rewrite OLD=NEW` on the real Juju archive: the old machine's
//! address replaced, as whole tokens, in agent.conf and in the machines'
//! documents, and nothing else changed; dry runs; rollback.

use std::path::Path;

use backups_core::test_util::{service_env, unique_name};
use serde_json::Value;

use crate::support::*;

const OLD: &str = "10.77.116.68";
const NEW: &str = "10.0.9.9";
const AGENT_CONF: &str = "var/lib/juju/agents/machine-0/agent.conf";

fn juju_backup() -> String {
    fixtures()
        .join("valid-backup.tar.gz")
        .to_str()
        .unwrap()
        .to_string()
}

/// `restore --file <the Juju fixture> --target TARGET EXTRA...`.
fn restore<'a>(file: &'a str, target: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["restore", "--file", file, "--target", target];
    args.extend_from_slice(extra);
    args
}

/// Every document of every collection of `db`, by collection, in `_id`
/// order: `{"raw": <hex of the stored BSON>, "json": <canonical extended JSON>}`.
fn documents(uri: &str, db: &str) -> Value {
    let out = python_mongo(
        "import sys, json, bson; from bson import json_util; from pymongo import MongoClient; \
         from bson.raw_bson import RawBSONDocument; from bson.codec_options import CodecOptions; \
         db = MongoClient(sys.argv[1]).get_database(sys.argv[2], codec_options=CodecOptions(document_class=RawBSONDocument)); \
         print(json.dumps({n: [{'raw': d.raw.hex(), 'json': json_util.dumps(bson.decode(d.raw), json_options=json_util.CANONICAL_JSON_OPTIONS)} \
           for d in db[n].find().sort('_id', 1)] for n in sorted(db.list_collection_names())}))",
        uri,
        db,
    );
    serde_json::from_str(&out).unwrap()
}

fn drop_databases(uri: &str, names: &[&str]) {
    for name in names {
        python_mongo(
            "import sys; from pymongo import MongoClient; MongoClient(sys.argv[1]).drop_database(sys.argv[2])",
            uri,
            name,
        );
    }
}

#[test]
fn rewrite_moves_the_juju_backup_to_the_new_address_and_changes_nothing_else() {
    let Some(uri) = service_env("BACKUPS_TEST_MONGO_URI") else {
        return;
    };
    let env = Env::new();
    let file = juju_backup();
    let (plain_db, new_db) = (unique_name("rwplain"), unique_name("rwnew"));
    let (plain_rename, new_rename) = (format!("juju={plain_db}"), format!("juju={new_db}"));
    env.ok(&restore(
        &file,
        "plain",
        &["--mongo-uri", &uri, "--db-rename", &plain_rename],
    ));
    let report = env.ok(&restore(
        &file,
        "new",
        &[
            "--mongo-uri",
            &uri,
            "--db-rename",
            &new_rename,
            "--rewrite",
            &format!("{OLD}={NEW}"),
        ],
    ));
    assert!(
        report.contains(&format!(
            "Replaced 5 whole tokens ({OLD} -> {NEW}) in 1 files and 1 collections:\n\
             \x20      1  file {AGENT_CONF}\n\
             \x20      4  collection juju.machines\n"
        )),
        "{report}"
    );

    // Files: agent.conf's apiaddresses carry the new address; every other
    // byte of every file (and every mode, link, directory) is as restored
    // without the rewrite.
    let (plain, new) = (env.path().join("plain"), env.path().join("new"));
    let plain_conf = std::fs::read_to_string(plain.join(AGENT_CONF)).unwrap();
    let new_conf = std::fs::read_to_string(new.join(AGENT_CONF)).unwrap();
    assert!(
        new_conf.contains(&format!(
            "apiaddresses:\n- {NEW}:17070\n- 10.77.116.222:17070\n- 10.77.116.194:17070\n"
        )),
        "{new_conf}"
    );
    assert!(!plain_conf.contains(NEW) && !new_conf.contains(OLD));
    assert_eq!(new_conf.replace(NEW, OLD), plain_conf);
    let (mut before, mut after) = (snapshot(&plain), snapshot(&new));
    let (conf_before, conf_after) = (
        before.remove(AGENT_CONF).unwrap(),
        after.remove(AGENT_CONF).unwrap(),
    );
    assert_eq!(conf_before.1, conf_after.1, "agent.conf keeps its mode");
    assert_ne!(conf_before.2, conf_after.2);
    assert_eq!(after, before, "every other file byte-identical");

    // Documents: machine 0's addresses carry the new address; every other
    // document is byte-identical, and machine 0 differs only there.
    let (plain_docs, new_docs) = (documents(&uri, &plain_db), documents(&uri, &new_db));
    drop_databases(&uri, &[&plain_db, &new_db]);
    let names: Vec<&String> = plain_docs.as_object().unwrap().keys().collect();
    assert_eq!(names, ["clouds", "machines", "models"]);
    let mut changed = 0;
    for (coll, docs) in plain_docs.as_object().unwrap() {
        let new = new_docs[coll].as_array().unwrap();
        assert_eq!(docs.as_array().unwrap().len(), new.len(), "{coll}");
        for (a, b) in docs.as_array().unwrap().iter().zip(new) {
            if a["raw"] == b["raw"] {
                continue;
            }
            changed += 1;
            assert_eq!(coll, "machines");
            let (a, b) = (a["json"].as_str().unwrap(), b["json"].as_str().unwrap());
            assert!(!a.contains(NEW));
            assert_eq!(b.replace(NEW, OLD), a, "only the address changed");
            let machine: Value = serde_json::from_str(b).unwrap();
            assert_eq!(machine["_id"], "e2a6a1e5-abea-4393-8593-5a45ae53ab97:0");
            assert_eq!(machine["addresses"][0]["value"], NEW);
            assert_eq!(machine["machineaddresses"][0]["value"], NEW);
            assert_eq!(machine["machineaddresses"][1]["value"], "127.0.0.1");
            assert_eq!(machine["preferredpublicaddress"]["value"], NEW);
            assert_eq!(machine["preferredprivateaddress"]["value"], NEW);
        }
    }
    assert_eq!(changed, 1, "one document rewritten");
}

#[test]
fn a_prefix_of_the_address_or_a_scope_that_leaves_it_out_rewrites_nothing() {
    let uri = service_env("BACKUPS_TEST_MONGO_URI");
    let env = Env::new();
    let file = juju_backup();
    env.ok(&restore(&file, "plain", &[]));
    let plain = snapshot(&env.path().join("plain"));
    let dbs: Vec<String> = (0..3).map(|_| unique_name("rwnone")).collect();
    let renames: Vec<String> = dbs.iter().map(|db| format!("juju={db}")).collect();
    let prefix = format!("{}={NEW}", &OLD[..OLD.len() - 1]);
    let rule = format!("{OLD}={NEW}");
    for (i, (target, extra)) in [
        ("prefix", vec!["--rewrite", prefix.as_str()]),
        (
            "scoped",
            vec![
                "--rewrite",
                rule.as_str(),
                "--rewrite-path",
                "var/lib/juju/*.txt",
                "--rewrite-ns",
                "juju.models",
            ],
        ),
        (
            "excluded",
            vec![
                "--rewrite",
                rule.as_str(),
                "--rewrite-path",
                "/home/**",
                "--ns-exclude",
                "juju.machines",
            ],
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let mut extra = extra;
        if let Some(uri) = &uri {
            extra.extend(["--mongo-uri", uri, "--db-rename", &renames[i]]);
        }
        extra.push("--json");
        let report: Value = serde_json::from_str(&env.ok(&restore(&file, target, &extra))).unwrap();
        assert_eq!(report["Rewrites"]["Total"], 0, "{target}: {report}");
        assert_eq!(report["Rewrites"]["Files"], serde_json::json!({}));
        assert_eq!(
            snapshot(&env.path().join(target)),
            plain,
            "{target}: every file as restored without a rewrite"
        );
        if let Some(uri) = &uri {
            let docs = documents(uri, &dbs[i]);
            let machines = docs["machines"].as_array().map(Vec::len);
            let text = docs.to_string();
            assert!(!text.contains(NEW), "{target}: {text}");
            if target != "excluded" {
                assert_eq!(machines, Some(3), "{target}");
                assert!(text.contains(OLD), "{target}");
            }
        }
    }
    if let Some(uri) = &uri {
        drop_databases(uri, &dbs.iter().map(String::as_str).collect::<Vec<_>>());
    }
    let human = env.ok(&restore(&file, "human", &["--rewrite", &prefix]));
    assert!(
        human.contains("Replaced no tokens (10.77.116.6 -> 10.0.9.9): no restored file holds OLD as a whole token"),
        "{human}"
    );
}

#[test]
fn dry_run_lists_the_replacements_and_writes_nothing() {
    let uri = service_env("BACKUPS_TEST_MONGO_URI");
    let env = Env::new();
    let file = juju_backup();
    let db = unique_name("rwdry");
    let rename = format!("juju={db}");
    let rule = format!("{OLD}={NEW}");
    let mut extra = vec!["--rewrite", rule.as_str(), "--dry-run"];
    if let Some(uri) = &uri {
        extra.extend(["--mongo-uri", uri, "--db-rename", &rename]);
    }
    // Plainly, and as a plan (a hook makes it one), which lists its steps.
    let plain = env.ok(&restore(&file, "t", &extra));
    extra.extend(["--post-restore-cmd", "touch hooked"]);
    let plan = env.ok(&restore(&file, "t", &extra));
    let (total, collections) = if uri.is_some() { (5, 1) } else { (1, 0) };
    for out in [&plain, &plan] {
        assert!(
            out.contains(&format!(
                "Would replace {total} whole tokens ({OLD} -> {NEW}) in 1 files and {collections} collections:\n\
                 \x20      1  file {AGENT_CONF}\n"
            )),
            "{out}"
        );
        assert_eq!(
            out.contains("       4  collection juju.machines\n"),
            uri.is_some(),
            "{out}"
        );
        assert!(out.contains("Nothing was changed."), "{out}");
    }
    assert!(
        plan.contains(&format!(
            "rewrite {OLD} -> {NEW} (whole tokens) as they are restored: in the text files"
        )),
        "{plan}"
    );
    let json: Value = serde_json::from_str(&env.ok(&{
        let mut args = restore(&file, "t", &extra);
        args.push("--json");
        args
    }))
    .unwrap();
    assert_eq!(json["DryRun"], true);
    assert_eq!(json["Rewrites"]["Total"], total);
    assert_eq!(json["Rewrites"]["Files"][AGENT_CONF], 1);
    assert!(json["Plan"].as_array().unwrap().len() > 3, "{json}");
    assert!(!env.path().join("t").exists(), "no file written");
    assert!(!env.path().join("hooked").exists(), "no hook run");
    assert_eq!(env.ok(&["list"]), "No backups to display.\n");
    if let Some(uri) = &uri {
        let names = python_mongo(
            "import sys; from pymongo import MongoClient; print(sys.argv[2] in MongoClient(sys.argv[1]).list_database_names())",
            uri,
            &db,
        );
        assert_eq!(names.trim(), "False", "nothing loaded");
    }
}

#[test]
fn a_rolled_back_restore_puts_the_rewritten_file_and_documents_back() {
    let uri = service_env("BACKUPS_TEST_MONGO_URI");
    let env = Env::new();
    let file = juju_backup();
    // The live state: the backup's files and, with MongoDB, its database
    // (the old address in it) under another name.
    let db = unique_name("rwlive");
    let rename = format!("juju={db}");
    let mut database = vec![];
    if let Some(uri) = &uri {
        database = vec!["--mongo-uri", uri, "--db-rename", &rename];
    }
    env.ok(&restore(&file, "live", &database));
    let live = env.path().join("live").canonicalize().unwrap();
    std::fs::write(live.join(AGENT_CONF), "the live agent.conf\n").unwrap();
    std::fs::remove_file(live.join("var/lib/juju/nonce.txt")).unwrap();
    let before = snapshot(&live);
    let docs_before = uri.as_ref().map(|u| documents(u, &db));
    let seen = env.path().join("seen");
    // The hook sees the rewritten file in place, then fails.
    let hook = format!(
        "grep -c '^- {NEW}:17070$' \"$BACKUPS_RESTORE_TARGET/{AGENT_CONF}\" > {}; exit 7",
        seen.display()
    );
    let safety = live.join("var/lib/juju");
    let rule = format!("{OLD}={NEW}");
    let mut extra = vec![
        "--rewrite",
        rule.as_str(),
        "--safety-path",
        safety.to_str().unwrap(),
        "--post-restore-cmd",
        &hook,
        "--yes",
    ];
    if uri.is_some() {
        extra.extend(&database);
        extra.extend(["--safety-db", &db]);
    }
    let (code, err) = env.fail(&restore(&file, live.to_str().unwrap(), &extra));
    assert_eq!(code, 10, "{err}");
    assert!(err.contains("rolled back to safety backup"), "{err}");
    assert_eq!(std::fs::read_to_string(&seen).unwrap(), "1\n");
    assert_eq!(
        std::fs::read_to_string(live.join(AGENT_CONF)).unwrap(),
        "the live agent.conf\n",
        "the rewritten file's previous content is back"
    );
    assert_eq!(snapshot(&live), before, "and everything else as it was");
    assert!(!Path::new(&live.join("var/lib/juju/nonce.txt")).exists());
    if let (Some(uri), Some(docs_before)) = (&uri, docs_before) {
        let docs = documents(uri, &db);
        drop_databases(uri, &[&db]);
        assert!(docs_before.to_string().contains(OLD));
        assert!(
            !docs.to_string().contains(NEW),
            "the safety backup's documents are loaded back unrewritten"
        );
        assert!(docs == docs_before, "the documents are back as they were");
    }
}

#[test]
fn malformed_rewrite_rules_are_usage_errors() {
    let env = Env::new();
    let file = juju_backup();
    for (rule, why) in [
        ("10.0.0.5", "expected OLD=NEW"),
        ("=10.0.0.5", "the OLD side of OLD=NEW is empty"),
        ("10.0.0.5=10.0.0.5", "OLD and NEW are the same"),
    ] {
        let (code, err) = env.fail(&restore(&file, "t", &["--rewrite", rule]));
        assert_eq!(code, 2, "{err}");
        assert!(
            err.contains("--rewrite") && err.contains(why),
            "{rule}: {err}"
        );
    }
    let (code, err) = env.fail(&restore(&file, "t", &["--rewrite-ns", "juju.*"]));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--rewrite <OLD=NEW>"), "{err}");
    let (code, err) = env.fail(&restore(
        &file,
        "t",
        &["--rewrite", "a=b", "--rewrite", "a=c"],
    ));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("also rewritten"), "{err}");
    assert!(!env.path().join("t").exists());
}
