//! Restores of dumps as real mongodump writes them (issue 16), built with
//! pymongo's `bson` in mongodump's layout and oplog entry format, loaded
//! through the CLI the way `mongorestore --drop --oplogReplay` would.

use std::path::Path;
use std::process::{Command, Output};

use backups_core::test_util::{service_env, unique_name};

use crate::support::*;

/// Helpers every dump script starts with: `w(rel, docs)` writes a `.bson`
/// file, `meta(rel, name, indexes, options)` a canonical `.metadata.json`,
/// `idx(key, name)` an index spec, `op(...)` an oplog entry at `Timestamp(t, i)`.
const PRELUDE: &str = r#"
import sys, os, uuid, datetime
from bson import encode, Timestamp, Int64, json_util
from bson.binary import Binary, UuidRepresentation
out, db = sys.argv[1], sys.argv[2]
def w(rel, docs):
    p = os.path.join(out, rel)
    os.makedirs(os.path.dirname(p), exist_ok=True)
    open(p, 'wb').write(b''.join(encode(d) for d in docs))
def meta(rel, name, indexes=(), options=None):
    p = os.path.join(out, rel)
    os.makedirs(os.path.dirname(p), exist_ok=True)
    doc = {'indexes': [{'v': 2, 'key': {'_id': 1}, 'name': '_id_'}] + list(indexes),
           'uuid': uuid.uuid4().hex, 'collectionName': name, 'type': 'collection', 'options': options or {}}
    open(p, 'w').write(json_util.dumps(doc, json_options=json_util.CANONICAL_JSON_OPTIONS))
def idx(key, name, **kw):
    d = {'v': 2, 'key': key, 'name': name}
    d.update(kw)
    return d
def ui():
    return Binary.from_uuid(uuid.uuid4(), UuidRepresentation.STANDARD)
def op(o_type, ns, o, t, i=1, **kw):
    e = {'op': o_type, 'ns': ns}
    if o_type != 'c' or not ns.endswith('admin.$cmd'):
        e['ui'] = ui()
    e['o'] = o
    e.update(kw)
    e.update({'ts': Timestamp(t, i), 't': Int64(1), 'v': Int64(2),
              'wall': datetime.datetime.fromtimestamp(t, datetime.timezone.utc)})
    return e
"#;

/// Runs `script` (after [`PRELUDE`]) to write a dump of database `db`,
/// and packs it as a Juju archive `name` in `env`: each collection's
/// metadata before its data, as mongodump's archive mode orders them.
fn dump_archive(env: &Env, name: &str, db: &str, script: &str) -> String {
    let dir = env.path().join(format!("{name}.dump"));
    std::fs::create_dir_all(&dir).unwrap();
    let python =
        std::env::var("BACKUPS_TEST_PYTHON").expect("BACKUPS_TEST_PYTHON (scripts/services)");
    let out = Command::new(python)
        .args([
            "-c",
            &format!("{PRELUDE}\n{script}"),
            dir.to_str().unwrap(),
            db,
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut files = Vec::new();
    walk(&dir, &dir, &mut files);
    files.sort_by_key(|rel| match rel.strip_suffix(".metadata.json") {
        Some(stem) => (stem.to_string(), 0),
        None => (rel.trim_end_matches(".bson").to_string(), 1),
    });
    let mut entries = vec![
        ("juju-backup/metadata.json".to_string(), metadata_json()),
        ("juju-backup/root.tar".to_string(), vec![0u8; 1024]),
    ];
    for rel in files {
        let body = std::fs::read(dir.join(&rel)).unwrap();
        entries.push((format!("juju-backup/dump/{rel}"), body));
    }
    let borrowed: Vec<(&str, Vec<u8>)> = entries
        .iter()
        .map(|(n, b)| (n.as_str(), b.clone()))
        .collect();
    let file = format!("{name}.tar.gz");
    std::fs::write(env.path().join(&file), gz_tar(&borrowed)).unwrap();
    file
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            walk(root, &p, out);
        } else {
            out.push(p.strip_prefix(root).unwrap().to_str().unwrap().to_string());
        }
    }
}

/// `backups restore --file <archive>` into MongoDB at `uri`.
fn restore(env: &Env, uri: &str, archive: &str, extra: &[&str]) -> Output {
    std::fs::write(env.path().join("uri"), format!("{uri}\n")).unwrap();
    let mut args = vec![
        "restore",
        "--file",
        archive,
        "--target",
        "restored",
        "--mongo-uri-file",
        "uri",
    ];
    args.extend_from_slice(extra);
    env.run(&args)
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn failed(out: &Output) -> String {
    assert!(
        !out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        !err.contains("RawDocumentBuf") && !err.contains("server response"),
        "no raw server reply in messages: {err}"
    );
    err
}

/// Prints `expr` evaluated with `c` (the client) and `d` (database `db`).
fn query(uri: &str, db: &str, expr: &str) -> String {
    python_mongo(
        &format!(
            "import sys; from pymongo import MongoClient; c = MongoClient(sys.argv[1]); d = c[sys.argv[2]]; print(({expr}))"
        ),
        uri,
        db,
    )
    .trim()
    .to_string()
}

fn drop_db(uri: &str, db: &str) {
    query(uri, db, "c.drop_database(sys.argv[2])");
}

#[test]
fn a_full_dump_with_admin_system_collections_restores_and_users_only_when_asked() {
    let Some(uri) = service_env("BACKUPS_TEST_MONGO_URI") else {
        return;
    };
    let env = Env::new();
    let db = unique_name("fulldump");
    let user = unique_name("user");
    let archive = dump_archive(
        &env,
        "full",
        &db,
        &format!(
            "w('admin/system.version.bson', [{{'_id': 'featureCompatibilityVersion', 'version': '{user}'}}])\n\
             meta('admin/system.version.metadata.json', 'system.version')\n\
             w('admin/system.users.bson', [{{'_id': 'admin.{user}', 'user': '{user}', 'db': 'admin', 'roles': []}}])\n\
             meta('admin/system.users.metadata.json', 'system.users')\n\
             w(db + '/c.bson', [{{'_id': i}} for i in range(3)])\n\
             meta(db + '/c.metadata.json', 'c')"
        ),
    );
    let report = ok(&restore(&env, &uri, &archive, &[]));
    assert!(
        report.contains("Loaded 3 documents into 1 collections"),
        "{report}"
    );
    assert!(
        report.contains("admin.system.users was not restored")
            && report.contains("--restore-users-and-roles"),
        "{report}"
    );
    let version = format!("d.system.version.count_documents({{'version': '{user}'}})");
    let users = format!("d.system.users.count_documents({{'user': '{user}'}})");
    assert_eq!(
        query(&uri, "admin", &format!("{version}, {users}")),
        "(0, 0)"
    );
    assert_eq!(query(&uri, &db, "d.c.count_documents({})"), "3");

    // Asked for, users are written to admin.system.users (merged by _id);
    // SecantusDB refuses direct writes there: a clear error naming the
    // collection, with admin.system.version still untouched.
    let out = restore(&env, &uri, &archive, &["--restore-users-and-roles"]);
    assert_eq!(out.status.code(), Some(8));
    let err = failed(&out);
    assert!(
        err.contains("restoring admin.system.users") && err.contains("(Unauthorized)"),
        "{err}"
    );
    assert_eq!(
        query(&uri, "admin", &format!("{version}, {users}")),
        "(0, 0)"
    );
    drop_db(&uri, &db);
}

#[test]
fn transactions_in_the_oplog_are_expanded_and_applied() {
    let Some(uri) = service_env("BACKUPS_TEST_MONGO_URI") else {
        return;
    };
    let env = Env::new();
    let db = unique_name("txn");
    let archive = dump_archive(
        &env,
        "txn",
        &db,
        "ns = db + '.c'\n\
         lsid = {'id': ui(), 'uid': Binary(b'0' * 32, 0)}\n\
         w(db + '/c.bson', [{'_id': 0}])\n\
         meta(db + '/c.metadata.json', 'c')\n\
         w('oplog.bson', [\n\
           op('c', 'admin.$cmd', {'applyOps': [op('i', ns, {'_id': 1}, 10), op('i', ns, {'_id': 2}, 10)]}, 10),\n\
           op('c', 'admin.$cmd', {'applyOps': [op('i', ns, {'_id': 3}, 11)], 'partialTxn': True}, 11, lsid=lsid, txnNumber=Int64(1)),\n\
           op('c', 'admin.$cmd', {'applyOps': [op('u', ns, {'$v': 2, 'diff': {'i': {'x': 1}}}, 12, o2={'_id': 3}),\n\
                                               op('c', 'admin.$cmd', {'applyOps': [op('i', ns, {'_id': 4}, 12)]}, 12)]},\n\
              12, lsid=lsid, txnNumber=Int64(1)),\n\
           op('c', 'admin.$cmd', {'applyOps': [op('i', ns, {'_id': 99}, 13)], 'prepare': True}, 13, lsid=lsid, txnNumber=Int64(2)),\n\
           op('c', 'admin.$cmd', {'abortTransaction': 1}, 14, lsid=lsid, txnNumber=Int64(2)),\n\
           op('c', 'admin.$cmd', {'applyOps': [op('d', ns, {'_id': 0}, 15)], 'prepare': True}, 15, lsid=lsid, txnNumber=Int64(3)),\n\
           op('c', 'admin.$cmd', {'commitTransaction': 1, 'commitTimestamp': Timestamp(15, 2)}, 16, lsid=lsid, txnNumber=Int64(3)),\n\
         ])",
    );
    ok(&restore(&env, &uri, &archive, &[]));
    assert_eq!(
        query(
            &uri,
            &db,
            "sorted((x['_id'], x.get('x')) for x in d.c.find())"
        ),
        "[(1, None), (2, None), (3, 1), (4, None)]",
        "vectored inserts, a two-entry transaction with a nested applyOps, an aborted one, a prepared and committed one"
    );
    drop_db(&uri, &db);
}

#[test]
fn oplog_commands_are_applied_and_one_that_cannot_be_is_an_error() {
    let Some(uri) = service_env("BACKUPS_TEST_MONGO_URI") else {
        return;
    };
    let env = Env::new();
    let (db, other) = (unique_name("cmds"), unique_name("cmdsdrop"));
    let archive = dump_archive(
        &env,
        "cmds",
        &db,
        &format!(
            "cmd = db + '.$cmd'\n\
             w(db + '/c.bson', [{{'_id': i, 'a': i, 'b': i, 'x': i}} for i in range(3)])\n\
             meta(db + '/c.metadata.json', 'c', [idx({{'x': 1}}, 'x_1')])\n\
             w(db + '/gone.bson', [{{'_id': 1}}])\n\
             meta(db + '/gone.metadata.json', 'gone')\n\
             w(db + '/old.bson', [{{'_id': 1}}])\n\
             meta(db + '/old.metadata.json', 'old')\n\
             w('{other}/z.bson', [{{'_id': 1}}])\n\
             meta('{other}/z.metadata.json', 'z')\n\
             w('oplog.bson', [\n\
               op('n', '', {{'msg': 'periodic noop'}}, 20),\n\
               op('c', cmd, {{'createIndexes': 'c', 'v': 2, 'key': {{'a': 1}}, 'name': 'a_1'}}, 21),\n\
               op('c', cmd, {{'startIndexBuild': 'c', 'indexBuildUUID': ui(), 'indexes': [idx({{'b': 1}}, 'b_1')]}}, 22),\n\
               op('c', cmd, {{'commitIndexBuild': 'c', 'indexBuildUUID': ui(), 'indexes': [idx({{'b': 1}}, 'b_1')]}}, 23),\n\
               op('c', cmd, {{'dropIndexes': 'c', 'index': 'x_1'}}, 24),\n\
               op('c', cmd, {{'collMod': 'c', 'index': {{'name': 'b_1', 'hidden': True}}}}, 25),\n\
               op('c', cmd, {{'create': 'made'}}, 26),\n\
               op('i', db + '.made', {{'_id': 7}}, 27),\n\
               op('c', cmd, {{'drop': 'gone'}}, 28),\n\
               op('c', cmd, {{'renameCollection': db + '.old', 'to': db + '.renamed', 'stayTemp': False, 'dropTarget': False}}, 29),\n\
               op('c', '{other}.$cmd', {{'dropDatabase': 1}}, 30),\n\
             ])"
        ),
    );
    let report = ok(&restore(&env, &uri, &archive, &[]));
    assert!(!report.contains("warning"), "{report}");
    assert_eq!(
        query(
            &uri,
            &db,
            "sorted(d.list_collection_names()), sorted((i['name'], i.get('hidden', False)) for i in d.c.list_indexes()), d.made.count_documents({})"
        ),
        "(['c', 'made', 'renamed'], [('_id_', False), ('a_1', False), ('b_1', True)], 1)"
    );
    assert_eq!(query(&uri, &other, "d.list_collection_names()"), "[]");

    // A command mongorestore knows but that cannot be replayed here, and a
    // collMod the server refuses: errors, never warnings with exit 0.
    for (name, entry, says) in [
        (
            "capped",
            "op('c', db + '.$cmd', {'emptycapped': 'c'}, 40)",
            "emptycapped",
        ),
        (
            "unknown",
            "op('c', db + '.$cmd', {'frobnicate': 'c'}, 40)",
            "frobnicate",
        ),
        (
            "collmod",
            "op('c', db + '.$cmd', {'collMod': 'nosuch', 'validator': {'a': 1}}, 40)",
            "collMod",
        ),
    ] {
        let archive = dump_archive(
            &env,
            name,
            &db,
            &format!("w(db + '/c.bson', [{{'_id': 1}}])\nw('oplog.bson', [{entry}])"),
        );
        let out = restore(&env, &uri, &archive, &[]);
        assert_eq!(out.status.code(), Some(8), "{name}");
        let err = failed(&out);
        assert!(err.contains(says) && err.contains(&db), "{name}: {err}");
    }
    drop_db(&uri, &db);
    drop_db(&uri, &other);
}

#[test]
fn indexes_are_built_after_the_oplog_replay() {
    let Some(uri) = service_env("BACKUPS_TEST_MONGO_URI") else {
        return;
    };
    let env = Env::new();
    let db = unique_name("uniq");
    let archive = dump_archive(
        &env,
        "uniq",
        &db,
        "w(db + '/c.bson', [{'_id': 1, 'k': 1}, {'_id': 2, 'k': 1}])\n\
         meta(db + '/c.metadata.json', 'c', [idx({'k': 1}, 'k_1', unique=True)])\n\
         w('oplog.bson', [op('u', db + '.c', {'$v': 2, 'diff': {'u': {'k': 2}}}, 50, o2={'_id': 2})])",
    );
    let report = ok(&restore(&env, &uri, &archive, &[]));
    assert!(report.contains("built 1 indexes"), "{report}");
    assert_eq!(
        query(
            &uri,
            &db,
            "sorted(x['k'] for x in d.c.find()), [i.get('unique') for i in d.c.list_indexes() if i['name'] == 'k_1']"
        ),
        "([1, 2], [True])"
    );
    drop_db(&uri, &db);
}

#[test]
fn oplog_entries_on_config_local_and_admin_system_are_skipped() {
    let Some(uri) = service_env("BACKUPS_TEST_MONGO_URI") else {
        return;
    };
    let env = Env::new();
    let db = unique_name("sysns");
    let marker = unique_name("marker");
    let archive = dump_archive(
        &env,
        "sysns",
        &db,
        &format!(
            "w(db + '/c.bson', [])\n\
             meta(db + '/c.metadata.json', 'c')\n\
             w('oplog.bson', [\n\
               op('i', 'config.cache.{marker}', {{'_id': 1}}, 60),\n\
               op('i', 'config.system.sessions', {{'_id': {{'id': ui()}}, 'lastUse': 1}}, 61),\n\
               op('i', 'local.{marker}', {{'_id': 1}}, 62),\n\
               op('i', 'admin.system.users', {{'_id': 'admin.{marker}', 'user': '{marker}', 'db': 'admin'}}, 63),\n\
               op('c', 'config.$cmd', {{'create': '{marker}'}}, 64),\n\
               op('i', db + '.c', {{'_id': 1}}, 65),\n\
             ])"
        ),
    );
    let report = ok(&restore(&env, &uri, &archive, &[]));
    assert!(report.contains("replayed 1 oplog entries"), "{report}");
    assert_eq!(query(&uri, &db, "d.c.count_documents({})"), "1");
    assert_eq!(
        query(
            &uri,
            &db,
            &format!(
                "[n for n in c.config.list_collection_names() + c.local.list_collection_names() if '{marker}' in n], c.admin.system.users.count_documents({{'user': '{marker}'}})"
            )
        ),
        "([], 0)"
    );
    drop_db(&uri, &db);
}

#[test]
fn escaped_and_truncated_collection_names_load_and_unknown_entries_are_refused() {
    let Some(uri) = service_env("BACKUPS_TEST_MONGO_URI") else {
        return;
    };
    let env = Env::new();
    let db = unique_name("names");
    // Escaped it is 240 bytes: mongodump truncates the file name and keeps
    // the real name in the metadata.
    let long = "%".repeat(80);
    let truncated = format!("{}%24{}", &"%25".repeat(80)[..208], "x".repeat(27));
    let archive = dump_archive(
        &env,
        "names",
        &db,
        &format!(
            "w(db + '/caf%C3%A9s.bson', [{{'_id': 1}}])\n\
             meta(db + '/caf%C3%A9s.metadata.json', 'cafés')\n\
             w(db + '/a%2Fb%20c.bson', [{{'_id': 1}}, {{'_id': 2}}])\n\
             w(db + '/{truncated}.bson', [{{'_id': 1}}])\n\
             meta(db + '/{truncated}.metadata.json', '{long}')"
        ),
    );
    ok(&restore(&env, &uri, &archive, &[]));
    assert_eq!(
        query(
            &uri,
            &db,
            "sorted((n, d[n].count_documents({})) for n in d.list_collection_names())"
        ),
        format!("[('{long}', 1), ('a/b c', 2), ('cafés', 1)]")
    );
    drop_db(&uri, &db);

    for (name, rel, says) in [
        (
            "nested",
            "db + '/a/b.bson'",
            "a '/' in a collection name is written as %2F",
        ),
        ("stray", "db + '/notes.txt'", "not a dump file"),
        ("gzip", "db + '/c.bson.gz'", "--gzip"),
    ] {
        let archive = dump_archive(&env, name, &db, &format!("w({rel}, [{{'_id': 1}}])"));
        let out = restore(&env, &uri, &archive, &[]);
        assert_eq!(out.status.code(), Some(5), "{name}");
        let err = failed(&out);
        assert!(err.contains(says) && err.contains(&db), "{name}: {err}");
    }
}

#[test]
fn collections_named_with_slashes_and_percents_round_trip() {
    let Some(uri) = service_env("BACKUPS_TEST_MONGO_URI") else {
        return;
    };
    let env = Env::new();
    let tree = sample_tree(env.path());
    let (src, dst) = (unique_name("slashsrc"), unique_name("slashdst"));
    python_mongo(
        "import sys; from pymongo import MongoClient; d = MongoClient(sys.argv[1])[sys.argv[2]]; \
         d['a/b'].insert_many([{'_id': 1}, {'_id': 2}]); d['p%q'].insert_one({'_id': 1}); d['t'].insert_one({'_id': 1})",
        &uri,
        &src,
    );
    let id = ok(&env.run_with(
        &[
            "create",
            "--path",
            tree.to_str().unwrap(),
            "--include-db",
            &src,
        ],
        &[("BACKUPS_MONGO_URI", &uri)],
    ))
    .lines()
    .next()
    .unwrap()
    .trim()
    .to_string();
    std::fs::write(env.path().join("uri"), format!("{uri}\n")).unwrap();
    let report = ok(&env.run(&[
        "restore",
        &id,
        "--target",
        "restored",
        "--mongo-uri-file",
        "uri",
        "--db-rename",
        &format!("{src}={dst}"),
    ]));
    assert!(
        report.contains("Loaded 4 documents into 3 collections"),
        "{report}"
    );
    assert_eq!(
        query(
            &uri,
            &dst,
            "sorted((n, d[n].count_documents({})) for n in d.list_collection_names())"
        ),
        "[('a/b', 2), ('p%q', 1), ('t', 1)]"
    );
    drop_db(&uri, &src);
    drop_db(&uri, &dst);
}

#[test]
fn legacy_index_specs_are_refused_by_name_or_converted() {
    let Some(uri) = service_env("BACKUPS_TEST_MONGO_URI") else {
        return;
    };
    let env = Env::new();
    let db = unique_name("legacy");
    let archive = dump_archive(
        &env,
        "legacy",
        &db,
        "w(db + '/c.bson', [{'_id': 1, 'a': 1, 'b': 2, 'c': 3}])\n\
         meta(db + '/c.metadata.json', 'c', [idx({'a': True}, 'a_true'), idx({'b': ''}, 'b_empty', safe=True), idx({'c': 0}, 'c_zero')])\n\
         w('oplog.bson', [op('c', db + '.$cmd', {'createIndexes': 'c', 'v': 2, 'key': {'a': 1, 'b': False}, 'name': 'ab_legacy'}, 70)])",
    );
    let out = restore(&env, &uri, &archive, &[]);
    assert_eq!(out.status.code(), Some(8));
    let err = failed(&out);
    assert!(
        err.contains("index a_true of") && err.contains("--convert-legacy-indexes"),
        "{err}"
    );
    ok(&restore(
        &env,
        &uri,
        &archive,
        &["--convert-legacy-indexes"],
    ));
    assert_eq!(
        query(
            &uri,
            &db,
            "sorted((i['name'], dict(i['key'])) for i in d.c.list_indexes())"
        ),
        "[('_id_', {'_id': 1}), ('a_true', {'a': 1}), ('ab_legacy', {'a': 1, 'b': 1}), ('b_empty', {'b': 1}), ('c_zero', {'c': 1})]"
    );
    drop_db(&uri, &db);
}

#[test]
fn oplog_limit_replays_only_the_entries_before_it() {
    let Some(uri) = service_env("BACKUPS_TEST_MONGO_URI") else {
        return;
    };
    let env = Env::new();
    let db = unique_name("limit");
    let archive = dump_archive(
        &env,
        "limit",
        &db,
        "w(db + '/c.bson', [])\n\
         w('oplog.bson', [op('i', db + '.c', {'_id': 1}, 100), op('i', db + '.c', {'_id': 2}, 200), op('i', db + '.c', {'_id': 3}, 200, 2)])",
    );
    for (limit, ids) in [("200", "[1]"), ("200:2", "[1, 2]"), ("200:3", "[1, 2, 3]")] {
        ok(&restore(&env, &uri, &archive, &["--oplog-limit", limit]));
        assert_eq!(
            query(&uri, &db, "sorted(x['_id'] for x in d.c.find())"),
            ids,
            "{limit}"
        );
    }
    let out = restore(&env, &uri, &archive, &["--oplog-limit", "soon"]);
    assert_eq!(out.status.code(), Some(2));
    drop_db(&uri, &db);
}
