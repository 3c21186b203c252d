//! What the router serves: the store's backups, the tokens, the limits,
//! and what the embedder provides for `create`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use backups_core::{BackupId, Metadata, StoreBackups};
use serde_json::Value;

use crate::auth::Tokens;
use crate::error::{ApiError, ErrorKind};

/// The default upload limit: 64 GiB.
pub const DEFAULT_MAX_UPLOAD: u64 = 64 << 30;

/// How long an upload's body may send nothing before it is dropped.
pub const DEFAULT_BODY_IDLE: Duration = Duration::from_secs(60);

/// The largest JSON request body (labels, notes, a policy).
pub const MAX_JSON_BODY: usize = 64 * 1024;

/// What a remote caller may choose of a new backup: nothing about what is
/// backed up (the server's configuration says that), only its notes and
/// labels.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct CreateOptions {
    /// Notes stored with the backup.
    #[serde(default)]
    pub notes: String,
    /// Labels (default: the server's, else `manual`).
    #[serde(default)]
    pub labels: Vec<String>,
}

/// Makes a backup as the server is configured (its files, its database):
/// the embedder's, or the CLI's profile for `backups serve`.
#[async_trait]
pub trait BackupMaker: Send + Sync {
    /// Makes and commits a backup; returns its metadata.
    async fn create(&self, options: CreateOptions) -> Result<Metadata, ApiError>;
}

/// How long a plan's token stays good.
pub const PLAN_TTL: Duration = Duration::from_secs(600);

/// Restores backups as the server is configured (where the files go,
/// which database is loaded): the embedder's, or `backups serve
/// --restore-target DIR`.
#[async_trait]
pub trait Restorer: Send + Sync {
    /// Where the files go (a caller must name it to confirm).
    fn target(&self) -> std::path::PathBuf;
    /// The dry run of restoring `id`: every check, nothing changed; the
    /// report as `restore --dry-run --json` prints it.
    async fn plan(&self, id: &BackupId) -> Result<Value, ApiError>;
    /// Restores `id`; the report as `restore --json` prints it.
    async fn restore(&self, id: &BackupId) -> Result<Value, ApiError>;
}

/// The plans handed out and not yet used: token -> (backup, when).
#[derive(Debug, Default)]
pub(crate) struct Plans(Mutex<HashMap<String, (BackupId, Instant)>>);

impl Plans {
    pub(crate) fn insert(&self, id: BackupId) -> Result<String, ApiError> {
        let mut bytes = [0u8; 16];
        getrandom::fill(&mut bytes)
            .map_err(|e| ApiError::new(ErrorKind::Other, format!("no random bytes: {e}")))?;
        let token = hex::encode(bytes);
        let mut plans = self.0.lock().unwrap_or_else(|p| p.into_inner());
        plans.retain(|_, (_, at)| at.elapsed() < PLAN_TTL);
        plans.insert(token.clone(), (id, Instant::now()));
        Ok(token)
    }

    /// The plan's backup, once: the token is used up.
    pub(crate) fn take(&self, token: &str) -> Option<BackupId> {
        let mut plans = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let (id, at) = plans.remove(token)?;
        (at.elapsed() < PLAN_TTL).then_some(id)
    }
}

/// Everything the router needs.
pub struct ServerState {
    pub(crate) backups: StoreBackups,
    pub(crate) tokens: Tokens,
    pub(crate) maker: Option<Arc<dyn BackupMaker>>,
    pub(crate) restorer: Option<Arc<dyn Restorer>>,
    pub(crate) plans: Plans,
    pub(crate) max_upload: u64,
    pub(crate) spool_dir: PathBuf,
    pub(crate) body_idle: Duration,
    pub(crate) state_dir: Option<PathBuf>,
}

impl std::fmt::Debug for ServerState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerState")
            .field("store", &self.backups.storage().url())
            .field("tokens", &self.tokens.len())
            .field("create", &self.maker.is_some())
            .field("restore", &self.restorer.is_some())
            .field("max_upload", &self.max_upload)
            .finish()
    }
}

impl ServerState {
    /// Serves `backups` to the holders of `tokens`; `create` answers 501
    /// until [`ServerState::with_maker`].
    pub fn new(backups: StoreBackups, tokens: Tokens) -> Self {
        ServerState {
            backups,
            tokens,
            maker: None,
            restorer: None,
            plans: Default::default(),
            max_upload: DEFAULT_MAX_UPLOAD,
            spool_dir: std::env::temp_dir(),
            body_idle: DEFAULT_BODY_IDLE,
            state_dir: None,
        }
    }

    /// What `create` runs.
    pub fn with_maker(mut self, maker: Arc<dyn BackupMaker>) -> Self {
        self.maker = Some(maker);
        self
    }

    /// What `restore` runs (until then it answers 501).
    pub fn with_restorer(mut self, restorer: Arc<dyn Restorer>) -> Self {
        self.restorer = Some(restorer);
        self
    }

    /// Where `backups schedule run` writes its status files (the status
    /// shows the schedules from them).
    pub fn with_state_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.state_dir = Some(dir.into());
        self
    }

    /// The largest upload accepted, in bytes.
    pub fn with_max_upload(mut self, bytes: u64) -> Self {
        self.max_upload = bytes;
        self
    }

    /// Where uploads are spooled before they are validated and stored.
    pub fn with_spool_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.spool_dir = dir.into();
        self
    }

    /// How long an upload's body may stall before it is dropped.
    pub fn with_body_idle_timeout(mut self, idle: Duration) -> Self {
        self.body_idle = idle;
        self
    }

    /// The store's backups.
    pub fn backups(&self) -> &StoreBackups {
        &self.backups
    }
}
