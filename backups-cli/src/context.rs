//! What every command runs against: the store, opened from the global
//! options, and how progress and messages are shown.

use std::path::PathBuf;
use std::sync::Arc;

use backups_core::catalog::UnreadableSidecar;
use backups_core::{
    BackupId, CancellationToken, Metadata, Progress, Storage, StoreBackups, UploadOptions,
};

use crate::args::GlobalArgs;
use crate::failure::Failure;
use crate::output;
use crate::progress::CliProgress;

/// The opened store and the display settings a command runs with.
pub struct Context {
    /// The store's backups.
    pub backups: StoreBackups,
    /// --quiet: only results and errors.
    pub quiet: bool,
    progress: Arc<dyn Progress>,
}

impl Context {
    /// Opens the store the global options name, creating a local store's
    /// directory if it is missing. `verbose` shows each item (restore's
    /// --verbose); `cancel` aborts uploads (Ctrl-C).
    pub fn new(
        global: &GlobalArgs,
        verbose: bool,
        cancel: CancellationToken,
    ) -> Result<Self, Failure> {
        Self::open(global, verbose, cancel, true)
    }

    /// [`Context::new`]; without `create`, a local store that does not
    /// exist is an error (exit 6) rather than an empty store: only the
    /// commands that write backups create one.
    pub fn open(
        global: &GlobalArgs,
        verbose: bool,
        cancel: CancellationToken,
        create: bool,
    ) -> Result<Self, Failure> {
        let store_url = match global.store.clone() {
            Some(s) => s,
            None => default_store()?,
        };
        let storage = if create {
            Storage::from_url(&store_url, store_options(global))?
        } else {
            Storage::from_url_existing(&store_url, store_options(global))?
        };
        let mut backups = StoreBackups::new(storage)
            .with_upload_options(UploadOptions::new(
                global.part_size as usize * 1024 * 1024,
                global.upload_concurrency as usize,
            ))
            .with_cancellation(cancel)
            .with_holder(crate::host::lease_holder());
        // Backups that pending restore journals need are protected.
        if let Some(dir) = state_dir() {
            backups = backups.with_journal_dir(dir);
        }
        let progress: Arc<dyn Progress> =
            Arc::new(CliProgress::new(global.progress, global.quiet, verbose));
        Ok(Context {
            backups,
            quiet: global.quiet,
            progress,
        })
    }

    /// Writes new backups under the lock `args` asks for (if any), with a
    /// warning for one longer than 10 years or shorter than `retention`
    /// (a schedule's name and policy) may keep a backup.
    pub fn lock_writes(
        &mut self,
        args: &crate::immutable::ImmutableArgs,
        retention: Option<(&str, Option<&backups_core::RetentionPolicy>)>,
    ) -> Result<(), Failure> {
        let Some(imm) = args.resolve()? else {
            return Ok(());
        };
        let (schedule, policy) = retention.unwrap_or(("", None));
        for w in imm.warnings(schedule, policy) {
            stderr_line!("warning: {}", w);
        }
        self.backups = self.backups.clone().with_immutability(Some(imm));
        Ok(())
    }

    /// Where the store's work reports its progress.
    pub fn progress(&self) -> Arc<dyn Progress> {
        self.progress.clone()
    }

    /// A message on stderr unless --quiet.
    pub fn say(&self, text: &str) {
        output::say(self.quiet, text);
    }

    /// The store's backups, newest first; each sidecar the listing skipped
    /// (it cannot be read) is named in one warning line.
    pub async fn list(&self) -> Result<Vec<Metadata>, Failure> {
        let listing = self.backups.listing().await?;
        self.warn_unreadable(&listing.unreadable);
        Ok(listing.backups)
    }

    /// One warning line for each sidecar a listing skipped.
    pub fn warn_unreadable(&self, skipped: &[UnreadableSidecar]) {
        for u in skipped {
            if u.key.contains(".annotations/") {
                // The backup is listed, with its older annotation.
                self.say(&format!(
                    "warning: skipping {u} (the annotation before it is used; `backups gc --yes` deletes it)"
                ));
                continue;
            }
            self.say(&format!(
                "warning: skipping {u} (`backups gc` lists it, `backups remove {}` deletes it)",
                u.id
            ));
        }
    }

    /// The backups that restores which did not finish need (each with its
    /// journal); a state directory that cannot be read is a warning.
    pub fn pending_recoveries(&self) -> Vec<(BackupId, PathBuf)> {
        self.backups.pending_recoveries().unwrap_or_else(|e| {
            self.say(&format!("warning: {e}"));
            Vec::new()
        })
    }

    /// A warning for each restore that did not finish, with how to recover.
    pub fn warn_pending_recoveries(&self) {
        for (id, journal) in self.pending_recoveries() {
            self.say(&pending_recovery_warning(&id, &journal));
        }
    }
}

/// The warning for a pending restore journal: what it is and the two ways
/// out (undo the restore, or keep what it did).
pub fn pending_recovery_warning(id: &BackupId, journal: &std::path::Path) -> String {
    format!(
        "warning: a restore did not finish: its journal {} is pending. Undo it with `backups restore {id} --target / --yes` (with that restore's --mongo-uri and hooks), or keep what it did by deleting the journal and the .<name>.backups-old-* files it names; until then {id} is protected",
        journal.display()
    )
}

/// The object_store options: --store-option, then --endpoint, --region and
/// --allow-http.
fn store_options(global: &GlobalArgs) -> Vec<(String, String)> {
    let mut options = global.store_options.clone();
    if let Some(e) = &global.endpoint {
        options.push(("endpoint".into(), e.clone()));
    }
    if let Some(r) = &global.region {
        options.push(("region".into(), r.clone()));
    }
    if global.allow_http {
        options.push(("allow_http".into(), "true".into()));
    }
    options
}

/// Where state is kept (restore journals, schedule status files):
/// `$BACKUPS_STATE_DIR`, else the user's state directory
/// (`~/.local/state/backups`).
pub fn state_dir() -> Option<std::path::PathBuf> {
    std::env::var_os("BACKUPS_STATE_DIR")
        .map(std::path::PathBuf::from)
        .or_else(|| {
            dirs::state_dir()
                .or_else(dirs::data_local_dir)
                .map(|d| d.join("backups"))
        })
}

/// The store without --store or $BACKUPS_STORE: `~/.local/share/backups`.
pub fn default_store() -> Result<String, Failure> {
    let dir = dirs::data_dir().ok_or_else(|| {
        Failure::usage(
            "cannot find a data directory for the default store; pass --store or set BACKUPS_STORE",
        )
    })?;
    Ok(dir.join("backups").display().to_string())
}
