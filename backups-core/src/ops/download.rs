//! Download: copy a backup's archive out of the store, checking its size
//! and digests against the sidecar; a file appears only once they match.

use std::io::{self, Read, Write};
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

use futures::StreamExt;
use tokio::io::{AsyncWrite, AsyncWriteExt};

use crate::catalog::StoreBackups;
use crate::crypt::Identities;
use crate::digest::{Digests, Hasher, HashingWriter};
use crate::error::{Error, Result};
use crate::id::BackupId;
use crate::metadata::Metadata;
use crate::progress::Progress;
use crate::request::ArchiveStream;

/// Where a download writes a backup's archive
/// ([`crate::Backups::download`], [`StoreBackups::download_decrypted`]).
#[non_exhaustive]
pub enum DownloadTo<'a> {
    /// A file, written through a temp file in the same directory and
    /// renamed into place only once size and digests match: nothing
    /// appears at the path otherwise.
    File(&'a Path),
    /// A stream (e.g. stdout), checked at the end: the bytes are already
    /// written when a mismatch is found, so the caller warns.
    Writer(&'a mut (dyn AsyncWrite + Unpin + Send)),
}

impl std::fmt::Debug for DownloadTo<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DownloadTo::File(p) => f.debug_tuple("File").field(p).finish(),
            DownloadTo::Writer(_) => f.write_str("Writer(..)"),
        }
    }
}

/// Writes `stream` where `to` says, checking size and digests against `meta`.
pub(crate) async fn plain(
    meta: &Metadata,
    stream: ArchiveStream,
    to: DownloadTo<'_>,
    progress: Arc<dyn Progress>,
) -> Result<()> {
    match to {
        DownloadTo::File(dest) => to_file(meta, stream, dest, progress).await,
        DownloadTo::Writer(out) => to_writer(meta, stream, out, progress).await,
    }
}

/// Writes `stream` to `dest` through a temp file in the same directory,
/// renamed into place only once size and checksum match `meta`.
async fn to_file(
    meta: &Metadata,
    stream: ArchiveStream,
    dest: &Path,
    progress: Arc<dyn Progress>,
) -> Result<()> {
    let (file, tmp_path) = temp_beside(dest)?;
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
async fn to_writer(
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
    progress.phase("downloading", Some(meta.stored_size()));
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
    meta.check_stored_digests(&id, &hasher.finish())
}

/// A reader that hashes what passes through into a shared hasher (the
/// decryptor owns the reader; the digests are read after it is done).
struct SharedHashReader<R> {
    inner: R,
    hasher: Arc<Mutex<Hasher>>,
}

impl<R: Read> Read for SharedHashReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .update(&buf[..n]);
        Ok(n)
    }
}

/// Decrypts the encrypted backup `id` into `out` (a blocking writer),
/// checking the stored bytes against the sidecar's size and digests and
/// the plaintext against the plain archive's. Returns the metadata and
/// `out`. The plaintext is already written when a mismatch is found: the
/// caller writes to a temp file, or warns.
async fn decrypted<W: Write + Send + 'static>(
    backups: &StoreBackups,
    id: &BackupId,
    identities: Identities,
    out: W,
    progress: Arc<dyn Progress>,
) -> Result<(Metadata, W)> {
    let meta = backups.committed(id).await?;
    if meta.encryption.is_none() {
        return Err(Error::Encrypted {
            subject: id.to_string(),
            reason: "the backup is not encrypted: download it without --decrypt".into(),
        });
    }
    let reader = backups.archive_reader(id, &meta).await?;
    let subject = id.to_string();
    let stored = Arc::new(Mutex::new(Hasher::default()));
    let tee = SharedHashReader {
        inner: reader,
        hasher: stored.clone(),
    };
    progress.phase("decrypting", Some(meta.stored_size()));
    let (plain, out) = tokio::task::spawn_blocking(move || -> Result<(Digests, W)> {
        let mut plain = identities.open(tee, &subject)?;
        let mut hashing = HashingWriter::new(out);
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = match plain.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    return Err(Error::Encrypted {
                        subject,
                        reason: format!("the encrypted archive is damaged: {e}"),
                    });
                }
            };
            hashing
                .write_all(&buf[..n])
                .map_err(|e| Error::io("writing", "decrypted archive", e))?;
            progress.advance(n as u64);
        }
        let (mut out, digests) = hashing.finish();
        out.flush()
            .map_err(|e| Error::io("writing", "decrypted archive", e))?;
        progress.finish();
        Ok((digests, out))
    })
    .await
    .map_err(|e| Error::task("the decryption", e))??;
    let stored = std::mem::take(&mut *stored.lock().unwrap_or_else(PoisonError::into_inner));
    meta.check_stored_digests(id.as_str(), &stored.finish())?;
    meta.check_digests(id.as_str(), &plain)?;
    Ok((meta, out))
}

/// Decrypts the encrypted backup `id` where `to` says (see [`decrypted`]).
pub(crate) async fn decrypted_to(
    backups: &StoreBackups,
    id: &BackupId,
    identities: Identities,
    to: DownloadTo<'_>,
    progress: Arc<dyn Progress>,
) -> Result<Metadata> {
    match to {
        DownloadTo::File(dest) => decrypted_to_file(backups, id, identities, dest, progress).await,
        DownloadTo::Writer(out) => {
            decrypted_to_writer(backups, id, identities, out, progress).await
        }
    }
}

/// [`decrypted`] into an async writer: the blocking decryptor hands its
/// plaintext over a bounded channel, written out here in order.
async fn decrypted_to_writer(
    backups: &StoreBackups,
    id: &BackupId,
    identities: Identities,
    out: &mut (dyn AsyncWrite + Unpin + Send),
    progress: Arc<dyn Progress>,
) -> Result<Metadata> {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<u8>>(8);
    // The writer (and so the channel's sender) is dropped as soon as the
    // decryption ends, which ends the drain.
    let decrypt = async {
        decrypted(backups, id, identities, ChannelWriter(tx), progress)
            .await
            .map(|(meta, _)| meta)
    };
    let drain = async {
        while let Some(chunk) = rx.recv().await {
            out.write_all(&chunk)
                .await
                .map_err(|e| Error::io("writing", "-", e))?;
        }
        out.flush().await.map_err(|e| Error::io("writing", "-", e))
    };
    let (decrypted, drained) = tokio::join!(decrypt, drain);
    // A write error stops the drain, which makes the decryptor fail on a
    // closed channel: the write error is the one to report.
    drained?;
    decrypted
}

/// A blocking writer whose bytes go to an async task over a channel.
struct ChannelWriter(tokio::sync::mpsc::Sender<Vec<u8>>);

impl Write for ChannelWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0
            .blocking_send(buf.to_vec())
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the output was closed"))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// [`decrypted`] into `dest`, through a temp file renamed into place only
/// once every digest matches.
async fn decrypted_to_file(
    backups: &StoreBackups,
    id: &BackupId,
    identities: Identities,
    dest: &Path,
    progress: Arc<dyn Progress>,
) -> Result<Metadata> {
    let (file, tmp_path) = temp_beside(dest)?;
    let (meta, file) = decrypted(backups, id, identities, file, progress).await?;
    file.sync_all().map_err(|e| Error::io("syncing", dest, e))?;
    tmp_path
        .persist(dest)
        .map_err(|e| Error::io("renaming into", dest, e.error))?;
    Ok(meta)
}

/// A temp file in `dest`'s directory, to be renamed over `dest`.
fn temp_beside(dest: &Path) -> Result<(std::fs::File, tempfile::TempPath)> {
    let dir = dest
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let tmp = tempfile::Builder::new()
        .prefix(".backups-download-")
        .tempfile_in(dir)
        .map_err(|e| Error::io("creating temp file in", dir, e))?;
    Ok(tmp.into_parts())
}
