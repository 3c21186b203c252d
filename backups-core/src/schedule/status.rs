//! What each job did last: a JSON file per job in the state directory
//! (`<state>/schedule/<name>.json`), and all jobs together as a Prometheus
//! textfile (node_exporter's textfile-collector format). Both are written
//! to a temp file beside the target and renamed over it, so a reader (or
//! node_exporter) never sees half a file.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::error::{Error, Result};

/// One job's record, as its status file holds it: PascalCase keys like
/// every other JSON this tool writes (`LastSuccess`, `Runs` ...); a file
/// an older version wrote with snake_case keys (`last_success`) still reads.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
#[non_exhaustive]
pub struct JobStatus {
    /// The job's name.
    #[serde(alias = "name")]
    pub name: String,
    /// When the last run started (successful or not).
    #[serde(alias = "last_run", default, with = "time::serde::rfc3339::option")]
    pub last_run: Option<OffsetDateTime>,
    /// When the last successful run started.
    #[serde(alias = "last_success", default, with = "time::serde::rfc3339::option")]
    pub last_success: Option<OffsetDateTime>,
    /// How long the last run took, in seconds.
    #[serde(alias = "last_duration_seconds", default)]
    pub last_duration_seconds: Option<f64>,
    /// The size in bytes of the last successful run's backup.
    #[serde(alias = "last_size_bytes", default)]
    pub last_size_bytes: Option<u64>,
    /// The id of the last successful run's backup.
    #[serde(alias = "last_backup", default)]
    pub last_backup: Option<String>,
    /// When a run's backup last passed its verification.
    #[serde(
        alias = "last_verified",
        default,
        with = "time::serde::rfc3339::option"
    )]
    pub last_verified: Option<OffsetDateTime>,
    /// Runs started, in all.
    #[serde(alias = "runs", default)]
    pub runs: u64,
    /// Runs that failed, in all.
    #[serde(alias = "failures", default)]
    pub failures: u64,
    /// Runs that failed since the last success.
    #[serde(alias = "consecutive_failures", default)]
    pub consecutive_failures: u64,
    /// Why the last run failed; `None` after a success.
    #[serde(alias = "last_error", default)]
    pub last_error: Option<String>,
    /// How far apart the job's runs are expected to be, in seconds (the
    /// gap between its cron expression's next two matches when the status
    /// was written).
    #[serde(alias = "expected_interval_seconds", default)]
    pub expected_interval_seconds: Option<f64>,
    /// Whether the last verification of a run's backup passed (`false`:
    /// the last run failed verification); `None` until one is verified.
    #[serde(alias = "last_verify_ok", default)]
    pub last_verify_ok: Option<bool>,
    /// Whether the last run that got as far as the store reached it
    /// (`false`: it failed with a storage error).
    #[serde(alias = "store_reachable", default)]
    pub store_reachable: Option<bool>,
    /// The copies of its backups to second stores, by target name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub copies: BTreeMap<String, CopyStatus>,
}

/// How the copies of a job's backups to one second store went.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
#[non_exhaustive]
pub struct CopyStatus {
    /// When the last copy ended (successful or not).
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub last_attempt: Option<OffsetDateTime>,
    /// When the last successful copy ended.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub last_success: Option<OffsetDateTime>,
    /// Why the last copy failed; `None` after a success.
    #[serde(default)]
    pub last_error: Option<String>,
}

impl CopyStatus {
    /// Records a copy that ended at `time`, failed with `error` or not.
    pub(crate) fn record(&mut self, time: OffsetDateTime, error: Option<String>) {
        self.last_attempt = Some(time);
        if error.is_none() {
            self.last_success = Some(time);
        }
        self.last_error = error;
    }
}

impl JobStatus {
    /// A job that never ran.
    pub fn new(name: impl Into<String>) -> Self {
        JobStatus {
            name: name.into(),
            ..Default::default()
        }
    }
}

/// Where a job's status file is: `<state_dir>/schedule/<name>.json`.
pub fn status_path(state_dir: &Path, name: &str) -> PathBuf {
    state_dir.join("schedule").join(format!("{name}.json"))
}

/// Reads a job's status file; a job without one never ran.
pub(crate) fn load(state_dir: &Path, name: &str) -> Result<JobStatus> {
    let path = status_path(state_dir, name);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
            Error::io(
                "reading",
                &path,
                std::io::Error::new(std::io::ErrorKind::InvalidData, e),
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(JobStatus::new(name)),
        Err(e) => Err(Error::io("reading", &path, e)),
    }
}

/// Writes a job's status file (temp file, then rename).
pub(crate) fn save(state_dir: &Path, status: &JobStatus) -> Result<()> {
    let path = status_path(state_dir, &status.name);
    let mut bytes = serde_json::to_vec_pretty(status)
        .map_err(|e| Error::internal(format!("serialising a job status: {e}")))?;
    bytes.push(b'\n');
    write_atomically(&path, &bytes, None)
}

/// Writes the Prometheus textfile of `statuses` at `path` (temp file, then
/// rename), mode 0644 whatever the umask: node_exporter reads it as
/// another user.
pub(crate) fn save_metrics(path: &Path, statuses: &[JobStatus]) -> Result<()> {
    write_atomically(path, metrics_text(statuses).as_bytes(), Some(0o644))
}

/// Writes `bytes` to a temp file in `path`'s directory (mode 0600, or
/// `mode`), then renames it over `path`.
fn write_atomically(path: &Path, bytes: &[u8], mode: Option<u32>) -> Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| Error::io("creating", dir, e))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    // node_exporter only reads `*.prom`: a `.tmp` suffix keeps it off the
    // half-written file.
    let mut temp = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".tmp")
        .tempfile_in(dir)
        .map_err(|e| Error::io("creating a temp file in", dir, e))?;
    if let Some(mode) = mode {
        use std::os::unix::fs::PermissionsExt;
        temp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(mode))
            .map_err(|e| Error::io("setting the mode of", path, e))?;
    }
    std::io::Write::write_all(&mut temp, bytes).map_err(|e| Error::io("writing", path, e))?;
    temp.as_file()
        .sync_all()
        .map_err(|e| Error::io("syncing", path, e))?;
    temp.persist(path)
        .map_err(|e| Error::io("renaming into", path, e.error))?;
    Ok(())
}

/// One metric: name, type, help, and each job's value (if it has one).
type Metric = (
    &'static str,
    &'static str,
    &'static str,
    fn(&JobStatus) -> Option<f64>,
);

const METRICS: &[Metric] = &[
    (
        "backups_schedule_last_run_timestamp_seconds",
        "gauge",
        "When the job's last run started (Unix time).",
        |s| s.last_run.map(unix),
    ),
    (
        "backups_schedule_last_success_timestamp_seconds",
        "gauge",
        "When the job's last successful run started (Unix time; 0: never).",
        |s| Some(s.last_success.map_or(0.0, unix)),
    ),
    (
        "backups_schedule_last_duration_seconds",
        "gauge",
        "How long the job's last run took.",
        |s| s.last_duration_seconds,
    ),
    (
        "backups_schedule_last_size_bytes",
        "gauge",
        "Size of the last successful run's backup.",
        |s| s.last_size_bytes.map(|n| n as f64),
    ),
    (
        "backups_schedule_last_verified_timestamp_seconds",
        "gauge",
        "When a backup of the job last passed verification (Unix time).",
        |s| s.last_verified.map(unix),
    ),
    (
        "backups_schedule_last_run_ok",
        "gauge",
        "1 when the job's last run succeeded, 0 when it failed.",
        |s| {
            s.last_run
                .map(|_| f64::from(u8::from(s.last_error.is_none())))
        },
    ),
    (
        "backups_schedule_expected_interval_seconds",
        "gauge",
        "How far apart the job's runs are expected to be (the gap between its cron expression's next two matches).",
        |s| s.expected_interval_seconds,
    ),
    (
        "backups_schedule_last_verify_ok",
        "gauge",
        "1 when the last verification of the job's backup passed, 0 when the last run failed verification.",
        |s| s.last_verify_ok.map(|ok| f64::from(u8::from(ok))),
    ),
    (
        "backups_schedule_store_reachable",
        "gauge",
        "1 when the job's last run reached its store, 0 when it failed with a storage error.",
        |s| s.store_reachable.map(|ok| f64::from(u8::from(ok))),
    ),
    (
        "backups_schedule_runs_total",
        "counter",
        "Runs of the job started.",
        |s| Some(s.runs as f64),
    ),
    (
        "backups_schedule_failures_total",
        "counter",
        "Runs of the job that failed.",
        |s| Some(s.failures as f64),
    ),
];

fn unix(t: OffsetDateTime) -> f64 {
    t.unix_timestamp() as f64 + f64::from(t.millisecond()) / 1000.0
}

/// The textfile: for each metric its `# HELP` and `# TYPE` lines, then one
/// sample per job (label `schedule`), in the order given.
pub fn metrics_text(statuses: &[JobStatus]) -> String {
    let mut out = String::new();
    for (name, kind, help, value) in METRICS {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        for s in statuses {
            if let Some(v) = value(s) {
                let _ = writeln!(out, "{name}{{schedule=\"{}\"}} {v}", escape(&s.name));
            }
        }
    }
    copy_metrics(&mut out, statuses);
    out
}

/// The copy metrics, one sample per job and target (labels `schedule`
/// and `target`); none for a job without copies.
fn copy_metrics(out: &mut String, statuses: &[JobStatus]) {
    type CopyMetric = (&'static str, &'static str, fn(&CopyStatus) -> f64);
    const COPY_METRICS: &[CopyMetric] = &[
        (
            "backups_schedule_last_copy_success_timestamp_seconds",
            "When a backup of the job was last copied to the target (Unix time; 0: never).",
            |c| c.last_success.map_or(0.0, unix),
        ),
        (
            "backups_copy_last_run_ok",
            "1 when the last copy of the job's backup to the target succeeded, 0 when it failed.",
            |c| f64::from(u8::from(c.last_error.is_none())),
        ),
    ];
    if statuses.iter().all(|s| s.copies.is_empty()) {
        return;
    }
    for (name, help, value) in COPY_METRICS {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} gauge");
        for s in statuses {
            for (target, c) in &s.copies {
                let _ = writeln!(
                    out,
                    "{name}{{schedule=\"{}\",target=\"{}\"}} {}",
                    escape(&s.name),
                    escape(target),
                    value(c)
                );
            }
        }
    }
}

/// A label value escaped as the text format asks (`\`, `"`, newline).
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    #[test]
    fn status_files_round_trip_and_a_missing_one_never_ran() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            load(dir.path(), "nightly").unwrap(),
            JobStatus::new("nightly")
        );
        let mut s = JobStatus::new("nightly");
        s.last_run = Some(datetime!(2026-12-01 03:00:00 UTC));
        s.last_success = s.last_run;
        s.last_size_bytes = Some(42);
        s.runs = 1;
        save(dir.path(), &s).unwrap();
        assert_eq!(load(dir.path(), "nightly").unwrap(), s);
        let text = std::fs::read_to_string(status_path(dir.path(), "nightly")).unwrap();
        assert!(
            text.contains("\"LastSuccess\": \"2026-12-01T03:00:00Z\""),
            "{text}"
        );
    }

    #[test]
    fn an_older_snake_case_status_file_still_reads() {
        let dir = tempfile::tempdir().unwrap();
        let path = status_path(dir.path(), "nightly");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(
            &path,
            r#"{"name": "nightly", "last_run": "2026-12-01T03:00:00Z",
                "last_success": "2026-12-01T03:00:00Z", "last_size_bytes": 42,
                "last_backup": "20261201-030000.x", "runs": 3, "failures": 1,
                "consecutive_failures": 0, "last_error": null,
                "expected_interval_seconds": 86400.0, "last_verify_ok": true,
                "store_reachable": true}"#,
        )
        .unwrap();
        let s = load(dir.path(), "nightly").unwrap();
        assert_eq!(s.last_run, Some(datetime!(2026-12-01 03:00:00 UTC)));
        assert_eq!(s.last_success, s.last_run);
        assert_eq!((s.runs, s.failures, s.last_size_bytes), (3, 1, Some(42)));
        assert_eq!(s.last_backup.as_deref(), Some("20261201-030000.x"));
        assert_eq!(s.expected_interval_seconds, Some(86_400.0));
        assert_eq!(
            (s.last_verify_ok, s.store_reachable),
            (Some(true), Some(true))
        );
        // Written back, it has the new keys only.
        save(dir.path(), &s).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.contains("\"LastRun\"") && !text.contains("last_run"),
            "{text}"
        );
    }

    #[test]
    fn the_textfile_has_help_type_and_one_sample_per_job() {
        let mut ok = JobStatus::new("nightly");
        ok.last_run = Some(datetime!(2026-12-01 03:00:00 UTC));
        ok.last_success = ok.last_run;
        ok.last_size_bytes = Some(1024);
        ok.runs = 3;
        ok.expected_interval_seconds = Some(86_400.0);
        let mut bad = JobStatus::new("hourly");
        bad.last_run = Some(datetime!(2026-12-01 04:00:00 UTC));
        bad.runs = 1;
        bad.failures = 1;
        bad.last_error = Some("store unreachable".into());
        let text = metrics_text(&[ok, bad]);
        for line in [
            "# TYPE backups_schedule_last_success_timestamp_seconds gauge",
            "backups_schedule_last_success_timestamp_seconds{schedule=\"nightly\"} 1796094000",
            "backups_schedule_last_size_bytes{schedule=\"nightly\"} 1024",
            "backups_schedule_last_run_ok{schedule=\"hourly\"} 0",
            "backups_schedule_last_run_ok{schedule=\"nightly\"} 1",
            "# TYPE backups_schedule_failures_total counter",
            "backups_schedule_failures_total{schedule=\"hourly\"} 1",
            "# TYPE backups_schedule_expected_interval_seconds gauge",
            "backups_schedule_expected_interval_seconds{schedule=\"nightly\"} 86400",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
        }
        // Never succeeded: 0, so `time() - last_success > N` alerts at once.
        assert!(
            text.lines()
                .any(|l| l
                    == "backups_schedule_last_success_timestamp_seconds{schedule=\"hourly\"} 0"),
            "{text}"
        );
        // node_exporter reads the textfile as another user.
        let dir = tempfile::tempdir().unwrap();
        let prom = dir.path().join("backups.prom");
        save_metrics(&prom, &[JobStatus::new("x")]).unwrap();
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&prom).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o644);
        assert_eq!(escape("a\"b\\c"), "a\\\"b\\\\c");
    }

    #[test]
    fn copy_outcomes_are_metrics_per_schedule_and_target() {
        let mut s = JobStatus::new("nightly");
        assert!(!metrics_text(std::slice::from_ref(&s)).contains("copy"));
        let mut offsite = CopyStatus::default();
        offsite.record(datetime!(2026-12-01 03:00:00 UTC), None);
        offsite.record(
            datetime!(2026-12-02 03:00:00 UTC),
            Some("unreachable".into()),
        );
        s.copies.insert("offsite".into(), offsite);
        let text = metrics_text(&[s]);
        for line in [
            "backups_schedule_last_copy_success_timestamp_seconds{schedule=\"nightly\",target=\"offsite\"} 1796094000",
            "backups_copy_last_run_ok{schedule=\"nightly\",target=\"offsite\"} 0",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
        }
    }
}
