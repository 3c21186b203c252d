//! The `Backups` conformance suite on real object-store servers: moto and
//! Garage (S3) and Azurite (Azure Blob), started by `scripts/services`
//! (which `scripts/test` runs). Each check gets its own fresh key prefix.
//!
//! Without the servers' environment variables these tests fail under
//! `CI=true` and are skipped (with a message) otherwise.
#![allow(clippy::unwrap_used)]

use backups_core::test_util::{service_env, unique_name};
use backups_core::{Storage, conformance};

/// An S3 store at `endpoint`/`bucket` under a fresh prefix.
pub fn s3(endpoint: &str, bucket: &str, region: &str, key: &str, secret: &str) -> Storage {
    Storage::from_url(
        &format!("s3://{bucket}/{}", unique_name("t")),
        [
            ("endpoint", endpoint),
            ("region", region),
            ("allow_http", "true"),
            ("access_key_id", key),
            ("secret_access_key", secret),
        ],
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moto() {
    let (Some(endpoint), Some(bucket)) = (
        service_env("BACKUPS_TEST_MOTO_ENDPOINT"),
        service_env("BACKUPS_TEST_MOTO_BUCKET"),
    ) else {
        return;
    };
    conformance::run_all(|| s3(&endpoint, &bucket, "us-east-1", "test", "test")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garage() {
    let (Some(endpoint), Some(bucket), Some(key), Some(secret)) = (
        service_env("BACKUPS_TEST_GARAGE_ENDPOINT"),
        service_env("BACKUPS_TEST_GARAGE_BUCKET"),
        service_env("BACKUPS_TEST_GARAGE_KEY_ID"),
        service_env("BACKUPS_TEST_GARAGE_SECRET"),
    ) else {
        return;
    };
    conformance::run_all(|| s3(&endpoint, &bucket, "garage", &key, &secret)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azurite() {
    // object_store reads the emulator's address from AZURITE_BLOB_STORAGE_URL.
    let (Some(_url), Some(container)) = (
        service_env("AZURITE_BLOB_STORAGE_URL"),
        service_env("BACKUPS_TEST_AZURITE_CONTAINER"),
    ) else {
        return;
    };
    conformance::run_all(|| {
        Storage::from_url(
            &format!("az://{container}/{}", unique_name("t")),
            [("use_emulator", "true")],
        )
        .unwrap()
    })
    .await;
}
