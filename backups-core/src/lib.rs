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
//! [`Scheduler`] runs [`Job`]s on [`CronSchedule`]s (a controller's
//! scheduled backups), recording each job's [`JobStatus`].

#![warn(missing_debug_implementations, unreachable_pub)]
// What only `internals` exports is unreachable without it; the workspace
// build (clippy, tests) enables it and so checks `unreachable_pub` in full.
#![cfg_attr(not(feature = "internals"), allow(unreachable_pub))]

mod archive;
mod backups;
mod catalog;
mod crypt;
mod database;
mod digest;
mod error;
mod extract;
mod files;
mod gc;
pub mod host;
mod id;
mod journal;
mod juju;
mod lease;
mod metadata;
mod ops;
mod progress;
mod request;
mod retention;
mod rewrite;
mod schedule;
mod secret;
mod services;
mod sparse;
mod storage;
mod upload;

#[cfg(feature = "test-util")]
pub mod conformance;
#[cfg(feature = "test-util")]
pub mod fault;
#[cfg(feature = "internals")]
pub mod internals;
#[cfg(feature = "test-util")]
pub mod test_util;

pub use crate::{
    archive::ArchiveCompression,
    backups::Backups,
    catalog::{Listing, StoreBackups, UnreadableSidecar},
    crypt::{Encryption, Identities, generate_identity},
    database::{
        BackupLock, CollectionDiff, DatabaseComparer, DatabaseDumper, DatabaseLoader, DumpEntry,
        DumpFile, DumpOrigin, DumpSink, DumpSource, DumpSummary, LoadSummary, MAX_BSON_DOCUMENT,
    },
    error::{Error, InputKind, Result},
    extract::{ExtractOptions, ExtractStats},
    files::FileSet,
    gc::{Garbage, GarbageKind},
    id::{BackupId, InvalidId},
    journal::{JournalEntry, RestoreJournal, Undone},
    juju::{JUJU_DATA_DIR, JujuAgentConfig, JujuProfile, juju_files, juju_root, juju_tools_series},
    lease::{DEFAULT_LEASE_TTL, LeaseGuard, LeaseInfo},
    metadata::{
        EncryptionInfo, MAX_LABEL_LEN, MAX_METADATA_BYTES, Metadata, Verification, VerifyLevel,
        check_label, format_time,
    },
    ops::diff::{
        DiffReport, DiffRequest, FileCounts, FileDifference, FileKind, FileState, FilesDiff,
    },
    ops::edit::Edit,
    ops::execute::pending_journals,
    ops::execute::{PreparedRestore, journal_path},
    ops::plan::RestorePlan,
    ops::preflight::Preflight,
    ops::verify::{DrillDatabase, VerifyRequest, drill_renames},
    progress::{NoProgress, Progress},
    request::{
        AddOutcome, ArchiveSource, ArchiveStream, CreateRequest, Identity, RestoreReport,
        RestoreRequest, RestoreSource, Safety, SafetyBackup,
    },
    retention::{
        Decision, ForgetReport, GroupBy, InvalidRetention, KeepCount, Kept, PINNED_LABEL,
        RetentionDuration, RetentionPolicy,
    },
    rewrite::{MAX_REWRITE_FILE, RewriteCounts, Rewrites, parse_rewrite_rule},
    schedule::{
        BackupJob, BackupSource, CronSchedule, FailureKind, Job, JobError, JobFuture, JobOutcome,
        JobResult, JobStatus, RunResult, ScheduleEvent, Scheduler, job_fn, metrics_text,
        status_path,
    },
    secret::{REDACTED, is_secret_name, redact_uri, redact_value},
    services::{OrderedLock, OrderedServices, ServiceController, ServiceStep},
    storage::{GROUP_ACCESS_OPTION, Storage},
    upload::UploadOptions,
};
pub use tokio_util::sync::CancellationToken;
