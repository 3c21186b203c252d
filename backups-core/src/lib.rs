//! Back up and restore a cluster controller — its database and a set of
//! files — into any object store, in Juju's archive format.
//!
//! A backup is a gzip'd tar with a single `juju-backup/` directory holding
//! `metadata.json`, `root.tar` (the files, paths relative to `/`), `dump/`
//! (a mongodump directory) and our trailing `manifest.json`. Stores keep
//! `<id>.tar.gz` and, written last as the commit point, `<id>.json`.
//!
//! ```no_run
//! use std::sync::Arc;
//! use backups_core::{Backups, CreateRequest, FileSet, Identity, NoProgress, Storage, StoreBackups};
//!
//! # async fn run() -> backups_core::Result<()> {
//! let backups = StoreBackups::new(Storage::from_url("file:///var/backups", Vec::<(String, String)>::new())?);
//! let meta = backups
//!     .create(
//!         CreateRequest {
//!             files: FileSet { paths: vec!["/var/lib/juju".into()], excludes: vec![] },
//!             database: None,
//!             notes: "before upgrade".into(),
//!             labels: vec!["manual".into()],
//!             identity: Identity {
//!                 model_uuid: "e2a6a1e5-abea-4393-8593-5a45ae53ab97".into(),
//!                 ..Default::default()
//!             },
//!             compression: Default::default(),
//!         },
//!         Arc::new(NoProgress),
//!     )
//!     .await?;
//! println!("created {}", meta.id.unwrap());
//! # Ok(())
//! # }
//! ```

pub mod archive;
mod backups;
pub mod database;
pub mod digest;
mod error;
pub mod extract;
pub mod files;
pub mod gc;
mod id;
pub mod journal;
pub mod lease;
pub mod metadata;
pub mod plan;
pub mod progress;
mod restore;
pub mod storage;
pub mod upload;

#[cfg(feature = "test-util")]
pub mod conformance;
#[cfg(feature = "test-util")]
pub mod fault;
#[cfg(feature = "test-util")]
pub mod test_util;

pub use archive::ArchiveCompression;
pub use backups::{
    AddOutcome, ArchiveSource, ArchiveStream, Backups, CreateRequest, Identity, StoreBackups,
};
pub use database::{
    DatabaseDumper, DatabaseLoader, DumpEntry, DumpFile, DumpSink, DumpSource, DumpSummary,
    LoadSummary,
};
pub use error::{Error, InputKind, Result};
pub use extract::{ExtractOptions, ExtractStats};
pub use files::FileSet;
pub use gc::{Garbage, GarbageKind};
pub use lease::{LeaseGuard, LeaseInfo};
pub use metadata::format_time;
pub use plan::{PlanReport, Preflight, RestorePlan, SafetyBackup, ServiceController, journal_path};
pub use id::BackupId;
pub use metadata::Metadata;
pub use progress::{NoProgress, Progress};
pub use restore::{RestoreReport, RestoreRequest, RestoreSource};
pub use storage::Storage;
pub use tokio_util::sync::CancellationToken;
pub use upload::UploadOptions;
