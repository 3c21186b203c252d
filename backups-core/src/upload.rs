//! The bridge between the synchronous archive producer (tar, gzip, hashing
//! on a blocking thread) and an asynchronous multipart upload: bounded
//! chunks over a channel, and an abort of the upload on any failure.

use std::io::{self, Read, Write};

use bytes::{Bytes, BytesMut};
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use object_store::ObjectStore;
use object_store::buffered::BufWriter;
use object_store::path::Path as ObjectPath;
use object_store::{GetResult, GetResultPayload};
use std::sync::Arc;
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;
use tokio_util::io::{ReaderStream, StreamReader, SyncIoBridge};
use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result};

/// Bytes handed from the producer to the uploader at a time.
const CHUNK: usize = 1024 * 1024;
/// Chunks in flight between producer and uploader.
const CHANNEL_DEPTH: usize = 4;

/// Upload tuning: memory is bounded by `part_size * (max_concurrency + 1)`
/// plus a few MiB of channel and compression buffers.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct UploadOptions {
    /// Multipart part size in bytes (S3 needs at least 5 MiB).
    pub part_size: usize,
    /// Parts uploaded concurrently.
    pub max_concurrency: usize,
}

impl UploadOptions {
    /// Parts of `part_size` bytes, `max_concurrency` of them in flight.
    pub fn new(part_size: usize, max_concurrency: usize) -> Self {
        UploadOptions {
            part_size,
            max_concurrency,
        }
    }
}

impl Default for UploadOptions {
    fn default() -> Self {
        UploadOptions {
            part_size: 8 * 1024 * 1024,
            max_concurrency: 4,
        }
    }
}

/// A [`Write`] that sends fixed-size chunks to the uploader.
pub(crate) struct ChannelWriter {
    tx: mpsc::Sender<Bytes>,
    buf: BytesMut,
}

impl ChannelWriter {
    fn send(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = self.buf.split().freeze();
        self.tx
            .blocking_send(chunk)
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "upload stopped"))
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = data.len().min(CHUNK - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() >= CHUNK {
            self.send()?;
            self.buf.reserve(CHUNK);
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send()
    }
}

/// Runs `produce` on a blocking thread, streaming what it writes into a
/// (multipart) upload at `key`. The upload is completed only if `produce`
/// succeeds and is aborted otherwise, so no partial object appears.
pub(crate) async fn upload_with<T, F>(
    store: Arc<dyn ObjectStore>,
    key: &ObjectPath,
    options: UploadOptions,
    cancel: &CancellationToken,
    produce: F,
) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce(&mut ChannelWriter) -> Result<T> + Send + 'static,
{
    let (out, _) = upload_hashing_parts(store, key, options, cancel, false, produce).await?;
    Ok(out)
}

/// The SHA-256 of each part an upload made of the stored bytes (parts of
/// `part_size` bytes, the last one shorter, as object_store's `BufWriter`
/// cuts them; none for an object smaller than a part, which is one put).
#[derive(Debug, Clone, Default)]
pub(crate) struct PartDigests {
    /// Each part's SHA-256, in order.
    pub(crate) parts: Vec<[u8; 32]>,
    /// The bytes stored.
    pub(crate) size: u64,
    part_size: u64,
    current: sha2::Sha256,
    in_part: u64,
}

impl PartDigests {
    fn new(part_size: usize) -> Self {
        PartDigests {
            part_size: part_size.max(1) as u64,
            ..Default::default()
        }
    }

    fn update(&mut self, mut bytes: &[u8]) {
        use sha2::Digest;
        while !bytes.is_empty() {
            let room = (self.part_size - self.in_part) as usize;
            let (now, rest) = bytes.split_at(room.min(bytes.len()));
            self.current.update(now);
            self.in_part += now.len() as u64;
            self.size += now.len() as u64;
            if self.in_part == self.part_size {
                self.parts
                    .push(std::mem::take(&mut self.current).finalize().into());
                self.in_part = 0;
            }
            bytes = rest;
        }
    }

    fn finish(mut self) -> Self {
        use sha2::Digest;
        if self.in_part > 0 {
            self.parts
                .push(std::mem::take(&mut self.current).finalize().into());
            self.in_part = 0;
        }
        if self.size < self.part_size {
            self.parts.clear();
        }
        self
    }

    /// The checksum S3 reports for the object (`x-amz-checksum-sha256`
    /// with `x-amz-checksum-mode: ENABLED`): the SHA-256 of the whole
    /// object (`whole_sha256_hex`) when it was one put, else the SHA-256 of
    /// the parts' SHA-256s, base64, with `-N` for N parts.
    pub(crate) fn s3_checksum(&self, whole_sha256_hex: &str) -> Option<String> {
        use base64::Engine;
        use sha2::Digest;
        let b64 = base64::engine::general_purpose::STANDARD;
        if self.parts.is_empty() {
            let whole = hex::decode(whole_sha256_hex).ok()?;
            return Some(b64.encode(whole));
        }
        let mut of_parts = sha2::Sha256::new();
        for p in &self.parts {
            of_parts.update(p);
        }
        Some(format!(
            "{}-{}",
            b64.encode(of_parts.finalize()),
            self.parts.len()
        ))
    }
}

/// [`upload_with`], also hashing the stored bytes part by part when
/// `hash_parts` (for a store that reports its own checksums).
pub(crate) async fn upload_hashing_parts<T, F>(
    store: Arc<dyn ObjectStore>,
    key: &ObjectPath,
    options: UploadOptions,
    cancel: &CancellationToken,
    hash_parts: bool,
    produce: F,
) -> Result<(T, Option<PartDigests>)>
where
    T: Send + 'static,
    F: FnOnce(&mut ChannelWriter) -> Result<T> + Send + 'static,
{
    let mut parts = hash_parts.then(|| PartDigests::new(options.part_size));
    let (tx, mut rx) = mpsc::channel::<Bytes>(CHANNEL_DEPTH);
    let producer = tokio::task::spawn_blocking(move || {
        let mut writer = ChannelWriter {
            tx,
            buf: BytesMut::with_capacity(CHUNK),
        };
        let out = produce(&mut writer)?;
        writer
            .flush()
            .map_err(|e| Error::io("streaming archive", "upload", e))?;
        Ok::<T, Error>(out)
    });
    let mut upload = BufWriter::with_capacity(store, key.clone(), options.part_size)
        .with_max_concurrency(options.max_concurrency.max(1));
    let mut upload_error = None;
    loop {
        let chunk = tokio::select! {
            chunk = rx.recv() => chunk,
            _ = cancel.cancelled() => {
                upload_error = Some(Error::Cancelled(format!("upload of {key} cancelled")));
                break;
            }
        };
        let Some(chunk) = chunk else { break };
        if let Some(p) = parts.as_mut() {
            p.update(&chunk);
        }
        let put = tokio::select! {
            r = upload.put(chunk) => r,
            _ = cancel.cancelled() => {
                upload_error = Some(Error::Cancelled(format!("upload of {key} cancelled")));
                break;
            }
        };
        if let Err(e) = put {
            upload_error = Some(Error::storage(key, e));
            break;
        }
    }
    drop(rx); // a producer still writing now fails with "upload stopped"
    let produced = match producer.await {
        Ok(r) => r,
        Err(e) => Err(Error::task(&format!("the archive producer for {key}"), e)),
    };
    match (upload_error, produced) {
        (None, Ok(out)) => {
            upload.shutdown().await.map_err(|e| {
                Error::storage(
                    key,
                    object_store::Error::Generic {
                        store: "upload",
                        source: Box::new(e),
                    },
                )
            })?;
            Ok((out, parts.map(PartDigests::finish)))
        }
        (Some(err), _) | (None, Err(err)) => {
            // Best effort: the original error is what the caller needs.
            let _ = upload.abort().await;
            Err(err)
        }
    }
}

/// Chunk size when streaming a local file (object_store's own is 8 KiB,
/// each read a round trip through a blocking task).
const FILE_CHUNK: usize = 1024 * 1024;

/// A blocking [`Read`] over an object (call inside a runtime; read from a
/// blocking thread). Local files are read directly.
pub(crate) fn object_reader(result: GetResult) -> Box<dyn Read + Send + 'static> {
    match result.payload {
        GetResultPayload::File(file, _) => Box::new(file),
        GetResultPayload::Stream(stream) => {
            let stream = stream.map_err(io::Error::other).boxed();
            Box::new(SyncIoBridge::new(StreamReader::new(stream)))
        }
    }
}

/// An object's bytes as a stream, in large chunks for local files. A
/// ranged get ([`object_store::GetOptions::range`]) of a local file is read
/// from the range's start (object_store hands over the whole file).
pub(crate) fn object_stream(result: GetResult) -> BoxStream<'static, object_store::Result<Bytes>> {
    let start = result.range.start;
    match result.payload {
        GetResultPayload::File(mut file, path) => {
            if start > 0
                && let Err(e) = std::io::Seek::seek(&mut file, io::SeekFrom::Start(start))
            {
                let e = object_store::Error::Generic {
                    store: "LocalFileSystem",
                    source: format!("seeking in {}: {e}", path.display()).into(),
                };
                return futures::stream::once(async move { Err(e) }).boxed();
            }
            ReaderStream::with_capacity(tokio::fs::File::from_std(file), FILE_CHUNK)
                .map_err(move |e| object_store::Error::Generic {
                    store: "LocalFileSystem",
                    source: format!("reading {}: {e}", path.display()).into(),
                })
                .boxed()
        }
        GetResultPayload::Stream(stream) => stream,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The checksums Garage and moto reported for these objects (a put
    /// with `ChecksumAlgorithm="SHA256"`, then `head_object` with
    /// `ChecksumMode="ENABLED"`).
    #[test]
    fn part_digests_give_the_checksum_s3_reports() {
        use sha2::Digest;
        let part = 5 * 1024 * 1024;
        let mut data = vec![b'a'; part];
        data.extend(vec![b'b'; 100]);
        let mut parts = PartDigests::new(part);
        // Chunks that do not line up with the parts.
        for chunk in data.chunks(777_777) {
            parts.update(chunk);
        }
        let parts = parts.finish();
        assert_eq!(parts.size, data.len() as u64);
        let whole = hex::encode(sha2::Sha256::digest(&data));
        assert_eq!(
            parts.s3_checksum(&whole).unwrap(),
            "7n1ZEEGpZyRgQtPvGMqYL80UbaFJA89T+2OobG6XQAs=-2"
        );
        // Smaller than a part: one put, the whole object's SHA-256.
        let small = vec![b'x'; 1000];
        let mut one = PartDigests::new(part);
        one.update(&small);
        let one = one.finish();
        let whole = hex::encode(sha2::Sha256::digest(&small));
        assert_eq!(
            one.s3_checksum(&whole).unwrap(),
            "RPg1RJSlugO6F5Ko0+nFNMR6kYGYD956P0SwbvKufH8="
        );
    }
}
