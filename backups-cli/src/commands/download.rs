//! `backups download`: a backup's archive, verified, to a file or stdout.

use std::path::PathBuf;

use backups_core::{BackupId, Backups};

use crate::args::parse_id;
use crate::context::Context;
use crate::failure::CliResult;
use crate::keys::IdentityArgs;

/// Examples and notes after `backups download --help`.
pub const AFTER_HELP: &str = "\
Examples:
  backups download 20200225-041241.e2a6a1e5-abea-4393-8593-5a45ae53ab97
  backups download 20200225-041241.e2a6a1e5-abea-4393-8593-5a45ae53ab97 -o /tmp/b.tar.gz
  backups download 20200225-041241.e2a6a1e5-abea-4393-8593-5a45ae53ab97 -o - | tar tzf -

The file appears only once its checksum is verified (it is written to a
temporary name first). With '-o -' the bytes go to stdout and a mismatch is
reported after they were written. An encrypted backup downloads as its
stored .tar.gz.age (age -d -i KEY reads it) unless --decrypt --identity
KEY, which gives the plain .tar.gz whose SHA-1 `show` prints.";

/// `backups download`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The backup id.
    pub id: String,
    /// Output file, or '-' for stdout (default: juju-backup-<id>.tar.gz).
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Decrypt an encrypted backup: write the plain .tar.gz Juju and tar
    /// read (needs --identity).
    #[arg(long)]
    pub decrypt: bool,
    #[command(flatten)]
    pub keys: IdentityArgs,
}

/// Downloads the archive, checking its size and checksum.
pub async fn run(ctx: &Context, args: Args) -> CliResult {
    let id = parse_id(&args.id)?;
    if args.decrypt {
        return decrypt(ctx, &id, args).await;
    }
    match args.output {
        Some(p) if p.as_os_str() == "-" => {
            let mut stdout = tokio::io::stdout();
            ctx.backups
                .download_to(&id, &mut stdout, ctx.progress())
                .await?;
        }
        other => {
            let path = other.unwrap_or_else(|| PathBuf::from(format!("juju-backup-{id}.tar.gz")));
            let meta = ctx.backups.download(&id, &path, ctx.progress()).await?;
            ctx.say(&format!(
                "Downloaded {id} to {} ({} bytes, checksum verified)",
                path.display(),
                meta.stored_size()
            ));
        }
    }
    Ok(())
}

/// `--decrypt`: the plain archive of an encrypted backup.
async fn decrypt(ctx: &Context, id: &BackupId, args: Args) -> CliResult {
    let identities = args.keys.identities()?;
    match args.output {
        Some(p) if p.as_os_str() == "-" => {
            ctx.backups
                .download_decrypted_to(id, identities, std::io::stdout(), ctx.progress())
                .await?;
        }
        other => {
            let path = other.unwrap_or_else(|| PathBuf::from(format!("juju-backup-{id}.tar.gz")));
            let meta = ctx
                .backups
                .download_decrypted(id, identities, &path, ctx.progress())
                .await?;
            ctx.say(&format!(
                "Decrypted {id} to {} (checksum {} verified)",
                path.display(),
                meta.checksum
            ));
        }
    }
    Ok(())
}
