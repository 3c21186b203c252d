//! A collection's `<name>.metadata.json`: its options, indexes, type and
//! real name (mongodump's file names are escaped, long ones truncated).

use backups_core::database::DumpFile;
use backups_core::{Error, Result};
use mongodb::bson::{Bson, Document};

/// What the metadata.json of a collection says.
#[derive(Debug, Clone, Default)]
pub(crate) struct CollectionMeta {
    pub(crate) options: Document,
    pub(crate) indexes: Vec<Document>,
    pub(crate) is_view: bool,
    /// `collectionName`: the real name, which the file name may escape or truncate.
    pub(crate) name: Option<String>,
}

/// Parses `dump/<path>`'s JSON (canonical or relaxed extended JSON).
pub(crate) fn parse_metadata(path: &str, bytes: &[u8]) -> Result<CollectionMeta> {
    let bad = |reason: String| Error::InvalidArchive {
        subject: format!("dump/{path}"),
        reason,
    };
    let json: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| bad(format!("unreadable JSON: {e}")))?;
    let doc = match Bson::try_from(json).map_err(|e| bad(format!("bad extended JSON: {e}")))? {
        Bson::Document(d) => d,
        _ => return Err(bad("not a JSON object".into())),
    };
    let indexes = doc
        .get_array("indexes")
        .map(|a| {
            a.iter()
                .filter_map(|i| i.as_document().cloned())
                .map(|mut i| {
                    i.remove("ns");
                    i
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(CollectionMeta {
        options: doc.get_document("options").cloned().unwrap_or_default(),
        indexes,
        is_view: doc.get_str("type") == Ok("view"),
        name: doc
            .get_str("collectionName")
            .ok()
            .filter(|n| !n.is_empty())
            .map(str::to_string),
    })
}

/// Reads a small file (a metadata file) whole.
pub(crate) async fn read_small(file: &mut DumpFile) -> Result<Vec<u8>> {
    if file.size > backups_core::metadata::MAX_METADATA_BYTES {
        return Err(Error::InvalidArchive {
            subject: format!("dump/{}", file.path),
            reason: "metadata file is too large".into(),
        });
    }
    let mut out = Vec::with_capacity(file.size as usize);
    while let Some(chunk) = file.chunk().await? {
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}
