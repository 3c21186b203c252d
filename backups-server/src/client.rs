//! The client: [`RemoteBackups`], the [`Backups`] contract over a
//! `backups serve` (list, show, download, upload, remove), plus the
//! server's other operations (labels, notes, verify, forget, create).
//! A download reconnects where it broke off (`Range`) a few times; what
//! reaches the caller is checked against the recorded size and checksum
//! by the library's own download, so a broken one leaves no file.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use backups_core::{
    AddOutcome, ArchiveSource, ArchiveStream, BackupId, Backups, CreateRequest, Encryption, Error,
    Metadata, Progress, RestoreReport, RestoreRequest, VerifyLevel,
};
use bytes::Bytes;
use futures::StreamExt;
use reqwest::{Method, RequestBuilder, StatusCode};
use serde_json::{Value, json};

/// How many times a broken download is resumed.
const RESUMES: u32 = 3;

/// What a download hands on at a time: TLS records (16 KiB) gathered into
/// chunks this big, so the file is written in few large writes.
const CHUNK: usize = 1 << 20;

/// A `backups serve` reached over HTTPS with a bearer token.
#[derive(Clone)]
pub struct RemoteBackups {
    base: String,
    token: Arc<str>,
    client: reqwest::Client,
}

impl std::fmt::Debug for RemoteBackups {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteBackups")
            .field("url", &self.base)
            .finish_non_exhaustive()
    }
}

fn remote(url: &str, status: u16, kind: &str, message: impl Into<String>) -> Error {
    Error::Remote {
        url: url.to_string(),
        status,
        kind: kind.to_string(),
        message: message.into(),
    }
}

impl RemoteBackups {
    /// A client of the server at `url` (`https://host:port`, or `http://`
    /// for a loopback server run with --insecure-loopback). `ca_pem`: the
    /// only CA its certificate is checked against (else the system's).
    pub fn new(url: &str, token: &str, ca_pem: Option<&[u8]>) -> Result<Self, Error> {
        let base = url.trim_end_matches('/').to_string();
        if !(base.starts_with("https://") || base.starts_with("http://")) {
            return Err(remote(
                url,
                0,
                "usage",
                format!("--remote {url:?} is not an https:// URL"),
            ));
        }
        // A bearer token never travels in clear text to another machine,
        // and never follows a redirect.
        let parsed = url::Url::parse(&base)
            .map_err(|e| remote(url, 0, "usage", format!("--remote {url:?}: {e}")))?;
        let loopback = match parsed.host() {
            Some(url::Host::Ipv4(a)) => a.is_loopback(),
            Some(url::Host::Ipv6(a)) => a.is_loopback(),
            Some(url::Host::Domain(d)) => d == "localhost",
            None => false,
        };
        if parsed.scheme() == "http" && !loopback {
            return Err(remote(
                url,
                0,
                "usage",
                format!(
                    "--remote {url:?}: plain http:// is only for a loopback server (--insecure-loopback); use https://"
                ),
            ));
        }
        let mut builder = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(30))
            .read_timeout(Duration::from_secs(600))
            .redirect(reqwest::redirect::Policy::none());
        if let Some(pem) = ca_pem {
            let certs = reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|e| remote(url, 0, "usage", format!("the CA file: {e}")))?;
            builder = builder.tls_certs_only(certs);
        }
        let client = builder
            .build()
            .map_err(|e| remote(url, 0, "other", format!("cannot make an HTTPS client: {e}")))?;
        Ok(RemoteBackups {
            base,
            token: token.trim().into(),
            client,
        })
    }

    /// The server's URL.
    pub fn url(&self) -> &str {
        &self.base
    }

    fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&*self.token)
    }

    fn unreachable(&self, e: &reqwest::Error) -> Error {
        let mut message = e.to_string();
        let mut source = std::error::Error::source(e);
        while let Some(cause) = source {
            message.push_str(&format!(": {cause}"));
            source = cause.source();
        }
        remote(&self.base, 0, "unreachable", message)
    }

    /// Sends; a non-success answer becomes [`Error::Remote`] with the
    /// server's kind and message.
    async fn send(&self, request: RequestBuilder) -> Result<reqwest::Response, Error> {
        let response = request.send().await.map_err(|e| self.unreachable(&e))?;
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status();
        let body: Value = response.json().await.unwrap_or_default();
        let kind = body["Kind"].as_str().unwrap_or(match status {
            StatusCode::UNAUTHORIZED => "unauthorized",
            StatusCode::FORBIDDEN => "forbidden",
            StatusCode::NOT_FOUND => "not-found",
            _ => "other",
        });
        let message = body["Error"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| format!("the server answered {status}"));
        Err(remote(&self.base, status.as_u16(), kind, message))
    }

    async fn json(&self, request: RequestBuilder) -> Result<Value, Error> {
        let response = self.send(request).await?;
        response.json().await.map_err(|e| self.unreachable(&e))
    }

    fn metadata_from(&self, v: &Value) -> Result<Metadata, Error> {
        let bytes = serde_json::to_vec(v).unwrap_or_default();
        Metadata::from_json(&bytes, &self.base)
    }

    /// `list --json`'s array, as the server answers it (each object may
    /// carry `"PendingRecovery": true`).
    pub async fn list_json(&self) -> Result<Vec<Value>, Error> {
        match self
            .json(self.request(Method::GET, "/api/v1/backups"))
            .await?
        {
            Value::Array(a) => Ok(a),
            _ => Err(remote(
                &self.base,
                200,
                "other",
                "the list is not a JSON array",
            )),
        }
    }

    /// `show --json`'s object.
    pub async fn show_json(&self, id: &BackupId) -> Result<Value, Error> {
        self.json(self.request(Method::GET, &format!("/api/v1/backups/{id}")))
            .await
    }

    /// Removes a backup (`force`: even one a pending restore journal needs).
    pub async fn remove_backup(&self, id: &BackupId, force: bool) -> Result<(), Error> {
        let path = format!("/api/v1/backups/{id}?force={force}");
        self.send(self.request(Method::DELETE, &path)).await?;
        Ok(())
    }

    /// Adds and removes labels; the backup after.
    pub async fn edit_labels(
        &self,
        id: &BackupId,
        add: &[String],
        remove: &[String],
    ) -> Result<Metadata, Error> {
        let path = format!("/api/v1/backups/{id}/labels");
        let v = self
            .json(
                self.request(Method::POST, &path)
                    .json(&json!({"Add": add, "Remove": remove})),
            )
            .await?;
        self.metadata_from(&v)
    }

    /// Replaces the notes; the backup after.
    pub async fn set_notes(&self, id: &BackupId, notes: &str) -> Result<Metadata, Error> {
        let path = format!("/api/v1/backups/{id}/notes");
        let v = self
            .json(
                self.request(Method::PUT, &path)
                    .json(&json!({"Notes": notes})),
            )
            .await?;
        self.metadata_from(&v)
    }

    /// Verifies on the server: `{"ID", "Level", "Ok", "Detail"}`.
    pub async fn verify_remote(&self, id: &BackupId, level: VerifyLevel) -> Result<Value, Error> {
        let path = format!("/api/v1/backups/{id}/verify");
        self.json(
            self.request(Method::POST, &path)
                .json(&json!({"Level": level})),
        )
        .await
    }

    /// Applies a retention policy (its JSON, as
    /// [`backups_core::RetentionPolicy`] reads it): `{"Keep", "Remove",
    /// "Failed"}`.
    pub async fn forget_remote(&self, policy: Value, dry_run: bool) -> Result<Value, Error> {
        self.json(
            self.request(Method::POST, "/api/v1/forget")
                .json(&json!({"Policy": policy, "DryRun": dry_run})),
        )
        .await
    }

    /// Has the server make a backup as it is configured.
    pub async fn create_remote(&self, notes: &str, labels: &[String]) -> Result<Metadata, Error> {
        let v = self
            .json(
                self.request(Method::POST, "/api/v1/create")
                    .json(&json!({"Notes": notes, "Labels": labels})),
            )
            .await?;
        self.metadata_from(&v)
    }

    /// The plan of restoring `id` into `target` (which must be the
    /// server's): `{"Plan", "Token", "ExpiresIn"}`.
    pub async fn restore_plan(
        &self,
        id: &BackupId,
        target: &std::path::Path,
    ) -> Result<Value, Error> {
        let path = format!("/api/v1/backups/{id}/restore");
        self.json(
            self.request(Method::POST, &path)
                .json(&json!({"Target": target})),
        )
        .await
    }

    /// Restores what the plan with `token` said: `{"Report"}`.
    pub async fn restore_planned(&self, token: &str) -> Result<Value, Error> {
        self.json(
            self.request(Method::POST, "/api/v1/restore")
                .json(&json!({"Token": token})),
        )
        .await
    }

    /// The archive's bytes from `offset` on.
    async fn archive_from(&self, id: &BackupId, offset: u64) -> Result<reqwest::Response, Error> {
        let mut request = self.request(Method::GET, &format!("/api/v1/backups/{id}/archive"));
        if offset > 0 {
            request = request.header(reqwest::header::RANGE, format!("bytes={offset}-"));
        }
        let response = self.send(request).await?;
        if offset > 0 && response.status() != StatusCode::PARTIAL_CONTENT {
            return Err(remote(
                &self.base,
                response.status().as_u16(),
                "other",
                "the server did not resume the download where it broke off",
            ));
        }
        Ok(response)
    }
}

/// The download's state: bytes so far, the current response's stream, and
/// the resumes left.
struct Resuming {
    client: RemoteBackups,
    id: BackupId,
    received: u64,
    resumes: u32,
    body: Option<futures::stream::BoxStream<'static, reqwest::Result<Bytes>>>,
}

/// `stream` in chunks of at least [`CHUNK`] bytes (the last one smaller).
fn coalesced(stream: ArchiveStream) -> ArchiveStream {
    futures::stream::try_unfold(Some(stream), |stream| async move {
        let Some(mut stream) = stream else {
            return Ok(None);
        };
        let mut buf = bytes::BytesMut::new();
        while buf.len() < CHUNK {
            match stream.next().await {
                Some(chunk) => buf.extend_from_slice(&chunk?),
                None if buf.is_empty() => return Ok(None),
                None => return Ok(Some((buf.freeze(), None))),
            }
        }
        Ok(Some((buf.freeze(), Some(stream))))
    })
    .boxed()
}

fn resuming_stream(state: Resuming) -> ArchiveStream {
    futures::stream::try_unfold(state, |mut s| async move {
        loop {
            let body = match s.body.as_mut() {
                Some(b) => b,
                None => {
                    let response = s.client.archive_from(&s.id, s.received).await?;
                    s.body.insert(response.bytes_stream().boxed())
                }
            };
            match body.next().await {
                None => return Ok(None),
                Some(Ok(chunk)) => {
                    s.received += chunk.len() as u64;
                    return Ok(Some((chunk, s)));
                }
                Some(Err(e)) if s.resumes > 0 => {
                    let _ = e;
                    s.resumes -= 1;
                    s.body = None;
                }
                Some(Err(e)) => return Err(s.client.unreachable(&e)),
            }
        }
    })
    .boxed()
}

#[async_trait]
impl Backups for RemoteBackups {
    async fn create(
        &self,
        _request: CreateRequest,
        _progress: Arc<dyn Progress>,
    ) -> Result<Metadata, Error> {
        Err(remote(
            &self.base,
            0,
            "usage",
            "a server makes backups of what it is configured with: use RemoteBackups::create_remote",
        ))
    }

    async fn add(
        &self,
        source: ArchiveSource,
        encryption: Option<Encryption>,
        _progress: Arc<dyn Progress>,
    ) -> Result<AddOutcome, Error> {
        if encryption.is_some() {
            return Err(remote(
                &self.base,
                0,
                "usage",
                "a server stores uploads as they are: encrypt the archive before uploading it, or upload on the store's machine",
            ));
        }
        let body = match &source {
            ArchiveSource::Bytes(b) => reqwest::Body::from(b.clone()),
            ArchiveSource::File(p) => {
                let file = tokio::fs::File::open(p).await.map_err(|source| Error::Io {
                    action: "opening",
                    path: p.clone(),
                    source,
                })?;
                reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::with_capacity(
                    file,
                    1 << 20,
                ))
            }
        };
        let mut request = self
            .request(Method::POST, "/api/v1/backups")
            .header(reqwest::header::CONTENT_TYPE, "application/gzip")
            .body(body);
        if let ArchiveSource::File(p) = &source
            && let Ok(m) = std::fs::metadata(p)
        {
            request = request.header(reqwest::header::CONTENT_LENGTH, m.len());
        }
        let v = self.json(request).await?;
        let metadata = self.metadata_from(&v["Metadata"])?;
        Ok(AddOutcome::new(
            metadata,
            v["AlreadyPresent"].as_bool().unwrap_or(false),
        ))
    }

    async fn metadata(&self, id: &BackupId) -> Result<Metadata, Error> {
        let v = self.show_json(id).await?;
        self.metadata_from(&v)
    }

    async fn get(&self, id: &BackupId) -> Result<(Metadata, ArchiveStream), Error> {
        let meta = self.metadata(id).await?;
        let first = self.archive_from(id, 0).await?;
        let stream = resuming_stream(Resuming {
            client: self.clone(),
            id: id.clone(),
            received: 0,
            resumes: RESUMES,
            body: Some(first.bytes_stream().boxed()),
        });
        Ok((meta, coalesced(stream)))
    }

    async fn list(&self) -> Result<Vec<Metadata>, Error> {
        self.list_json()
            .await?
            .iter()
            .map(|v| self.metadata_from(v))
            .collect()
    }

    async fn remove(&self, id: &BackupId) -> Result<(), Error> {
        self.remove_backup(id, false).await
    }

    async fn restore(
        &self,
        _request: RestoreRequest,
        _progress: Arc<dyn Progress>,
    ) -> Result<RestoreReport, Error> {
        Err(remote(
            &self.base,
            0,
            "usage",
            "restoring through a server is not built yet: download the backup and restore it here",
        ))
    }
}
