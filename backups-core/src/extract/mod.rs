//! Safe handling of `root.tar`: every entry path is checked before use, and
//! extraction never follows a symlink, never writes outside the target, and
//! replaces each file atomically (temp name, then rename).
//!
//! Rules, applied both by the verify pass ([`RootCheck`], which touches
//! nothing) and again by the extractor against the real disk:
//! - paths must be relative and free of `..` (`./` is ignored);
//! - only files, directories, symlinks and hard links are accepted; device
//!   nodes and FIFOs are refused unless [`ExtractOptions::allow_devices`],
//!   other kinds always;
//! - symlinks are recreated as they are (absolute targets included) but no
//!   entry may be written through one: every parent of an entry must be a
//!   real directory inside the target;
//! - a hard link must point at a regular file already inside the target;
//! - setuid/setgid bits are dropped with a warning unless
//!   [`ExtractOptions::allow_setuid`].

mod path;
mod policy;
mod pool;
mod rewrite;
mod sys;
mod verify;
mod writer;

pub use path::sanitize_entry_path;
pub(crate) use policy::{CheckedKind, DeviceKind, Policy, read_err};
pub use policy::{ExtractOptions, ExtractStats};
pub use verify::RootCheck;
pub(crate) use verify::is_collection_file;
pub use writer::Extractor;
