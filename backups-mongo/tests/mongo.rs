//! Dump and load against a real MongoDB-wire server (SecantusDB, started by
//! `scripts/services`). Each test uses its own database names.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use backups_core::conformance::request;
use backups_core::download::DownloadTo;
use backups_core::test_util::{sample_tree, service_env, unique_name};
use backups_core::{
    BackupId, Backups, Error, NoProgress, RestoreRequest, RestoreSource, Storage, StoreBackups,
};
use backups_mongo::{DumpOptions, LoadOptions, MongoDumper, MongoLoader};
use futures::TryStreamExt;
use mongodb::bson::spec::BinarySubtype;
use mongodb::bson::{
    Binary, Bson, DateTime, Decimal128, Document, JavaScriptCodeWithScope, RawDocumentBuf, Regex,
    Timestamp, doc, oid::ObjectId,
};
use mongodb::{Client, Database, IndexModel};

fn mongo_uri() -> Option<String> {
    service_env("BACKUPS_TEST_MONGO_URI")
}

fn memory() -> StoreBackups {
    StoreBackups::new(Storage::from_url("memory://", Vec::<(String, String)>::new()).unwrap())
}

/// One document holding every BSON type.
fn every_type(i: i32) -> Document {
    doc! {
        "_id": i,
        "double": 1.5, "neg_zero": -0.0, "nan": f64::NAN, "inf": f64::INFINITY,
        "string": "héllo wörld ✓ 日本", "empty": "",
        "doc": {"nested": {"deeper": [1, [2, [3, {"x": "y"}]]]}},
        "array": [1, "two", 3.0, null, {"k": "v"}, []],
        "bin_generic": Binary { subtype: BinarySubtype::Generic, bytes: vec![0, 1, 2, 255] },
        "bin_function": Binary { subtype: BinarySubtype::Function, bytes: vec![9] },
        "bin_uuid": Binary { subtype: BinarySubtype::Uuid, bytes: vec![7; 16] },
        "bin_md5": Binary { subtype: BinarySubtype::Md5, bytes: vec![5; 16] },
        "bin_user": Binary { subtype: BinarySubtype::UserDefined(0x80), bytes: vec![1, 2, 3] },
        "oid": ObjectId::from_bytes([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]),
        "bool": true,
        "date": DateTime::from_millis(1_700_000_000_123),
        "date_before_1970": DateTime::from_millis(-1_234_567_890_123),
        "null": null,
        "regex": Regex { pattern: "^a.*b$".into(), options: "im".into() },
        "code": Bson::JavaScriptCode("function() { return 1; }".into()),
        "code_w_scope": Bson::JavaScriptCodeWithScope(JavaScriptCodeWithScope { code: "x".into(), scope: doc! {"x": 1} }),
        "int32": 42i32, "int64": 42i64, "int64_big": i64::MAX,
        "timestamp": Timestamp { time: 1_600_000_000, increment: 7 },
        "decimal": Decimal128::from_bytes([1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x3e, 0x30]),
        "min": Bson::MinKey, "max": Bson::MaxKey,
        "unicode_ключ": "значение",
        "dotted.key": "dots in a key",
        "$dollar_key_nested": {"inner": 1},
    }
}

async fn seed(db: &Database) {
    let types = db.collection::<Document>("types");
    types.insert_many((0..20).map(every_type)).await.unwrap();
    // A document near the 16 MiB limit.
    types
        .insert_one(doc! {"_id": 1000, "blob": Binary { subtype: BinarySubtype::Generic, bytes: vec![0xab; 16 * 1024 * 1024 - 200] }})
        .await
        .unwrap();
    types
        .create_indexes([
            IndexModel::builder()
                .keys(doc! {"string": 1})
                .options(
                    mongodb::options::IndexOptions::builder()
                        .unique(false)
                        .name("by_string".to_string())
                        .build(),
                )
                .build(),
            IndexModel::builder()
                .keys(doc! {"int32": 1, "date": -1})
                .options(
                    mongodb::options::IndexOptions::builder()
                        .name("compound".to_string())
                        .build(),
                )
                .build(),
        ])
        .await
        .unwrap();
    let users = db.collection::<Document>("users");
    // In the future, so the TTL index below deletes nothing during the test.
    let future = DateTime::now().timestamp_millis() + 30 * 86_400_000;
    users.insert_many((0..50).map(|i| doc! {"_id": i, "email": format!("u{i}@example.com"), "age": i, "created": DateTime::from_millis(future + i64::from(i))})).await.unwrap();
    db.run_command(doc! {"createIndexes": "users", "indexes": [
        {"key": {"email": 1}, "name": "email_unique", "unique": true},
        {"key": {"created": 1}, "name": "ttl", "expireAfterSeconds": 3600i64},
        {"key": {"age": 1}, "name": "adults", "partialFilterExpression": {"age": {"$gte": 18i64}}},
    ]})
    .await
    .unwrap();
    db.run_command(doc! {"create": "capped", "capped": true, "size": 65536i64, "max": 100i64})
        .await
        .unwrap();
    db.collection::<Document>("capped")
        .insert_many((0..10).map(|i| doc! {"_id": i, "n": i}))
        .await
        .unwrap();
    db.run_command(doc! {"create": "validated", "validator": {"$jsonSchema": {"bsonType": "object", "required": ["name"]}}, "validationLevel": "strict"}).await.unwrap();
    db.collection::<Document>("validated")
        .insert_one(doc! {"_id": 1, "name": "ok"})
        .await
        .unwrap();
    db.run_command(doc! {"create": "empty"}).await.unwrap();
    let large = db.collection::<Document>("large");
    for chunk in 0..4 {
        large
            .insert_many((0..5000).map(|i| doc! {"_id": chunk * 5000 + i, "payload": "x".repeat(200), "n": chunk * 5000 + i}))
            .await
            .unwrap();
    }
    db.run_command(doc! {"create": "adults_view", "viewOn": "users", "pipeline": [{"$match": {"age": {"$gte": 18}}}]}).await.unwrap();
}

/// Every document of every collection, as raw bytes in `_id` order.
async fn contents(db: &Database) -> BTreeMap<String, Vec<Vec<u8>>> {
    let mut out = BTreeMap::new();
    for name in db.list_collection_names().await.unwrap() {
        let specs: Vec<Document> = db
            .run_cursor_command(doc! {"listCollections": 1, "filter": {"name": &name}})
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap();
        if specs[0].get_str("type") == Ok("view") {
            continue;
        }
        let docs: Vec<RawDocumentBuf> = db
            .collection::<RawDocumentBuf>(&name)
            .find(doc! {})
            .sort(doc! {"_id": 1})
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap();
        out.insert(
            name,
            docs.into_iter().map(|d| d.as_bytes().to_vec()).collect(),
        );
    }
    out
}

/// listCollections options and index specs, without uuids and namespaces.
async fn shape(db: &Database) -> BTreeMap<String, (Document, Vec<Document>)> {
    let mut out = BTreeMap::new();
    let specs: Vec<Document> = db
        .run_cursor_command(doc! {"listCollections": 1})
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    for spec in specs {
        let name = spec.get_str("name").unwrap().to_string();
        let mut indexes = Vec::new();
        if spec.get_str("type") != Ok("view") {
            let mut idx: Vec<Document> = db
                .run_cursor_command(doc! {"listIndexes": &name})
                .await
                .unwrap()
                .try_collect()
                .await
                .unwrap();
            for i in &mut idx {
                i.remove("ns");
            }
            idx.sort_by(|a, b| a.get_str("name").unwrap().cmp(b.get_str("name").unwrap()));
            indexes = idx;
        }
        out.insert(
            name,
            (
                spec.get_document("options").cloned().unwrap_or_default(),
                indexes,
            ),
        );
    }
    out
}

/// A dumper of database `db` only.
async fn dumper_of(uri: &str, db: &str) -> MongoDumper {
    MongoDumper::connect(
        uri,
        DumpOptions {
            include_dbs: vec![db.to_string()],
            ..Default::default()
        },
    )
    .await
    .unwrap()
}

/// A loader that loads database `from` of a dump into `to`.
async fn loader_into(uri: &str, from: &str, to: &str) -> MongoLoader {
    MongoLoader::connect(
        uri,
        LoadOptions {
            db_rename: vec![(from.to_string(), to.to_string())],
            ..Default::default()
        },
    )
    .await
    .unwrap()
}

async fn restore_db(
    backups: &StoreBackups,
    id: &BackupId,
    loader: MongoLoader,
    target: &Path,
) -> backups_core::Result<backups_core::RestoreReport> {
    backups
        .restore(
            RestoreRequest::new(RestoreSource::Id(id.clone()), target.to_path_buf())
                .with_database(Arc::new(loader)),
            Arc::new(NoProgress),
        )
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_type_index_and_option_round_trips() {
    let Some(uri) = mongo_uri() else { return };
    let client = Client::with_uri_str(&uri).await.unwrap();
    let src = unique_name("src");
    let dst = unique_name("dst");
    seed(&client.database(&src)).await;

    let tmp = tempfile::tempdir().unwrap();
    let tree = sample_tree(tmp.path());
    let backups = memory();
    let mut req = request(vec![tree.clone()]);
    let dumper = dumper_of(&uri, &src).await;
    req = req.with_database(Arc::new(dumper));
    let meta = backups.create(req, Arc::new(NoProgress)).await.unwrap();
    assert_eq!(meta.databases[&format!("{src}.types")], 21);
    assert_eq!(meta.databases[&format!("{src}.large")], 20_000);
    assert_eq!(meta.databases[&format!("{src}.empty")], 0);

    let loader = loader_into(&uri, &src, &dst).await;
    let report = restore_db(
        &backups,
        meta.id.as_ref().unwrap(),
        loader,
        &tmp.path().join("t"),
    )
    .await
    .unwrap();
    let loaded = report.database.unwrap();
    assert_eq!(loaded.collections[&format!("{dst}.large")], 20_000);
    assert!(loaded.indexes >= 5, "{loaded:?}");

    let (a, b) = (client.database(&src), client.database(&dst));
    let (ca, cb) = (contents(&a).await, contents(&b).await);
    assert_eq!(ca.keys().collect::<Vec<_>>(), cb.keys().collect::<Vec<_>>());
    for (name, docs) in &ca {
        assert_eq!(docs.len(), cb[name].len(), "{name}: document count");
        assert!(docs == &cb[name], "{name}: documents differ byte for byte");
    }
    let (sa, sb) = (shape(&a).await, shape(&b).await);
    assert_eq!(sa, sb, "options, validators, views and index specs");
    assert!(
        sa["users"]
            .1
            .iter()
            .any(|i| i.get_str("name") == Ok("ttl") && i.contains_key("expireAfterSeconds"))
    );
    // Files came back too.
    let rel = tree.strip_prefix("/").unwrap();
    backups_core::conformance::assert_same_tree(&tree, &tmp.path().join("t").join(rel));
    a.drop().await.unwrap();
    b.drop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_bson_decodes_every_dump_file() {
    let Some(uri) = mongo_uri() else { return };
    let Ok(python) = std::env::var("BACKUPS_TEST_PYTHON") else {
        assert!(
            std::env::var("CI").is_err(),
            "BACKUPS_TEST_PYTHON unset under CI"
        );
        return;
    };
    let client = Client::with_uri_str(&uri).await.unwrap();
    let src = unique_name("py");
    seed(&client.database(&src)).await;
    let tmp = tempfile::tempdir().unwrap();
    let backups = memory();
    let mut req = request(vec![sample_tree(tmp.path())]);
    req = req.with_database(Arc::new(dumper_of(&uri, &src).await));
    let meta = backups.create(req, Arc::new(NoProgress)).await.unwrap();
    let out = tmp.path().join("b.tar.gz");
    backups
        .download(
            meta.id.as_ref().unwrap(),
            DownloadTo::File(&out),
            Arc::new(NoProgress),
        )
        .await
        .unwrap();
    let script = r#"
import bson, glob, json, subprocess, sys, tarfile, os
d = sys.argv[1]
tarfile.open(sys.argv[2]).extractall(d)
counts = {}
for f in sorted(glob.glob(os.path.join(d, "juju-backup/dump/*/*.bson"))):
    db, name = f.split("/")[-2], os.path.basename(f)[:-5]
    counts[db + "." + name] = len(bson.decode_all(open(f, "rb").read()))
print(json.dumps(counts))
"#;
    let res = std::process::Command::new(python)
        .args([
            "-c",
            script,
            tmp.path().join("x").to_str().unwrap(),
            out.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        res.status.success(),
        "{}",
        String::from_utf8_lossy(&res.stderr)
    );
    let counts: BTreeMap<String, u64> = serde_json::from_slice(&res.stdout).unwrap();
    let ours: BTreeMap<String, u64> = meta
        .databases
        .iter()
        .filter(|(k, _)| k.starts_with(&src))
        .map(|(k, v)| (k.clone(), *v))
        .collect();
    assert_eq!(counts, ours, "pymongo's bson decodes the same documents");
    client.database(&src).drop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn juju_fixture_dumps_load_and_read_back() {
    let Some(uri) = mongo_uri() else { return };
    let client = Client::with_uri_str(&uri).await.unwrap();
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures/juju");
    for (file, expect) in [
        (
            "valid-backup.tar.gz",
            vec![("clouds", 2u64), ("machines", 3), ("models", 2)],
        ),
        (
            "valid-backup-ver-1.tar.gz",
            vec![("clouds", 2), ("models", 2)],
        ),
        ("valid-backup-ver-2.tar.gz", vec![("models", 2)]),
    ] {
        let dst = unique_name("juju");
        let tmp = tempfile::tempdir().unwrap();
        let loader = MongoLoader::connect(
            &uri,
            LoadOptions {
                db_rename: vec![("juju".into(), dst.clone())],
                ns_exclude: vec!["logs.*".into()],
                ..Default::default()
            },
        )
        .await
        .unwrap();
        let report = memory()
            .restore(
                RestoreRequest::new(
                    RestoreSource::File(fixtures.join(file)),
                    tmp.path().join("t"),
                )
                .with_database(Arc::new(loader)),
                Arc::new(NoProgress),
            )
            .await
            .unwrap();
        let loaded = report.database.unwrap();
        let db = client.database(&dst);
        for (coll, n) in &expect {
            assert_eq!(
                loaded.collections[&format!("{dst}.{coll}")],
                *n,
                "{file} {coll}"
            );
            assert_eq!(
                db.collection::<Document>(coll)
                    .count_documents(doc! {})
                    .await
                    .unwrap(),
                *n,
                "{file} {coll}"
            );
        }
        // The documents read back equal the archive's bytes.
        let extracted = tmp.path().join("x");
        std::fs::create_dir(&extracted).unwrap();
        let ok = std::process::Command::new("tar")
            .args([
                "xzf",
                fixtures.join(file).to_str().unwrap(),
                "-C",
                extracted.to_str().unwrap(),
            ])
            .status()
            .unwrap();
        assert!(ok.success());
        for (coll, _) in &expect {
            let raw = std::fs::read(extracted.join(format!("juju-backup/dump/juju/{coll}.bson")))
                .unwrap();
            let mut want = Vec::new();
            let mut at = 0;
            while at < raw.len() {
                let len = i32::from_le_bytes(raw[at..at + 4].try_into().unwrap()) as usize;
                want.push(raw[at..at + len].to_vec());
                at += len;
            }
            let mut got: Vec<Vec<u8>> = db
                .collection::<RawDocumentBuf>(coll)
                .find(doc! {})
                .await
                .unwrap()
                .try_collect::<Vec<_>>()
                .await
                .unwrap()
                .into_iter()
                .map(|d| d.as_bytes().to_vec())
                .collect();
            want.sort();
            got.sort();
            assert!(want == got, "{file} {coll}: documents differ");
        }
        db.drop().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collections_dumped_in_parallel_load_back_with_several_insertion_workers() {
    let Some(uri) = mongo_uri() else { return };
    let client = Client::with_uri_str(&uri).await.unwrap();
    let src = unique_name("par");
    let dst = unique_name("pardst");
    let db = client.database(&src);
    // Seven collections of different sizes, more than the two dumped at a
    // time; the largest spans several 1 MiB insert batches.
    for c in 0..7i64 {
        let n = (c + 1) * 600;
        db.collection::<Document>(&format!("c{c}"))
            .insert_many((0..n).map(|i| doc! {"_id": i, "c": c, "pad": "x".repeat(500)}))
            .await
            .unwrap();
    }
    let backups = memory();
    let tmp = tempfile::tempdir().unwrap();
    let mut req = request(vec![sample_tree(tmp.path())]);
    let dumper = MongoDumper::connect(
        &uri,
        DumpOptions {
            include_dbs: vec![src.clone()],
            parallel_collections: 2,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    req = req.with_database(Arc::new(dumper));
    let meta = backups.create(req, Arc::new(NoProgress)).await.unwrap();
    for c in 0..7u64 {
        assert_eq!(meta.databases[&format!("{src}.c{c}")], (c + 1) * 600);
    }
    let loader = MongoLoader::connect(
        &uri,
        LoadOptions {
            db_rename: vec![(src.clone(), dst.clone())],
            parallel_collections: 2,
            insertion_workers: 3,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    restore_db(
        &backups,
        meta.id.as_ref().unwrap(),
        loader,
        &tmp.path().join("t"),
    )
    .await
    .unwrap();
    let r = client.database(&dst);
    let (ca, cb) = (contents(&db).await, contents(&r).await);
    assert_eq!(ca.keys().collect::<Vec<_>>(), cb.keys().collect::<Vec<_>>());
    for (name, docs) in &ca {
        assert!(docs == &cb[name], "{name}: documents differ");
    }
    db.drop().await.unwrap();
    r.drop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_during_the_dump_restore_to_one_instant() {
    let Some(uri) = mongo_uri() else { return };
    let client = Client::with_uri_str(&uri).await.unwrap();
    let src = unique_name("live");
    let dst = unique_name("livedst");
    let db = client.database(&src);
    // "a_counter" is dumped first, then the large "m_filler" (many batches,
    // while the writer goes on), then "z_items": without the oplog replay
    // the counter would be behind the items the dump saw last.
    db.collection::<Document>("a_counter")
        .insert_one(doc! {"_id": "n", "n": -1})
        .await
        .unwrap();
    for chunk in 0..4 {
        db.collection::<Document>("m_filler")
            .insert_many((0..5000).map(|i| doc! {"_id": chunk * 5000 + i, "pad": "p".repeat(300)}))
            .await
            .unwrap();
    }
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let db = db.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut i = 0i64;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                db.collection::<Document>("z_items")
                    .insert_one(doc! {"_id": i, "pad": "w"})
                    .await
                    .unwrap();
                db.collection::<Document>("a_counter")
                    .update_one(doc! {"_id": "n"}, doc! {"$set": {"n": i}})
                    .await
                    .unwrap();
                i += 1;
            }
            i
        })
    };
    // Let the writer get going, then dump while it writes.
    while db
        .collection::<Document>("a_counter")
        .find_one(doc! {})
        .await
        .unwrap()
        .unwrap()
        .get_i64("n")
        .unwrap_or(-1)
        < 20
    {
        tokio::task::yield_now().await;
    }
    let backups = memory();
    let tmp = tempfile::tempdir().unwrap();
    let mut req = request(vec![sample_tree(tmp.path())]);
    req = req.with_database(Arc::new(dumper_of(&uri, &src).await));
    let meta = backups.create(req, Arc::new(NoProgress)).await.unwrap();
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let written = writer.await.unwrap();
    assert!(
        meta.databases.keys().any(|k| k.starts_with("oplog")),
        "{:?}",
        meta.databases
    );

    let loader = loader_into(&uri, &src, &dst).await;
    let report = restore_db(
        &backups,
        meta.id.as_ref().unwrap(),
        loader,
        &tmp.path().join("t"),
    )
    .await
    .unwrap();
    assert!(report.database.unwrap().oplog_entries > 0);
    let r = client.database(&dst);
    let n = r
        .collection::<Document>("a_counter")
        .find_one(doc! {})
        .await
        .unwrap()
        .unwrap()
        .get_i64("n")
        .unwrap();
    let max: Vec<Document> = r
        .collection::<Document>("z_items")
        .find(doc! {"_id": {"$gte": 0}})
        .sort(doc! {"_id": -1})
        .limit(1)
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    let max_id = max[0].get_i64("_id").unwrap();
    let count = r
        .collection::<Document>("z_items")
        .count_documents(doc! {"_id": {"$gte": 0}})
        .await
        .unwrap() as i64;
    assert_eq!(count, max_id + 1, "no gaps among the written items");
    assert!(
        n == max_id || n == max_id - 1,
        "counter {n} and items up to {max_id} are one instant (writer wrote {written})"
    );
    db.drop().await.unwrap();
    r.drop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_server_and_duplicate_keys_are_clear_errors() {
    let Some(uri) = mongo_uri() else { return };
    let err = match MongoDumper::connect(
        "mongodb://backup:hunter2@127.0.0.1:1/?serverSelectionTimeoutMS=500",
        DumpOptions::default(),
    )
    .await
    {
        Err(e) => e,
        Ok(_) => panic!("connected to nothing"),
    };
    let text = err.to_string();
    assert!(
        text.contains("cannot reach MongoDB") && text.contains("127.0.0.1:1"),
        "{text}"
    );
    assert!(!text.contains("hunter2"), "password leaked: {text}");

    // A dump whose .bson holds the same _id twice fails the load, naming the namespace.
    let dup = mongodb::bson::to_vec(&doc! {"_id": 1, "x": 1}).unwrap();
    let bson = [dup.clone(), dup].concat();
    let metadata = br#"{"ID":"","FormatVersion":1,"Started":"2021-01-01T00:00:00Z","ModelUUID":"0b6e3c52-8f1a-4c1e-9d3a-2f6c9a7e5b10"}"#;
    let mut w = backups_core::internals::ArchiveWriter::new(Vec::new(), 6, 0).unwrap();
    w.add_file("metadata.json", metadata.len() as u64, 0o600, &metadata[..])
        .unwrap();
    let root = vec![0u8; 1024];
    w.add_file("root.tar", root.len() as u64, 0o600, &root[..])
        .unwrap();
    w.add_file("dump/d/c.bson", bson.len() as u64, 0o600, &bson[..])
        .unwrap();
    let (bytes, _) = w.finish().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("dup.tar.gz"), bytes).unwrap();
    let dst = unique_name("dup");
    let loader = loader_into(&uri, "d", &dst).await;
    let err = memory()
        .restore(
            RestoreRequest::new(
                RestoreSource::File(tmp.path().join("dup.tar.gz")),
                tmp.path().join("t"),
            )
            .with_database(Arc::new(loader)),
            Arc::new(NoProgress),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Database { .. }), "{err}");
    let text = err.to_string();
    assert!(
        text.contains(&format!("{dst}.c")) && text.to_lowercase().contains("duplicate"),
        "{text}"
    );
    Client::with_uri_str(&uri)
        .await
        .unwrap()
        .database(&dst)
        .drop()
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authentication_failure_is_clear_and_hides_the_password() {
    if mongo_uri().is_none() {
        return;
    }
    let port = std::env::var("BACKUPS_TEST_MONGO_AUTH_PORT")
        .expect("BACKUPS_TEST_MONGO_AUTH_PORT (scripts/services)");
    let bad = format!(
        "mongodb://backup:wrong-pw@127.0.0.1:{port}/?directConnection=true&authSource=admin"
    );
    let err = match MongoDumper::connect(&bad, DumpOptions::default()).await {
        Err(e) => e,
        Ok(_) => panic!("a wrong password was accepted"),
    };
    let text = err.to_string();
    assert!(text.contains("authentication failed"), "{text}");
    assert!(
        text.contains("backup:***@") && !text.contains("wrong-pw"),
        "{text}"
    );
    let good = format!(
        "mongodb://backup:backup-pw@127.0.0.1:{port}/?directConnection=true&authSource=admin"
    );
    MongoDumper::connect(&good, DumpOptions::default())
        .await
        .unwrap();
}
