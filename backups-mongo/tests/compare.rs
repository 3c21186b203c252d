//! A dump compared with the live database it came from, through
//! `StoreBackups::diff`, against a real MongoDB-wire server (SecantusDB,
//! started by `scripts/services`), with sort chunks so small that both
//! sides go through the external merge sort's runs on disk.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use backups_core::conformance::request;
use backups_core::database::CollectionDiff;
use backups_core::test_util::{sample_tree, service_env, unique_name};
use backups_core::{Backups, DiffRequest, NoProgress, RestoreSource, Storage, StoreBackups};
use backups_mongo::{CompareOptions, DumpOptions, MongoComparer, MongoDumper};
use mongodb::bson::spec::BinarySubtype;
use mongodb::bson::{Binary, Bson, DateTime, Document, doc, oid::ObjectId};
use mongodb::{Client, IndexModel};

/// A document of many BSON types, `_id`s of several types too.
fn document(i: i32) -> Document {
    let id = match i % 4 {
        0 => Bson::Int32(i),
        1 => Bson::String(format!("s{i}")),
        2 => {
            let mut oid = [7u8; 12];
            oid[8..].copy_from_slice(&i.to_be_bytes());
            Bson::ObjectId(ObjectId::from_bytes(oid))
        }
        _ => Bson::Document(doc! {"k": i, "n": "compound"}),
    };
    doc! {
        "_id": id,
        "double": 1.5, "string": "héllo ✓", "array": [1, "two", {"k": "v"}],
        "bin": Binary { subtype: BinarySubtype::Generic, bytes: vec![0, 1, 255] },
        "date": DateTime::from_millis(1_700_000_000_123), "null": null,
        "int64": i64::from(i) * 1_000_000_007, "nested": {"deep": [[i]]},
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dump_compares_with_the_live_database_through_runs_on_disk() {
    let Some(uri) = service_env("BACKUPS_TEST_MONGO_URI") else {
        return;
    };
    let name = unique_name("cmp");
    let client = Client::with_uri_str(&uri).await.unwrap();
    let db = client.database(&name);
    let coll = db.collection::<Document>("things");
    coll.insert_many((0..400).map(document)).await.unwrap();
    coll.create_index(IndexModel::builder().keys(doc! {"string": 1}).build())
        .await
        .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let tree = sample_tree(dir.path());
    let backups =
        StoreBackups::new(Storage::from_url("memory://", Vec::<(String, String)>::new()).unwrap());
    let dumper = MongoDumper::connect(
        &uri,
        DumpOptions {
            include_dbs: vec![name.clone()],
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let meta = backups
        .create(
            request(vec![tree.clone()]).with_database(Arc::new(dumper)),
            Arc::new(NoProgress),
        )
        .await
        .unwrap();
    let id = meta.id.unwrap();

    let diff = |chunk: usize| {
        let (backups, uri, id) = (&backups, &uri, &id);
        async move {
            let comparer = MongoComparer::connect(uri, CompareOptions::default())
                .await
                .unwrap()
                .with_chunk_bytes(chunk);
            backups
                .diff(
                    DiffRequest::new(RestoreSource::Id(id.clone()), "/")
                        .with_database(Arc::new(comparer)),
                    Arc::new(NoProgress),
                )
                .await
                .unwrap()
        }
    };
    // Unchanged: the dumped bytes are the live bytes, every type of _id
    // matched.
    let same = diff(512).await;
    assert!(!same.has_differences(), "{same:?}");
    let mut expected = CollectionDiff::new(format!("{name}.things"));
    expected.backup_documents = 400;
    expected.live_documents = 400;
    assert_eq!(same.collections, vec![expected.clone()]);

    // 3 deleted, 5 added, 7 changed (one by a field's type only), an index
    // dropped and one added.
    coll.delete_many(doc! {"_id": {"$in": [0, 4, 8]}})
        .await
        .unwrap();
    coll.insert_many((1000..1005).map(document)).await.unwrap();
    for i in [12, 16, 20, 24, 28, 32] {
        coll.update_one(doc! {"_id": i}, doc! {"$set": {"string": "changed"}})
            .await
            .unwrap();
    }
    coll.update_one(doc! {"_id": 36}, doc! {"$set": {"double": 1_i32}})
        .await
        .unwrap();
    coll.drop_index("string_1").await.unwrap();
    coll.create_index(IndexModel::builder().keys(doc! {"double": -1}).build())
        .await
        .unwrap();
    let changed = diff(512).await;
    expected.live_documents = 402;
    expected.only_in_backup = 3;
    expected.only_live = 5;
    expected.different = 7;
    expected.indexes_only_in_backup = vec!["string_1".into()];
    expected.indexes_only_live = vec!["double_-1".into()];
    assert_eq!(changed.collections, vec![expected.clone()]);
    // The same answer whether the records fit in memory or not.
    assert_eq!(diff(64 * 1024 * 1024).await.collections, vec![expected]);
    db.drop().await.unwrap();
}
