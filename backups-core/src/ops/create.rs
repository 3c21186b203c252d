//! Create: scan the files, then stream metadata, `root.tar` and the
//! database dump through the compressor straight into a multipart upload;
//! commit the sidecar only once the stored object is exactly what was
//! hashed.

use std::sync::{Arc, Mutex};

use object_store::ObjectStoreExt;
use tokio::sync::mpsc;

use crate::archive::root_tar::{RootTar, root_tar_size};
use crate::archive::writer::ArchiveWriter;
use crate::catalog::StoreBackups;
use crate::crypt::{Encryption, Sealer};
use crate::database::{DumpMessage, DumpSink, DumpSummary};
use crate::digest::{Digests, Hasher};
use crate::error::{Error, Result};
use crate::extract::sanitize_entry_path;
use crate::files::{EntryKind, FileEntry};
use crate::metadata::{CHECKSUM_FORMAT, EncryptionInfo, FORMAT_VERSION, Metadata};
use crate::progress::Progress;
use crate::request::CreateRequest;
use crate::storage::Storage;
use crate::upload::upload_with;

/// What the archive thread produced.
struct Produced {
    /// The plain archive's digests.
    digests: Digests,
    /// The stored object's, when it is encrypted.
    stored: Option<Digests>,
    dump: Option<DumpSummary>,
}

/// Makes a new backup and commits it; returns its metadata. With a lock,
/// the whole backup runs inside its window and the unlock runs whatever
/// happened (an unlock that fails after a committed backup is an error
/// too: the writers may still be stopped).
pub(crate) async fn create(
    backups: &StoreBackups,
    request: CreateRequest,
    progress: Arc<dyn Progress>,
) -> Result<Metadata> {
    let Some(lock) = request.lock.clone() else {
        return create_unlocked(backups, request, progress).await;
    };
    // A lock that fails part-way has undone what it did.
    lock.lock().await?;
    let made = create_unlocked(backups, request, progress.clone()).await;
    let unlocked = lock.unlock(made.is_ok()).await;
    match (made, unlocked) {
        (Ok(meta), Ok(())) => Ok(meta),
        (Ok(meta), Err(e)) => {
            if let Some(id) = &meta.id {
                progress.warn(&format!("backup {id} was committed, but the unlock failed"));
            }
            Err(e)
        }
        (Err(e), _) => Err(e),
    }
}

/// The metadata a new backup starts with (what `metadata.json` in the
/// archive holds): its start, the request's identity, notes and labels,
/// the scan's counts, the compression and the database's origin.
fn new_metadata(
    request: &CreateRequest,
    started: time::OffsetDateTime,
    entries: &[FileEntry],
) -> Metadata {
    let ident = &request.identity;
    let mut meta = Metadata {
        format_version: FORMAT_VERSION,
        started: Some(started),
        notes: request.notes.clone(),
        model_uuid: ident.model_uuid.clone(),
        machine: ident.machine.clone(),
        hostname: ident.hostname.clone(),
        version: ident.version.clone(),
        series: ident.series.clone(),
        controller_uuid: ident.controller_uuid.clone(),
        ha_nodes: ident.ha_nodes,
        controller_machine_id: ident.controller_machine_id.clone(),
        controller_machine_instance_id: ident.controller_machine_instance_id.clone(),
        labels: request.labels.clone(),
        locked: request.lock.is_some(),
        file_count: Some(entries.len() as u64),
        file_bytes: Some(
            entries
                .iter()
                .map(|e| match e.kind {
                    EntryKind::File { size } => size,
                    EntryKind::Sparse { ref map } => map.size(),
                    _ => 0,
                })
                .sum(),
        ),
        tool_version: format!("backups {}", env!("CARGO_PKG_VERSION")),
        compression: request.compression.name().to_string(),
        ..Default::default()
    };
    if let Some(origin) = request.database.as_ref().and_then(|d| d.origin()) {
        meta.dumped_from = Some(origin.member);
        meta.replica_set = origin.replica_set;
    }
    meta
}

async fn create_unlocked(
    backups: &StoreBackups,
    request: CreateRequest,
    progress: Arc<dyn Progress>,
) -> Result<Metadata> {
    // Refuses a lock the store cannot keep before anything is written.
    let writer = backups.writer().await?;
    let (started, id) = backups.fresh_id(&request.identity.model_uuid).await?;
    progress.phase("scanning", None);
    let files = request.files.clone();
    let scanned = tokio::task::spawn_blocking(move || files.scan())
        .await
        .map_err(|e| Error::task("the file scan", e))??;
    for w in &scanned.warnings {
        progress.warn(w);
    }
    let root_size =
        root_tar_size(&scanned.entries).map_err(|e| Error::io("sizing", "root.tar", e))?;
    let mut meta = new_metadata(&request, started, &scanned.entries);
    let in_archive = meta.to_json();
    let warnings: Arc<Mutex<Vec<String>>> = Arc::new(Mutex::new(scanned.warnings.clone()));

    // The database dumper runs on the runtime and hands files to the
    // archive thread; its final result travels on the same channel.
    let dump_rx = request.database.clone().map(spawn_dump);

    let compression = request.compression;
    let encryption = request.encryption.clone();
    let mtime = started.unix_timestamp().max(0) as u64;
    let entries = scanned.entries;
    let (warn_sink, prog) = (warnings.clone(), progress.clone());
    progress.phase("archiving", Some(root_size));
    meta.archive = Storage::new_archive_name(&id, &meta.compression, encryption.is_some());
    let key = backups.storage().key(&meta.archive);
    let produced = upload_with(
        writer.store.clone(),
        &key,
        backups.upload_options(),
        backups.cancellation(),
        move |out| {
            let sealed = Sealer::new(out, encryption.as_ref())?;
            // Encrypted: only Juju's SHA-1 of the plain archive; the sealer
            // takes the stored bytes' SHA-256.
            let hasher = match encryption {
                Some(_) => Hasher::sha1_only(),
                None => Hasher::default(),
            };
            let mut archive = ArchiveWriter::hashed_with(sealed, compression, mtime, hasher)?;
            archive.add_file(
                "metadata.json",
                in_archive.len() as u64,
                0o600,
                &in_archive[..],
            )?;
            archive.add_file(
                "root.tar",
                root_size,
                0o600,
                RootTar::new(entries, warn_sink, prog),
            )?;
            archive.add_dir("dump/")?;
            let dump = match dump_rx {
                None => None,
                Some(mut rx) => Some(write_dump(&mut archive, &mut rx)?),
            };
            let (sealed, archive_digests) = archive.finish()?;
            let (_, stored) = sealed
                .finish()
                .map_err(|e| Error::io("encrypting", "archive", e))?;
            Ok(Produced {
                digests: archive_digests,
                stored,
                dump,
            })
        },
    )
    .await;
    let produced = produced.inspect_err(|_| progress.finish())?;
    // The object must be exactly what we hashed before it is committed.
    check_stored_size(backups, &key, &produced).await?;
    let finished = time::OffsetDateTime::now_utc();
    meta.id = Some(id);
    meta.checksum = produced.digests.sha1_base64;
    meta.checksum_format = CHECKSUM_FORMAT.to_string();
    meta.sha256 = produced.digests.sha256_hex;
    meta.size = produced.digests.size;
    meta.finished = Some(finished);
    if let (Some(stored), Some(e)) = (&produced.stored, &request.encryption) {
        meta.encryption = Some(encryption_info(e, stored));
    }
    meta.stored = Some(finished);
    meta.warnings = warnings.lock().map(|w| w.clone()).unwrap_or_default();
    if let Some(dump) = produced.dump {
        record_dump(&mut meta, dump, progress.as_ref());
    }
    backups.commit(&mut meta, &key, true, &writer).await?;
    progress.finish();
    Ok(meta)
}

/// The stored object's size is what was hashed, or it is deleted and the
/// backup refused.
async fn check_stored_size(
    backups: &StoreBackups,
    key: &object_store::path::Path,
    produced: &Produced,
) -> Result<()> {
    let stored = backups
        .store()
        .head(key)
        .await
        .map_err(|e| Error::storage(key, e))?;
    let stored_size = produced.stored.as_ref().unwrap_or(&produced.digests).size;
    if stored.size != stored_size {
        backups.storage().discard(key).await;
        return Err(Error::ChecksumMismatch {
            subject: key.to_string(),
            what: "size",
            expected: stored_size.to_string(),
            actual: stored.size.to_string(),
        });
    }
    Ok(())
}

/// Starts the dumper; its files, then its result, come on the channel.
fn spawn_dump(db: Arc<dyn crate::database::DatabaseDumper>) -> mpsc::Receiver<DumpMessage> {
    let (tx, rx) = mpsc::channel::<DumpMessage>(2);
    tokio::spawn(async move {
        let result = db.dump(DumpSink::new(tx.clone())).await;
        let _ = tx.send(DumpMessage::Done(result)).await;
    });
    rx
}

/// What the dump recorded: its collections, point-in-time, warnings.
fn record_dump(meta: &mut Metadata, dump: DumpSummary, progress: &dyn Progress) {
    for w in &dump.warnings {
        progress.warn(w);
    }
    meta.databases = dump.collections;
    meta.point_in_time = dump.point_in_time;
    meta.oplog_end = dump.oplog_end.map(|(s, o)| format!("{s}:{o}"));
    meta.warnings.extend(dump.warnings);
}

/// What the sidecar records of an encrypted backup: how, and the stored
/// object's size and SHA-256.
pub(crate) fn encryption_info(e: &Encryption, stored: &Digests) -> EncryptionInfo {
    EncryptionInfo {
        scheme: "age".into(),
        recipients: e.recipients().to_vec(),
        passphrase: e.is_passphrase(),
        stored_size: stored.size,
        stored_sha256: stored.sha256_hex.clone(),
    }
}

/// Appends the dumper's files under `dump/` until it reports its result.
fn write_dump<W: std::io::Write>(
    archive: &mut ArchiveWriter<W>,
    rx: &mut mpsc::Receiver<DumpMessage>,
) -> Result<DumpSummary> {
    loop {
        match rx.blocking_recv() {
            Some(DumpMessage::Entry(entry)) => {
                sanitize_entry_path(entry.path.as_bytes())
                    .map_err(|r| Error::unsafe_path(format!("dump/{}", entry.path), r))?;
                archive.add_file(
                    &format!("dump/{}", entry.path),
                    entry.size,
                    0o600,
                    entry.body,
                )?;
            }
            Some(DumpMessage::Done(result)) => return result,
            None => {
                return Err(Error::internal(
                    "the database dump stopped without reporting a result",
                ));
            }
        }
    }
}
