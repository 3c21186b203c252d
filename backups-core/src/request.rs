//! What callers ask for and what they get back: the request and report
//! types of create, add and restore. Plain data: this module depends on no
//! operation, so every layer above can use it.

use std::fmt;
use std::fs::File;
use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use futures::stream::BoxStream;

use crate::archive::ArchiveCompression;
use crate::crypt::{Encryption, Identities};
use crate::database::{BackupLock, DatabaseDumper, DatabaseLoader, LoadSummary};
use crate::error::{Error, Result};
use crate::extract::{ExtractOptions, ExtractStats};
use crate::files::FileSet;
use crate::id::BackupId;
use crate::journal::RestoreJournal;
use crate::metadata::Metadata;
use crate::rewrite::{RewriteCounts, Rewrites};

/// The archive bytes of a backup, as they come from the store.
pub type ArchiveStream = BoxStream<'static, Result<Bytes>>;

/// Who and what a backup belongs to; recorded in its metadata. Start from
/// [`Identity::new`] (or `Default`) and set the fields that are known.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct Identity {
    /// Model UUID: the second half of the backup id.
    pub model_uuid: String,
    /// Controller UUID.
    pub controller_uuid: String,
    /// Machine id.
    pub machine: String,
    /// Host name.
    pub hostname: String,
    /// Controller software version.
    pub version: String,
    /// OS series or base.
    pub series: String,
    /// Number of HA controller nodes.
    pub ha_nodes: u64,
    /// Controller machine id.
    pub controller_machine_id: String,
    /// Controller machine instance id.
    pub controller_machine_instance_id: String,
}

impl Identity {
    /// The identity of a backup of the model `model_uuid`, nothing else known.
    pub fn new(model_uuid: impl Into<String>) -> Self {
        Identity {
            model_uuid: model_uuid.into(),
            ..Default::default()
        }
    }
}

/// What to put in a new backup: [`CreateRequest::new`], then `with_*`.
#[derive(Clone)]
#[non_exhaustive]
pub struct CreateRequest {
    /// Files and directories to include in `root.tar`.
    pub(crate) files: FileSet,
    /// The database to dump into `dump/`, if any.
    pub(crate) database: Option<Arc<dyn DatabaseDumper>>,
    /// Operator notes.
    pub(crate) notes: String,
    /// Labels (`manual`, `scheduled`, `pre-restore`...).
    pub(crate) labels: Vec<String>,
    /// Identity recorded in the metadata.
    pub(crate) identity: Identity,
    /// How the archive is compressed (gzip level 6 on every core by default).
    pub(crate) compression: ArchiveCompression,
    /// How the stored object is encrypted; `None` stores the plain archive.
    pub(crate) encryption: Option<Encryption>,
    /// Locks the controller's writers for the duration of the backup.
    pub(crate) lock: Option<Arc<dyn BackupLock>>,
}

impl CreateRequest {
    /// A backup of `files` (no database, no notes, no labels, default
    /// compression) recorded under `identity`.
    pub fn new(files: FileSet, identity: Identity) -> Self {
        CreateRequest {
            files,
            database: None,
            notes: String::new(),
            labels: Vec::new(),
            identity,
            compression: ArchiveCompression::default(),
            encryption: None,
            lock: None,
        }
    }

    /// Runs the backup inside `lock`'s window (unlocked whatever happens).
    pub fn with_lock(mut self, lock: Arc<dyn BackupLock>) -> Self {
        self.lock = Some(lock);
        self
    }

    /// Encrypts the stored object (age) as `encryption` says.
    pub fn with_encryption(mut self, encryption: Encryption) -> Self {
        self.encryption = Some(encryption);
        self
    }

    /// Dumps this database into the backup too.
    pub fn with_database(mut self, database: Arc<dyn DatabaseDumper>) -> Self {
        self.database = Some(database);
        self
    }

    /// The operator's notes.
    pub fn with_notes(mut self, notes: impl Into<String>) -> Self {
        self.notes = notes.into();
        self
    }

    /// Labels recorded in the metadata.
    pub fn with_labels(mut self, labels: Vec<String>) -> Self {
        self.labels = labels;
        self
    }

    /// How the archive is compressed.
    pub fn with_compression(mut self, compression: ArchiveCompression) -> Self {
        self.compression = compression;
        self
    }

    /// How the stored object will be encrypted (`None`: plain).
    pub fn encryption(&self) -> Option<&Encryption> {
        self.encryption.as_ref()
    }
}

impl fmt::Debug for CreateRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CreateRequest")
            .field("files", &self.files)
            .field(
                "database",
                &self.database.as_ref().map(|_| "DatabaseDumper"),
            )
            .field("notes", &self.notes)
            .field("labels", &self.labels)
            .field("identity", &self.identity)
            .field("compression", &self.compression)
            .field("encryption", &self.encryption)
            .field("lock", &self.lock.is_some())
            .finish()
    }
}

/// An existing archive to add to the store; read twice (validate, then upload).
#[derive(Debug, Clone)]
pub enum ArchiveSource {
    /// A local `.tar.gz` file.
    File(PathBuf),
    /// Archive bytes in memory.
    Bytes(Bytes),
}

impl ArchiveSource {
    /// Opens the archive for one pass over its bytes.
    pub(crate) fn open(&self) -> Result<Box<dyn Read + Send>> {
        match self {
            ArchiveSource::File(p) => Ok(Box::new(
                File::open(p).map_err(|e| Error::io("opening", p, e))?,
            )),
            ArchiveSource::Bytes(b) => Ok(Box::new(std::io::Cursor::new(b.clone()))),
        }
    }

    /// How errors name it.
    pub(crate) fn subject(&self) -> String {
        match self {
            ArchiveSource::File(p) => p.display().to_string(),
            ArchiveSource::Bytes(_) => "(archive in memory)".to_string(),
        }
    }
}

/// The result of [`crate::Backups::add`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct AddOutcome {
    /// The stored backup's metadata.
    pub metadata: Metadata,
    /// True when the same bytes were already stored (nothing was written).
    pub already_present: bool,
}

impl AddOutcome {
    /// An outcome, for a [`crate::Backups`] implementation outside this
    /// crate (a client of a backups server).
    pub fn new(metadata: Metadata, already_present: bool) -> Self {
        AddOutcome {
            metadata,
            already_present,
        }
    }
}

/// Which archive a restore reads.
#[derive(Debug, Clone)]
pub enum RestoreSource {
    /// A backup in the store.
    Id(BackupId),
    /// A local archive file.
    File(PathBuf),
}

impl RestoreSource {
    /// How errors and notes name it: the id or the file's path.
    pub(crate) fn subject(&self) -> String {
        match self {
            RestoreSource::Id(id) => id.to_string(),
            RestoreSource::File(p) => p.display().to_string(),
        }
    }
}

/// What to restore and where: [`RestoreRequest::new`], then `with_*`.
#[derive(Clone)]
#[non_exhaustive]
pub struct RestoreRequest {
    /// The archive to restore.
    pub(crate) source: RestoreSource,
    /// Directory the files of `root.tar` are restored under.
    pub(crate) target: PathBuf,
    /// Only verify and report; change nothing.
    pub(crate) dry_run: bool,
    /// Where to load the archive's database dump, if anywhere.
    pub(crate) database: Option<Arc<dyn DatabaseLoader>>,
    /// Whether setuid bits and device nodes may be restored.
    pub(crate) options: ExtractOptions,
    /// Where to record the restore's file changes (what it creates, and the
    /// previous version of what it replaces), so they can be undone.
    pub(crate) journal: Option<RestoreJournal>,
    /// A journal left by an interrupted restore (see
    /// [`crate::restore::journal_path`]): once the archive is verified, its
    /// changes are taken back before extracting, and after a successful
    /// restore the journal file is removed. Missing file: nothing to undo.
    pub(crate) undo_journal: Option<PathBuf>,
    /// The keys an encrypted backup is decrypted with.
    pub(crate) identities: Identities,
    /// Refuse a backup that is not encrypted.
    pub(crate) require_encryption: bool,
    /// The old machine's identity rewritten to the new one's: in the
    /// restored files (through the same temp name, rename and journal as
    /// every file) and in the string values of the loaded documents (by
    /// the loader, from [`crate::database::DumpSource::rewrites`]; the oplog replay
    /// and upserted users and roles are not rewritten).
    pub(crate) rewrites: Option<Arc<Rewrites>>,
    /// Whether a safety backup is taken first ([`Safety::Auto`] unless
    /// the caller opts out).
    pub(crate) safety: Safety,
    /// For [`Safety::Auto`]: dumps the live database into the safety
    /// backup (and the request's database loader loads it back on
    /// rollback).
    pub(crate) safety_dumper: Option<Arc<dyn DatabaseDumper>>,
    /// For [`Safety::Auto`]: the identity the safety backup records.
    pub(crate) safety_identity: Option<Identity>,
}

impl RestoreRequest {
    /// Restores `source` under `target`: files only, nothing special allowed.
    pub fn new(source: RestoreSource, target: impl Into<PathBuf>) -> Self {
        RestoreRequest {
            source,
            target: target.into(),
            dry_run: false,
            database: None,
            options: ExtractOptions::default(),
            journal: None,
            undo_journal: None,
            identities: Identities::none(),
            require_encryption: false,
            rewrites: None,
            safety: Safety::Auto,
            safety_dumper: None,
            safety_identity: None,
        }
    }

    /// Takes this safety backup first, whatever the target.
    pub fn with_safety_backup(mut self, safety: SafetyBackup) -> Self {
        self.safety = Safety::Take(Box::new(safety));
        self
    }

    /// Opts out of the safety backup (explicitly: a failure cannot be
    /// rolled back, and a killed restore cannot be taken back).
    pub fn without_safety_backup(mut self) -> Self {
        self.safety = Safety::Off;
        self
    }

    /// For the default safety backup ([`Safety::Auto`]): dumps the live
    /// database with `dumper` (what the load replaces) so that a rollback
    /// loads it back.
    pub fn with_safety_database(mut self, dumper: Arc<dyn DatabaseDumper>) -> Self {
        self.safety_dumper = Some(dumper);
        self
    }

    /// For the default safety backup ([`Safety::Auto`]): the identity it
    /// records.
    pub fn with_safety_identity(mut self, identity: Identity) -> Self {
        self.safety_identity = Some(identity);
        self
    }

    /// Rewrites the old machine's identity as `rewrites` says.
    pub fn with_rewrites(mut self, rewrites: Rewrites) -> Self {
        self.rewrites = Some(Arc::new(rewrites));
        self
    }

    /// Decrypts an encrypted backup with these keys.
    pub fn with_identities(mut self, identities: Identities) -> Self {
        self.identities = identities;
        self
    }

    /// Refuses (`true`) a backup that is not encrypted.
    pub fn with_require_encryption(mut self, require: bool) -> Self {
        self.require_encryption = require;
        self
    }

    /// Only verify and report what would be restored.
    pub fn with_dry_run(mut self, dry_run: bool) -> Self {
        self.dry_run = dry_run;
        self
    }

    /// Loads the archive's database dump with `database`.
    pub fn with_database(mut self, database: Arc<dyn DatabaseLoader>) -> Self {
        self.database = Some(database);
        self
    }

    /// What may be created beyond files, directories and links.
    pub fn with_options(mut self, options: ExtractOptions) -> Self {
        self.options = options;
        self
    }

    /// Records the restore's file changes in `journal`.
    pub fn with_journal(mut self, journal: RestoreJournal) -> Self {
        self.journal = Some(journal);
        self
    }

    /// Takes back the interrupted restore whose journal is at `path` first.
    pub fn with_undo_journal(mut self, path: impl Into<PathBuf>) -> Self {
        self.undo_journal = Some(path.into());
        self
    }
}

impl fmt::Debug for RestoreRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RestoreRequest")
            .field("source", &self.source)
            .field("target", &self.target)
            .field("dry_run", &self.dry_run)
            .field(
                "database",
                &self.database.as_ref().map(|_| "DatabaseLoader"),
            )
            .field("options", &self.options)
            .field("journal", &self.journal.is_some())
            .field("undo_journal", &self.undo_journal)
            .field("identities", &self.identities)
            .field("require_encryption", &self.require_encryption)
            .field("rewrites", &self.rewrites)
            .field("safety", &self.safety)
            .field("safety_dumper", &self.safety_dumper.is_some())
            .finish()
    }
}

/// What the safety backup holds: the live state the restore will replace.
/// [`SafetyBackup::new`], then `with_*`.
#[derive(Clone)]
#[non_exhaustive]
pub struct SafetyBackup {
    /// Live files and directories (restored in place, at `/`, on rollback).
    pub files: FileSet,
    /// The live database, dumped into the safety backup.
    pub dumper: Option<Arc<dyn DatabaseDumper>>,
    /// Where to load it back on rollback.
    pub loader: Option<Arc<dyn DatabaseLoader>>,
    /// Identity recorded in the safety backup.
    pub identity: Identity,
    /// Also save what the restore will replace (on by default): the live
    /// paths under the target that the archive writes (each as itself, a
    /// symlink as a link) and, with a database, the namespaces the load
    /// replaces. `files` and the dumper's own choice come on top.
    pub replaced: bool,
}

impl SafetyBackup {
    /// A safety backup of the live `files` (no database), recorded under
    /// `identity`.
    pub fn new(files: FileSet, identity: Identity) -> Self {
        SafetyBackup {
            files,
            dumper: None,
            loader: None,
            identity,
            replaced: true,
        }
    }

    /// Saves (`true`, the default) or not what the restore will replace,
    /// on top of `files` (see [`SafetyBackup::replaced`]).
    pub fn with_replaced(mut self, replaced: bool) -> Self {
        self.replaced = replaced;
        self
    }

    /// Dumps the live database with `dumper` and, on rollback, loads it
    /// back with `loader`.
    pub fn with_database(
        mut self,
        dumper: Arc<dyn DatabaseDumper>,
        loader: Arc<dyn DatabaseLoader>,
    ) -> Self {
        self.dumper = Some(dumper);
        self.loader = Some(loader);
        self
    }
}

impl fmt::Debug for SafetyBackup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SafetyBackup")
            .field("files", &self.files)
            .field("database", &self.dumper.is_some())
            .field("identity", &self.identity)
            .finish()
    }
}

/// Whether a restore takes a safety backup of the live state first (and
/// rolls back to it when it fails).
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub enum Safety {
    /// The library's rule, the CLI's default: a restore in place (its
    /// target is `/`) or one that replaces live files under its target
    /// takes a safety backup of what it replaces, labelled `pre-restore`,
    /// recorded under [`RestoreRequest::with_safety_identity`] (else
    /// [`Identity::safety_default`]); with a database loader it needs a
    /// dumper for the live database ([`RestoreRequest::with_safety_database`]).
    /// A restore into an empty or new directory takes none.
    #[default]
    Auto,
    /// This safety backup, whatever the target.
    Take(Box<SafetyBackup>),
    /// None: an explicit opt-out (a failure cannot be rolled back).
    Off,
}

/// What a restore did (or, for a dry run, would do).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RestoreReport {
    /// The restored backup's metadata.
    pub metadata: Metadata,
    /// The target directory.
    pub target: PathBuf,
    /// Whether this was a dry run.
    pub dry_run: bool,
    /// Whether the archive's manifest was present and verified.
    pub manifest_verified: bool,
    /// Files, directories, links and bytes restored.
    pub stats: ExtractStats,
    /// What was loaded into the database, when a loader was given.
    pub database: Option<LoadSummary>,
    /// Collections (`.bson` files, the oplog aside) in the archive's dump;
    /// with no `database`, none of them was loaded.
    pub dump_collections: u64,
    /// A dry run's list of the live paths (absolute, under the target)
    /// that the restore would replace: what a restore plan's safety backup
    /// saves. Empty after a restore.
    pub existing: Vec<PathBuf>,
    /// A dry run's list of the dump's collection files (`db/coll.bson`).
    pub dump_files: Vec<String>,
    /// Replacements [`RestoreRequest::with_rewrites`] made (a dry run: would
    /// make) per file and per collection (collections only when a
    /// database is loaded).
    pub rewrites: RewriteCounts,
    /// The `pre-restore` safety backup the restore took first (the one to
    /// restore to undo it), if any.
    pub safety_backup: Option<BackupId>,
}
