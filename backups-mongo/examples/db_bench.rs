//! The database side of `scripts/bench-db`: seeds a database, drains it
//! with a raw cursor (the floor for a dump) and finds the server's insert
//! limit (the ceiling for a load). The script times `backups create` and
//! `backups restore` themselves, as a user runs them.
//!
//! ```sh
//! db_bench seed URI DB N          # N documents (~930 bytes) over 4 collections
//! db_bench drain URI DB           # prints: drain SECONDS BYTES DOCS
//! db_bench insert-limit URI N     # prints: insert-limit MB_PER_S BATCH PARALLEL
//!                                 # (the best of a few batch sizes x parallelisms)
//! db_bench index-time URI DB     # prints: index-time SECONDS (drops and
//!                                 # rebuilds DB's indexes as a load does)
//! db_bench drop URI DB...
//! ```
//!
//! Every output line a script reads is `name value...`, space separated.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;
use std::time::Instant;

use futures::StreamExt;
use mongodb::bson::{Binary, DateTime, RawDocumentBuf, doc, spec::BinarySubtype};
use mongodb::{Client, Database};

/// The collections, with their share of the documents (a controller has a
/// few big collections and many small ones).
const COLLECTIONS: [(&str, u64); 4] = [
    ("machines", 40),
    ("units", 30),
    ("applications", 20),
    ("settings", 10),
];

/// Document `j` of `coll`: the shape `mongo_throughput` uses (~930 bytes).
fn document(coll: &str, j: i64) -> RawDocumentBuf {
    let d = doc! {
        "_id": j, "name": format!("{coll}-{j}"), "life": "alive",
        "addresses": ["10.0.0.1", "10.0.0.2"], "created": DateTime::from_millis(j * 1000),
        "blob": Binary { subtype: BinarySubtype::Generic, bytes: vec![(j % 251) as u8; 800] },
    };
    RawDocumentBuf::from_document(&d).unwrap()
}

/// How many documents of `n` go to each collection.
fn split(n: u64) -> Vec<(&'static str, u64)> {
    let mut out: Vec<(&str, u64)> = COLLECTIONS
        .iter()
        .map(|(c, share)| (*c, n * share / 100))
        .collect();
    let given: u64 = out.iter().map(|(_, k)| k).sum();
    out[0].1 += n - given;
    out
}

/// Inserts the documents of `plan` into `db` with `insert_many` batches of
/// `batch` documents, `parallel` batches at a time; returns the BSON bytes.
async fn insert(db: &Database, plan: &[(&'static str, u64)], batch: u64, parallel: usize) -> u64 {
    let mut jobs = Vec::new();
    for (coll, count) in plan {
        let mut start = 0;
        while start < *count {
            let end = (start + batch).min(*count);
            jobs.push((*coll, start, end));
            start = end;
        }
    }
    let bytes = Arc::new(std::sync::atomic::AtomicU64::new(0));
    futures::stream::iter(jobs)
        .map(|(coll, start, end)| {
            let (db, bytes) = (db.clone(), bytes.clone());
            async move {
                let docs: Vec<RawDocumentBuf> =
                    (start..end).map(|j| document(coll, j as i64)).collect();
                let size: usize = docs.iter().map(|d| d.as_bytes().len()).sum();
                db.collection::<RawDocumentBuf>(coll)
                    .insert_many(docs)
                    .await
                    .unwrap();
                bytes.fetch_add(size as u64, std::sync::atomic::Ordering::Relaxed);
            }
        })
        .buffer_unordered(parallel)
        .collect::<Vec<()>>()
        .await;
    bytes.load(std::sync::atomic::Ordering::Relaxed)
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage =
        "usage: db_bench seed URI DB N | drain URI DB | insert-limit URI N | drop URI DB...";
    let (cmd, uri) = (
        args.first().expect(usage).as_str(),
        args.get(1).expect(usage),
    );
    let client = Client::with_uri_str(uri).await.unwrap();
    match cmd {
        "seed" => {
            let db = client.database(args.get(2).expect(usage));
            let n: u64 = args.get(3).expect(usage).parse().unwrap();
            let t = Instant::now();
            let bytes = insert(&db, &split(n), 2000, 4).await;
            for (coll, _) in COLLECTIONS {
                db.collection::<RawDocumentBuf>(coll)
                    .create_index(
                        mongodb::IndexModel::builder()
                            .keys(doc! {"name": 1})
                            .build(),
                    )
                    .await
                    .unwrap();
            }
            println!("seed {n} {bytes} {:.1}", t.elapsed().as_secs_f64());
        }
        "drain" => {
            let db = client.database(args.get(2).expect(usage));
            let mut names = db.list_collection_names().await.unwrap();
            names.sort();
            let t = Instant::now();
            let (mut docs, mut bytes) = (0u64, 0u64);
            for coll in names {
                let mut cursor = db
                    .collection::<RawDocumentBuf>(&coll)
                    .find(doc! {})
                    .await
                    .unwrap();
                while cursor.advance().await.unwrap() {
                    docs += 1;
                    bytes += cursor.current().as_bytes().len() as u64;
                }
            }
            println!("drain {:.3} {bytes} {docs}", t.elapsed().as_secs_f64());
        }
        "insert-limit" => {
            let n: u64 = args.get(2).expect(usage).parse().unwrap();
            let plan = split(n);
            let stamp = std::process::id();
            let mut best = (0.0f64, 0u64, 0usize);
            let trial = async |batch: u64, parallel: usize| -> f64 {
                let db = client.database(&format!("bench_limit_{stamp}_{batch}_{parallel}"));
                db.drop().await.unwrap();
                // Created first, as a load does.
                for (coll, _) in &plan {
                    db.create_collection(*coll).await.unwrap();
                }
                let t = Instant::now();
                let bytes = insert(&db, &plan, batch, parallel).await;
                let rate = bytes as f64 / 1e6 / t.elapsed().as_secs_f64();
                println!("trial batch={batch} parallel={parallel} {rate:.1} MB/s");
                db.drop().await.unwrap();
                rate
            };
            // The batch size first (at 2 in parallel), then the parallelism.
            for batch in [250u64, 500, 1000, 2000, 8000] {
                let rate = trial(batch, 2).await;
                if rate > best.0 {
                    best = (rate, batch, 2);
                }
            }
            let batch = best.1;
            for parallel in [1usize, 4, 8] {
                let rate = trial(batch, parallel).await;
                if rate > best.0 {
                    best = (rate, batch, parallel);
                }
            }
            println!("insert-limit {:.2} {} {}", best.0, best.1, best.2);
        }
        "index-time" => {
            let db = client.database(args.get(2).expect(usage));
            let mut jobs = Vec::new();
            for coll in db.list_collection_names().await.unwrap() {
                let c = db.collection::<mongodb::bson::Document>(&coll);
                let specs: Vec<mongodb::bson::Document> = db
                    .run_cursor_command(doc! {"listIndexes": &coll})
                    .await
                    .unwrap()
                    .map(|d| d.unwrap())
                    .filter(|d| futures::future::ready(d.get_str("name") != Ok("_id_")))
                    .collect()
                    .await;
                if !specs.is_empty() {
                    c.drop_indexes().await.unwrap();
                    jobs.push((coll, specs));
                }
            }
            let t = Instant::now();
            futures::stream::iter(jobs)
                .map(|(coll, specs)| {
                    let db = db.clone();
                    async move {
                        db.run_command(doc! {"createIndexes": coll, "indexes": specs})
                            .await
                            .unwrap();
                    }
                })
                .buffer_unordered(4)
                .collect::<Vec<()>>()
                .await;
            println!("index-time {:.3}", t.elapsed().as_secs_f64());
        }
        "drop" => {
            for name in &args[2..] {
                client.database(name).drop().await.unwrap();
            }
        }
        _ => panic!("{usage}"),
    }
}
