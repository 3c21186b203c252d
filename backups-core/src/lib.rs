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
//!         CreateRequest::new(
//!             FileSet::new(vec!["/var/lib/juju".into()]),
//!             Identity::new("e2a6a1e5-abea-4393-8593-5a45ae53ab97"),
//!         )
//!         .with_notes("before upgrade")
//!         .with_labels(vec!["manual".into()]),
//!         Arc::new(NoProgress),
//!     )
//!     .await?;
//! println!("created {}", meta.id.unwrap());
//! # Ok(())
//! # }
//! ```

//!
//! # Layers
//!
//! Dependencies point one way, down: the request types ([`CreateRequest`],
//! [`RestoreRequest`]...) depend on nothing above them; the catalog
//! ([`StoreBackups`]: sidecars and the commit protocol) on them; the
//! operations (create, add, download, restore, restore plan, diff) are free
//! functions over the catalog; [`Backups`] and the `StoreBackups` methods
//! that run operations are one-line calls into them. Below it all: the
//! archive format, extraction, storage, the lease and gc. Beside them,
//! [`schedule::Scheduler`] runs [`schedule::Job`]s on [`schedule::CronSchedule`]s (a controller's
//! scheduled backups), recording each job's [`schedule::JobStatus`].

#![warn(missing_debug_implementations, unreachable_pub)]
// What only `internals` exports is unreachable without it; the workspace
// build (clippy, tests) enables it and so checks `unreachable_pub` in full.
#![cfg_attr(not(feature = "internals"), allow(unreachable_pub))]

mod annotations;
mod archive;
mod backups;
pub mod catalog;
mod cloud;
pub mod copy;
pub mod crypt;
pub mod database;
pub mod diff;
mod digest;
pub mod download;
mod error;
mod extract;
mod files;
pub mod gc;
pub mod host;
pub mod id;
pub mod immutable;
pub mod journal;
pub mod juju;
pub mod lease;
mod locks;
pub mod metadata;
mod ops;
pub mod pitr;
mod progress;
mod request;
pub mod restore;
pub mod retention;
pub mod rewrite;
mod s3lock;
pub mod schedule;
pub mod secret;
pub mod services;
mod sparse;
pub mod storage;
mod upload;
pub mod verify;

#[cfg(feature = "test-util")]
pub mod conformance;
#[cfg(feature = "test-util")]
pub mod fault;
#[cfg(feature = "internals")]
pub mod internals;
#[cfg(feature = "test-util")]
pub mod test_util;

// The root: the entry type, the requests and reports, the errors and the
// traits an embedder implements. Everything else is in its module
// (`schedule`, `retention`, `database`, `crypt`, `lease`, `juju`, ...).
pub use crate::{
    archive::{ArchiveCompression, CompressionKind},
    backups::Backups,
    catalog::StoreBackups,
    crypt::{Encryption, Identities},
    database::{BackupLock, DatabaseComparer, DatabaseDumper, DatabaseLoader},
    error::{Error, InputKind, Result},
    extract::{ExtractOptions, ExtractStats},
    files::FileSet,
    id::BackupId,
    metadata::{Metadata, Verification, VerifyLevel},
    ops::diff::{DiffReport, DiffRequest},
    ops::edit::Edit,
    ops::execute::PreparedRestore,
    ops::plan::RestorePlan,
    ops::preflight::Preflight,
    ops::verify::VerifyRequest,
    progress::{NoProgress, Progress},
    request::{
        AddOutcome, ArchiveSource, ArchiveStream, CreateRequest, Identity, RestoreReport,
        RestoreRequest, RestoreSource, Safety, SafetyBackup,
    },
    retention::{ForgetReport, RetentionPolicy},
    services::ServiceController,
    storage::Storage,
    upload::UploadOptions,
};
pub use tokio_util::sync::CancellationToken;
