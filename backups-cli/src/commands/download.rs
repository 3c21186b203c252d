//! `backups download`: a backup's archive, verified, to a file or stdout.

use std::path::PathBuf;

use backups_core::download::DownloadTo;
use backups_core::{BackupId, Backups};

use crate::args::parse_id;
use crate::context::Context;
use crate::failure::{CliResult, Failure};
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
KEY, which gives the plain .tar.gz whose SHA-1 `show` prints. An existing
file is not replaced without --force; a directory is refused.";

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
    /// Replace the output file if it exists.
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub keys: IdentityArgs,
}

/// The file to write (`None`: stdout), refused before anything is fetched
/// when it is a directory, or exists and --force was not given.
pub fn destination(args: &Args, id: &BackupId) -> Result<Option<PathBuf>, Failure> {
    let path = match &args.output {
        Some(p) if p.as_os_str() == "-" => return Ok(None),
        Some(p) => p.clone(),
        None => PathBuf::from(format!("juju-backup-{id}.tar.gz")),
    };
    match std::fs::metadata(&path) {
        Ok(m) if m.is_dir() => Err(Failure::usage(format!(
            "refusing to download into {}: it is a directory; give a file name (-o {}/NAME)",
            path.display(),
            path.display()
        ))),
        Ok(_) if !args.force => Err(Failure::usage(format!(
            "refusing to overwrite {}: it exists (pass --force to replace it)",
            path.display()
        ))),
        _ => Ok(Some(path)),
    }
}

/// Downloads the archive, checking its size and checksum.
pub async fn run(ctx: &Context, args: Args) -> CliResult {
    let id = parse_id(&args.id)?;
    let dest = destination(&args, &id)?;
    if args.decrypt {
        return decrypt(ctx, &id, dest, args).await;
    }
    match dest {
        None => {
            let mut stdout = tokio::io::stdout();
            ctx.backups
                .download(&id, DownloadTo::Writer(&mut stdout), ctx.progress())
                .await?;
        }
        Some(path) => {
            let meta = ctx
                .backups
                .download(&id, DownloadTo::File(&path), ctx.progress())
                .await?;
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
async fn decrypt(ctx: &Context, id: &BackupId, dest: Option<PathBuf>, args: Args) -> CliResult {
    let identities = args.keys.identities()?;
    match dest {
        None => {
            let mut stdout = tokio::io::stdout();
            ctx.backups
                .download_decrypted(
                    id,
                    identities,
                    DownloadTo::Writer(&mut stdout),
                    ctx.progress(),
                )
                .await?;
        }
        Some(path) => {
            let meta = ctx
                .backups
                .download_decrypted(id, identities, DownloadTo::File(&path), ctx.progress())
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
