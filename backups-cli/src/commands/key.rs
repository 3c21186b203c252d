//! `backups key generate`: a new age identity for encrypted backups.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

use backups_core::crypt::generate_identity;

use crate::failure::{CliResult, io_failure};
use crate::output::{out, say};

/// Examples and notes after `backups key --help`.
pub const AFTER_HELP: &str = "\
Examples:
  backups key generate -o ~/backups-key.txt      # prints the recipient (age1...)
  backups create --path /var/lib/juju --encrypt-to age1...
  backups restore ID --target /tmp/r --identity ~/backups-key.txt

The point: the controller needs only the public recipient to write
backups, so a compromised controller cannot read older ones. Keep the
identity file with the operator (mode 0600), not on the controller.";

/// `backups key`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// What to do.
    #[command(subcommand)]
    pub action: Action,
}

/// `backups key` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum Action {
    /// Write a new X25519 identity (mode 0600) and print its recipient.
    Generate {
        /// Where to write the identity (refuses to overwrite); default:
        /// stdout, with the recipient on stderr.
        #[arg(long, short, value_name = "FILE")]
        output: Option<PathBuf>,
    },
}

/// Runs `backups key`.
pub fn run(quiet: bool, args: Args) -> CliResult {
    let Action::Generate { output } = args.action;
    let (identity, recipient) = generate_identity();
    match output {
        None => {
            out(&identity)?;
            say(quiet, &format!("Public key: {recipient}"));
        }
        Some(path) => {
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
                .map_err(|e| io_failure(&format!("creating {}", path.display()), e))?;
            file.write_all(identity.as_bytes())
                .and_then(|()| file.sync_all())
                .map_err(|e| io_failure(&format!("writing {}", path.display()), e))?;
            out(&format!("{recipient}\n"))?;
            say(
                quiet,
                &format!(
                    "Wrote the identity to {} (keep it off the controller); its recipient is above",
                    path.display()
                ),
            );
        }
    }
    Ok(())
}
