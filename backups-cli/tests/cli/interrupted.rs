//! A killed restore's writes go on at the server after it died: undoing
//! it waits for them first (scripts/chaos-restore at random points; here
//! one write made sure to be in flight).

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use backups_core::test_util::{service_env, unique_name};

use crate::support::*;

/// Waits (polling the server, no fixed delay) until it lists no
/// connection of application `app`; prints the collections of `db` then.
const GONE_THEN_COLLECTIONS: &str = "
import sys, time
from pymongo import MongoClient
uri, db, app = sys.argv[1], sys.argv[2], sys.argv[3]
c = MongoClient(uri)
def mine(o):
    return (o.get('clientMetadata') or {}).get('application', {}).get('name') == app
while any(mine(o) for o in c.admin.command({'currentOp': 1, '$all': True})['inprog']):
    time.sleep(0.05)
print(sorted(c[db].list_collection_names()))
print(c[db].kept.count_documents({}))
";

#[test]
fn undoing_a_killed_restore_waits_for_its_writes_still_running_at_the_server() {
    let Some(uri) = service_env("BACKUPS_TEST_MONGO_URI") else {
        return;
    };
    let env = Env::new();
    let tree = sample_tree(env.path());
    let db = unique_name("killedload");
    python_mongo(
        "import sys; from pymongo import MongoClient; \
         MongoClient(sys.argv[1])[sys.argv[2]].kept.insert_many([{'_id': i} for i in range(5)])",
        &uri,
        &db,
    );
    let mongo = [("BACKUPS_MONGO_URI", uri.as_str())];
    let out = env.run_with(
        &[
            "create",
            "--path",
            tree.to_str().unwrap(),
            "--include-db",
            &db,
        ],
        &mongo,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let id = String::from_utf8(out.stdout).unwrap().trim().to_string();

    // The killed restore's loader, as the server knows it: a client
    // named `app` whose insertion workers each have a big insert into a
    // collection the restore added running at the server when the client
    // is killed (they end one after the other, long after the kill).
    let app = unique_name("backups-load-test");
    let python = std::env::var("BACKUPS_TEST_PYTHON").unwrap();
    let mut loader = Command::new(python)
        .arg("-c")
        .arg(
            "import sys, threading, time
from pymongo import MongoClient
uri, db, app = sys.argv[1], sys.argv[2], sys.argv[3]
workers = 8
c = MongoClient(uri, appName=app, maxPoolSize=workers)
watch = MongoClient(uri)
def inserting():
    return sum((o.get('clientMetadata') or {}).get('application', {}).get('name') == app
               and o.get('op') == 'insert'
               for o in watch.admin.command({'currentOp': 1, '$all': True})['inprog'])
def insert(k):
    c[db].added.insert_many([{'_id': k * 100000 + i, 'pad': 'x' * 100} for i in range(6000)])
for k in range(workers):
    threading.Thread(target=insert, args=(k,), daemon=True).start()
while inserting() < workers:
    time.sleep(0.01)
print('inserting', flush=True)
time.sleep(600)
",
        )
        .args([&uri, &db, &app])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(loader.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line, "inserting\n");
    // Its journal, as a plan writes it before loading: the client's name,
    // then the namespaces before the load (the database's own `db.` too).
    let journal = env.path().join(format!("state/restore-{id}.journal"));
    std::fs::create_dir_all(journal.parent().unwrap()).unwrap();
    std::fs::write(&journal, format!("A{app}\0N{db}.kept\0{db}.\0\0")).unwrap();
    loader.kill().unwrap();
    loader.wait().unwrap();

    let out = env.run_with(
        &[
            "restore",
            &id,
            "--target",
            "/",
            "--no-safety-backup",
            "--yes",
        ],
        &mongo,
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("took back the interrupted restore"), "{err}");
    let after = python_args(GONE_THEN_COLLECTIONS, &[&uri, &db, &app]);
    assert_eq!(
        after, "['kept']\n5\n",
        "what the killed restore added stays dropped, its late write included"
    );
    python_mongo(
        "import sys; from pymongo import MongoClient; MongoClient(sys.argv[1]).drop_database(sys.argv[2])",
        &uri,
        &db,
    );
}
