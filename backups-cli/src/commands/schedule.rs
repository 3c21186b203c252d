//! `backups schedule run` (a foreground service running the config file's
//! `[[schedule]]` entries; `--once NAME` runs one now) and `backups
//! schedule list` (each job's next runs).

mod job;
mod notify;
mod pitr;

use std::path::PathBuf;

use backups_core::CancellationToken;
use backups_core::schedule::{FailureKind, RunResult, Scheduler};
use clap::Subcommand;
use serde_json::json;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::args::GlobalArgs;
use crate::config::Config;
use crate::context::state_dir;
use crate::failure::{CliResult, Failure, INTERRUPTED, OTHER, STORAGE, VERIFICATION};
use crate::output::out;

/// Examples and notes after `backups schedule --help`.
pub const AFTER_HELP: &str = "\
Examples:
  backups schedule list
  backups schedule run --metrics-file /var/lib/node_exporter/textfile/backups.prom
  backups schedule run --once nightly

The schedules are the config file's [[schedule]] entries (see `backups config
--help`): name, cron (5 fields, or 6 with seconds first; UTC), profile,
labels, retention, verify (none, stored, read-data, drill), catch_up, and
notify_cmd / notify_url / notify_timeout (told after each run; a failed
notification is a warning and fails nothing).
Each backup is labelled `scheduled` and `schedule:<name>`; after it is made
it is verified, then the retention policy is applied to that schedule's
backups. `run` is a foreground service (for systemd): one log line per event
on stderr; SIGTERM or Ctrl-C stops it, aborting an upload in flight (nothing
of it becomes visible). A job never overlaps itself; with catch_up = true a
run missed while the service was down runs once at start. Each job's status
is written to $BACKUPS_STATE_DIR/schedule/<name>.json (default state
directory: ~/.local/state/backups) and, with --metrics-file, to a Prometheus
textfile for node_exporter's textfile collector.
The config file's [[pitr]] entries (profile, slice, base_if_missing) are oplog
shippers (`backups pitr run` with the profile's store, mongo_uri and
recipients) run next to the schedules: status in
$BACKUPS_STATE_DIR/schedule/pitr-<profile>.json, metrics beside
--metrics-file F.prom in F-pitr-<profile>.prom; one that fails starts again
10 s later; a stop commits each one's current slice.";

/// `backups schedule`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// What to do.
    #[command(subcommand)]
    pub command: ScheduleCommand,
}

/// The `schedule` subcommands.
#[derive(Debug, Subcommand)]
pub enum ScheduleCommand {
    /// Run the schedules in the foreground until SIGTERM or Ctrl-C.
    Run(RunArgs),
    /// Show each schedule and its next runs.
    List(ListArgs),
}

/// `backups schedule run`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Run this schedule's job once, now, and exit with its status.
    #[arg(long, value_name = "NAME")]
    pub once: Option<String>,
    /// Also write every job's status to this Prometheus textfile.
    #[arg(long, value_name = "FILE")]
    pub metrics_file: Option<PathBuf>,
}

/// `backups schedule list`.
#[derive(Debug, clap::Args)]
pub struct ListArgs {
    /// How many next runs to show.
    #[arg(long, default_value_t = 3, value_name = "N")]
    pub next: usize,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Runs the subcommand.
pub async fn run(
    global: &GlobalArgs,
    config: &Config,
    args: Args,
    cancel: CancellationToken,
) -> CliResult {
    match args.command {
        ScheduleCommand::Run(a) => run_jobs(global, config, a, cancel).await,
        ScheduleCommand::List(a) => list(global, config, a),
    }
}

/// The scheduler for the config file's schedules.
fn scheduler(
    global: &GlobalArgs,
    config: &Config,
    metrics: Option<PathBuf>,
) -> Result<Scheduler, Failure> {
    if config.file.schedule.is_empty() {
        return Err(Failure::usage(format!(
            "no [[schedule]] (or [[pitr]]) entries in {}",
            config.describe()
        )));
    }
    let dir = state_dir().ok_or_else(|| {
        Failure::usage(
            "cannot find a state directory for the schedules' status; set BACKUPS_STATE_DIR",
        )
    })?;
    let mut scheduler = Scheduler::new(dir)
        .on_event(|event| {
            stderr_line!("{} {event}", now());
        })
        .with_failure_kinds(|e| match e.downcast_ref::<Failure>().map(|f| f.code) {
            Some(STORAGE) => FailureKind::Storage,
            Some(VERIFICATION) => FailureKind::Verification,
            _ => FailureKind::Other,
        });
    if let Some(path) = metrics {
        scheduler = scheduler.with_metrics_file(path);
    }
    for entry in &config.file.schedule {
        let (cron, job) = job::build(global, config, entry)?;
        scheduler.add_job(&entry.name, cron, entry.catch_up, job)?;
        notify::add(&mut scheduler, config, entry)?;
    }
    Ok(scheduler)
}

async fn run_jobs(
    global: &GlobalArgs,
    config: &Config,
    args: RunArgs,
    cancel: CancellationToken,
) -> CliResult {
    // Only shippers: no scheduler (it wants a schedule).
    if args.once.is_none() && config.file.schedule.is_empty() && !config.file.pitr.is_empty() {
        let shippers = shippers(global, config, args.metrics_file.as_deref())?;
        stop_on_sigterm(&cancel)?;
        stderr_line!("{} scheduler: running {}", now(), names_of(&shippers));
        run_shippers(&shippers, &cancel).await;
        stderr_line!("{} scheduler: stopped", now());
        return Ok(());
    }
    let shippers = match args.once {
        Some(_) => Vec::new(),
        None => shippers(global, config, args.metrics_file.as_deref())?,
    };
    let scheduler = scheduler(global, config, args.metrics_file)?;
    stop_on_sigterm(&cancel)?;
    if let Some(name) = args.once {
        return match scheduler.run_now(&name, cancel).await? {
            RunResult::Succeeded(_) => Ok(()),
            RunResult::Cancelled => Err(Failure {
                message: format!("schedule {name}: interrupted; nothing was committed"),
                code: INTERRUPTED,
            }),
            RunResult::Failed(e) => Err(match e.downcast::<Failure>() {
                Ok(f) => *f,
                Err(e) => match e.downcast::<backups_core::Error>() {
                    Ok(e) => Failure::from(*e),
                    Err(e) => Failure {
                        message: e.to_string(),
                        code: OTHER,
                    },
                },
            }),
        };
    }
    let mut names: Vec<String> = scheduler.jobs().into_iter().map(|(n, _)| n).collect();
    if !shippers.is_empty() {
        names.push(names_of(&shippers));
    }
    stderr_line!(
        "{} scheduler: running {} (state in {})",
        now(),
        names.join(", "),
        scheduler.state_dir().display()
    );
    let schedules = async {
        let r = scheduler.run(cancel.clone()).await;
        // The shippers stop with the schedules.
        cancel.cancel();
        r
    };
    let (r, ()) = tokio::join!(schedules, run_shippers(&shippers, &cancel));
    r?;
    stderr_line!("{} scheduler: stopped", now());
    Ok(())
}

/// SIGTERM (systemd's stop) stops the service like Ctrl-C does.
fn stop_on_sigterm(cancel: &CancellationToken) -> Result<(), Failure> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| crate::failure::io_failure("installing the SIGTERM handler", e))?;
    let stop = cancel.clone();
    tokio::spawn(async move {
        if term.recv().await.is_some() {
            stop.cancel();
        }
    });
    Ok(())
}

/// The `[[pitr]]` shippers.
fn shippers(
    global: &GlobalArgs,
    config: &Config,
    metrics: Option<&std::path::Path>,
) -> Result<Vec<pitr::Shipper>, Failure> {
    if config.file.pitr.is_empty() {
        return Ok(Vec::new());
    }
    let dir = state_dir().ok_or_else(|| {
        Failure::usage(
            "cannot find a state directory for the shippers' status; set BACKUPS_STATE_DIR",
        )
    })?;
    pitr::build(global, config, &dir, metrics)
}

fn names_of(shippers: &[pitr::Shipper]) -> String {
    shippers
        .iter()
        .map(|s| s.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Runs every shipper until `cancel`; each logs its events on stderr.
async fn run_shippers(shippers: &[pitr::Shipper], cancel: &CancellationToken) {
    let log = |line: String| stderr_line!("{} {line}", now());
    futures::future::join_all(shippers.iter().map(|s| s.run(cancel.clone(), &log))).await;
}

fn list(global: &GlobalArgs, config: &Config, args: ListArgs) -> CliResult {
    let scheduler = scheduler(global, config, None)?;
    let now_t = OffsetDateTime::now_utc();
    let mut rows = Vec::new();
    let mut text = String::from("NAME\tCRON\tPROFILE\tLAST SUCCESS\tNEXT RUNS (UTC)\n");
    for (entry, (name, cron)) in config.file.schedule.iter().zip(scheduler.jobs()) {
        // A status file that cannot be read stops nothing: the job is
        // shown as never run (its next run rewrites the file).
        let status = scheduler.status(&name).unwrap_or_else(|e| {
            stderr_line!(
                "warning: schedule {name}: status file unreadable ({e}); shown as never run (the file is rewritten at its next run)"
            );
            backups_core::schedule::JobStatus::new(&name)
        });
        let next: Vec<String> = cron
            .upcoming(now_t, args.next)
            .into_iter()
            .map(rfc3339)
            .collect();
        let wanted = entry.profile.as_deref().or(global.profile.as_deref());
        let (profile, _) = config.profile(wanted)?;
        text.push_str(&format!(
            "{name}\t{cron}\t{}\t{}\t{}\n",
            profile.as_deref().unwrap_or("-"),
            status.last_success.map(rfc3339).as_deref().unwrap_or("-"),
            next.join(", ")
        ));
        rows.push(json!({
            "Name": name,
            "Cron": cron.to_string(),
            "Profile": profile,
            "Labels": job::labels_of(entry),
            "Verify": entry.verify.map_or(json!("none"), |l| json!(l)),
            "CatchUp": entry.catch_up,
            "Retention": entry.retention.is_some(),
            "LastRun": status.last_run.map(rfc3339),
            "LastSuccess": status.last_success.map(rfc3339),
            "LastError": status.last_error,
            "Next": next,
        }));
    }
    if args.json {
        out(&format!("{}\n", serde_json::Value::Array(rows)))
    } else {
        out(&align(&text))
    }
}

/// Tab-separated rows as aligned columns.
fn align(text: &str) -> String {
    let rows: Vec<Vec<&str>> = text.lines().map(|l| l.split('\t').collect()).collect();
    let mut widths = Vec::new();
    for row in &rows {
        for (i, cell) in row.iter().enumerate() {
            if widths.len() <= i {
                widths.push(0);
            }
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in rows {
        let last = row.len().saturating_sub(1);
        for (i, cell) in row.iter().enumerate() {
            if i == last {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<w$}  ", w = widths[i]));
            }
        }
        out.push('\n');
    }
    out
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_else(|_| t.to_string())
}

fn now() -> String {
    rfc3339(
        OffsetDateTime::now_utc()
            .replace_nanosecond(0)
            .unwrap_or(OffsetDateTime::now_utc()),
    )
}
