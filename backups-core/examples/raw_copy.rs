//! The baseline of `scripts/bench-copy`: one object copied from one store
//! to another through object_store, as `aws s3 cp` would (a get streamed
//! into a multipart put of the same part size and concurrency as the
//! tool's uploads), with no checks; or every object under a prefix
//! deleted (`--clean`).
//!
//! ```text
//! cargo run --release -p backups-core --example raw_copy -- SRC_URL SRC_NAME DST_URL DST_NAME
//! cargo run --release -p backups-core --example raw_copy -- --clean URL
//! ```
//!
//! Store options come from `BENCH_SRC_OPTIONS` / `BENCH_DST_OPTIONS`
//! (`key=value,key=value`), credentials from the environment.
#![allow(clippy::unwrap_used, clippy::print_stdout)]

use futures::{StreamExt, TryStreamExt};
use object_store::ObjectStoreExt;
use object_store::buffered::BufWriter;
use tokio::io::AsyncWriteExt;

use backups_core::Storage;

fn options(var: &str) -> Vec<(String, String)> {
    std::env::var(var)
        .unwrap_or_default()
        .split(',')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--clean") {
        let storage = Storage::from_url(&args[1], options("BENCH_DST_OPTIONS")).unwrap();
        let store = storage.object_store().clone();
        let keys: Vec<_> = store
            .list(Some(storage.prefix()))
            .map_ok(|o| o.location)
            .try_collect()
            .await
            .unwrap();
        for key in &keys {
            store.delete(key).await.unwrap();
        }
        println!("deleted {} objects", keys.len());
        return;
    }
    let [src, name, dst, dst_name] = &args[..] else {
        eprintln!("usage: raw_copy SRC_URL SRC_NAME DST_URL DST_NAME | --clean URL");
        std::process::exit(2);
    };
    let source = Storage::from_url(src, options("BENCH_SRC_OPTIONS")).unwrap();
    let target = Storage::from_url(dst, options("BENCH_DST_OPTIONS")).unwrap();
    let from = source.prefix().clone().join(name.as_str());
    let to = target.prefix().clone().join(dst_name.as_str());
    let mut stream = source
        .object_store()
        .get(&from)
        .await
        .unwrap()
        .into_stream();
    let mut upload = BufWriter::with_capacity(target.object_store().clone(), to, 8 << 20)
        .with_max_concurrency(4);
    let mut bytes = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.unwrap();
        bytes += chunk.len() as u64;
        upload.put(chunk).await.unwrap();
    }
    upload.shutdown().await.unwrap();
    println!("{bytes}");
}
