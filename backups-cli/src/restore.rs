//! `backups restore`: plain, or as a plan with hooks and a safety backup.

use std::path::PathBuf;
use std::sync::Arc;

use backups_core::ExtractOptions;
use backups_core::{
    Backups, FileSet, Identity, Progress, RestoreRequest, RestoreSource, StoreBackups,
};
use backups_core::{Preflight, RestorePlan, SafetyBackup, journal_path};
use backups_mongo::{DumpOptions, LoadOptions, MongoDumper, MongoLoader};

use crate::args::{self, RestoreArgs};
use crate::create::host_model_uuid;
use crate::{CliResult, Failure, confirm, hooks, host_name, mongo_uri, out, output, parse_id};

/// Restores a backup (by id or from a file).
pub(crate) async fn restore(
    backups: &StoreBackups,
    a: RestoreArgs,
    progress: Arc<dyn Progress>,
    quiet: bool,
) -> CliResult {
    let say = |text: String| crate::say(quiet, &text);
    let source = match (a.id.clone(), a.file.clone()) {
        (Some(id), _) => RestoreSource::Id(parse_id(&id)?),
        (None, Some(file)) => RestoreSource::File(file),
        (None, None) => {
            return Err(Failure {
                message: "give a backup id or --file".into(),
                code: 2,
            });
        }
    };
    let database: Option<Arc<dyn backups_core::DatabaseLoader>> = match mongo_uri(&a.mongo)? {
        Some(uri) => Some(Arc::new(
            MongoLoader::connect(
                &uri,
                LoadOptions {
                    ns_exclude: a.ns_exclude.clone(),
                    db_rename: a.db_rename.clone(),
                },
            )
            .await?,
        )),
        None => None,
    };
    let uri = mongo_uri(&a.mongo)?;
    let options = ExtractOptions::default()
        .with_setuid(a.allow_setuid)
        .with_devices(a.allow_devices);
    let journals = journal_dir();
    let undo_journal = match (&source, &journals) {
        (RestoreSource::Id(id), Some(dir)) => Some(journal_path(dir, id)),
        _ => None,
    };
    let mut request = RestoreRequest::new(source, a.target.clone())
        .with_dry_run(a.dry_run)
        .with_options(options);
    request.database = database.clone();
    request.undo_journal = undo_journal;
    // In place (`--target /`) is always a plan: checked in full and
    // confirmed first.
    let in_place = std::fs::canonicalize(&a.target).is_ok_and(|p| p == std::path::Path::new("/"));
    let as_plan = in_place
        || a.stop_cmd.is_some()
        || a.target_controller_uuid.is_some()
        || a.target_model_uuid.is_some()
        || a.target_version.is_some()
        || a.start_cmd.is_some()
        || a.post_restore_cmd.is_some()
        || !a.safety_paths.is_empty();
    let report = if as_plan {
        if !a.dry_run && !a.yes {
            confirm(&format!(
                "Restore into {} (services will be stopped)?",
                a.target.display()
            ))?;
        }
        let safety = if a.no_safety_backup || (a.safety_paths.is_empty() && uri.is_none()) {
            say("warning: no safety backup (give --safety-path and --mongo-uri to be able to roll back)".into());
            None
        } else {
            let dumper: Option<Arc<dyn backups_core::DatabaseDumper>> = match &uri {
                Some(u) => Some(Arc::new(
                    MongoDumper::connect(
                        u,
                        DumpOptions {
                            include_dbs: a.safety_dbs.clone(),
                            ..Default::default()
                        },
                    )
                    .await?,
                )),
                None => None,
            };
            // The safety backup is of the target: its identity, where
            // known (--target-*), else this host's.
            let mut identity = Identity::new(
                a.target_model_uuid
                    .clone()
                    .or_else(|| std::env::var("BACKUPS_MODEL_UUID").ok())
                    .unwrap_or_else(host_model_uuid),
            );
            identity.controller_uuid = a.target_controller_uuid.clone().unwrap_or_default();
            identity.version = a.target_version.clone().unwrap_or_default();
            identity.ha_nodes = a.target_ha_nodes.unwrap_or(0);
            identity.hostname = host_name();
            let mut safety = SafetyBackup::new(FileSet::new(a.safety_paths.clone()), identity);
            safety.dumper = dumper;
            safety.loader = database;
            Some(safety)
        };
        let services = hooks::ShellServices {
            stop: a.stop_cmd.clone(),
            start: a.start_cmd.clone(),
            post_restore: a.post_restore_cmd.clone(),
            timeout: a.hook_timeout,
            env: vec![
                (
                    "BACKUPS_RESTORE_SOURCE".into(),
                    a.id.clone()
                        .or_else(|| a.file.as_ref().map(|f| f.display().to_string()))
                        .unwrap_or_default(),
                ),
                (
                    "BACKUPS_RESTORE_TARGET".into(),
                    a.target.display().to_string(),
                ),
            ],
            quiet,
        };
        let mut preflight = Preflight::default();
        preflight.target.controller_uuid = a.target_controller_uuid.clone().unwrap_or_default();
        preflight.target.model_uuid = a.target_model_uuid.clone().unwrap_or_default();
        preflight.target.version = a.target_version.clone().unwrap_or_default();
        preflight.target.ha_nodes = a.target_ha_nodes.unwrap_or(0);
        preflight.allow_other_controller = a.allow_other_controller;
        preflight.allow_downgrade = a.allow_downgrade;
        let mut plan = RestorePlan::new(request)
            .with_services(Arc::new(services))
            .with_ignore_free_space(a.ignore_free_space)
            .with_preflight(preflight);
        plan.safety = safety;
        plan.journal_dir = journals;
        if a.dry_run {
            out(&plan_text(&a, uri.as_deref(), plan.safety.is_some()))?;
        }
        let done = backups.run_restore_plan(plan, progress).await?;
        if let Some(id) = &done.safety_backup {
            say(format!(
                "Safety backup {id} (label pre-restore) holds the state before this restore"
            ));
        }
        done.restore
    } else {
        backups.restore(request, progress).await?
    };
    let s = &report.stats;
    let from = report
        .metadata
        .id
        .as_ref()
        .map(ToString::to_string)
        .unwrap_or_else(|| "archive".into());
    let verb = if report.dry_run {
        "Would restore"
    } else {
        "Restored"
    };
    out(&format!(
        "{verb} {} files, {} directories, {} symlinks, {} hard links ({}) from {from} into {}\n",
        s.files,
        s.directories,
        s.symlinks,
        s.hard_links,
        output::human_size(s.bytes),
        report.target.display()
    ))?;
    if s.devices > 0 || s.setuid > 0 {
        out(&format!(
            "Special entries: {} device nodes or FIFOs, {} with setuid/setgid bits{}\n",
            s.devices,
            s.setuid,
            if report.dry_run {
                ""
            } else if options.allow_setuid {
                " (kept)"
            } else {
                " (bits dropped)"
            }
        ))?;
    }
    if let Some(db) = &report.database {
        let docs: u64 = db.collections.values().sum();
        out(&format!(
            "Loaded {docs} documents into {} collections, built {} indexes, replayed {} oplog entries\n",
            db.collections.len(),
            db.indexes,
            db.oplog_entries
        ))?;
        for w in &db.warnings {
            stderr_line!("warning: {w}");
        }
    }
    if report.dry_run {
        out(&format!(
            "Archive verified: size and SHA-1{}, every path checked. Nothing was changed.\n",
            if report.manifest_verified {
                ", SHA-256 of every entry"
            } else {
                " (no manifest: a Juju archive)"
            }
        ))?;
    }
    Ok(())
}

/// Where restore journals go: `$BACKUPS_STATE_DIR`, else the user's state
/// directory (`~/.local/state/backups`).
fn journal_dir() -> Option<PathBuf> {
    std::env::var_os("BACKUPS_STATE_DIR")
        .map(PathBuf::from)
        .or_else(|| {
            dirs::state_dir()
                .or_else(dirs::data_local_dir)
                .map(|d| d.join("backups"))
        })
}

/// The steps a restore plan will take, for `--dry-run`.
fn plan_text(a: &args::RestoreArgs, uri: Option<&str>, safety: bool) -> String {
    let mut steps = vec![
        "verify the whole archive (size, SHA-1, SHA-256 of every entry, every path, dump files)"
            .to_string(),
        "preflight: format version, controller/model identity, version, HA nodes, free disk space"
            .to_string(),
    ];
    if safety {
        let mut what: Vec<String> = a
            .safety_paths
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        if let Some(u) = uri {
            what.push(format!("the database at {}", backups_mongo::redact_uri(u)));
        }
        steps.push(format!(
            "safety backup (label pre-restore) of {}",
            what.join(", ")
        ));
    } else {
        steps.push("no safety backup: a failure cannot be rolled back".to_string());
    }
    let hook = |name: &str, cmd: &Option<String>| match cmd {
        Some(c) => format!("{name}: `{c}`"),
        None => format!("{name}: (no command)"),
    };
    steps.push(hook("stop services", &a.stop_cmd));
    if let Some(u) = uri {
        steps.push(format!(
            "load the backup's database into {} (collections in the dump are replaced)",
            backups_mongo::redact_uri(u)
        ));
    }
    steps.push(format!(
        "extract the files into {} (each to a temporary name, then renamed)",
        a.target.display()
    ));
    steps.push(hook("post-restore", &a.post_restore_cmd));
    steps.push(hook("start services", &a.start_cmd));
    let mut text = String::from("Plan:\n");
    for (i, step) in steps.iter().enumerate() {
        text.push_str(&format!("  {}. {step}\n", i + 1));
    }
    text
}
