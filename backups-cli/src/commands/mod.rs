//! The commands: one module each, holding its arguments (`Args`) and its
//! `run`. This module is the dispatch table.

pub mod completions;
pub mod config;
pub mod copy;
pub mod create;
pub mod diff;
pub mod download;
pub mod forget;
pub mod gc;
pub mod key;
pub mod label;
pub mod list;
pub mod pitr;
pub mod remote;
pub mod remove;
pub mod restore;
pub mod schedule;
pub mod serve;
pub mod show;
pub mod token;
pub mod unlock;
pub mod upload;
pub mod verify;

use backups_core::CancellationToken;
use clap::Subcommand;

use crate::args::GlobalArgs;
use crate::config::{Config, apply};
use crate::context::Context;
use crate::failure::CliResult;

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Back up files and the MongoDB database into the store; prints the new id.
    #[command(after_help = create::AFTER_HELP)]
    Create(create::Args),

    /// List the backups in the store, newest first.
    #[command(after_help = list::AFTER_HELP)]
    List(list::Args),

    /// Show everything recorded about one backup.
    #[command(after_help = show::AFTER_HELP)]
    Show(show::Args),

    /// Download a backup's archive, verifying its size and checksum.
    #[command(after_help = download::AFTER_HELP)]
    Download(download::Args),

    /// Add an existing archive (ours or Juju's) to the store.
    #[command(after_help = upload::AFTER_HELP)]
    Upload(upload::Args),

    /// Copy backups into another store, verified, skipping those it holds.
    #[command(after_help = copy::AFTER_HELP)]
    Copy(copy::Args),

    /// Remove backups by id, or all but the newest N.
    #[command(after_help = remove::AFTER_HELP)]
    Remove(remove::Args),

    /// Remove the backups a retention policy (restic's --keep-* flags) does not keep.
    #[command(after_help = forget::AFTER_HELP)]
    Forget(forget::Args),

    /// Find (and with --yes delete) what interrupted work left in the store.
    #[command(after_help = gc::AFTER_HELP)]
    Gc(gc::Args),

    /// Show and break the store's lease (held by restore, remove and gc).
    #[command(after_help = unlock::AFTER_HELP)]
    Unlock(unlock::Args),

    /// Restore a backup's files (and database) into a target.
    #[command(after_help = restore::AFTER_HELP)]
    Restore(restore::Args),

    /// Show what a restore would change: files and collections that differ from the live state.
    #[command(after_help = diff::AFTER_HELP)]
    Diff(diff::Args),

    /// Check backups (stored bytes, every entry, or a drill) and record the outcome.
    #[command(after_help = verify::AFTER_HELP)]
    Verify(verify::Args),

    /// Add or remove labels of backups.
    #[command(after_help = label::LABEL_HELP)]
    Label(label::LabelArgs),

    /// Replace the notes of a backup.
    #[command(after_help = label::NOTES_HELP)]
    Notes(label::NotesArgs),

    /// Serve the store to holders of tokens over HTTPS (the backups facade).
    #[command(after_help = serve::AFTER_HELP)]
    Serve(serve::Args),

    /// Make bearer tokens for `backups serve`.
    #[command(after_help = token::AFTER_HELP)]
    Token(token::Args),

    /// Make keys for encrypted backups.
    #[command(after_help = key::AFTER_HELP)]
    Key(key::Args),

    /// Show the settings in force (config file profile, flags, defaults).
    #[command(after_help = config::AFTER_HELP)]
    Config(config::Args),

    /// Ship the oplog to the store for point-in-time recovery, and list what is restorable.
    #[command(after_help = pitr::AFTER_HELP)]
    Pitr(pitr::Args),

    /// Run or list the config file's backup schedules.
    #[command(after_help = schedule::AFTER_HELP)]
    Schedule(schedule::Args),

    /// Print a shell completion script (bash, zsh or fish).
    #[command(after_help = completions::AFTER_HELP)]
    Completions(completions::Args),

    /// Write a man page for every command (for packaging).
    #[command(hide = true)]
    Man(completions::ManArgs),

    /// Print the store's backup ids, one a line (for the completion scripts).
    #[command(name = "__complete-ids", hide = true)]
    CompleteIds(completions::IdsArgs),
}

impl Command {
    /// Whether each item is to be shown as it is processed (restore's
    /// --verbose).
    pub fn verbose(&self) -> bool {
        matches!(self, Command::Restore(r) if r.verbose)
    }

    /// Whether the command writes a new backup, and so may create a local
    /// store that does not exist yet (create, upload, and a restore from a
    /// file, whose safety backup goes to the store; a diff of a file reads
    /// no store). The others read a store: a missing one is an error,
    /// never an empty store.
    pub fn creates_store(&self) -> bool {
        match self {
            Command::Create(_) | Command::Upload(_) | Command::Serve(_) => true,
            Command::Pitr(p) => matches!(p.command, pitr::PitrCommand::Run(_)),
            Command::Restore(r) => r.file.is_some(),
            Command::Diff(d) => d.file.is_some(),
            _ => false,
        }
    }
}

/// Runs the command with the config file's profile filling in what the
/// flags left unset (`config` and `schedule` pick their own profiles).
pub async fn run_configured(
    mut global: GlobalArgs,
    mut command: Command,
    config: &Config,
    cancel: CancellationToken,
) -> CliResult {
    match command {
        Command::Config(args) => return config::run(&global, config, args),
        Command::Schedule(args) => return schedule::run(&global, config, args, cancel).await,
        // They need no store.
        Command::Key(args) => return key::run(global.quiet, args),
        Command::Token(args) => return token::run(global.quiet, args),
        _ => {}
    }
    let (_, profile) = config.profile(global.profile.as_deref())?;
    apply::global(&mut global, &profile);
    if let Some(url) = global.remote.clone()
        && !matches!(command, Command::Serve(_) | Command::CompleteIds(_))
    {
        if let Command::Create(args) = &mut command {
            // Only the profile's labels: what is backed up is the server's.
            if args.labels.is_empty() {
                args.labels.clone_from(&profile.labels);
            }
        }
        return run_remote(&global, &url, command).await;
    }
    if let Command::CompleteIds(args) = command {
        // Quietly nothing when the store cannot be opened, and no local
        // store directory created by a press of TAB.
        let url = match global.store.clone() {
            Some(url) => url,
            None => crate::context::default_store()?,
        };
        if completions::missing_local_store(&url) {
            return Ok(());
        }
        return match Context::new(&global, false, cancel) {
            Ok(ctx) => completions::ids(ctx, args).await,
            Err(_) => Ok(()),
        };
    }
    if let Command::Create(args) = &mut command {
        apply::create(args, &profile);
    }
    if let Command::Pitr(pitr::Args {
        command: pitr::PitrCommand::Run(args),
    }) = &mut command
    {
        apply::mongo(&mut args.mongo, &profile);
        apply::keys(&mut args.encrypt, &profile);
    }
    if let Command::Upload(args) = &mut command {
        args.immutable.fill_from(&profile);
    }
    if let Command::Copy(mut args) = command {
        // The target store, from --to or --to-profile; it may be created.
        let target_global = copy::target_global(&global, &args, config)?;
        if let Some(name) = &args.to_profile {
            args.immutable.fill_from(&config.profile(Some(name))?.1);
        }
        let mut target = Context::open(&target_global, false, cancel.clone(), true)?;
        target.lock_writes(&args.immutable, None)?;
        let ctx = Context::open(&global, false, cancel, false)?;
        return copy::run(&ctx, &target, args).await;
    }
    let mut ctx = Context::open(
        &global,
        command.verbose(),
        cancel.clone(),
        command.creates_store(),
    )?;
    match &command {
        Command::Create(args) => ctx.lock_writes(&args.immutable, None)?,
        Command::Upload(args) => ctx.lock_writes(&args.immutable, None)?,
        _ => {}
    }
    if let Command::Pitr(args) = command {
        return pitr::run(&ctx, args, cancel).await;
    }
    if let Command::Serve(args) = command {
        let mut create_args = create::from_env()?;
        apply::create(&mut create_args, &profile);
        return serve::run(&ctx, args, create_args, cancel).await;
    }
    run(&ctx, command).await
}

/// Runs the command through the backups server at `url` (--remote).
async fn run_remote(global: &GlobalArgs, url: &str, command: Command) -> CliResult {
    let r = remote::connect(global, url)?;
    match command {
        Command::List(args) => remote::list(&r, args).await,
        Command::Show(args) => remote::show(&r, args).await,
        Command::Download(args) => remote::download(&r, args).await,
        Command::Upload(args) => remote::upload(&r, args).await,
        Command::Remove(args) => remote::remove(&r, args).await,
        Command::Forget(args) => remote::forget(&r, args).await,
        Command::Verify(args) => remote::verify(&r, args).await,
        Command::Label(args) => remote::label(&r, args).await,
        Command::Notes(args) => remote::notes(&r, args).await,
        Command::Create(args) => remote::create(&r, args).await,
        Command::Restore(args) => remote::restore(&r, args).await,
        _ => Err(crate::failure::Failure::usage(
            "this command does not work with --remote: list, show, download, upload, remove, forget, verify, label, notes, create and restore do",
        )),
    }
}

/// Runs the command.
async fn run(ctx: &Context, command: Command) -> CliResult {
    match command {
        Command::Create(args) => create::run(ctx, args).await,
        Command::List(args) => list::run(ctx, args).await,
        Command::Show(args) => show::run(ctx, args).await,
        Command::Download(args) => download::run(ctx, args).await,
        Command::Upload(args) => upload::run(ctx, args).await,
        Command::Remove(args) => remove::run(ctx, args).await,
        Command::Forget(args) => forget::run(ctx, args).await,
        Command::Gc(args) => gc::run(ctx, args).await,
        Command::Unlock(args) => unlock::run(ctx, args).await,
        Command::Restore(args) => restore::run(ctx, args).await,
        Command::Verify(args) => verify::run(ctx, args).await,
        Command::Diff(args) => diff::run(ctx, args).await,
        Command::Label(args) => label::run_label(ctx, args).await,
        Command::Notes(args) => label::run_notes(ctx, args).await,
        // They need no store; run_configured runs them before opening one.
        Command::Config(_)
        | Command::Copy(_)
        | Command::Schedule(_)
        | Command::Key(_)
        | Command::Token(_)
        | Command::Serve(_)
        | Command::Pitr(_)
        | Command::Completions(_)
        | Command::Man(_)
        | Command::CompleteIds(_) => Err(crate::failure::Failure {
            message: "internal error: this command runs before a store is opened".into(),
            code: crate::failure::OTHER,
        }),
    }
}
