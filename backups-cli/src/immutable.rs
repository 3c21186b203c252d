//! `--immutable-for DUR` and `--immutable-mode MODE` (create, upload,
//! copy), with the profile keys `immutable_for` and `immutable_mode`.

use backups_core::immutable::{Immutability, ImmutableMode};
use backups_core::retention::RetentionDuration;

use crate::config::Profile;
use crate::failure::Failure;

/// The object lock new backups are written under.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ImmutableArgs {
    /// Write the archive and its commit record under an S3 Object Lock
    /// for DUR from now (restic's format: 30d, 6m, 1y2m); needs a bucket
    /// created with Object Lock. Labels, notes and verify records are then
    /// written beside the locked record.
    #[arg(long, value_name = "DUR")]
    pub immutable_for: Option<String>,
    /// The lock's mode: governance (users allowed to bypass it may still
    /// remove the backup) or compliance (nobody can before it ends).
    #[arg(long, value_name = "MODE", value_parser = ["governance", "compliance"])]
    pub immutable_mode: Option<String>,
}

impl ImmutableArgs {
    /// Takes the profile's `immutable_for` and `immutable_mode` where
    /// the flags gave none.
    pub fn fill_from(&mut self, p: &Profile) {
        if self.immutable_for.is_none() {
            self.immutable_for.clone_from(&p.immutable_for);
        }
        if self.immutable_mode.is_none() {
            self.immutable_mode.clone_from(&p.immutable_mode);
        }
    }

    /// The lock asked for, if any; a bad duration or mode, or a mode
    /// without a duration, is a usage error.
    pub fn resolve(&self) -> Result<Option<Immutability>, Failure> {
        let mode = match self.immutable_mode.as_deref() {
            None => ImmutableMode::default(),
            Some(m) => m
                .parse()
                .map_err(|e: backups_core::Error| Failure::usage(e.to_string()))?,
        };
        let Some(text) = &self.immutable_for else {
            if self.immutable_mode.is_some() {
                return Err(Failure::usage(
                    "--immutable-mode (immutable_mode) needs --immutable-for (immutable_for)",
                ));
            }
            return Ok(None);
        };
        let duration: RetentionDuration = text
            .parse()
            .map_err(|e| Failure::usage(format!("--immutable-for: {e}")))?;
        let imm = Immutability::new(duration, mode);
        imm.check()?;
        Ok(Some(imm))
    }
}
