//! `backups create`.

use std::sync::Arc;

use backups_core::{
    ArchiveCompression, Backups, CreateRequest, FileSet, Identity, Progress, StoreBackups,
};
use backups_mongo::{DumpOptions, MongoDumper};

use crate::args::{self, CreateArgs};
use crate::{CliResult, Failure, host_name, mongo_uri, out, output};

/// Makes a backup of files and (with a MongoDB URI) the database.
pub(crate) async fn create(
    backups: &StoreBackups,
    a: CreateArgs,
    progress: Arc<dyn Progress>,
    quiet: bool,
) -> CliResult {
    let say = |text: String| crate::say(quiet, &text);
    let model_uuid = a.model_uuid.unwrap_or_else(host_model_uuid);
    let database: Option<Arc<dyn backups_core::DatabaseDumper>> = match mongo_uri(&a.mongo)? {
        Some(uri) => Some(Arc::new(
            MongoDumper::connect(
                &uri,
                DumpOptions {
                    include_dbs: a.include_dbs,
                    exclude_ns: a.exclude_ns,
                },
            )
            .await?,
        )),
        None => None,
    };
    let mut identity = Identity::new(model_uuid);
    identity.controller_uuid = a.controller_uuid;
    identity.machine = a.machine;
    identity.hostname = host_name();
    identity.series = os_series();
    identity.version = format!("backups-{}", env!("CARGO_PKG_VERSION"));
    let mut request = CreateRequest::new(FileSet::new(a.paths).with_excludes(a.excludes), identity)
        .with_notes(a.notes)
        .with_labels(a.labels)
        .with_compression(compression(
            a.compression,
            a.compression_level,
            a.compression_threads,
        )?);
    request.database = database;
    let meta = backups.create(request, progress.clone()).await?;
    let id = meta.id.clone().ok_or_else(|| Failure {
        message: "created backup has no id".into(),
        code: 1,
    })?;
    let docs: u64 = meta
        .databases
        .iter()
        .filter(|(k, _)| !k.starts_with("oplog"))
        .map(|(_, n)| n)
        .sum();
    say(format!(
        "Created backup {id}: {} files, {} documents in {} collections, {} ({} bytes)",
        meta.file_count.unwrap_or(0),
        docs,
        meta.databases
            .keys()
            .filter(|k| !k.starts_with("oplog"))
            .count(),
        output::human_size(meta.size),
        meta.size
    ));
    out(&format!("{id}\n"))?;
    if let Some(path) = a.download {
        backups.download(&id, &path, progress).await?;
        say(format!("Downloaded to {}", path.display()));
    }
    Ok(())
}

fn compression(
    kind: args::CompressionKind,
    level: Option<u32>,
    threads: usize,
) -> Result<ArchiveCompression, Failure> {
    let bad = |max: u32| Failure {
        message: format!("--compression-level must be at most {max} for {kind:?}"),
        code: 2,
    };
    Ok(match kind {
        args::CompressionKind::Gzip => {
            let level = level.unwrap_or(6);
            if level > 9 {
                return Err(bad(9));
            }
            ArchiveCompression::Gzip { level, threads }
        }
        args::CompressionKind::Zstd => {
            let level = level.unwrap_or(3).max(1);
            if level > 19 {
                return Err(bad(19));
            }
            ArchiveCompression::Zstd {
                level: level as i32,
                threads,
            }
        }
    })
}

fn os_series() -> String {
    std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix("VERSION_CODENAME=")
                    .map(|v| v.trim_matches('"').to_string())
            })
        })
        .unwrap_or_default()
}

/// A stable model UUID for hosts that have no controller model: UUIDv5 of the host name.
pub(crate) fn host_model_uuid() -> String {
    const NAMESPACE: uuid::Uuid = uuid::Uuid::from_u128(0x6b0d_2d3e_5a1f_4e53_9b7e_1c2a_3f4d_5e6f);
    uuid::Uuid::new_v5(&NAMESPACE, host_name().as_bytes()).to_string()
}
