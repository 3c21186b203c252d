//! The Juju profile (`create --juju`, `restore --juju`) against a tree built
//! from the fixture's real Juju 2.8 data dir and a SecantusDB set up the way
//! a Juju controller's MongoDB is (replica set, SCRAM auth, TLS with the
//! controller's own CA: scripts/services' third SecantusDB).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use backups_core::test_util::service_env;

use crate::support::*;

const MODEL_UUID: &str = "e2a6a1e5-abea-4393-8593-5a45ae53ab97";
const CONTROLLER_UUID: &str = "8a293c6a-855b-47fd-8201-affdf29c9605";

/// The bytes of `name` inside the gzip'd tar at `archive`.
pub fn outer_entry(archive: &Path, name: &str) -> Vec<u8> {
    let file = std::fs::File::open(archive).unwrap();
    let mut outer = tar::Archive::new(flate2::read::GzDecoder::new(file));
    for entry in outer.entries().unwrap() {
        let mut entry = entry.unwrap();
        if entry.path().unwrap() == Path::new(name) {
            let mut body = Vec::new();
            entry.read_to_end(&mut body).unwrap();
            return body;
        }
    }
    panic!("{name} not in {}", archive.display());
}

/// The names of the entries of the gzip'd tar at `archive`.
fn outer_names(archive: &Path) -> Vec<String> {
    let file = std::fs::File::open(archive).unwrap();
    let mut outer = tar::Archive::new(flate2::read::GzDecoder::new(file));
    outer
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().display().to_string())
        .collect()
}

/// The fixture's root.tar unpacked under `root`, plus what a systemd
/// controller also has (an init/ service dir) and what Juju's backup must
/// not take (its MongoDB's own files under db/); returns the data dir.
fn juju_tree(root: &Path) -> PathBuf {
    let root_tar = outer_entry(
        &fixtures().join("valid-backup.tar.gz"),
        "juju-backup/root.tar",
    );
    std::fs::create_dir_all(root).unwrap();
    tar::Archive::new(&root_tar[..]).unpack(root).unwrap();
    let data = root.canonicalize().unwrap().join("var/lib/juju");
    std::fs::create_dir_all(data.join("init/jujud-machine-0")).unwrap();
    std::fs::write(
        data.join("init/jujud-machine-0/jujud-machine-0.service"),
        "[Service]\nExecStart=/lib/systemd/system/jujud-machine-0/exec-start.sh\n",
    )
    .unwrap();
    std::fs::create_dir_all(data.join("db")).unwrap();
    std::fs::write(data.join("db/WiredTiger"), "not backed up").unwrap();
    data
}

/// `juju_tree`, its server.pem and agent.conf's cacert replaced by the test
/// server's (the fixture's certificates are the real controller's); the
/// agent.conf keeps everything else, its statepassword included.
pub fn juju_tree_for_test_server(root: &Path) -> PathBuf {
    let data = juju_tree(root);
    let pem = std::env::var("BACKUPS_TEST_MONGO_TLS_PEM").expect("BACKUPS_TEST_MONGO_TLS_PEM");
    let ca = std::env::var("BACKUPS_TEST_MONGO_TLS_CA").expect("BACKUPS_TEST_MONGO_TLS_CA");
    std::fs::copy(pem, data.join("server.pem")).unwrap();
    let conf = data.join("agents/machine-0/agent.conf");
    let text = std::fs::read_to_string(&conf).unwrap();
    let mut out = String::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        if line == "cacert: |" {
            out.push_str("cacert: |\n");
            for ca_line in std::fs::read_to_string(&ca).unwrap().lines() {
                out.push_str(&format!("  {ca_line}\n"));
            }
            // Skip the fixture's block (its lines are indented).
            for rest in lines.by_ref() {
                if !rest.starts_with("  ") {
                    out.push_str(rest);
                    out.push('\n');
                    break;
                }
            }
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    assert!(out.contains("statepassword: "), "{out}");
    std::fs::write(&conf, out).unwrap();
    data
}

/// agent.conf's `statepassword`.
pub fn state_password(data: &Path) -> String {
    std::fs::read_to_string(data.join("agents/machine-0/agent.conf"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("statepassword: "))
        .unwrap()
        .to_string()
}

/// Runs the binary against `env`'s store with no identity or MongoDB
/// variables set (so only --juju and the flags give them).
pub fn juju_run(env: &Env, args: &[&str]) -> Output {
    Command::new(BIN)
        .args([
            "--store",
            env.store().to_str().unwrap(),
            "--progress",
            "none",
        ])
        .args(args)
        .env_remove("BACKUPS_STORE")
        .env_remove("BACKUPS_MODEL_UUID")
        .env_remove("BACKUPS_CONTROLLER_UUID")
        .env_remove("BACKUPS_MONGO_URI")
        .env("BACKUPS_STATE_DIR", env.path().join("state"))
        .current_dir(env.path())
        .output()
        .unwrap()
}

pub fn juju_ok(env: &Env, args: &[&str]) -> (String, String) {
    let out = juju_run(env, args);
    assert!(
        out.status.success(),
        "backups {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

/// Runs a pymongo script with `sys.argv[1]` = the admin URI of the TLS
/// server; returns its stdout.
pub fn tls_mongo(admin_uri: &str, script: &str) -> String {
    python_mongo(
        &format!(
            "import sys, json; from pymongo import MongoClient; c = MongoClient(sys.argv[1]); {script}"
        ),
        admin_uri,
        "",
    )
}

/// The TLS server's `juju`, `logs` and `backups` databases are shared by
/// the tests that use that server: they take this lock, one at a time.
pub static TLS_SERVER: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// The TLS server's admin URI and its lock (`None` when the services do not
/// run and CI is not set).
pub fn tls_server() -> Option<(std::sync::MutexGuard<'static, ()>, String)> {
    let uri = service_env("BACKUPS_TEST_MONGO_TLS_URI")?;
    let guard = TLS_SERVER
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    Some((guard, uri))
}

/// The controller's agent user (`machine-0`, with `password`), as Juju
/// creates it; then `then` (Python, `c` the client).
pub fn agent_user(admin_uri: &str, password: &str, then: &str) {
    tls_mongo(
        admin_uri,
        &format!(
            "pw = {password:?}\n\
             try:\n    c.admin.command('createUser', 'machine-0', pwd=pw, roles=['root'])\n\
             except Exception:\n    c.admin.command('updateUser', 'machine-0', pwd=pw)\n\
             {then}"
        ),
    );
}

/// A dump, its identity and root.tar as `juju create-backup` makes them,
/// then a restore into an empty database that leaves logs and the status
/// history alone, one with --include-status-history, and one that reads the
/// backup's own agent.conf.
#[test]
fn juju_profile_backs_up_and_restores_a_controller_over_tls_with_auth() {
    let Some((_server, admin_uri)) = tls_server() else {
        return;
    };
    let address = std::env::var("BACKUPS_TEST_MONGO_TLS_ADDRESS").unwrap();
    let env = Env::new();
    let data = juju_tree_for_test_server(&env.path().join("controller"));
    let root = data.parent().unwrap().parent().unwrap().parent().unwrap();
    // The controller's agent user, as Juju creates it; its databases (the
    // only test that uses these names on this server).
    let password = state_password(&data);
    agent_user(
        &admin_uri,
        &password,
        "[c.drop_database(d) for d in ('juju', 'logs', 'backups')]\n\
             c.juju.machines.insert_many([{'_id': str(i), 'life': 0} for i in range(3)])\n\
             c.juju.statuseshistory.insert_many([{'_id': i, 'status': 'idle'} for i in range(5)])\n\
             c.logs.logs.insert_many([{'_id': i} for i in range(2)])\n\
             c.backups.metadata.insert_one({'_id': 'old-backup'})",
    );

    let (stdout, _) = juju_ok(
        &env,
        &[
            "create",
            "--juju",
            "--juju-data-dir",
            data.to_str().unwrap(),
            "--juju-mongo-address",
            &address,
        ],
    );
    let id = stdout.trim().to_string();
    assert!(id.ends_with(&format!(".{MODEL_UUID}")), "{id}");
    let meta = env.json(&["show", &id, "--json"]);
    assert_eq!(meta["ModelUUID"], MODEL_UUID);
    assert_eq!(meta["ControllerUUID"], CONTROLLER_UUID);
    assert_eq!(meta["Machine"], "0");
    assert_eq!(meta["ControllerMachineID"], "0");
    assert_eq!(meta["Version"], "2.8-beta1.1");
    assert_eq!(meta["Series"], "bionic", "from tools/machine-0's target");
    let shown = env.ok(&["show", &id]);
    for line in [
        "juju.machines: 3 documents",
        "juju.statuseshistory: 5 documents",
        "logs.logs: 2 documents",
    ] {
        assert!(shown.contains(line), "{line}: {shown}");
    }

    env.ok(&["download", &id, "-o", "backup.tar.gz"]);
    let archive = env.path().join("backup.tar.gz");
    let dumped: Vec<String> = outer_names(&archive)
        .into_iter()
        .filter_map(|n| n.strip_prefix("juju-backup/dump/").map(String::from))
        .collect();
    assert!(
        dumped.contains(&"juju/machines.bson".to_string()),
        "{dumped:?}"
    );
    for db in ["admin/", "local/", "config/", "backups/"] {
        assert!(
            !dumped.iter().any(|n| n.starts_with(db)),
            "{db}: {dumped:?}"
        );
    }
    let root_tar = outer_entry(&archive, "juju-backup/root.tar");
    let mut names: Vec<String> = tar::Archive::new(&root_tar[..])
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().display().to_string())
        .collect();
    names.sort();
    let rel = |p: &Path| p.strip_prefix("/").unwrap().display().to_string();
    let d = rel(&data);
    for want in [
        format!("{d}/tools/machine-0"),
        format!("{d}/tools/2.8-beta1-bionic-amd64/downloaded-tools.txt"),
        format!("{d}/system-identity"),
        format!("{d}/server.pem"),
        format!("{d}/shared-secret"),
        format!("{d}/agents/machine-0/agent.conf"),
        format!("{d}/init/jujud-machine-0/jujud-machine-0.service"),
        format!("{d}/nonce.txt"),
        format!("{}/home/ubuntu/.ssh/authorized_keys", rel(root)),
    ] {
        assert!(names.contains(&want), "{want} not in {names:#?}");
    }
    assert!(
        !names.iter().any(|n| n.starts_with(&format!("{d}/db"))),
        "Juju's MongoDB files are not backed up: {names:#?}"
    );

    // An empty controller database, but for the live logs and status
    // history that a Juju restore leaves alone.
    let live = "[c.drop_database(d) for d in ('juju', 'logs')]; \
                c.juju.statuseshistory.insert_one({'_id': 'live'}); c.logs.logs.insert_one({'_id': 'live'})";
    let state = "print(json.dumps([sorted(str(d['_id']) for d in c[db][coll].find()) \
                 for db, coll in (('juju', 'machines'), ('juju', 'statuseshistory'), ('logs', 'logs'))]))";
    tls_mongo(&admin_uri, live);
    let target = env.path().join("target");
    let juju_restore = |extra: &[&str]| {
        let mut args = vec![
            "restore",
            id.as_str(),
            "--target",
            target.to_str().unwrap(),
            "--juju",
            "--juju-mongo-address",
            &address,
        ];
        args.extend_from_slice(extra);
        juju_ok(&env, &args)
    };
    let (report, _) = juju_restore(&["--juju-data-dir", data.to_str().unwrap()]);
    assert!(
        report.contains("Loaded 3 documents into 1 collections"),
        "{report}"
    );
    assert_eq!(
        tls_mongo(&admin_uri, state).trim(),
        r#"[["0", "1", "2"], ["live"], ["live"]]"#
    );
    assert!(
        target
            .join(&d)
            .join("agents/machine-0/agent.conf")
            .is_file()
    );

    let (report, _) = juju_restore(&[
        "--juju-data-dir",
        data.to_str().unwrap(),
        "--include-status-history",
    ]);
    assert!(
        report.contains("Loaded 8 documents into 2 collections"),
        "{report}"
    );
    assert_eq!(
        tls_mongo(&admin_uri, state).trim(),
        r#"[["0", "1", "2"], ["0", "1", "2", "3", "4"], ["live"]]"#
    );
    // That restore replaced the live files the first one wrote: the
    // library's rule took a safety backup of them (and of the collections
    // the load replaced), without hooks.
    let rule = safety_backup(&env);
    assert!(rule["FileCount"].as_u64().unwrap() >= 25, "{rule}");
    assert!(rule["Databases"].get("juju.machines").is_some(), "{rule}");
    env.ok(&["remove", rule["ID"].as_str().unwrap()]);

    // No live agent.conf under the (new) target: the backup's is used.
    tls_mongo(&admin_uri, live);
    let fresh = env.path().join("fresh");
    let (report, said) = juju_ok(
        &env,
        &[
            "restore",
            &id,
            "--target",
            fresh.to_str().unwrap(),
            "--juju",
            "--juju-mongo-address",
            &address,
        ],
    );
    assert!(said.contains("connecting with the backup's"), "{said}");
    assert!(
        report.contains("Loaded 3 documents into 1 collections"),
        "{report}"
    );
    assert_eq!(
        tls_mongo(&admin_uri, state).trim(),
        r#"[["0", "1", "2"], ["live"], ["live"]]"#
    );

    // As a plan (hooks): the safety backup holds the live controller's
    // files and identity, and not what the restore leaves alone.
    let plan_args = |dry_run: bool| {
        let mut a = vec![
            "restore",
            id.as_str(),
            "--target",
            target.to_str().unwrap(),
            "--juju",
            "--juju-data-dir",
            data.to_str().unwrap(),
            "--juju-mongo-address",
            &address,
            "--stop-cmd",
            "true",
            "--start-cmd",
            "true",
            "--yes",
        ];
        if dry_run {
            a.push("--dry-run");
        }
        juju_ok(&env, &a)
    };
    let (plan, _) = plan_args(true);
    assert!(
        plan.contains("logs.* and juju.statuseshistory are left alone")
            && plan.contains(&format!("{}/shared-secret", data.display())),
        "{plan}"
    );
    plan_args(false);
    let safety = safety_backup(&env);
    assert_eq!(safety["ModelUUID"], MODEL_UUID);
    assert_eq!(safety["ControllerUUID"], CONTROLLER_UUID);
    let shown = env.ok(&["show", safety["ID"].as_str().unwrap()]);
    assert!(shown.contains("juju.machines: 3 documents"), "{shown}");
    assert!(
        !shown.contains("statuseshistory") && !shown.contains("logs.logs"),
        "{shown}"
    );
    assert!(safety["FileCount"].as_u64().unwrap() >= 8, "{safety}");
    tls_mongo(
        &admin_uri,
        "[c.drop_database(d) for d in ('juju', 'logs', 'backups')]",
    );
}

/// A wrong statepassword is an authentication failure that names the agent
/// user and hides the password; a CA that did not sign the server's
/// certificate is refused (verification is never turned off).
#[test]
fn juju_profile_refuses_a_wrong_password_or_ca() {
    let Some((_server, _)) = tls_server() else {
        return;
    };
    let address = std::env::var("BACKUPS_TEST_MONGO_TLS_ADDRESS").unwrap();
    let env = Env::new();
    let data = juju_tree_for_test_server(&env.path().join("controller"));
    let conf = data.join("agents/machine-0/agent.conf");
    let good = std::fs::read_to_string(&conf).unwrap();
    let password = state_password(&data);
    std::fs::write(
        &conf,
        good.replace(
            &format!("statepassword: {password}"),
            "statepassword: wrong-pw-4c1d",
        ),
    )
    .unwrap();
    let create = [
        "create",
        "--juju",
        "--juju-data-dir",
        data.to_str().unwrap(),
        "--juju-mongo-address",
        &address,
    ];
    let out = juju_run(&env, &create);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(8), "{err}");
    assert!(
        err.contains("authentication failed") && err.contains("machine-0:***@"),
        "{err}"
    );
    assert!(!err.contains("wrong-pw-4c1d"), "{err}");

    // The fixture's own CA (the real controller's) did not sign the test
    // server's certificate.
    let fixture_data = juju_tree(&env.path().join("original"));
    std::fs::copy(fixture_data.join("agents/machine-0/agent.conf"), &conf).unwrap();
    let out = juju_run(&env, &create);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(8), "{err}");
    assert!(
        err.contains("invalid peer certificate") && err.contains("not signed by the CA"),
        "{err}"
    );
    assert_eq!(
        env.json(&["list", "--json"]),
        serde_json::json!([]),
        "nothing was stored"
    );
}

/// Without services: what --juju needs is named when it is missing.
#[test]
fn juju_profile_names_what_is_missing() {
    let env = Env::new();
    let empty = env.path().join("empty/var/lib/juju");
    std::fs::create_dir_all(&empty).unwrap();
    let out = juju_run(
        &env,
        &[
            "create",
            "--juju",
            "--juju-data-dir",
            empty.to_str().unwrap(),
        ],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains(&format!("{}/agents/machine-*/agent.conf", empty.display())),
        "{err}"
    );
    // A data dir with its agent but without shared-secret.
    let data = juju_tree(&env.path().join("controller"));
    std::fs::remove_file(data.join("shared-secret")).unwrap();
    let out = juju_run(
        &env,
        &[
            "create",
            "--juju",
            "--juju-data-dir",
            data.to_str().unwrap(),
        ],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains(&format!("{}/shared-secret", data.display())),
        "{err}"
    );
    // From a config profile: `juju = true` and its data dir, shown by
    // config show and used by create.
    let config = env.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[profile.default]\njuju = true\njuju_data_dir = {:?}\njuju_mongo_address = \"127.0.0.1:1\"\n",
            empty.display().to_string()
        ),
    )
    .unwrap();
    let config = config.to_str().unwrap();
    let shown =
        String::from_utf8(juju_run(&env, &["--config", config, "config", "show"]).stdout).unwrap();
    assert!(
        shown.contains("juju = true")
            && shown.contains(&format!(
                "juju_data_dir = {:?}",
                empty.display().to_string()
            ))
            && shown.contains("juju_mongo_address = \"127.0.0.1:1\""),
        "{shown}"
    );
    let out = juju_run(&env, &["--config", config, "create"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains(&format!("{}/agents/machine-*", empty.display())),
        "{err}"
    );
    // The Juju flags need --juju.
    let out = juju_run(&env, &["create", "--juju-data-dir", "/x", "--path", "/etc"]);
    assert_eq!(out.status.code(), Some(2));
    let out = juju_run(
        &env,
        &[
            "restore",
            "--file",
            "x.tar.gz",
            "--target",
            "t",
            "--include-status-history",
        ],
    );
    assert_eq!(out.status.code(), Some(2));
}

/// An explicit --mongo-uri is used instead of the connection agent.conf
/// gives (whose password here is wrong), and explicit identity flags win
/// over agent.conf's.
#[test]
fn juju_profile_takes_an_explicit_uri_and_identity_over_agent_conf() {
    let Some((_server, admin_uri)) = tls_server() else {
        return;
    };
    let env = Env::new();
    let data = juju_tree_for_test_server(&env.path().join("controller"));
    let conf = data.join("agents/machine-0/agent.conf");
    let text = std::fs::read_to_string(&conf).unwrap();
    let password = state_password(&data);
    std::fs::write(
        &conf,
        text.replace(
            &format!("statepassword: {password}"),
            "statepassword: not-it",
        ),
    )
    .unwrap();
    let db = backups_core::test_util::unique_name("jujuuri");
    tls_mongo(
        &admin_uri,
        &format!("c[{db:?}].things.insert_many([{{'_id': i}} for i in range(4)])"),
    );
    let (stdout, _) = juju_ok(
        &env,
        &[
            "create",
            "--juju",
            "--juju-data-dir",
            data.to_str().unwrap(),
            "--mongo-uri",
            &admin_uri,
            "--include-db",
            &db,
            "--model-uuid",
            MODEL,
            "--machine",
            "7",
        ],
    );
    let id = stdout.trim().to_string();
    assert!(id.ends_with(&format!(".{MODEL}")), "{id}");
    let meta = env.json(&["show", &id, "--json"]);
    assert_eq!(meta["ModelUUID"], MODEL);
    assert_eq!(meta["Machine"], "7");
    assert_eq!(meta["ControllerUUID"], CONTROLLER_UUID, "not overridden");
    assert_eq!(meta["Version"], "2.8-beta1.1");
    let shown = env.ok(&["show", &id]);
    assert!(
        shown.contains(&format!("{db}.things: 4 documents")),
        "{shown}"
    );
    tls_mongo(&admin_uri, &format!("c.drop_database({db:?})"));
}
