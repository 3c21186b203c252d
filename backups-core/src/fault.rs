//! A store wrapper that injects faults at chosen requests, for tests:
//! failed multipart parts, failed puts of chosen keys, truncated reads and
//! delays. Wraps any [`ObjectStore`], like object_store's own `ThrottledStore`.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, GetResultPayload, ListResult, MultipartUpload, ObjectMeta,
    ObjectStore, PutMultipartOptions, PutOptions, PutPayload, PutResult, Result, UploadPart,
};

/// Which faults to inject.
#[derive(Debug, Clone, Default)]
pub struct FaultPlan {
    /// Fail every multipart part after this many parts succeeded (per store).
    pub fail_parts_after: Option<usize>,
    /// Fail single puts to keys ending with this suffix (e.g. `.json`).
    pub fail_put_suffix: Option<String>,
    /// Cut every read of a key ending `.tar.gz` after this many bytes.
    pub truncate_archive_reads_at: Option<u64>,
    /// Sleep this long before every read.
    pub read_delay: Option<Duration>,
    /// Refuse every delete (as credentials without `s3:DeleteObject` do).
    pub refuse_deletes: bool,
}

/// An [`ObjectStore`] that injects the faults of a [`FaultPlan`].
pub struct FaultStore {
    inner: Arc<dyn ObjectStore>,
    plan: FaultPlan,
    parts: Arc<AtomicUsize>,
}

impl FaultStore {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn ObjectStore>, plan: FaultPlan) -> Self {
        FaultStore {
            inner,
            plan,
            parts: Arc::new(AtomicUsize::new(0)),
        }
    }
}

fn injected(what: &str) -> object_store::Error {
    object_store::Error::Generic {
        store: "FaultStore",
        source: format!("injected fault: {what}").into(),
    }
}

impl fmt::Debug for FaultStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FaultStore({:?}, {:?})", self.inner, self.plan)
    }
}

impl fmt::Display for FaultStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FaultStore({})", self.inner)
    }
}

struct FaultUpload {
    inner: Box<dyn MultipartUpload>,
    limit: Option<usize>,
    parts: Arc<AtomicUsize>,
}

impl fmt::Debug for FaultUpload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FaultUpload")
    }
}

#[async_trait]
impl MultipartUpload for FaultUpload {
    fn put_part(&mut self, data: PutPayload) -> UploadPart {
        let n = self.parts.fetch_add(1, Ordering::SeqCst);
        if self.limit.is_some_and(|limit| n >= limit) {
            return Box::pin(async move { Err(injected(&format!("multipart part {n} failed"))) });
        }
        self.inner.put_part(data)
    }

    async fn complete(&mut self) -> Result<PutResult> {
        self.inner.complete().await
    }

    async fn abort(&mut self) -> Result<()> {
        self.inner.abort().await
    }
}

#[async_trait]
impl ObjectStore for FaultStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        if let Some(suffix) = &self.plan.fail_put_suffix
            && location.as_ref().ends_with(suffix.as_str())
        {
            return Err(injected(&format!("put {location} failed")));
        }
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        let inner = self.inner.put_multipart_opts(location, opts).await?;
        Ok(Box::new(FaultUpload {
            inner,
            limit: self.plan.fail_parts_after,
            parts: self.parts.clone(),
        }))
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        if let Some(d) = self.plan.read_delay {
            tokio::time::sleep(d).await;
        }
        let result = self.inner.get_opts(location, options).await?;
        let Some(limit) = self.plan.truncate_archive_reads_at else {
            return Ok(result);
        };
        if ![".tar.gz", ".tar.zst"]
            .iter()
            .any(|s| location.as_ref().ends_with(s))
        {
            return Ok(result);
        }
        let meta = result.meta.clone();
        let range: Range<u64> = result.range.clone();
        let attributes = result.attributes.clone();
        let mut left = limit;
        let stream = result
            .into_stream()
            .map(move |chunk| {
                chunk.map(|b: Bytes| {
                    let n = (b.len() as u64).min(left);
                    left -= n;
                    b.slice(..n as usize)
                })
            })
            .take_while(|c| futures::future::ready(!matches!(c, Ok(b) if b.is_empty())))
            .boxed();
        Ok(GetResult {
            payload: GetResultPayload::Stream(stream),
            meta,
            range,
            attributes,
            extensions: Default::default(),
        })
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        if self.plan.refuse_deletes {
            return locations
                .map(|location| {
                    let path = location?;
                    Err(object_store::Error::PermissionDenied {
                        path: path.to_string(),
                        source: format!("injected fault: delete of {path} refused").into(),
                    })
                })
                .boxed();
        }
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.inner.copy_opts(from, to, options).await
    }
}
