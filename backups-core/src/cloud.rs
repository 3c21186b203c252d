//! Opening cloud stores (S3, Azure, GCS) through object_store's builders:
//! credentials from the environment, our retry and timeout defaults, then
//! the store options.

use std::sync::Arc;
use std::time::Duration;

use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};
use object_store::gcp::{GoogleCloudStorageBuilder, GoogleConfigKey};
use object_store::{BackoffConfig, ClientConfigKey, ObjectStore, RetryConfig};
use url::Url;

use crate::error::{Error, Result};

/// A bad store URL or option (exit 6 at the CLI).
pub(crate) fn bad_url(value: &str, reason: impl Into<String>) -> Error {
    Error::InvalidInput {
        what: crate::error::InputKind::StoreUrl,
        value: value.to_string(),
        reason: reason.into(),
    }
}

/// How transient failures (5xx, timeouts, connection resets) are retried,
/// with exponential backoff.
fn retry_config() -> RetryConfig {
    RetryConfig {
        backoff: BackoffConfig {
            init_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(15),
            base: 2.0,
        },
        max_retries: 8,
        retry_timeout: Duration::from_secs(300),
    }
}

/// Our defaults for how long one request may take, each applied only when
/// the cloud's own environment (`{env_prefix}_TIMEOUT`, ...) does not set
/// it: the builders' `with_client_options` would replace every client
/// setting read from the environment (`AWS_ALLOW_HTTP` among them).
fn client_defaults(env_prefix: &str) -> Vec<(ClientConfigKey, &'static str)> {
    [
        (ClientConfigKey::ConnectTimeout, "CONNECT_TIMEOUT", "10s"),
        (ClientConfigKey::Timeout, "TIMEOUT", "120s"),
    ]
    .into_iter()
    .filter(|(_, var, _)| std::env::var_os(format!("{env_prefix}_{var}")).is_none())
    .map(|(key, _, value)| (key, value))
    .collect()
}

/// The S3 builder [`cloud_store`] builds from: the environment, our
/// client defaults, then `options`. With `client`, the client options
/// start from it (default headers: the object-lock writes), the
/// environment's client settings applied over it again.
pub(crate) fn s3_builder<I, K, V>(
    url: &str,
    options: I,
    client: Option<object_store::ClientOptions>,
) -> Result<AmazonS3Builder>
where
    I: IntoIterator<Item = (K, V)>,
    K: AsRef<str>,
    V: Into<String>,
{
    let unknown = |k: &str| bad_url(url, format!("unknown store option {k:?}"));
    let mut b = AmazonS3Builder::from_env()
        .with_url(url)
        .with_retry(retry_config());
    if let Some(client) = client {
        b = b.with_client_options(client);
        for (k, v) in std::env::vars() {
            if let Some(Ok(key @ AmazonS3ConfigKey::Client(_))) = k
                .starts_with("AWS_")
                .then(|| k.to_ascii_lowercase().parse::<AmazonS3ConfigKey>())
            {
                b = b.with_config(key, v);
            }
        }
    }
    for (k, v) in client_defaults("AWS") {
        b = b.with_config(AmazonS3ConfigKey::Client(k), v);
    }
    for (k, v) in options {
        let key: AmazonS3ConfigKey = k.as_ref().parse().map_err(|_| unknown(k.as_ref()))?;
        b = b.with_config(key, v);
    }
    Ok(b)
}

/// Builds an S3, Azure or GCS store: credentials and settings from the
/// environment (`AWS_*`, `AZURE_*`, `GOOGLE_*`), then `options` (object_store
/// config keys such as `endpoint`, `region`, `allow_http`). An unknown key
/// is an error rather than silently ignored.
pub(crate) fn cloud_store<I, K, V>(
    parsed: &Url,
    url: &str,
    options: I,
) -> Result<Arc<dyn ObjectStore>>
where
    I: IntoIterator<Item = (K, V)>,
    K: AsRef<str>,
    V: Into<String>,
{
    let unknown = |k: &str| bad_url(url, format!("unknown store option {k:?}"));
    let built: object_store::Result<Arc<dyn ObjectStore>> = match parsed.scheme() {
        "s3" | "s3a" => s3_builder(url, options, None)?
            .build()
            .map(|s| Arc::new(s) as _),
        "gs" => {
            let mut b = GoogleCloudStorageBuilder::from_env()
                .with_url(url)
                .with_retry(retry_config());
            for (k, v) in client_defaults("GOOGLE") {
                b = b.with_config(GoogleConfigKey::Client(k), v);
            }
            for (k, v) in options {
                let key: GoogleConfigKey = k.as_ref().parse().map_err(|_| unknown(k.as_ref()))?;
                b = b.with_config(key, v);
            }
            b.build().map(|s| Arc::new(s) as _)
        }
        _ => {
            let mut b = MicrosoftAzureBuilder::from_env()
                .with_url(url)
                .with_retry(retry_config());
            for (k, v) in client_defaults("AZURE") {
                b = b.with_config(AzureConfigKey::Client(k), v);
            }
            for (k, v) in options {
                let key: AzureConfigKey = k.as_ref().parse().map_err(|_| unknown(k.as_ref()))?;
                b = b.with_config(key, v);
            }
            b.build().map(|s| Arc::new(s) as _)
        }
    };
    built.map_err(|e| bad_url(url, e.to_string()))
}
