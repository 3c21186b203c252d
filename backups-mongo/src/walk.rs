//! One walk over a dump as it streams, shared by the loader and the
//! comparer: each file classified (the oplog, or a collection's data or
//! metadata file), the collection's real name found (a truncated file
//! name's is in its metadata file, which mongodump writes first), and the
//! namespace's exclusion and target database decided once.

use std::collections::HashMap;

use backups_core::Result;
use backups_core::database::{DumpFile, DumpSource};

use crate::metadata::{CollectionMeta, parse_metadata, read_small};
use crate::namespace::{DumpPath, Namespaces, collection_name, dump_path};

/// One file of the dump, classified.
pub(crate) enum Walked {
    /// `oplog.bson`: the writes made while the dump ran.
    Oplog(DumpFile),
    /// A collection's data (`meta` is `None`) or metadata file.
    Collection(Box<CollectionFile>),
}

/// A collection's file with what the walk found out about it.
pub(crate) struct CollectionFile {
    /// The file; a metadata file's bytes are already read into `meta`.
    pub(crate) file: DumpFile,
    /// The database it was dumped from.
    pub(crate) src_db: String,
    /// The collection's real name.
    pub(crate) coll: String,
    /// The database it goes to (after `--db-rename`).
    pub(crate) db: String,
    /// The parsed metadata file; `None` for the data file.
    pub(crate) meta: Option<CollectionMeta>,
    /// Whether `--ns-exclude` leaves the source namespace out.
    pub(crate) excluded: bool,
}

impl CollectionFile {
    /// `src_db.coll`: the namespace as dumped.
    pub(crate) fn src_ns(&self) -> String {
        format!("{}.{}", self.src_db, self.coll)
    }

    /// `db.coll`: the namespace it goes to.
    pub(crate) fn ns(&self) -> String {
        format!("{}.{}", self.db, self.coll)
    }

    /// Reads the rest of the file and throws it away.
    pub(crate) async fn skip(&mut self) -> Result<()> {
        drain(&mut self.file).await
    }
}

/// Reads the rest of `file` and throws it away.
pub(crate) async fn drain(file: &mut DumpFile) -> Result<()> {
    while file.chunk().await?.is_some() {}
    Ok(())
}

/// The walk's memory: the real names of the collections met so far.
#[derive(Default)]
pub(crate) struct DumpWalk {
    /// (source db, file-name stem) -> the collection's real name.
    names: HashMap<(String, String), String>,
}

impl DumpWalk {
    /// The next file of `source` that is the oplog or a collection's
    /// (prelude files are skipped); `None` at the end.
    pub(crate) async fn next(
        &mut self,
        source: &mut DumpSource,
        namespaces: &Namespaces,
    ) -> Result<Option<Walked>> {
        while let Some(mut file) = source.next_file().await {
            let path = file.path.clone();
            let (src_db, stem, is_meta) = match dump_path(&path)? {
                DumpPath::Oplog => return Ok(Some(Walked::Oplog(file))),
                DumpPath::Prelude => {
                    drain(&mut file).await?;
                    continue;
                }
                DumpPath::Metadata { db, stem } => (db, stem, true),
                DumpPath::Data { db, stem } => (db, stem, false),
            };
            let meta = match is_meta {
                true => Some(parse_metadata(&path, &read_small(&mut file).await?)?),
                false => None,
            };
            let coll = collection_name(&path, src_db, stem, meta.as_ref(), &self.names)?;
            self.names
                .insert((src_db.to_string(), stem.to_string()), coll.clone());
            let excluded = namespaces.excluded(&format!("{src_db}.{coll}"));
            return Ok(Some(Walked::Collection(Box::new(CollectionFile {
                file,
                src_db: src_db.to_string(),
                db: namespaces.target_db(src_db),
                coll,
                meta,
                excluded,
            }))));
        }
        Ok(None)
    }
}
