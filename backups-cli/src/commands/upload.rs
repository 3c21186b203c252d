//! `backups upload`: an existing archive (ours or Juju's) into the store.

use std::path::PathBuf;

use backups_core::{AddOutcome, ArchiveSource, Backups};

use crate::context::Context;
use crate::failure::{CliResult, ENCRYPTION, Failure};
use crate::keys::EncryptArgs;
use crate::output::out;

/// Examples and notes after `backups upload --help`.
pub const AFTER_HELP: &str = "\
Examples:
  backups upload juju-backup-20200225-041241.tar.gz
  backups upload juju-backup-20200225-041241.tar.gz --encrypt-to age1... --require-encryption

The archive is validated first (gzip, layout, metadata, every root.tar path);
its id comes from its metadata (start time and model UUID). Uploading the
same bytes again does nothing; different bytes under an existing id fail.";

/// `backups upload`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The archive file (.tar.gz).
    pub file: PathBuf,
    #[command(flatten)]
    pub encrypt: EncryptArgs,
    #[command(flatten)]
    pub immutable: crate::immutable::ImmutableArgs,
    /// Refuse to store the archive unencrypted (give --encrypt-to,
    /// --recipients-file or --passphrase-file).
    #[arg(long)]
    pub require_encryption: bool,
}

/// Validates and stores the archive; prints the id it is stored under.
pub async fn run(ctx: &Context, args: Args) -> CliResult {
    let source = ArchiveSource::File(args.file.clone());
    let encryption = args.encrypt.encryption()?;
    if encryption.is_none() && args.require_encryption {
        return Err(Failure {
            message: format!(
                "refusing to store {} unencrypted (--require-encryption): give --encrypt-to, --recipients-file or --passphrase-file",
                args.file.display()
            ),
            code: ENCRYPTION,
        });
    }
    let outcome = ctx.backups.add(source, encryption, ctx.progress()).await?;
    print_outcome(outcome)
}

/// Juju's upload-backup lines: the id the archive is stored under, or
/// that the same bytes were already there (also for `--remote`).
pub fn print_outcome(outcome: AddOutcome) -> CliResult {
    let id = outcome
        .metadata
        .id
        .map(|i| i.to_string())
        .unwrap_or_default();
    if outcome.already_present {
        out(&format!(
            "Backup file already uploaded as backup ID {id} (same checksum); nothing to do\n"
        ))
    } else {
        out(&format!("Uploaded backup file, creating backup ID {id}\n"))
    }
}
