//! Times `list` on a store holding many backups.
//!
//! ```sh
//! cargo run --release -p backups-core --example list_timing -- s3://bucket/prefix 1000
//! ```
//!
//! Store options come from `BACKUPS_ENDPOINT`, `BACKUPS_REGION` and
//! `BACKUPS_ALLOW_HTTP=true`; credentials from the usual `AWS_*`/`AZURE_*`
//! variables. The backups are small generated archives under a fresh prefix
//! below the given URL; they are removed afterwards.
#![allow(clippy::unwrap_used, missing_docs)]

use std::sync::Arc;
use std::time::Instant;

use backups_core::internals::ArchiveWriter;
use backups_core::{ArchiveSource, Backups, Metadata, NoProgress, Storage, StoreBackups};
use futures::StreamExt;

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let base = args.get(1).cloned().unwrap_or_else(|| "memory://".into());
    let n: usize = args.get(2).map(|s| s.parse().unwrap()).unwrap_or(1000);
    let mut options = Vec::new();
    for (var, key) in [
        ("BACKUPS_ENDPOINT", "endpoint"),
        ("BACKUPS_REGION", "region"),
        ("BACKUPS_ALLOW_HTTP", "allow_http"),
    ] {
        if let Ok(v) = std::env::var(var) {
            options.push((key.to_string(), v));
        }
    }
    let url = if base.starts_with("memory:") {
        base.clone()
    } else {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        format!("{}/list-timing-{nanos:x}", base.trim_end_matches('/'))
    };
    let backups = StoreBackups::new(Storage::from_url(&url, options).unwrap());

    let start = Instant::now();
    let base_time = time::macros::datetime!(2024-01-01 00:00:00 UTC);
    futures::stream::iter(0..n)
        .map(|i| {
            let backups = &backups;
            async move {
                let meta = Metadata {
                    format_version: 1,
                    started: Some(base_time + time::Duration::minutes(i as i64)),
                    model_uuid: "0b6e3c52-8f1a-4c1e-9d3a-2f6c9a7e5b10".into(),
                    notes: format!("backup {i}"),
                    ..Default::default()
                };
                let json = meta.to_json();
                let mut w = ArchiveWriter::new(Vec::new(), 1, 0).unwrap();
                w.add_file("metadata.json", json.len() as u64, 0o600, &json[..])
                    .unwrap();
                let bytes = w.finish().unwrap().0;
                backups
                    .add(
                        ArchiveSource::Bytes(bytes.into()),
                        None,
                        Arc::new(NoProgress),
                    )
                    .await
                    .unwrap();
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await;
    println!("store: {url}");
    println!(
        "populated {n} backups in {:.1}s",
        start.elapsed().as_secs_f64()
    );

    let mut times = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let list = backups.list().await.unwrap();
        times.push(t.elapsed().as_secs_f64() * 1000.0);
        assert_eq!(list.len(), n);
    }
    times.sort_by(|a, b| a.partial_cmp(b).unwrap());
    println!(
        "list of {n} backups: min {:.0} ms, median {:.0} ms, max {:.0} ms (5 runs)",
        times[0], times[2], times[4]
    );

    let ids: Vec<_> = backups
        .list()
        .await
        .unwrap()
        .into_iter()
        .filter_map(|m| m.id)
        .collect();
    futures::stream::iter(ids)
        .map(|id| {
            let backups = &backups;
            async move { backups.remove(&id).await.unwrap() }
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await;
}
