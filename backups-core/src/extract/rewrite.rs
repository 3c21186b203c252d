//! A restored file's contents rewritten ([`crate::rewrite`]): which
//! entries qualify, and their new bytes.

use std::io::Read;
use std::path::Path;

use crate::error::Result;
use crate::rewrite::{MAX_REWRITE_FILE, Rewrites};

use super::policy::read_err;

/// The name (relative path) under which a regular file of `size` bytes at
/// `rel` is rewritten, if the rules are given and cover it; its contents
/// are checked when read ([`rewrite_entry`]).
pub(super) fn qualifies(rewrites: Option<&Rewrites>, rel: &Path, size: u64) -> Option<String> {
    let rel = rel.to_str()?;
    (size <= MAX_REWRITE_FILE && rewrites?.applies_to_path(rel)).then(|| rel.to_string())
}

/// A file's contents after the rules: the original bytes when they are not
/// UTF-8 or nothing matched.
pub(super) struct Rewritten {
    pub(super) bytes: Vec<u8>,
    pub(super) replacements: u64,
}

/// Reads the whole entry (at most [`MAX_REWRITE_FILE`] bytes, checked by
/// [`qualifies`]) and rewrites it if it is UTF-8 text.
pub(super) fn rewrite_entry(name: &str, entry: &mut dyn Read, rw: &Rewrites) -> Result<Rewritten> {
    let mut bytes = Vec::new();
    entry
        .take(MAX_REWRITE_FILE)
        .read_to_end(&mut bytes)
        .map_err(|e| read_err(name, e))?;
    let replaced = match std::str::from_utf8(&bytes) {
        Ok(text) => match rw.rewrite_str(text) {
            (_, 0) => None,
            (new, n) => Some((new.into_owned().into_bytes(), n)),
        },
        Err(_) => None,
    };
    Ok(match replaced {
        Some((bytes, replacements)) => Rewritten {
            bytes,
            replacements,
        },
        None => Rewritten {
            bytes,
            replacements: 0,
        },
    })
}
