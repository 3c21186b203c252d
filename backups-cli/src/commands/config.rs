//! `backups config show`: the settings in force (flags, then the profile,
//! then the defaults), secrets redacted.

use clap::Subcommand;

use crate::args::GlobalArgs;
use crate::commands::create;
use crate::config::show::Settings;
use crate::config::{Config, apply};
use crate::context::default_store;
use crate::failure::CliResult;
use crate::output::out;

/// Examples and notes after `backups config --help`.
pub const AFTER_HELP: &str = "\
Examples:
  backups config show
  backups config show --profile offsite --json
  backups --config ./config.toml --store /tmp/test-store config show

The config file is --config, else $BACKUPS_CONFIG, else
~/.config/backups/config.toml, else /etc/backups/config.toml. Its profiles
([profile.NAME]) hold what the flags hold; the profile used is --profile,
else $BACKUPS_PROFILE, else 'default' if the file has one. Flags and their
BACKUPS_* variables override the profile, which overrides the defaults.
Passwords in URIs and secret store options are shown as ***.";

/// `backups config`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// What to do.
    #[command(subcommand)]
    pub command: ConfigCommand,
}

/// The `config` subcommands.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print the effective settings, secrets redacted.
    Show(ShowArgs),
}

/// `backups config show`.
#[derive(Debug, clap::Args)]
pub struct ShowArgs {
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Prints the settings.
pub fn run(global: &GlobalArgs, config: &Config, args: Args) -> CliResult {
    let ConfigCommand::Show(show) = args.command;
    let (profile_name, profile) = config.profile(global.profile.as_deref())?;
    let mut global = global.clone();
    apply::global(&mut global, &profile);
    let mut create = create::from_env()?;
    apply::create(&mut create, &profile);
    let store = match global.store.clone() {
        Some(s) => s,
        None => default_store()?,
    };
    let settings = Settings::effective(config.path.clone(), profile_name, store, &global, &create);
    if show.json {
        // One JSON style: PascalCase keys (the values, and the store
        // options' own names, as they are).
        let value = serde_json::to_value(&settings).map_err(|e| crate::failure::Failure {
            message: format!("cannot print the settings: {e}"),
            code: crate::failure::OTHER,
        })?;
        let pascal: serde_json::Map<String, serde_json::Value> = match value {
            serde_json::Value::Object(map) => {
                map.into_iter().map(|(k, v)| (pascal_case(&k), v)).collect()
            }
            _ => serde_json::Map::new(),
        };
        out(&format!("{:#}\n", serde_json::Value::Object(pascal)))
    } else {
        out(&settings.to_toml())
    }
}

/// `mongo_uri_file` -> `MongoUriFile`.
fn pascal_case(key: &str) -> String {
    key.split('_')
        .map(|part| {
            let mut chars = part.chars();
            match chars.next() {
                Some(first) => first.to_ascii_uppercase().to_string() + chars.as_str(),
                None => String::new(),
            }
        })
        .collect()
}
