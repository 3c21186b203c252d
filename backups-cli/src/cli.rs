//! The top-level parser: the global options and the command.

use clap::Parser;

use crate::args::GlobalArgs;
use crate::commands::Command;
use crate::failure;

/// Where the store is and how credentials are found, after the exit codes.
const STORE_HELP: &str = "\
The store is --store, else $BACKUPS_STORE, else the config file's profile
(see `backups config --help`), else ~/.local/share/backups.
Cloud stores take credentials from the environment: AWS_ACCESS_KEY_ID,
AWS_SECRET_ACCESS_KEY, AWS_REGION... for s3://; AZURE_STORAGE_ACCOUNT_NAME,
AZURE_STORAGE_ACCOUNT_KEY... for az://; GOOGLE_SERVICE_ACCOUNT... for gs://.";

/// `backups --help`'s closing text: the exit codes, then the store.
fn after_help() -> String {
    format!("Exit codes:\n{}\n{STORE_HELP}", failure::exit_codes_help())
}

/// What `backups --version` prints after the name, on one line: the
/// version, the git commit it was built from (`unknown` outside a git
/// checkout; see build.rs) and the optional parts and whether they are in.
/// zstd compression and age encryption are always built in (they are not
/// optional dependencies), and so is the HTTP server (`backups serve`,
/// `--remote`).
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("BACKUPS_GIT_COMMIT"),
    "; features: +zstd +age +server)"
);

/// Back up and restore a cluster controller (its files and its MongoDB
/// database) into an object store, in Juju's archive format.
#[derive(Debug, Parser)]
#[command(name = "backups", version = VERSION, after_help = after_help())]
pub struct Cli {
    /// Options every command takes.
    #[command(flatten)]
    pub global: GlobalArgs,

    /// The command to run.
    #[command(subcommand)]
    pub command: Command,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn a_command_lists_its_own_options_before_the_global_ones() {
        let mut cli = Cli::command();
        // Global options reach the subcommands when the command is built.
        cli.build();
        let help = cli
            .find_subcommand_mut("restore")
            .map(|c| c.render_help().to_string())
            .unwrap_or_default();
        let own = help.find("--target <DIR>");
        let global = help.find("Global options:");
        let store = help.find("--store <URL>");
        assert!(own.is_some() && own < global && global < store, "{help}");
    }
}
