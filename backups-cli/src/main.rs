//! `backups`: the command-line front end of backups-core. Parsing, output
//! and progress live here; every decision about backups lives in the library.
//!
//! `main` parses the command line, reads the config file ([`config`]),
//! opens the store ([`context`]), runs the command ([`commands`]) until it
//! ends or Ctrl-C, and turns a failure into its message and exit code
//! ([`failure`]).

/// Writes a line to stderr, ignoring failures (a closed stderr must not
/// turn into a panic halfway through an upload).
macro_rules! stderr_line {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

mod args;
mod cli;
mod commands;
mod config;
mod context;
mod failure;
mod hooks;
mod host;
mod immutable;
mod keys;
mod output;
mod progress;

use std::process::ExitCode;

use backups_core::CancellationToken;
use clap::{CommandFactory, Parser};

use crate::cli::Cli;
use crate::config::Config;
use crate::failure::{CliResult, Failure, INTERRUPTED, OTHER};

/// Reads the config file, opens the store and runs the command.
async fn run(cli: Cli, cancel: CancellationToken) -> CliResult {
    // Making a key, completion scripts and man pages need no store and no
    // config.
    match cli.command {
        commands::Command::Key(args) => return commands::key::run(cli.global.quiet, args),
        commands::Command::Token(args) => return commands::token::run(cli.global.quiet, args),
        commands::Command::Completions(args) => {
            return commands::completions::print(Cli::command(), args.shell);
        }
        commands::Command::Man(args) => return commands::completions::man(Cli::command(), args),
        _ => {}
    }
    let config = Config::load(cli.global.config.as_deref())?;
    commands::run_configured(cli.global, cli.command, &config, cancel).await
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            stderr_line!("error: cannot start the async runtime: {e}");
            return ExitCode::from(OTHER);
        }
    };
    let cancel = CancellationToken::new();
    let result = runtime.block_on(async {
        let work = run(cli, cancel.clone());
        tokio::pin!(work);
        tokio::select! {
            r = &mut work => r,
            _ = tokio::signal::ctrl_c() => {
                stderr_line!("interrupted: aborting the upload (Ctrl-C again to quit at once)");
                cancel.cancel();
                tokio::select! {
                    r = &mut work => r,
                    _ = tokio::signal::ctrl_c() => Err(Failure {
                        message: "interrupted; nothing was committed".into(),
                        code: INTERRUPTED,
                    }),
                }
            }
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            stderr_line!("error: {}", output::escape_lines(&f.message));
            ExitCode::from(f.code)
        }
    }
}
