//! S3 Object Lock: what object_store 0.14 cannot do by itself.
//!
//! Locked writes go through a second client whose default headers (signed
//! since object_store 0.13.2) are the lock's `x-amz-object-lock-mode` and
//! `x-amz-object-lock-retain-until-date`, with SHA-256 checksums (a PUT
//! with lock headers needs `Content-MD5` or an `x-amz-checksum-*`). The
//! bucket's Object Lock configuration, an object's lock (HEAD's headers)
//! and a delete of a locked version bypassing governance are requests of
//! their own, signed with object_store's SigV4 signer and the store's
//! credentials.

use std::sync::Arc;
use std::time::Duration;

use object_store::aws::{AmazonS3, AmazonS3Builder, AmazonS3ConfigKey, AwsAuthorizer, Checksum};
use object_store::client::{HttpRequest, HttpRequestBody};
use object_store::path::Path as ObjectPath;
use object_store::{ClientOptions, ObjectStore};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, StatusCode};
use url::Url;

use crate::cloud::s3_builder;
use crate::error::{Error, Result};
use crate::immutable::lock::{ImmutableMode, ObjectLock};

/// How long one lock request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// What reopens an S3 store: its URL and options.
pub(crate) struct S3Settings {
    url: String,
    options: Vec<(String, String)>,
}

/// One object's lock as HEAD reports it, and its version.
#[derive(Debug, Clone)]
pub(crate) struct HeadLock {
    /// The lock, if the object has one.
    pub(crate) lock: Option<ObjectLock>,
    /// The object's current version (`x-amz-version-id`).
    pub(crate) version: Option<String>,
}

impl S3Settings {
    /// The settings of the store at `url` opened with `options`.
    pub(crate) fn new(url: &str, options: Vec<(String, String)>) -> Self {
        S3Settings {
            url: url.to_string(),
            options,
        }
    }

    fn builder(&self, client: Option<ClientOptions>) -> Result<AmazonS3Builder> {
        s3_builder(&self.url, self.options.clone(), client)
    }

    fn storage_error(&self, what: &str, reason: String) -> Error {
        Error::storage(
            format!("{} ({what})", self.url),
            object_store::Error::Generic {
                store: "S3",
                source: reason.into(),
            },
        )
    }

    /// A client whose every write carries a SHA-256 checksum (which the
    /// store checks, and reports back: [`S3Settings::head_checksum`]) and,
    /// with `lock`, the lock's headers.
    pub(crate) fn write_store(&self, lock: Option<&ObjectLock>) -> Result<Arc<dyn ObjectStore>> {
        let mut headers = HeaderMap::new();
        let value = |v: &str| {
            HeaderValue::from_str(v).map_err(|e| Error::internal(format!("lock header: {e}")))
        };
        if let Some(lock) = lock {
            headers.insert(
                HeaderName::from_static("x-amz-object-lock-mode"),
                value(lock.mode.s3_name())?,
            );
            headers.insert(
                HeaderName::from_static("x-amz-object-lock-retain-until-date"),
                value(&lock.until_text())?,
            );
        }
        // What the AWS SDKs send beside the checksum itself; moto (and
        // S3's documentation) ask for it, or Content-MD5, on a locked PUT.
        headers.insert(
            HeaderName::from_static("x-amz-sdk-checksum-algorithm"),
            value("SHA256")?,
        );
        let client = ClientOptions::new().with_default_headers(headers);
        let store = self
            .builder(Some(client))?
            .with_checksum_algorithm(Checksum::SHA256)
            .build()
            .map_err(|e| Error::storage(&self.url, e))?;
        Ok(Arc::new(store))
    }

    /// Refuses a bucket without an Object Lock configuration
    /// ([`Error::NoObjectLock`]), before anything is written.
    pub(crate) async fn check_bucket(&self) -> Result<()> {
        let (base, bucket) = self.bucket_endpoint()?;
        let mut url = base;
        url.set_query(Some("object-lock"));
        let response = self.send(Method::GET, url, &[]).await?;
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        if status.is_success() && body.contains("<ObjectLockEnabled>Enabled</ObjectLockEnabled>") {
            return Ok(());
        }
        if status.is_success()
            || status == StatusCode::NOT_FOUND
            || status == StatusCode::NOT_IMPLEMENTED
            || body.contains("ObjectLockConfigurationNotFound")
        {
            return Err(Error::NoObjectLock { bucket });
        }
        Err(self.storage_error(
            "reading the Object Lock configuration",
            format!("{status}: {}", short(&body)),
        ))
    }

    /// The lock of the object at `key` (`None` when there is no object).
    pub(crate) async fn head(&self, key: &ObjectPath) -> Result<Option<HeadLock>> {
        let url = self.object_url(key)?;
        let response = self.send(Method::HEAD, url, &[]).await?;
        let status = response.status();
        if status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !status.is_success() {
            return Err(self.storage_error(&format!("HEAD {key}"), status.to_string()));
        }
        let h = response.headers();
        let text = |name: &str| h.get(name).and_then(|v| v.to_str().ok());
        let mode = text("x-amz-object-lock-mode").and_then(ImmutableMode::from_s3);
        let until = text("x-amz-object-lock-retain-until-date").and_then(|v| {
            time::OffsetDateTime::parse(v, &time::format_description::well_known::Rfc3339).ok()
        });
        Ok(Some(HeadLock {
            lock: mode.zip(until).map(|(m, u)| ObjectLock::new(m, u)),
            version: text("x-amz-version-id").map(str::to_string),
        }))
    }

    /// The size and the SHA-256 checksum the store reports for `key`
    /// (`x-amz-checksum-sha256` of a HEAD with `x-amz-checksum-mode:
    /// ENABLED`: base64, `-N` after a composite of N parts); `None` when
    /// it reports none.
    pub(crate) async fn head_checksum(&self, key: &ObjectPath) -> Result<Option<(u64, String)>> {
        let url = self.object_url(key)?;
        let mode = [("x-amz-checksum-mode", "ENABLED")];
        let response = self.send(Method::HEAD, url, &mode).await?;
        let status = response.status();
        if !status.is_success() {
            return Err(self.storage_error(&format!("HEAD {key}"), status.to_string()));
        }
        let h = response.headers();
        let size = h
            .get(reqwest::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse().ok());
        let sum = h
            .get("x-amz-checksum-sha256")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        Ok(size.zip(sum))
    }

    /// Deletes one version of `key` with `x-amz-bypass-governance-retention`
    /// (allowed with `s3:BypassGovernanceRetention`, never in compliance mode).
    pub(crate) async fn delete_bypassing(&self, key: &ObjectPath, version: &str) -> Result<()> {
        let mut url = self.object_url(key)?;
        url.query_pairs_mut().append_pair("versionId", version);
        let bypass = [("x-amz-bypass-governance-retention", "true")];
        let response = self.send(Method::DELETE, url, &bypass).await?;
        let status = response.status();
        if status.is_success() || status == StatusCode::NOT_FOUND {
            return Ok(());
        }
        let body = response.text().await.unwrap_or_default();
        Err(self.storage_error(
            &format!("deleting {key} bypassing governance"),
            format!("{status}: {}", short(&body)),
        ))
    }

    /// The bucket's URL (path style unless virtual-hosted requests are
    /// configured, as object_store addresses it) and its name.
    fn bucket_endpoint(&self) -> Result<(Url, String)> {
        let b = self.builder(None)?;
        let value = |k| b.get_config_value(&k);
        // The builder parses its URL only when it builds.
        let bucket = Url::parse(&self.url)
            .ok()
            .and_then(|u| u.host_str().map(str::to_string))
            .or_else(|| value(AmazonS3ConfigKey::Bucket))
            .ok_or_else(|| Error::internal(format!("no bucket in {}", self.url)))?;
        let region = value(AmazonS3ConfigKey::Region).unwrap_or_else(|| "us-east-1".into());
        let virtual_hosted =
            value(AmazonS3ConfigKey::VirtualHostedStyleRequest).is_some_and(|v| v == "true");
        let base = match value(AmazonS3ConfigKey::Endpoint) {
            None => format!("https://{bucket}.s3.{region}.amazonaws.com"),
            Some(e) if virtual_hosted => e.trim_end_matches('/').to_string(),
            Some(e) => format!("{}/{bucket}", e.trim_end_matches('/')),
        };
        let url = Url::parse(&format!("{base}/"))
            .map_err(|e| Error::internal(format!("bucket URL {base}: {e}")))?;
        Ok((url, bucket))
    }

    fn object_url(&self, key: &ObjectPath) -> Result<Url> {
        let (mut url, _) = self.bucket_endpoint()?;
        url.path_segments_mut()
            .map_err(|_| Error::internal("bucket URL cannot take a path"))?
            .pop_if_empty()
            .extend(key.parts().map(|p| p.as_ref().to_string()));
        Ok(url)
    }

    /// Sends one request signed with the store's credentials (SigV4).
    async fn send(
        &self,
        method: Method,
        url: Url,
        headers: &[(&'static str, &str)],
    ) -> Result<reqwest::Response> {
        let b = self.builder(None)?;
        let region = b
            .get_config_value(&AmazonS3ConfigKey::Region)
            .unwrap_or_else(|| "us-east-1".into());
        let s3: AmazonS3 = b.build().map_err(|e| Error::storage(&self.url, e))?;
        let credential = s3
            .credentials()
            .get_credential()
            .await
            .map_err(|e| Error::storage(&self.url, e))?;
        let mut request = HttpRequest::new(HttpRequestBody::empty());
        *request.method_mut() = method.clone();
        *request.uri_mut() = url
            .as_str()
            .parse()
            .map_err(|e| Error::internal(format!("request URL {url}: {e}")))?;
        for (name, value) in headers {
            request.headers_mut().insert(
                HeaderName::from_static(name),
                HeaderValue::from_str(value)
                    .map_err(|e| Error::internal(format!("header {name}: {e}")))?,
            );
        }
        AwsAuthorizer::new(&credential, "s3", &region)
            .try_authorize(&mut request, None)
            .map_err(|e| Error::storage(&self.url, e))?;
        let client = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .build()
            .map_err(|e| self.storage_error("building an HTTP client", e.to_string()))?;
        let mut out = client.request(method, url.clone());
        for (name, value) in request.headers() {
            out = out.header(name, value);
        }
        out.send()
            .await
            .map_err(|e| self.storage_error(&format!("{url}"), e.to_string()))
    }
}

/// The start of a response body, for an error message (not from an
/// archive: an S3 error document).
fn short(body: &str) -> String {
    let one_line: String = body
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(300)
        .collect();
    one_line.trim().to_string()
}
