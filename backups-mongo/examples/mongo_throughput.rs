//! Dump and load throughput beside a raw cursor drain (the floor for dump).
//!
//! ```sh
//! . .services/env   # after scripts/services start
//! cargo run --release -p backups-mongo --example mongo_throughput -- "$BACKUPS_TEST_MONGO_URI" 200000
//! ```
//!
//! Loads N generated documents (about 1 KiB each, mixed types) into a fresh
//! database, then times: a raw cursor drain of every collection; `create`
//! of a database-only backup into a memory store (dump + gzip + checksums);
//! and `restore` of it into another database (load + indexes). Prints
//! documents/s and MB/s for each.
#![allow(clippy::unwrap_used, missing_docs)]

use std::sync::Arc;
use std::time::Instant;

use backups_core::{
    Backups, CreateRequest, Identity, NoProgress, RestoreRequest, RestoreSource, Storage,
    StoreBackups,
};
use backups_mongo::{DumpOptions, LoadOptions, MongoDumper, MongoLoader};
use mongodb::Client;
use mongodb::bson::{Binary, DateTime, Document, RawDocumentBuf, doc, spec::BinarySubtype};

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let uri = args
        .get(1)
        .cloned()
        .expect("usage: mongo_throughput URI [N]");
    let n: i64 = args.get(2).map(|s| s.parse().unwrap()).unwrap_or(100_000);
    let client = Client::with_uri_str(&uri).await.unwrap();
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let (src, dst) = (format!("bench_src_{stamp}"), format!("bench_dst_{stamp}"));
    let db = client.database(&src);

    let t = Instant::now();
    for coll in ["machines", "units"] {
        let c = db.collection::<Document>(coll);
        let mut i = 0;
        while i < n / 2 {
            let batch: Vec<Document> = (i..(i + 5000).min(n / 2))
                .map(|j| doc! {
                    "_id": j, "name": format!("{coll}-{j}"), "life": "alive",
                    "addresses": ["10.0.0.1", "10.0.0.2"], "created": DateTime::from_millis(j * 1000),
                    "blob": Binary { subtype: BinarySubtype::Generic, bytes: vec![(j % 251) as u8; 800] },
                })
                .collect();
            c.insert_many(batch).await.unwrap();
            i += 5000;
        }
        c.create_index(
            mongodb::IndexModel::builder()
                .keys(doc! {"name": 1})
                .build(),
        )
        .await
        .unwrap();
    }
    println!(
        "loaded {n} documents into {src} in {:.1}s",
        t.elapsed().as_secs_f64()
    );

    // Raw drain: the floor.
    let t = Instant::now();
    let (mut docs, mut bytes) = (0u64, 0u64);
    for coll in ["machines", "units"] {
        let mut cursor = db
            .collection::<RawDocumentBuf>(coll)
            .find(doc! {})
            .await
            .unwrap();
        while cursor.advance().await.unwrap() {
            docs += 1;
            bytes += cursor.current().as_bytes().len() as u64;
        }
    }
    let drain = t.elapsed().as_secs_f64();
    let mb = bytes as f64 / 1e6;
    println!("documents: {docs}, BSON bytes: {bytes} ({mb:.1} MB)");
    println!(
        "raw cursor drain: {drain:.2}s  {:.0} docs/s  {:.1} MB/s",
        docs as f64 / drain,
        mb / drain
    );

    let backups =
        StoreBackups::new(Storage::from_url("memory://", Vec::<(String, String)>::new()).unwrap());
    let t = Instant::now();
    let dumper = MongoDumper::connect(
        &uri,
        DumpOptions {
            include_dbs: vec![src.clone()],
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let meta = backups
        .create(
            CreateRequest::new(
                backups_core::FileSet::default(),
                Identity::new("0b6e3c52-8f1a-4c1e-9d3a-2f6c9a7e5b10"),
            )
            .with_database(Arc::new(dumper)),
            Arc::new(NoProgress),
        )
        .await
        .unwrap();
    let dump = t.elapsed().as_secs_f64();
    println!(
        "dump (create, gzip -6): {dump:.2}s  {:.0} docs/s  {:.1} MB/s  archive {:.1} MB  ({:.0}% of the drain's speed)",
        docs as f64 / dump,
        mb / dump,
        meta.size as f64 / 1e6,
        100.0 * drain / dump
    );

    let tmp = tempfile::tempdir().unwrap();
    let t = Instant::now();
    let loader = MongoLoader::connect(
        &uri,
        LoadOptions {
            db_rename: vec![(src.clone(), dst.clone())],
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let report = backups
        .restore(
            RestoreRequest::new(
                RestoreSource::Id(meta.id.clone().unwrap()),
                tmp.path().to_path_buf(),
            )
            .with_database(Arc::new(loader)),
            Arc::new(NoProgress),
        )
        .await
        .unwrap();
    let load = t.elapsed().as_secs_f64();
    let loaded: u64 = report.database.unwrap().collections.values().sum();
    println!(
        "load (restore, verify + insert + indexes): {load:.2}s  {:.0} docs/s  {:.1} MB/s  ({loaded} documents)",
        loaded as f64 / load,
        mb / load
    );
    client.database(&src).drop().await.unwrap();
    client.database(&dst).drop().await.unwrap();
}
