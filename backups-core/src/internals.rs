//! Internals for this workspace's benchmarks and fuzz targets (the
//! `internals` feature): the archive writer and reader, the extractor, the
//! path sanitiser and the hasher. Not a stable API: anything here may
//! change in any release.

pub use crate::archive::pgzip::ParallelGzWriter;
pub use crate::archive::reader::{ArchiveSummary, RootVisitor, read_archive};
pub use crate::archive::root_tar::{RootTar, root_tar_size};
pub use crate::archive::writer::ArchiveWriter;
pub use crate::digest::{Digests, Hasher};
pub use crate::extract::{Extractor, RootCheck, sanitize_entry_path};
pub use crate::files::{EntryKind, FileEntry, ScannedFiles};
pub use crate::sparse::{MAX_SEGMENTS, Segment, SparseMap};

use crate::error::Result;
use crate::files::FileSet;

/// Stats every entry of `files` (reading no file), as `create` does first.
pub fn scan(files: &FileSet) -> Result<ScannedFiles> {
    files.scan()
}
