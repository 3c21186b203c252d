//! The `Backups` contract on the memory and local-file stores.
#![allow(clippy::unwrap_used)]

use backups_core::{Storage, conformance};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_store() {
    conformance::run_all(|| {
        Storage::from_url("memory://", Vec::<(String, String)>::new()).unwrap()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_store() {
    let dirs = std::sync::Mutex::new(Vec::new());
    conformance::run_all(|| {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("file://{}", dir.path().display());
        dirs.lock().unwrap().push(dir);
        Storage::from_url(&url, Vec::<(String, String)>::new()).unwrap()
    })
    .await;
}
