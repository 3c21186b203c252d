//! The [`Scheduler`]: one loop per job (wait for the next match, run,
//! record), all polled together, so jobs run side by side but a job never
//! overlaps itself: its next run is computed only once the last one ended,
//! and matches that came due meanwhile are skipped (and logged).

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

use super::notify::{Notification, Notifier, tell};
use super::status::{self, JobStatus};
use super::{
    CronSchedule, EventSink, FailureKind, Job, JobOutcome, RunResult, ScheduleEvent, error_chain,
};
use crate::error::{Error, InputKind, Result};

/// The longest single sleep: the wall clock is looked at again at least
/// this often, so a clock change (or a suspended machine) cannot postpone
/// a run by more.
const MAX_SLEEP: Duration = Duration::from_secs(30);

/// Says what kind of failure a job's error is.
type Classifier = Arc<dyn Fn(&(dyn std::error::Error + 'static)) -> FailureKind + Send + Sync>;

/// This library's errors: storage errors and verification failures.
fn own_kind(e: &(dyn std::error::Error + 'static)) -> FailureKind {
    match e.downcast_ref::<Error>() {
        Some(Error::Storage { .. }) => FailureKind::Storage,
        Some(Error::ChecksumMismatch { .. } | Error::InvalidArchive { .. }) => {
            FailureKind::Verification
        }
        _ => FailureKind::Other,
    }
}

struct Entry {
    name: String,
    cron: CronSchedule,
    catch_up: bool,
    job: Arc<dyn Job>,
    notifiers: Vec<Arc<dyn Notifier>>,
}

/// Runs jobs on their cron schedules and records what each did.
///
/// ```no_run
/// use backups_core::CancellationToken;
/// use backups_core::schedule::{CronSchedule, JobOutcome, Scheduler, job_fn};
///
/// # async fn run() -> backups_core::Result<()> {
/// let mut scheduler = Scheduler::new("/var/lib/backups/state")
///     .with_metrics_file("/var/lib/node_exporter/textfile/backups.prom")
///     .on_event(|event| eprintln!("{event}"));
/// scheduler.add_job(
///     "nightly",
///     CronSchedule::parse("0 3 * * *")?,
///     true,
///     job_fn(|_cancel| async { Ok(JobOutcome::default()) }),
/// )?;
/// let stop = CancellationToken::new();
/// scheduler.run(stop).await?; // until `stop` is cancelled
/// # Ok(())
/// # }
/// ```
pub struct Scheduler {
    jobs: Vec<Entry>,
    state_dir: PathBuf,
    metrics: Option<PathBuf>,
    events: EventSink,
    classify: Classifier,
    statuses: Mutex<BTreeMap<String, JobStatus>>,
    /// Notifications still running (the job loops do not wait for them).
    notifying: Mutex<tokio::task::JoinSet<()>>,
}

impl fmt::Debug for Scheduler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scheduler")
            .field(
                "jobs",
                &self
                    .jobs
                    .iter()
                    .map(|j| (&j.name, j.cron.to_string(), j.catch_up))
                    .collect::<Vec<_>>(),
            )
            .field("state_dir", &self.state_dir)
            .field("metrics", &self.metrics)
            .finish_non_exhaustive()
    }
}

impl Scheduler {
    /// A scheduler without jobs that keeps each job's status file under
    /// `state_dir` (see [`super::status_path`]).
    pub fn new(state_dir: impl Into<PathBuf>) -> Self {
        Scheduler {
            jobs: Vec::new(),
            state_dir: state_dir.into(),
            metrics: None,
            events: Arc::new(|_| {}),
            classify: Arc::new(own_kind),
            statuses: Mutex::new(BTreeMap::new()),
            notifying: Mutex::new(tokio::task::JoinSet::new()),
        }
    }

    /// Also writes every job's status to this Prometheus textfile after
    /// each run.
    pub fn with_metrics_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.metrics = Some(path.into());
        self
    }

    /// Classifies a failed run's error with `kind` (for the metrics'
    /// `store_reachable` and `last_verify_ok`) when it is not one of this
    /// library's own errors, which are classified without being asked.
    pub fn with_failure_kinds(
        mut self,
        kind: impl Fn(&(dyn std::error::Error + 'static)) -> FailureKind + Send + Sync + 'static,
    ) -> Self {
        self.classify = Arc::new(move |e| match own_kind(e) {
            FailureKind::Other => kind(e),
            own => own,
        });
        self
    }

    /// Calls `sink` with each event (one log line each).
    pub fn on_event(mut self, sink: impl Fn(&ScheduleEvent) + Send + Sync + 'static) -> Self {
        self.events = Arc::new(sink);
        self
    }

    /// Adds a job. Names are letters, digits, `.`, `_` and `-` (they name
    /// the status file and the metrics' label), each used once. With
    /// `catch_up`, a run missed while the scheduler was not running (per
    /// the status file's last run) runs once at start.
    pub fn add_job(
        &mut self,
        name: impl Into<String>,
        cron: CronSchedule,
        catch_up: bool,
        job: Arc<dyn Job>,
    ) -> Result<()> {
        let name = name.into();
        let invalid = |reason: &str| Error::InvalidInput {
            what: InputKind::JobName,
            value: name.clone(),
            reason: reason.into(),
        };
        let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
        if name.is_empty() || name.starts_with('.') || !name.chars().all(allowed) {
            return Err(invalid(
                "use letters, digits, '.', '_' and '-' (not first '.')",
            ));
        }
        if self.jobs.iter().any(|j| j.name == name) {
            return Err(invalid("two jobs have this name"));
        }
        self.jobs.push(Entry {
            name,
            cron,
            catch_up,
            job,
            notifiers: Vec::new(),
        });
        Ok(())
    }

    /// Tells `notifier` of each recorded run of the job `name` (see
    /// [`super::Notifier`]): after a scheduled run without holding up the
    /// job's next one, after [`Scheduler::run_now`] before it returns. It
    /// gets at most its [`Notifier::timeout`]; when it fails or runs over,
    /// [`ScheduleEvent::NotifyFailed`] says so and nothing else changes.
    pub fn add_notifier(&mut self, name: &str, notifier: Arc<dyn Notifier>) -> Result<()> {
        let entry = self
            .jobs
            .iter_mut()
            .find(|j| j.name == name)
            .ok_or_else(|| Error::InvalidInput {
                what: InputKind::JobName,
                value: name.to_string(),
                reason: "no such job to notify of".into(),
            })?;
        entry.notifiers.push(notifier);
        Ok(())
    }

    /// The jobs' names and expressions, in the order added.
    pub fn jobs(&self) -> Vec<(String, CronSchedule)> {
        self.jobs
            .iter()
            .map(|j| (j.name.clone(), j.cron.clone()))
            .collect()
    }

    /// A job's status as its status file records it; an error when the
    /// file cannot be read or parsed (the scheduler itself then treats the
    /// job as never run, see [`ScheduleEvent::StatusUnreadable`]).
    pub fn status(&self, name: &str) -> Result<JobStatus> {
        status::load(&self.state_dir, name)
    }

    /// Runs the job `name` once, now, and records it like a scheduled run.
    pub async fn run_now(&self, name: &str, cancel: CancellationToken) -> Result<RunResult> {
        let entry =
            self.jobs
                .iter()
                .find(|j| j.name == name)
                .ok_or_else(|| Error::InvalidInput {
                    what: InputKind::JobName,
                    value: name.to_string(),
                    reason: format!(
                        "no such job (jobs: {})",
                        self.jobs
                            .iter()
                            .map(|j| j.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                })?;
        self.load_statuses();
        let (result, written) = self.run_entry(entry, false, &cancel).await;
        if let Some(notify) = self.notification(entry, &result) {
            notify.await;
        }
        written?;
        Ok(result)
    }

    /// Runs every job on its schedule until `cancel` is cancelled (or no job
    /// has a future run). A run in flight is given the same token and
    /// aborted; an aborted run leaves its status as it was, so a catch-up
    /// job runs again at the next start. Notifications still running are
    /// waited for before it returns (each for at most its timeout).
    pub async fn run(&self, cancel: CancellationToken) -> Result<()> {
        self.load_statuses();
        let loops = futures::future::join_all(self.jobs.iter().map(|j| self.job_loop(j, &cancel)));
        tokio::pin!(loops);
        // Biased: when the token is cancelled, the loops end at once too,
        // and the stop is still reported (once the loops end by themselves,
        // only if they ended because of it).
        let ended = tokio::select! {
            biased;
            _ = cancel.cancelled() => false,
            _ = &mut loops => true,
        };
        if ended && !cancel.is_cancelled() {
            return Ok(());
        }
        self.emit(ScheduleEvent::Stopping);
        if !ended {
            loops.await;
        }
        let notifying = std::mem::take(&mut *self.notifying_lock());
        notifying.join_all().await;
        Ok(())
    }

    fn emit(&self, event: ScheduleEvent) {
        (self.events)(&event);
    }

    /// Reads every job's status file. One that cannot be read or parsed
    /// stops no job: it is reported, the job is treated as never run, and
    /// the file is rewritten at the job's next run.
    fn load_statuses(&self) {
        let mut loaded = BTreeMap::new();
        for j in &self.jobs {
            let status = match status::load(&self.state_dir, &j.name) {
                Ok(s) => s,
                Err(e) => {
                    self.emit(ScheduleEvent::StatusUnreadable {
                        job: j.name.clone(),
                        error: e.to_string(),
                    });
                    JobStatus::new(&j.name)
                }
            };
            loaded.insert(j.name.clone(), status);
        }
        *self.lock() = loaded;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, JobStatus>> {
        // A poisoned lock only means a panic elsewhere; the map is still whole.
        self.statuses
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    async fn job_loop(&self, entry: &Entry, cancel: &CancellationToken) {
        let mut after = OffsetDateTime::now_utc();
        let last_run = self.lock().get(&entry.name).and_then(|s| s.last_run);
        if entry.catch_up && entry.cron.missed_since(last_run, after) {
            self.run_logged(entry, true, cancel).await;
            after = OffsetDateTime::now_utc();
        }
        while !cancel.is_cancelled() {
            let Some(next) = entry.cron.next_after(after) else {
                self.emit(ScheduleEvent::Finished {
                    job: entry.name.clone(),
                });
                return;
            };
            self.emit(ScheduleEvent::Waiting {
                job: entry.name.clone(),
                next,
            });
            if !sleep_until(next, cancel).await {
                return;
            }
            self.run_logged(entry, false, cancel).await;
            if cancel.is_cancelled() {
                return;
            }
            let done = OffsetDateTime::now_utc();
            let skipped = skipped_runs(&entry.cron, next, done);
            if skipped > 0 {
                self.emit(ScheduleEvent::Skipped {
                    job: entry.name.clone(),
                    runs: skipped,
                });
            }
            after = done;
        }
    }

    async fn run_logged(&self, entry: &Entry, catch_up: bool, cancel: &CancellationToken) {
        let (result, written) = self.run_entry(entry, catch_up, cancel).await;
        if let Some(notify) = self.notification(entry, &result) {
            self.notifying_lock().spawn(notify);
        }
        if let Err(e) = written {
            self.emit(ScheduleEvent::StatusNotWritten {
                job: entry.name.clone(),
                error: e.to_string(),
            });
        }
    }

    /// Runs `entry` once and records the outcome; returns it and whether
    /// the status (and metrics) were written.
    async fn run_entry(
        &self,
        entry: &Entry,
        catch_up: bool,
        cancel: &CancellationToken,
    ) -> (RunResult, Result<()>) {
        let job = entry.name.clone();
        self.emit(ScheduleEvent::Started {
            job: job.clone(),
            catch_up,
        });
        let started = OffsetDateTime::now_utc();
        let clock = Instant::now();
        let result = entry.job.run(cancel.clone()).await;
        let duration = clock.elapsed();
        let result = match result {
            Ok(outcome) => RunResult::Succeeded(outcome),
            Err(_) if cancel.is_cancelled() => RunResult::Cancelled,
            Err(e) => RunResult::Failed(e),
        };
        self.emit(match &result {
            RunResult::Succeeded(outcome) => ScheduleEvent::Succeeded {
                job,
                duration,
                outcome: outcome.clone(),
            },
            RunResult::Failed(e) => ScheduleEvent::Failed {
                job,
                duration,
                error: error_chain(e.as_ref()),
            },
            RunResult::Cancelled => ScheduleEvent::Cancelled { job },
        });
        let written = match &result {
            RunResult::Cancelled => Ok(()),
            RunResult::Succeeded(outcome) => {
                self.record(&entry.name, |s| succeeded(s, started, duration, outcome))
            }
            RunResult::Failed(e) => {
                let error = error_chain(e.as_ref());
                let kind = (self.classify)(e.as_ref());
                self.record(&entry.name, |s| failed(s, started, duration, error, kind))
            }
        };
        (result, written)
    }

    fn notifying_lock(&self) -> std::sync::MutexGuard<'_, tokio::task::JoinSet<()>> {
        // A poisoned lock only means a panic elsewhere; the set is still whole.
        self.notifying
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The notification of a recorded run to `entry`'s notifiers, all at
    /// once, each bounded by its timeout, failures reported as events;
    /// `None` when there is nothing to tell (no notifiers, or the run was
    /// aborted).
    fn notification(
        &self,
        entry: &Entry,
        result: &RunResult,
    ) -> Option<impl Future<Output = ()> + Send + 'static> {
        if entry.notifiers.is_empty() {
            return None;
        }
        let status = self
            .lock()
            .get(&entry.name)
            .cloned()
            .unwrap_or_else(|| JobStatus::new(&entry.name));
        let notification = match result {
            RunResult::Cancelled => return None,
            RunResult::Succeeded(outcome) => Notification {
                job: entry.name.clone(),
                ok: true,
                backup: outcome.backup.clone(),
                error: None,
                status,
            },
            RunResult::Failed(e) => Notification {
                job: entry.name.clone(),
                ok: false,
                backup: None,
                error: Some(error_chain(e.as_ref())),
                status,
            },
        };
        Some(tell(
            entry.notifiers.clone(),
            notification,
            self.events.clone(),
        ))
    }

    /// Updates a job's status and writes its file and the metrics, under
    /// the lock (so two jobs' metrics writes never interleave stale data).
    fn record(&self, name: &str, change: impl FnOnce(&mut JobStatus)) -> Result<()> {
        let mut statuses = self.lock();
        let status = statuses
            .entry(name.to_string())
            .or_insert_with(|| JobStatus::new(name));
        change(status);
        // Every job's expected interval as of now (a weekday schedule's
        // changes over a weekend), for the staleness alerts.
        let now = OffsetDateTime::now_utc();
        for j in &self.jobs {
            if let Some(s) = statuses.get_mut(&j.name) {
                s.expected_interval_seconds = j.cron.interval_after(now).map(|d| d.as_secs_f64());
            }
        }
        let status = statuses
            .get(name)
            .ok_or_else(|| Error::internal(format!("job {name} has no status")))?;
        status::save(&self.state_dir, status)?;
        if let Some(path) = &self.metrics {
            let all: Vec<JobStatus> = self
                .jobs
                .iter()
                .filter_map(|j| statuses.get(&j.name).cloned())
                .collect();
            status::save_metrics(path, &all)?;
        }
        Ok(())
    }

    /// Where status files are kept.
    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }
}

fn succeeded(s: &mut JobStatus, started: OffsetDateTime, took: Duration, outcome: &JobOutcome) {
    s.runs += 1;
    s.last_run = Some(started);
    s.last_success = Some(started);
    s.last_duration_seconds = Some(took.as_secs_f64());
    s.last_size_bytes = outcome.size.or(s.last_size_bytes);
    s.last_backup = outcome.backup.clone().or(s.last_backup.take());
    s.last_verified = outcome.verified.or(s.last_verified);
    if outcome.verified.is_some() {
        s.last_verify_ok = Some(true);
    }
    s.store_reachable = Some(true);
    s.consecutive_failures = 0;
    s.last_error = None;
    for c in &outcome.copies {
        let status = s.copies.entry(c.target.clone()).or_default();
        status.record(c.time, c.error.clone());
    }
}

fn failed(
    s: &mut JobStatus,
    started: OffsetDateTime,
    took: Duration,
    error: String,
    kind: FailureKind,
) {
    match kind {
        FailureKind::Storage => s.store_reachable = Some(false),
        FailureKind::Verification => s.last_verify_ok = Some(false),
        FailureKind::Other => {}
    }
    s.runs += 1;
    s.last_run = Some(started);
    s.last_duration_seconds = Some(took.as_secs_f64());
    s.failures += 1;
    s.consecutive_failures += 1;
    s.last_error = Some(error);
}

/// How many matches of `cron` fell after `ran` and at or before `done`
/// (counted up to 1000).
fn skipped_runs(cron: &CronSchedule, ran: OffsetDateTime, done: OffsetDateTime) -> usize {
    let mut n = 0;
    let mut t = ran;
    while n < 1000 {
        match cron.next_after(t) {
            Some(next) if next <= done => {
                n += 1;
                t = next;
            }
            _ => break,
        }
    }
    n
}

/// Sleeps until the wall clock reaches `when`; `false` when cancelled first.
async fn sleep_until(when: OffsetDateTime, cancel: &CancellationToken) -> bool {
    loop {
        let now = OffsetDateTime::now_utc();
        if now >= when {
            return true;
        }
        let wait = (when - now).unsigned_abs().min(MAX_SLEEP);
        tokio::select! {
            _ = cancel.cancelled() => return false,
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

#[cfg(test)]
#[path = "runner_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "notify_tests.rs"]
mod notify_tests;
