//! Restore journals: where a restore plan keeps the record of its file
//! changes while it runs, and which ones a killed restore left pending
//! (see [`crate::PreparedRestore`] and [`crate::RestoreRequest::with_undo_journal`]).

pub use crate::ops::execute::{journal_path, pending_journals};
