//! Where a download writes a backup's archive ([`crate::Backups::download`],
//! [`crate::StoreBackups::download_decrypted`]).

pub use crate::ops::download::DownloadTo;
