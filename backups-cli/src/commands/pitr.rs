//! `backups pitr`: ship the oplog to the store in slices (`run`) and show
//! what can be restored to a point in time (`list`).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use backups_core::pitr::{self, PitrShipper, ShipperOptions, ShipperStatus};
use backups_core::{Backups, CancellationToken, CreateRequest, FileSet, Identity};
use backups_mongo::pitr::MongoOplogSource;
use backups_mongo::{DumpOptions, MongoDumper};
use serde_json::json;

use crate::args::{MongoArgs, parse_slice};
use crate::context::Context;
use crate::failure::{CliResult, Failure};
use crate::keys::EncryptArgs;
use crate::output::out;

/// Examples after `backups pitr --help`.
pub const AFTER_HELP: &str = "\
Examples:
  backups pitr run --mongo-uri mongodb://127.0.0.1:27017/ --slice 60s --metrics-file /var/lib/backups/metrics/pitr.prom
  backups pitr list --json
  backups restore --to-time '2026-12-03 14:05:00' --target /tmp/r --mongo-uri mongodb://127.0.0.1:27017/ --dry-run

The shipper reads local.oplog.rs after the last committed slice (or after the
newest base backup's consistent point, or from now) and commits one slice,
pitr/<replset>/<first-ts>-<last-ts>.bson.gz[.age], per --slice or 16 MiB.
A slice becomes visible when its record (.json beside it) is written; a
shipper killed mid-slice re-reads the uncommitted entries when restarted.
SIGTERM or Ctrl-C closes the current slice: the entries written before the
stop are committed (waiting up to 15 s for them to settle), then it exits 0.
--read-from picks the member the oplog is read from (primary, secondary,
nearest), as for create. In a config file, [[pitr]] entries (profile, slice,
base_if_missing) are run by `backups schedule run` next to the schedules.
A time is covered up to a gap only until the second before the gap's first
one; `forget` removes the slices no kept base backup replays, `verify
--slices` checks them, `gc` lists uncommitted ones.";

/// `backups pitr`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// What to do.
    #[command(subcommand)]
    pub command: PitrCommand,
}

/// The `pitr` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum PitrCommand {
    /// Ship the oplog into the store until stopped (Ctrl-C, SIGTERM).
    Run(RunArgs),
    /// Per replica set: the restorable ranges (base backup -> last slice end) and every gap.
    List(ListArgs),
}

/// `backups pitr run`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub mongo: MongoArgs,
    /// Commit a slice this long after its first entry (e.g. 5s, 60s, 10min).
    #[arg(long, value_name = "DUR", default_value = "60s", value_parser = parse_slice)]
    pub slice: Duration,
    /// Write the shipper's metrics (Prometheus text format) to this file
    /// after every slice.
    #[arg(long, value_name = "FILE")]
    pub metrics_file: Option<PathBuf>,
    /// Read the oplog from this member: primary (the default), secondary or
    /// nearest; it is found at start and read alone (a shipper run by
    /// `schedule run` finds it again after a failure).
    #[arg(long, value_name = "MEMBER")]
    pub read_from: Option<backups_mongo::ReadFrom>,
    /// When the store holds no base backup, take one (database only) first.
    #[arg(long)]
    pub base_if_missing: bool,
    #[command(flatten)]
    pub encrypt: EncryptArgs,
}

/// `backups pitr list`.
#[derive(Debug, clap::Args)]
pub struct ListArgs {
    /// Print JSON: {"ReplicaSets":[{"Name","Ranges":[{"From","To","Base"}],"Gaps":[{"From","To","Reason"}]}]}.
    #[arg(long)]
    pub json: bool,
}

/// Runs a `pitr` subcommand.
pub async fn run(ctx: &Context, args: Args, cancel: CancellationToken) -> CliResult {
    match args.command {
        PitrCommand::Run(a) => ship(ctx, a, cancel).await,
        PitrCommand::List(a) => list(ctx, a).await,
    }
}

/// One shipper's settings: `pitr run`'s flags, or a `[[pitr]]` entry's.
pub struct ShipSpec {
    /// The MongoDB URI whose oplog is shipped.
    pub uri: String,
    /// --slice.
    pub slice: Duration,
    /// --base-if-missing.
    pub base_if_missing: bool,
    /// --read-from.
    pub read_from: Option<backups_mongo::ReadFrom>,
    /// Encrypt the slices.
    pub encryption: Option<backups_core::Encryption>,
    /// Where the metrics go after every commit.
    pub metrics_file: Option<PathBuf>,
    /// Where the status (JSON) goes after every commit.
    pub status_file: Option<PathBuf>,
}

async fn ship(ctx: &Context, args: RunArgs, cancel: CancellationToken) -> CliResult {
    let Some(uri) = args.mongo.uri()? else {
        return Err(Failure::usage(
            "give --mongo-uri (or --mongo-uri-file): the oplog to ship",
        ));
    };
    // SIGTERM (systemd's stop) closes the current slice like Ctrl-C does.
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| crate::failure::io_failure("installing the SIGTERM handler", e))?;
    let stop = cancel.clone();
    tokio::spawn(async move {
        if term.recv().await.is_some() {
            stop.cancel();
        }
    });
    let spec = ShipSpec {
        uri,
        slice: args.slice,
        base_if_missing: args.base_if_missing,
        read_from: args.read_from,
        encryption: args.encrypt.encryption()?,
        metrics_file: args.metrics_file,
        status_file: None,
    };
    let status = ship_spec(ctx, spec, cancel).await?;
    ctx.say(&format!(
        "Shipped {} slices ({} oplog entries, {} reads, {} ranges read again) of replica set {}; complete until {}{}",
        status.slices,
        status.entries,
        status.reads,
        status.rereads,
        status.replica_set,
        pitr::seconds_rfc3339(status.complete_until),
        if status.gaps > 0 {
            format!("; {} gaps recorded", status.gaps)
        } else {
            String::new()
        }
    ));
    Ok(())
}

/// Ships until `cancel` (then the current slice is committed); the
/// metrics and status files are written after every commit.
pub async fn ship_spec(
    ctx: &Context,
    spec: ShipSpec,
    cancel: CancellationToken,
) -> Result<ShipperStatus, Failure> {
    let source = Arc::new(MongoOplogSource::connect_read_from(&spec.uri, spec.read_from).await?);
    let bases = ctx.list().await?;
    let mut start = bases.iter().filter_map(pitr::base_end).max();
    if start.is_none() && spec.base_if_missing {
        start = take_base(ctx, &spec.uri).await?;
    }
    let options = ShipperOptions::default()
        .with_slice(spec.slice)
        .with_poll(Duration::from_millis(200))
        .with_encryption(spec.encryption.clone())
        .with_start(start);
    let storage = AsRef::<backups_core::storage::Storage>::as_ref(&ctx.backups).clone();
    let shipper = PitrShipper::new(storage, source, options);
    let mut last_written = None;
    let mut observe = |s: &ShipperStatus| {
        if last_written != Some((s.complete_until, s.last)) {
            last_written = Some((s.complete_until, s.last));
            // Best effort: a metrics or status file that cannot be
            // written does not stop the shipping.
            if let Some(path) = &spec.metrics_file {
                let _ = write_metrics(path, s);
            }
            if let Some(path) = &spec.status_file {
                let _ = write_status(path, s, None);
            }
        }
    };
    Ok(shipper.run(cancel, &mut observe).await?)
}

/// The shipper's status as JSON (`schedule run` writes it beside the
/// schedules' status files): `{"ReplicaSet","CompleteUntil","Last",
/// "Slices","Entries","Gaps","Reads","LastError","Updated"}`.
pub fn write_status(
    path: &std::path::Path,
    s: &ShipperStatus,
    error: Option<&str>,
) -> std::io::Result<()> {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let text = json!({
        "ReplicaSet": s.replica_set,
        "CompleteUntil": (s.complete_until > 0).then(|| pitr::seconds_rfc3339(s.complete_until)),
        "Last": s.last.to_string(),
        "Slices": s.slices,
        "Entries": s.entries,
        "Gaps": s.gaps,
        "Reads": s.reads,
        "LastError": error,
        "Updated": u32::try_from(now).map(pitr::seconds_rfc3339).unwrap_or_default(),
    });
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, format!("{text:#}\n"))?;
    std::fs::rename(&tmp, path)
}

/// A database-only base backup (label `pitr-base`); its consistent point.
async fn take_base(ctx: &Context, uri: &str) -> Result<Option<pitr::Position>, Failure> {
    let dumper = MongoDumper::connect(uri, DumpOptions::default()).await?;
    let request = CreateRequest::new(FileSet::new(Vec::new()), Identity::this_host(None))
        .with_database(Arc::new(dumper))
        .with_labels(vec!["pitr-base".into()]);
    let meta = ctx.backups.create(request, ctx.progress()).await?;
    ctx.say(&format!(
        "Took base backup {}",
        meta.id.as_ref().map(|i| i.to_string()).unwrap_or_default()
    ));
    Ok(pitr::base_end(&meta))
}

/// The shipper's Prometheus textfile (temp file, then rename).
pub fn write_metrics(path: &std::path::Path, s: &ShipperStatus) -> std::io::Result<()> {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let lag = (now - i64::from(s.complete_until)).max(0);
    let rs = &s.replica_set;
    let text = format!(
        "# HELP backups_pitr_last_slice_end_timestamp_seconds Everything up to this time is committed as oplog slices.\n\
         # TYPE backups_pitr_last_slice_end_timestamp_seconds gauge\n\
         backups_pitr_last_slice_end_timestamp_seconds{{replica_set=\"{rs}\"}} {}\n\
         # HELP backups_pitr_lag_seconds How far the committed slices are behind now.\n\
         # TYPE backups_pitr_lag_seconds gauge\n\
         backups_pitr_lag_seconds{{replica_set=\"{rs}\"}} {lag}\n\
         # HELP backups_pitr_gaps_total Gaps the shipper recorded.\n\
         # TYPE backups_pitr_gaps_total counter\n\
         backups_pitr_gaps_total{{replica_set=\"{rs}\"}} {}\n",
        s.complete_until, s.gaps
    );
    let tmp = path.with_extension("prom.tmp");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)
}

async fn list(ctx: &Context, args: ListArgs) -> CliResult {
    let chains = pitr::catalog(ctx.backups.as_ref()).await?;
    let bases = ctx.list().await?;
    let mut sets = Vec::new();
    for chain in &chains {
        let mut ranges = Vec::new();
        for base in &bases {
            let (Some(end), Some(id)) = (pitr::base_end(base), base.id.as_ref()) else {
                continue;
            };
            if base
                .replica_set
                .as_deref()
                .is_some_and(|rs| rs != chain.name)
            {
                continue;
            }
            if let Some(c) = chain
                .covered()
                .iter()
                .find(|c| c.after <= end && end.seconds <= c.until)
            {
                ranges.push(json!({"From": end.rfc3339(), "To": pitr::seconds_rfc3339(c.until), "Base": id.to_string()}));
            }
        }
        let ends: Vec<_> = bases
            .iter()
            .filter(|b| b.replica_set.as_deref().is_none_or(|rs| rs == chain.name))
            .filter_map(pitr::base_end)
            .collect();
        let gaps: Vec<_> = chain
            .gaps_for(&ends)
            .iter()
            .map(|g| json!({"From": g.from.rfc3339(), "To": g.to.rfc3339(), "Reason": g.reason}))
            .collect();
        sets.push(json!({"Name": chain.name, "Ranges": ranges, "Gaps": gaps}));
    }
    if args.json {
        return out(&format!("{}\n", json!({"ReplicaSets": sets})));
    }
    let mut text = String::new();
    if sets.is_empty() {
        text.push_str("No oplog slices in the store.\n");
    }
    for (set, chain) in sets.iter().zip(&chains) {
        text.push_str(&format!(
            "Replica set {} ({} slices)\n",
            chain.name,
            chain.slices.len()
        ));
        for r in set["Ranges"].as_array().into_iter().flatten() {
            text.push_str(&format!(
                "  restorable {} .. {} from base {}\n",
                r["From"].as_str().unwrap_or(""),
                r["To"].as_str().unwrap_or(""),
                r["Base"].as_str().unwrap_or("")
            ));
        }
        for g in set["Gaps"].as_array().into_iter().flatten() {
            text.push_str(&format!(
                "  gap {} .. {}: {}\n",
                g["From"].as_str().unwrap_or(""),
                g["To"].as_str().unwrap_or(""),
                g["Reason"].as_str().unwrap_or("")
            ));
        }
    }
    out(&text)
}
