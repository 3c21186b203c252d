//! Rebuilding a lost controller on a new machine: the Juju fixture's
//! controller restored into an empty target directory and an empty
//! SecantusDB set up as a controller's MongoDB is (replica set, auth, TLS),
//! with `--juju`, `--rewrite` and `--ensure-down`; every file, every
//! document and the rewritten addresses checked.

use std::collections::BTreeMap;

use crate::juju_profile::{
    agent_user, juju_ok, juju_run, juju_tree_for_test_server, outer_entry, state_password,
    tls_mongo, tls_server,
};
use crate::support::*;

const OLD: &str = "10.77.116.68";
const NEW: &str = "10.0.9.9";
const ID: &str = "20200225-041241.e2a6a1e5-abea-4393-8593-5a45ae53ab97";

/// Every regular file of a tar (path -> bytes).
fn tar_files(bytes: &[u8]) -> BTreeMap<String, Vec<u8>> {
    use std::io::Read;
    let mut out = BTreeMap::new();
    for entry in tar::Archive::new(bytes).entries().unwrap() {
        let mut entry = entry.unwrap();
        if entry.header().entry_type().is_file() {
            let path = entry.path().unwrap().display().to_string();
            let mut body = Vec::new();
            entry.read_to_end(&mut body).unwrap();
            out.insert(path, body);
        }
    }
    out
}

/// The fixture's dump against the live `juju` database: prints, per
/// collection, `name same|DIFFERENT` after the fixture's documents have had
/// OLD replaced by NEW in every string value (the addresses are whole
/// strings or `addr:port`), then each machine's address fields.
const COMPARE: &str = r#"
import sys, json, tarfile, bson
from pymongo import MongoClient
c = MongoClient(sys.argv[1])
old, new = sys.argv[2], sys.argv[3]
def moved(v):
    if isinstance(v, str):
        return v.replace(old, new) if v == old or v.startswith(old + ":") else v
    if isinstance(v, dict):
        return {k: moved(x) for k, x in v.items()}
    if isinstance(v, list):
        return [moved(x) for x in v]
    return v
with tarfile.open(sys.argv[4]) as t:
    for name in ("clouds", "machines", "models"):
        want = sorted((moved(d) for d in bson.decode_all(t.extractfile(f"juju-backup/dump/juju/{name}.bson").read())), key=lambda d: str(d["_id"]))
        got = sorted(c.juju[name].find(), key=lambda d: str(d["_id"]))
        print(name, "same" if want == got else "DIFFERENT")
for m in c.juju.machines.find({}, sort=[("_id", 1)]):
    fields = {k: m.get(k) for k in ("addresses", "machineaddresses", "preferredpublicaddress", "preferredprivateaddress")}
    print(json.dumps(fields, sort_keys=True, default=str))
print("collections", sorted(c.juju.list_collection_names()), sorted(c.logs.list_collection_names()))
"#;

#[test]
fn a_lost_controller_is_rebuilt_on_a_new_machine() {
    let Some((_server, admin_uri)) = tls_server() else {
        return;
    };
    let address = std::env::var("BACKUPS_TEST_MONGO_TLS_ADDRESS").unwrap();
    let env = Env::new();
    // The new machine: its freshly bootstrapped controller's agent.conf
    // (the same agent, this server's CA), an empty database but for its
    // agent user, and an empty target directory.
    let new_data = juju_tree_for_test_server(&env.path().join("new-machine"));
    let password = state_password(&new_data);
    agent_user(
        &admin_uri,
        &password,
        "[c.drop_database(d) for d in ('juju', 'logs')]",
    );
    let target = env.path().join("empty-root");
    std::fs::create_dir(&target).unwrap();
    let fixture = fixtures().join("valid-backup.tar.gz");
    juju_ok(&env, &["upload", fixture.to_str().unwrap()]);

    // The old controller's API and MongoDB addresses (stand-ins on this
    // host): while one still answers, the plan refuses and changes nothing.
    let alive = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let alive_at = alive.local_addr().unwrap().to_string();
    let gone_at = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().to_string()
    };
    let rewrite = format!("{OLD}={NEW}");
    let rebuild = |down: &str, extra: &[&str]| {
        let mut args = vec![
            "restore",
            ID,
            "--target",
            target.to_str().unwrap(),
            "--juju",
            "--juju-data-dir",
            new_data.to_str().unwrap(),
            "--juju-mongo-address",
            &address,
            "--ensure-down",
            &gone_at,
            "--ensure-down",
            down,
            "--rewrite",
            &rewrite,
            "--yes",
        ];
        args.extend_from_slice(extra);
        juju_run(&env, &args)
    };
    let out = rebuild(&alive_at, &[]);
    assert_eq!(
        out.status.code(),
        Some(5),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains(&format!("still answers at {alive_at}")));
    assert_eq!(
        std::fs::read_dir(&target).unwrap().count(),
        0,
        "nothing written"
    );
    let empty = tls_mongo(&admin_uri, "print(c.juju.list_collection_names())");
    assert_eq!(empty.trim(), "[]", "nothing loaded");
    drop(alive);

    // The dry run lists the replacements; then the rebuild.
    let dry = rebuild(&alive_at, &["--dry-run"]);
    let plan = String::from_utf8_lossy(&dry.stdout);
    assert!(
        dry.status.success(),
        "{}",
        String::from_utf8_lossy(&dry.stderr)
    );
    assert!(
        plan.contains("refuse while the old controller answers at")
            && plan.contains("var/lib/juju/agents/machine-0/agent.conf")
            && plan.contains("juju.machines"),
        "{plan}"
    );
    let done = rebuild(&alive_at, &[]);
    let report = String::from_utf8_lossy(&done.stdout);
    assert!(
        done.status.success(),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
    assert!(
        report.contains("Loaded 7 documents into 3 collections"),
        "{report}"
    );

    // Files: every one the backup holds, byte for byte, but agent.conf,
    // whose only change is the old address moved to the new one.
    let files = tar_files(&outer_entry(&fixture, "juju-backup/root.tar"));
    assert!(files.len() > 5, "{:?}", files.keys());
    let conf = "var/lib/juju/agents/machine-0/agent.conf";
    for (path, want) in &files {
        let got = std::fs::read(target.join(path)).unwrap();
        if path == conf {
            let want = String::from_utf8(want.clone()).unwrap();
            assert!(want.contains(&format!("{OLD}:17070")), "{want}");
            assert_eq!(String::from_utf8(got).unwrap(), want.replace(OLD, NEW));
        } else {
            assert_eq!(&got, want, "{path}");
        }
    }
    let conf_text = std::fs::read_to_string(target.join(conf)).unwrap();
    let api = conf_text
        .lines()
        .skip_while(|l| !l.starts_with("apiaddresses:"))
        .nth(1)
        .unwrap();
    assert_eq!(api.trim(), format!("- {NEW}:17070"), "{conf_text}");

    // Documents: the fixture's, with the machines' addresses moved.
    let text = python_args(COMPARE, &[&admin_uri, OLD, NEW, fixture.to_str().unwrap()]);
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("clouds same"), "{text}");
    assert_eq!(lines.next(), Some("machines same"), "{text}");
    assert_eq!(lines.next(), Some("models same"), "{text}");
    let machine0 = lines.next().unwrap();
    assert!(
        machine0.contains(&format!("\"{NEW}\"")) && !machine0.contains(OLD),
        "{machine0}"
    );
    for field in ["addresses", "machineaddresses", "preferredprivateaddress"] {
        assert!(
            machine0.contains(&format!("\"{field}\": ")),
            "{field}: {machine0}"
        );
    }
    assert!(
        text.contains("collections ['clouds', 'machines', 'models'] []"),
        "{text}"
    );
    tls_mongo(&admin_uri, "[c.drop_database(d) for d in ('juju', 'logs')]");
}
