//! The config file's `[[pitr]]` entries, run by `schedule run` next to the
//! schedules: one oplog shipper per entry, with its profile's store,
//! MongoDB URI and encryption. A shipper that fails is logged, its status
//! records the error, and it starts again a little later (it resumes from
//! the last committed slice); a stop commits the current slice.

use std::path::{Path, PathBuf};
use std::time::Duration;

use backups_core::CancellationToken;
use backups_core::pitr::ShipperStatus;

use crate::args::{GlobalArgs, ProgressMode};
use crate::commands::pitr::{ShipSpec, ship_spec, write_status};
use crate::config::{Config, PitrEntry, apply};
use crate::context::Context;
use crate::failure::Failure;
use crate::keys::EncryptArgs;

/// How long a failed shipper waits before it starts again.
const RESTART_AFTER: Duration = Duration::from_secs(10);

/// One `[[pitr]]` entry, resolved when the service starts.
pub struct Shipper {
    /// `pitr-<profile>`: its status file's and its log lines' name.
    pub name: String,
    ctx: Context,
    uri: String,
    slice: Duration,
    base_if_missing: bool,
    encrypt: EncryptArgs,
    metrics_file: Option<PathBuf>,
    status_file: PathBuf,
}

/// The shippers of the config file's `[[pitr]]` entries. Each writes its
/// status to `<state_dir>/schedule/<name>.json` and, with the service's
/// metrics file `F.prom`, its metrics to `F-<name>.prom` beside it (the
/// textfile collector reads every `.prom` file of the directory).
pub fn build(
    global: &GlobalArgs,
    config: &Config,
    state_dir: &Path,
    metrics: Option<&Path>,
) -> Result<Vec<Shipper>, Failure> {
    let mut out: Vec<Shipper> = Vec::new();
    for entry in &config.file.pitr {
        let shipper = one(global, config, entry, state_dir, metrics)?;
        if out.iter().any(|s| s.name == shipper.name) {
            return Err(Failure::usage(format!(
                "two [[pitr]] entries of {} ship with the same profile ({})",
                config.describe(),
                shipper.name
            )));
        }
        out.push(shipper);
    }
    Ok(out)
}

fn one(
    global: &GlobalArgs,
    config: &Config,
    entry: &PitrEntry,
    state_dir: &Path,
    metrics: Option<&Path>,
) -> Result<Shipper, Failure> {
    let wanted = entry.profile.as_deref().or(global.profile.as_deref());
    let (profile_name, profile) = config.profile(wanted)?;
    let name = format!("pitr-{}", profile_name.as_deref().unwrap_or("default"));
    let mut global = global.clone();
    apply::global(&mut global, &profile);
    global.progress = ProgressMode::None;
    global.quiet = true;
    // As a schedule's create: the environment's settings, then the profile's.
    let mut create = crate::commands::create::from_env()?;
    apply::mongo(&mut create.mongo, &profile);
    apply::keys(&mut create.encrypt, &profile);
    let uri = create.mongo.uri()?.ok_or_else(|| {
        Failure::usage(format!(
            "[[pitr]] {name} in {}: its profile names no mongo_uri (or mongo_uri_file)",
            config.describe()
        ))
    })?;
    let encrypt = create.encrypt;
    // Refused now, not at the first slice.
    encrypt.encryption()?;
    let metrics_file = metrics.map(|m| {
        let stem = m.file_stem().map(|s| s.to_string_lossy().to_string());
        m.with_file_name(format!("{}-{name}.prom", stem.unwrap_or_default()))
    });
    Ok(Shipper {
        ctx: Context::new(&global, false, CancellationToken::new())?,
        status_file: backups_core::schedule::status_path(state_dir, &name),
        name,
        uri,
        slice: entry.slice.unwrap_or(Duration::from_secs(60)),
        base_if_missing: entry.base_if_missing,
        encrypt,
        metrics_file,
    })
}

impl Shipper {
    /// Ships until `cancel`, starting again after a failure.
    pub async fn run(&self, cancel: CancellationToken, log: &(dyn Fn(String) + Sync)) {
        log(format!(
            "{}: shipping the oplog of {}",
            self.name,
            self.shown_uri()
        ));
        while !cancel.is_cancelled() {
            let spec = ShipSpec {
                uri: self.uri.clone(),
                slice: self.slice,
                base_if_missing: self.base_if_missing,
                read_from: None,
                encryption: self.encrypt.encryption().ok().flatten(),
                metrics_file: self.metrics_file.clone(),
                status_file: Some(self.status_file.clone()),
            };
            match ship_spec(&self.ctx, spec, cancel.clone()).await {
                Ok(s) => log(format!(
                    "{}: stopped; {} slices committed, complete until {}",
                    self.name,
                    s.slices,
                    backups_core::pitr::seconds_rfc3339(s.complete_until)
                )),
                Err(e) => {
                    let _ = write_status(
                        &self.status_file,
                        &ShipperStatus::default(),
                        Some(&e.message),
                    );
                    log(format!(
                        "{}: failed: {}; starting again in {}s",
                        self.name,
                        e.message,
                        RESTART_AFTER.as_secs()
                    ));
                    tokio::select! {
                        _ = cancel.cancelled() => {}
                        _ = tokio::time::sleep(RESTART_AFTER) => {}
                    }
                }
            }
        }
    }

    fn shown_uri(&self) -> String {
        backups_mongo::redact_uri(&self.uri)
    }
}
