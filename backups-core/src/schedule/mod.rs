//! Schedules: jobs run on cron expressions, each never overlapping itself,
//! with missed runs caught up once at start, a clean stop on a
//! cancellation token, and each job's status in a JSON file (and, with a
//! metrics path, a Prometheus textfile).
//!
//! A [`Job`] is anything that runs once when asked: the CLI's makes a
//! backup, applies retention and verifies it; a controller embedding this
//! library passes its own (or a closure through [`job_fn`]). The
//! [`Scheduler`] never prints: it reports each event to a callback. After
//! each recorded run, a job's [`Notifier`]s (a shell command, an HTTP POST
//! of its status, or the embedder's own) are told, each within a timeout.

mod cron;
mod job;
mod notify;
mod runner;
mod status;

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

use crate::secret::redact_text;

pub use self::cron::CronSchedule;
pub use self::job::{BackupJob, BackupSource};
pub use self::notify::{
    CommandNotifier, DEFAULT_NOTIFY_TIMEOUT, Notification, Notifier, NotifyError, UrlNotifier,
};
pub use self::runner::Scheduler;
pub use self::status::{CopyStatus, JobStatus, metrics_text, status_path};

/// Where a scheduler's events go.
pub(crate) type EventSink = Arc<dyn Fn(&ScheduleEvent) + Send + Sync>;

/// `e` and its causes, `: `-separated, secrets redacted
/// ([`redact_text`]): the text goes into logs, the status file and
/// notifications.
pub(crate) fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let more = c.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        cause = c.source();
    }
    redact_text(&text)
}

/// Why a job failed: any error (the CLI passes its own, with an exit code).
pub type JobError = Box<dyn std::error::Error + Send + Sync>;

/// What kind of failure a failed run was, as far as the metrics tell them
/// apart: the store could not be reached (or refused us), the new backup
/// failed its verification, or anything else. The [`Scheduler`] classifies
/// this library's own errors itself; a job with errors of its own says how
/// through [`Scheduler::with_failure_kinds`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FailureKind {
    /// The store failed: unreachable, access denied, bad URL.
    Storage,
    /// The backup was made but failed verification.
    Verification,
    /// Anything else.
    Other,
}

/// What a job's run returns.
pub type JobResult = std::result::Result<JobOutcome, JobError>;

/// The future a [`Job`] returns.
pub type JobFuture = Pin<Box<dyn Future<Output = JobResult> + Send>>;

/// A scheduled job's work: one run each time it is called. `cancel` is
/// cancelled when the scheduler stops; a job aborts what it is doing (an
/// upload through `StoreBackups::with_cancellation`) and returns an error.
pub trait Job: Send + Sync {
    /// Runs the job once.
    fn run(&self, cancel: CancellationToken) -> JobFuture;
}

/// A [`Job`] made of a closure returning a future.
pub fn job_fn<F, Fut>(f: F) -> Arc<dyn Job>
where
    F: Fn(CancellationToken) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = JobResult> + Send + 'static,
{
    struct FnJob<F>(F);
    impl<F, Fut> Job for FnJob<F>
    where
        F: Fn(CancellationToken) -> Fut + Send + Sync,
        Fut: Future<Output = JobResult> + Send + 'static,
    {
        fn run(&self, cancel: CancellationToken) -> JobFuture {
            Box::pin((self.0)(cancel))
        }
    }
    Arc::new(FnJob(f))
}

/// What a successful run made.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct JobOutcome {
    /// The new backup's id.
    pub backup: Option<String>,
    /// Its size in bytes.
    pub size: Option<u64>,
    /// When it passed verification (`None`: not verified).
    pub verified: Option<OffsetDateTime>,
    /// Anything else worth a word in the log (e.g. what retention removed).
    pub detail: String,
    /// How the copies of the new backup to second stores ended, one per
    /// target ([`BackupJob::with_copy_to`]).
    pub copies: Vec<CopyOutcome>,
}

/// How the copy of a run's backup to one second store ended. A failed
/// copy does not fail the run (the backup is made); the status file and
/// the metrics carry it per target.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct CopyOutcome {
    /// The target's name (a profile name, for the CLI).
    pub target: String,
    /// When the copy ended.
    pub time: OffsetDateTime,
    /// Why it failed; `None` when the backup is in the target.
    pub error: Option<String>,
}

impl JobOutcome {
    /// A run that made `backup` of `size` bytes.
    pub fn backup(id: impl Into<String>, size: u64) -> Self {
        JobOutcome {
            backup: Some(id.into()),
            size: Some(size),
            ..Default::default()
        }
    }

    /// Records that the backup passed verification at `when`.
    pub fn with_verified(mut self, when: OffsetDateTime) -> Self {
        self.verified = Some(when);
        self
    }

    /// Adds a note for the log.
    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = detail.into();
        self
    }
}

/// How one run ended.
#[derive(Debug)]
pub enum RunResult {
    /// It succeeded.
    Succeeded(JobOutcome),
    /// It failed.
    Failed(JobError),
    /// The scheduler stopped while it ran; the job aborted.
    Cancelled,
}

/// Something that happened, for the log: one line each (`Display`).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum ScheduleEvent {
    /// A job will next run at this time.
    Waiting {
        /// The job.
        job: String,
        /// When.
        next: OffsetDateTime,
    },
    /// A job never runs again (its expression has no future match).
    Finished {
        /// The job.
        job: String,
    },
    /// A run started.
    Started {
        /// The job.
        job: String,
        /// Whether it catches up a run missed while the scheduler was down.
        catch_up: bool,
    },
    /// A run succeeded.
    Succeeded {
        /// The job.
        job: String,
        /// How long it took.
        duration: Duration,
        /// What it made.
        outcome: JobOutcome,
    },
    /// A run failed.
    Failed {
        /// The job.
        job: String,
        /// How long it took.
        duration: Duration,
        /// Why (with its causes).
        error: String,
    },
    /// A run was aborted because the scheduler stopped.
    Cancelled {
        /// The job.
        job: String,
    },
    /// Runs came due while the job was still running; they were skipped
    /// (a job never overlaps itself).
    Skipped {
        /// The job.
        job: String,
        /// How many.
        runs: usize,
    },
    /// A job's status file could not be read or parsed: the job is treated
    /// as never run, and the file is rewritten at its next run.
    StatusUnreadable {
        /// The job.
        job: String,
        /// Why (names the file).
        error: String,
    },
    /// A status or metrics file could not be written.
    StatusNotWritten {
        /// The job.
        job: String,
        /// Why.
        error: String,
    },
    /// A notifier of a job failed or ran over its timeout; the run's
    /// outcome and status stand.
    NotifyFailed {
        /// The job.
        job: String,
        /// Which notifier ([`Notifier::describe`]).
        notifier: String,
        /// Why.
        error: String,
    },
    /// The scheduler is stopping (its token was cancelled).
    Stopping,
}

impl fmt::Display for ScheduleEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ScheduleEvent::Waiting { job, next } => {
                write!(f, "schedule {job}: next run at {}", rfc3339(*next))
            }
            ScheduleEvent::Finished { job } => {
                write!(f, "schedule {job}: no future run; done")
            }
            ScheduleEvent::Started { job, catch_up } => write!(
                f,
                "schedule {job}: started{}",
                if *catch_up {
                    " (catching up a missed run)"
                } else {
                    ""
                }
            ),
            ScheduleEvent::Succeeded {
                job,
                duration,
                outcome,
            } => {
                write!(
                    f,
                    "schedule {job}: succeeded in {:.1}s",
                    duration.as_secs_f64()
                )?;
                if let (Some(id), Some(size)) = (&outcome.backup, outcome.size) {
                    write!(f, ": backup {id} ({size} bytes)")?;
                }
                if outcome.verified.is_some() {
                    write!(f, ", verified")?;
                }
                for c in &outcome.copies {
                    match &c.error {
                        None => write!(f, ", copied to {}", c.target)?,
                        Some(e) => write!(f, ", copy to {} FAILED: {e}", c.target)?,
                    }
                }
                if !outcome.detail.is_empty() {
                    write!(f, "; {}", outcome.detail)?;
                }
                Ok(())
            }
            ScheduleEvent::Failed {
                job,
                duration,
                error,
            } => write!(
                f,
                "schedule {job}: FAILED after {:.1}s: {error}",
                duration.as_secs_f64()
            ),
            ScheduleEvent::Cancelled { job } => {
                write!(f, "schedule {job}: aborted (stopping); nothing committed")
            }
            ScheduleEvent::Skipped { job, runs } => write!(
                f,
                "schedule {job}: skipped {runs} run(s) that came due while it was running"
            ),
            ScheduleEvent::StatusUnreadable { job, error } => write!(
                f,
                "schedule {job}: warning: status file unreadable ({error}); treating the job as never run (the file is rewritten at its next run)"
            ),
            ScheduleEvent::StatusNotWritten { job, error } => {
                write!(f, "schedule {job}: status not written: {error}")
            }
            ScheduleEvent::NotifyFailed {
                job,
                notifier,
                error,
            } => write!(
                f,
                "schedule {job}: warning: {notifier} failed: {error} (the run's outcome stands)"
            ),
            ScheduleEvent::Stopping => write!(f, "scheduler: stopping"),
        }
    }
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.to_string())
}
