//! The encryption and identity options shared by the commands that write
//! (create, upload) and those that read (restore, download) encrypted
//! backups.

use std::path::PathBuf;

use backups_core::{Encryption, Identities};

use crate::failure::Failure;

/// How a new backup is encrypted (create, upload).
#[derive(Debug, Clone, clap::Args)]
pub struct EncryptArgs {
    /// Encrypt the stored archive to this public key (repeatable): an age
    /// X25519 recipient (age1...), or an ssh-ed25519 / ssh-rsa public key.
    #[arg(
        help_heading = "Encryption",
        long = "encrypt-to",
        value_name = "RECIPIENT",
        env = "BACKUPS_ENCRYPT_TO",
        value_delimiter = ','
    )]
    pub encrypt_to: Vec<String>,
    /// Encrypt to the recipients listed in FILE, one a line (as age -R).
    #[arg(
        help_heading = "Encryption",
        long,
        value_name = "FILE",
        env = "BACKUPS_RECIPIENTS_FILE"
    )]
    pub recipients_file: Option<PathBuf>,
    /// Encrypt with the passphrase on the first line of FILE instead.
    #[arg(
        help_heading = "Encryption",
        long = "passphrase-file",
        value_name = "FILE",
        env = "BACKUPS_PASSPHRASE_FILE",
        conflicts_with_all = ["encrypt_to", "recipients_file"]
    )]
    pub passphrase_file: Option<PathBuf>,
}

impl EncryptArgs {
    /// The encryption asked for, if any.
    pub fn encryption(&self) -> Result<Option<Encryption>, Failure> {
        if let Some(p) = &self.passphrase_file {
            return Ok(Some(Encryption::from_passphrase_file(p)?));
        }
        match &self.recipients_file {
            Some(f) => Ok(Some(Encryption::from_recipients_file(f, &self.encrypt_to)?)),
            None if self.encrypt_to.is_empty() => Ok(None),
            None => Ok(Some(Encryption::to_recipients(&self.encrypt_to)?)),
        }
    }
}

/// The keys an encrypted backup is read with (restore, download).
#[derive(Debug, Clone, clap::Args)]
pub struct IdentityArgs {
    /// Decrypt with this identity (repeatable): an age identity file
    /// (backups key generate, age-keygen) or an unprotected SSH private key.
    #[arg(
        help_heading = "Encryption",
        long = "identity",
        short = 'i',
        value_name = "FILE",
        env = "BACKUPS_IDENTITY_FILE",
        value_delimiter = ':'
    )]
    pub identities: Vec<PathBuf>,
    /// Decrypt a passphrase-encrypted backup with the passphrase on the
    /// first line of FILE.
    #[arg(
        help_heading = "Encryption",
        long = "passphrase-file",
        value_name = "FILE"
    )]
    pub passphrase_file: Option<PathBuf>,
}

impl IdentityArgs {
    /// The keys given.
    pub fn identities(&self) -> Result<Identities, Failure> {
        let mut ids = Identities::none();
        for path in &self.identities {
            ids.add_file(path)?;
        }
        if let Some(p) = &self.passphrase_file {
            ids.add_passphrase_file(p)?;
        }
        Ok(ids)
    }
}
