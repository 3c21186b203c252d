//! Archives in and out: the download (streamed, with its length and
//! checksum in headers, resumable with `Range: bytes=N-`) and the upload
//! (streamed into a spool file, bounded, then the same validation as
//! `backups upload`).

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use backups_core::{ArchiveSource, Backups, NoProgress};
use futures::{StreamExt, TryStreamExt};
use serde_json::json;
use tokio::io::AsyncWriteExt;

use crate::auth::{Caller, Role};
use crate::error::{ApiError, ErrorKind};
use crate::shapes::{metadata_json, parse_id};
use crate::state::ServerState;

/// The header with the SHA-1 (base64) of the plain archive, as `show` prints it.
pub const SHA1_HEADER: &str = "x-backups-sha1";
/// The header with the stored object's SHA-256 (hex), for an encrypted backup.
pub const STORED_SHA256_HEADER: &str = "x-backups-stored-sha256";

/// `bytes=N-` (or `bytes=N-M`, read as from N to the end): the first byte
/// wanted. Anything else is ignored (the whole object is sent).
fn range_start(headers: &HeaderMap) -> Option<u64> {
    let v = headers.get(header::RANGE)?.to_str().ok()?;
    let spec = v.strip_prefix("bytes=")?;
    let (start, _) = spec.split_once('-')?;
    start.trim().parse().ok()
}

/// `GET /api/v1/backups/{id}/archive`.
pub(crate) async fn download(
    State(state): State<Arc<ServerState>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    caller.require(Role::Read, "download")?;
    let id = parse_id(&id)?;
    let start = range_start(&headers).unwrap_or(0);
    let meta = state.backups.metadata(&id).await?;
    let total = meta.stored_size();
    if start >= total && start > 0 {
        let mut r = ApiError::usage(format!(
            "backup {id} has {total} bytes: a download cannot start at byte {start}"
        ))
        .into_response();
        *r.status_mut() = StatusCode::RANGE_NOT_SATISFIABLE;
        if let Ok(v) = HeaderValue::from_str(&format!("bytes */{total}")) {
            r.headers_mut().insert(header::CONTENT_RANGE, v);
        }
        return Ok(r);
    }
    let (_, stream) = state.backups.get_from(&id, start).await?;
    let body = Body::from_stream(stream.map_err(std::io::Error::other));
    let mut response = Response::new(body);
    let h = response.headers_mut();
    let value = |s: String| HeaderValue::from_str(&s).ok();
    let mut set = |name: header::HeaderName, v: Option<HeaderValue>| {
        if let Some(v) = v {
            h.insert(name, v);
        }
    };
    set(header::CONTENT_LENGTH, value((total - start).to_string()));
    set(
        header::CONTENT_TYPE,
        Some(HeaderValue::from_static("application/gzip")),
    );
    set(
        header::ACCEPT_RANGES,
        Some(HeaderValue::from_static("bytes")),
    );
    set(
        header::HeaderName::from_static(SHA1_HEADER),
        value(meta.checksum.clone()),
    );
    if let Some(e) = &meta.encryption {
        set(
            header::HeaderName::from_static(STORED_SHA256_HEADER),
            value(e.stored_sha256.clone()),
        );
    }
    if start > 0 {
        set(
            header::CONTENT_RANGE,
            value(format!("bytes {start}-{}/{total}", total - 1)),
        );
        *response.status_mut() = StatusCode::PARTIAL_CONTENT;
    }
    Ok(response)
}

fn too_large(max: u64) -> ApiError {
    ApiError::new(
        ErrorKind::TooLarge,
        format!(
            "the archive is larger than this server's upload limit ({max} bytes, --max-upload)"
        ),
    )
}

/// `POST /api/v1/backups`: the archive is the body. It is spooled to a
/// temporary file (refused past the limit, dropped when it stalls), then
/// validated and stored as `backups upload` does. Answers `{"ID",
/// "AlreadyPresent", "Metadata"}`.
pub(crate) async fn upload(
    State(state): State<Arc<ServerState>>,
    Extension(caller): Extension<Caller>,
    request: Request,
) -> Result<Response, ApiError> {
    caller.require(Role::Append, "upload")?;
    let max = state.max_upload;
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max) {
        return Err(too_large(max));
    }
    let spool = tempfile::Builder::new()
        .prefix(".backups-upload-")
        .tempfile_in(&state.spool_dir)
        .map_err(|e| {
            ApiError::new(
                ErrorKind::LocalFile,
                format!(
                    "cannot make a spool file in {}: {e}",
                    state.spool_dir.display()
                ),
            )
        })?;
    let path = spool.path().to_path_buf();
    let mut file = tokio::fs::File::from_std(spool.reopen().map_err(|e| {
        ApiError::new(
            ErrorKind::LocalFile,
            format!("opening {}: {e}", path.display()),
        )
    })?);
    let mut body = request.into_body().into_data_stream();
    let mut received: u64 = 0;
    loop {
        let chunk = match tokio::time::timeout(state.body_idle, body.next()).await {
            Err(_) => {
                return Err(ApiError::usage(format!(
                    "the upload stalled: nothing came for {} s after {received} bytes",
                    state.body_idle.as_secs()
                )));
            }
            Ok(None) => break,
            Ok(Some(Err(e))) => {
                return Err(ApiError::usage(format!(
                    "the upload broke off after {received} bytes: {e}"
                )));
            }
            Ok(Some(Ok(chunk))) => chunk,
        };
        received += chunk.len() as u64;
        if received > max {
            return Err(too_large(max));
        }
        file.write_all(&chunk).await.map_err(|e| {
            ApiError::new(
                ErrorKind::LocalFile,
                format!("writing {}: {e}", path.display()),
            )
        })?;
    }
    file.flush().await.map_err(|e| {
        ApiError::new(
            ErrorKind::LocalFile,
            format!("writing {}: {e}", path.display()),
        )
    })?;
    drop(file);
    let outcome = state
        .backups
        .add(ArchiveSource::File(path), None, Arc::new(NoProgress))
        .await?;
    drop(spool);
    let id = outcome
        .metadata
        .id
        .as_ref()
        .map(|i| i.to_string())
        .unwrap_or_default();
    let status = if outcome.already_present {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((
        status,
        Json(json!({
            "ID": id,
            "AlreadyPresent": outcome.already_present,
            "Metadata": metadata_json(&outcome.metadata, false),
        })),
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(v: &str) -> Option<u64> {
        let mut h = HeaderMap::new();
        h.insert(header::RANGE, HeaderValue::from_str(v).ok()?);
        range_start(&h)
    }

    #[test]
    fn only_byte_ranges_from_an_offset_are_read() {
        assert_eq!(range("bytes=100-"), Some(100));
        assert_eq!(range("bytes=0-"), Some(0));
        assert_eq!(range("bytes=5-10"), Some(5));
        assert_eq!(range("bytes=-500"), None, "a suffix range is not resumable");
        assert_eq!(range("items=1-"), None);
        assert_eq!(range("bytes=x-"), None);
        assert_eq!(range("bytes=99999999999999999999999-"), None);
        assert_eq!(range_start(&HeaderMap::new()), None);
    }
}
