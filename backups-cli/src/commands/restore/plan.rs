//! A restore run as a plan: confirmed first, with a safety backup of the
//! live state, the service hooks and a preflight check of the target; and
//! the plan's steps as `--dry-run` prints them.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use backups_core::juju::JujuProfile;
use backups_core::services::OrderedServices;
use backups_core::{
    DatabaseDumper, DatabaseLoader, FileSet, Identity, Preflight, RestorePlan, RestoreReport,
    RestoreRequest, SafetyBackup,
};
use backups_mongo::{DumpOptions, MongoDumper};

use super::Args;
use crate::context::Context;
use crate::failure::Failure;
use crate::hooks::{Hooks, shell_services};
use crate::output::{confirm, out};

/// Confirms (unless --yes or --dry-run) an in-place restore or one with
/// hooks, prepares the restore (the library checks everything and applies
/// its safety rule: an in-place restore, or one that replaces live files,
/// takes a safety backup unless --no-safety-backup), prints a dry run's
/// steps (or returns them for --json) and executes it.
pub(super) async fn run(
    ctx: &Context,
    args: &Args,
    uri: Option<&str>,
    request: RestoreRequest,
    loader: Option<Arc<dyn DatabaseLoader>>,
    journal_dir: Option<PathBuf>,
) -> Result<(RestoreReport, Option<Vec<String>>), Failure> {
    let hooks = args.as_plan();
    let in_place = std::fs::canonicalize(&args.target).is_ok_and(|p| p == Path::new("/"));
    if !args.dry_run && !args.yes && (hooks || in_place) {
        confirm(&format!(
            "Restore into {}{}?",
            args.target.display(),
            if hooks {
                " (services will be stopped)"
            } else {
                ""
            }
        ))?;
    }
    let live = live_juju(ctx, args);
    let safety_paths = match &live {
        Some(live) if args.safety_paths.is_empty() => live.files.clone(),
        _ => args.safety_paths.clone(),
    };
    let identity = match &live {
        Some(live) => live.identity.clone(),
        None => args.target_identity.safety_identity(),
    };
    let request = if args.no_safety_backup {
        ctx.say("warning: no safety backup (--no-safety-backup): a failure cannot be rolled back and leaves the services stopped");
        request.without_safety_backup()
    } else {
        let safety = safety_backup(args, uri, &safety_paths, identity.clone(), loader).await?;
        if hooks {
            request.with_safety_backup(safety)
        } else {
            // The library's rule decides (the same one an embedder gets).
            let request = request.with_safety_identity(identity);
            match safety.dumper {
                Some(dumper) => request.with_safety_database(dumper),
                None => request,
            }
        }
    };
    let mut preflight = Preflight::default();
    preflight.target = args.target_identity.identity();
    preflight.allow_other_controller = args.allow_other_controller;
    preflight.allow_downgrade = args.allow_downgrade;
    preflight.ensure_down = args.ensure_down.clone();
    let mut plan = RestorePlan::new(request)
        .with_ignore_free_space(args.ignore_free_space)
        .with_preflight(preflight)
        .with_journal_dir(journal_dir);
    if hooks {
        plan = plan.with_services(Arc::new(services(args, ctx.quiet)));
    }
    let prepared = ctx.backups.prepare_restore(plan, ctx.progress()).await?;
    let mut steps = None;
    if args.dry_run && (hooks || in_place || prepared.safety_backup().is_some()) {
        let safety = prepared.safety_backup().map(|_| &safety_paths[..]);
        let planned = plan_steps(args, uri, safety, &prepared.check().existing);
        if args.json {
            steps = Some(planned);
        } else {
            let mut text = String::from("Plan:\n");
            for (i, step) in planned.iter().enumerate() {
                text.push_str(&format!("  {}. {step}\n", i + 1));
            }
            out(&text)?;
        }
    }
    let done = prepared.execute(ctx.progress()).await?;
    if let Some(id) = &done.safety_backup {
        ctx.say(&format!(
            "Safety backup {id} (label pre-restore) holds the state before this restore"
        ));
    }
    Ok((done, steps))
}

/// The safety backup of the live state: --safety-path and, with a MongoDB
/// URI, the --safety-db databases; rolled back with `loader`.
async fn safety_backup(
    args: &Args,
    uri: Option<&str>,
    paths: &[PathBuf],
    identity: Identity,
    loader: Option<Arc<dyn DatabaseLoader>>,
) -> Result<SafetyBackup, Failure> {
    // With --juju, what the restore leaves alone need not be saved.
    let (exclude_dbs, exclude_ns) = if args.juju {
        (
            JujuProfile::excluded_dbs(),
            JujuProfile::restore_ns_excludes(args.include_status_history),
        )
    } else {
        (Vec::new(), Vec::new())
    };
    let dumper: Option<Arc<dyn DatabaseDumper>> = match uri {
        Some(u) => Some(Arc::new(
            MongoDumper::connect(
                u,
                DumpOptions {
                    include_dbs: args.safety_dbs.clone(),
                    exclude_ns,
                    exclude_dbs,
                    ..Default::default()
                },
            )
            .await?,
        )),
        None => None,
    };
    let mut safety = SafetyBackup::new(FileSet::new(paths.to_vec()), identity);
    safety.dumper = dumper;
    safety.loader = loader;
    Ok(safety)
}

/// With --juju, the live controller under the restore's data dir: the
/// files Juju backs up (a safety backup's default paths) and its identity.
struct LiveJuju {
    files: Vec<PathBuf>,
    identity: Identity,
}

/// The live controller, if --juju and its data dir has an agent.conf (a
/// data dir that lacks a file Juju backs up is warned about, and only its
/// agent.conf's identity is used).
fn live_juju(ctx: &Context, args: &Args) -> Option<LiveJuju> {
    if !args.juju {
        return None;
    }
    let profile = JujuProfile::load(args.juju_data_dir()).ok()?;
    let files = profile.files().unwrap_or_else(|e| {
        ctx.say(&format!(
            "warning: the safety backup leaves out the live Juju files: {e}"
        ));
        Vec::new()
    });
    Some(LiveJuju {
        files,
        identity: profile.backup_identity(),
    })
}

/// The hooks, with the restore's source and target in their environment.
fn services(args: &Args, quiet: bool) -> OrderedServices {
    let hooks = Hooks {
        timeout: args.hook_timeout,
        env: vec![
            (
                "BACKUPS_RESTORE_SOURCE".into(),
                args.id
                    .clone()
                    .or_else(|| args.file.as_ref().map(|f| f.display().to_string()))
                    .unwrap_or_default(),
            ),
            (
                "BACKUPS_RESTORE_TARGET".into(),
                args.target.display().to_string(),
            ),
        ],
        quiet,
    };
    shell_services(
        hooks,
        &args.stop_cmd,
        &args.post_restore_cmd,
        &args.start_cmd,
    )
}

/// The steps a restore plan will take, for `--dry-run`.
fn plan_steps(
    args: &Args,
    uri: Option<&str>,
    safety_paths: Option<&[PathBuf]>,
    existing: &[PathBuf],
) -> Vec<String> {
    let mut steps = vec![
        "verify the whole archive (size, SHA-1, SHA-256 of every entry, every path, dump files)"
            .to_string(),
        "preflight: format version, controller/model identity, version, HA nodes, free disk space"
            .to_string(),
    ];
    if !args.ensure_down.is_empty() {
        steps.push(format!(
            "refuse while the old controller answers at {}",
            args.ensure_down.join(", ")
        ));
    }
    if let Some(paths) = safety_paths {
        let mut what = vec![match existing.len() {
            1 => "the 1 live path the restore will replace".to_string(),
            n => format!("the {n} live paths the restore will replace"),
        }];
        what.extend(paths.iter().map(|p| p.display().to_string()));
        if let Some(u) = uri {
            what.push(format!(
                "the collections the load will replace at {}",
                backups_mongo::redact_uri(u)
            ));
            what.extend(args.safety_dbs.iter().map(|d| format!("database {d}")));
        }
        steps.push(format!(
            "safety backup (label pre-restore) of {}",
            what.join(", ")
        ));
    } else {
        steps.push("no safety backup: a failure cannot be rolled back".to_string());
    }
    let hooks = |name: &str, cmds: &[String]| -> Vec<String> {
        if cmds.is_empty() {
            return vec![format!("{name}: (no command)")];
        }
        let n = cmds.len();
        cmds.iter()
            .enumerate()
            .map(|(i, c)| match n {
                1 => format!("{name}: `{c}`"),
                _ => format!("{name} ({}/{n}): `{c}`", i + 1),
            })
            .collect()
    };
    steps.extend(hooks("stop services", &args.stop_cmd));
    if let Some(u) = uri {
        steps.push(format!(
            "load the backup's database into {} (collections in the dump are replaced{})",
            backups_mongo::redact_uri(u),
            match (args.juju, args.include_status_history) {
                (false, _) => "",
                (true, false) => "; logs.* and juju.statuseshistory are left alone",
                (true, true) => "; logs.* are left alone",
            }
        ));
    }
    steps.push(format!(
        "extract the files into {} (each to a temporary name, then renamed)",
        args.target.display()
    ));
    if !args.rewrite.is_empty() {
        steps.push(rewrite_step(args, uri.is_some()));
    }
    steps.extend(hooks("post-restore", args.post_restore_cmd.as_slice()));
    steps.extend(hooks("start services", &args.start_cmd));
    steps
}

/// The --rewrite step: which rules, which files and documents.
fn rewrite_step(args: &Args, loads: bool) -> String {
    let rules: Vec<String> = args
        .rewrite
        .iter()
        .map(|(old, new)| format!("{old} -> {new}"))
        .collect();
    let scope = |globs: &[String]| match globs.is_empty() {
        true => String::new(),
        false => format!(" matching {}", globs.join(", ")),
    };
    let documents = match loads {
        true => format!(
            " and in the loaded documents' string values{}",
            scope(&args.rewrite_ns)
        ),
        false => String::new(),
    };
    format!(
        "rewrite {} (whole tokens) as they are restored: in the text files{}{documents}; the files through the same temporary name, rename and journal (a rollback puts them back); counts below",
        rules.join(", "),
        scope(&args.rewrite_paths)
    )
}
