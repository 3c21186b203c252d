//! A restore run as a plan: confirmed first, with a safety backup of the
//! live state, the service hooks and a preflight check of the target; and
//! the plan's steps as `--dry-run` prints them.

use std::path::PathBuf;
use std::sync::Arc;

use backups_core::{
    DatabaseDumper, DatabaseLoader, FileSet, Preflight, RestorePlan, RestoreReport, RestoreRequest,
    SafetyBackup,
};
use backups_mongo::{DumpOptions, MongoDumper};

use super::Args;
use crate::context::Context;
use crate::failure::Failure;
use crate::hooks::ShellServices;
use crate::output::{confirm, out};

/// Confirms (unless --yes or --dry-run), runs the plan and returns the
/// restore's report, and for a dry run with --json its steps (printed
/// here otherwise).
pub(super) async fn run(
    ctx: &Context,
    args: &Args,
    request: RestoreRequest,
    loader: Option<Arc<dyn DatabaseLoader>>,
    journal_dir: Option<PathBuf>,
) -> Result<(RestoreReport, Option<Vec<String>>), Failure> {
    let uri = args.mongo.uri()?;
    if !args.dry_run && !args.yes {
        confirm(&format!(
            "Restore into {} (services will be stopped)?",
            args.target.display()
        ))?;
    }
    let safety = if args.no_safety_backup || (args.safety_paths.is_empty() && uri.is_none()) {
        ctx.say("warning: no safety backup (give --safety-path and --mongo-uri to be able to roll back)");
        None
    } else {
        Some(safety_backup(args, uri.as_deref(), loader).await?)
    };
    let mut preflight = Preflight::default();
    preflight.target = args.target_identity.identity();
    preflight.allow_other_controller = args.allow_other_controller;
    preflight.allow_downgrade = args.allow_downgrade;
    preflight.ensure_down = args.ensure_down.clone();
    let mut plan = RestorePlan::new(request)
        .with_services(Arc::new(services(args, ctx.quiet)))
        .with_ignore_free_space(args.ignore_free_space)
        .with_preflight(preflight);
    plan.safety = safety;
    plan.journal_dir = journal_dir;
    let mut steps = None;
    if args.dry_run {
        let planned = plan_steps(args, uri.as_deref(), plan.safety.is_some());
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
    let done = ctx.backups.run_restore_plan(plan, ctx.progress()).await?;
    if let Some(id) = &done.safety_backup {
        ctx.say(&format!(
            "Safety backup {id} (label pre-restore) holds the state before this restore"
        ));
    }
    Ok((done.restore, steps))
}

/// The safety backup of the live state: --safety-path and, with a MongoDB
/// URI, the --safety-db databases; rolled back with `loader`.
async fn safety_backup(
    args: &Args,
    uri: Option<&str>,
    loader: Option<Arc<dyn DatabaseLoader>>,
) -> Result<SafetyBackup, Failure> {
    let dumper: Option<Arc<dyn DatabaseDumper>> = match uri {
        Some(u) => Some(Arc::new(
            MongoDumper::connect(
                u,
                DumpOptions {
                    include_dbs: args.safety_dbs.clone(),
                    ..Default::default()
                },
            )
            .await?,
        )),
        None => None,
    };
    let mut safety = SafetyBackup::new(
        FileSet::new(args.safety_paths.clone()),
        args.target_identity.safety_identity(),
    );
    safety.dumper = dumper;
    safety.loader = loader;
    Ok(safety)
}

/// The hooks, with the restore's source and target in their environment.
fn services(args: &Args, quiet: bool) -> ShellServices {
    ShellServices {
        stop: args.stop_cmd.clone(),
        start: args.start_cmd.clone(),
        post_restore: args.post_restore_cmd.clone(),
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
    }
}

/// The steps a restore plan will take, for `--dry-run`.
fn plan_steps(args: &Args, uri: Option<&str>, safety: bool) -> Vec<String> {
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
    if safety {
        let mut what: Vec<String> = args
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
    steps.push(hook("stop services", &args.stop_cmd));
    if let Some(u) = uri {
        steps.push(format!(
            "load the backup's database into {} (collections in the dump are replaced)",
            backups_mongo::redact_uri(u)
        ));
    }
    steps.push(format!(
        "extract the files into {} (each to a temporary name, then renamed)",
        args.target.display()
    ));
    if !args.rewrite.is_empty() {
        steps.push(rewrite_step(args, uri.is_some()));
    }
    steps.push(hook("post-restore", &args.post_restore_cmd));
    steps.push(hook("start services", &args.start_cmd));
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
