//! Download: copy a backup's archive out of the store, checking its size
//! and digests against the sidecar; a file appears only once they match.

use std::path::Path;
use std::sync::Arc;

use futures::StreamExt;
use tokio::io::{AsyncWrite, AsyncWriteExt};

use crate::digest::Hasher;
use crate::error::{Error, Result};
use crate::metadata::Metadata;
use crate::progress::Progress;
use crate::request::ArchiveStream;

/// Writes `stream` to `dest` through a temp file in the same directory,
/// renamed into place only once size and checksum match `meta`.
pub(crate) async fn to_file(
    meta: &Metadata,
    stream: ArchiveStream,
    dest: &Path,
    progress: Arc<dyn Progress>,
) -> Result<()> {
    let dir = dest
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let tmp = tempfile::Builder::new()
        .prefix(".backups-download-")
        .tempfile_in(dir)
        .map_err(|e| Error::io("creating temp file in", dir, e))?;
    let (file, tmp_path) = tmp.into_parts();
    let mut out = tokio::fs::File::from_std(file);
    copy_verified(meta, stream, &mut out, dest, progress).await?;
    out.sync_all()
        .await
        .map_err(|e| Error::io("syncing", dest, e))?;
    tmp_path
        .persist(dest)
        .map_err(|e| Error::io("renaming into", dest, e.error))?;
    Ok(())
}

/// Streams `stream` into `out`, checking size and checksum at the end (the
/// bytes are already written when a mismatch is found).
pub(crate) async fn to_writer(
    meta: &Metadata,
    stream: ArchiveStream,
    out: &mut (dyn AsyncWrite + Unpin + Send),
    progress: Arc<dyn Progress>,
) -> Result<()> {
    copy_verified(meta, stream, out, Path::new("-"), progress).await?;
    out.flush().await.map_err(|e| Error::io("writing", "-", e))
}

async fn copy_verified(
    meta: &Metadata,
    mut stream: ArchiveStream,
    out: &mut (dyn AsyncWrite + Unpin + Send),
    dest: &Path,
    progress: Arc<dyn Progress>,
) -> Result<()> {
    progress.phase("downloading", Some(meta.size));
    let mut hasher = Hasher::default();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        hasher.update(&chunk);
        out.write_all(&chunk)
            .await
            .map_err(|e| Error::io("writing", dest, e))?;
        progress.advance(chunk.len() as u64);
    }
    progress.finish();
    let id = meta
        .id
        .as_ref()
        .map(ToString::to_string)
        .unwrap_or_default();
    meta.check_digests(&id, &hasher.finish())
}
