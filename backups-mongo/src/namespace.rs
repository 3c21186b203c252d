//! Namespaces (`db.collection`): which ones a dump or a load leaves out
//! (exclude globs), which database a dumped one is loaded into (renames),
//! and how dump file paths name them. Used by dump, load and the oplog
//! replay alike.

use std::collections::HashMap;

use backups_core::{Error, InputKind, Result};

use crate::metadata::CollectionMeta;
use globset::{Glob, GlobSet, GlobSetBuilder};

/// The namespace rules of one dump or load.
#[derive(Debug, Clone)]
pub(crate) struct Namespaces {
    exclude: GlobSet,
    renames: Vec<(String, String)>,
}

impl Namespaces {
    /// Leaves out what matches the `exclude` globs; loads database `from`
    /// into `to` for each pair of `renames`.
    pub(crate) fn new(exclude: &[String], renames: &[(String, String)]) -> Result<Self> {
        Ok(Namespaces {
            exclude: globs(exclude)?,
            renames: renames.to_vec(),
        })
    }

    /// Whether the source namespace `ns` (`db.collection`) is left out.
    pub(crate) fn excluded(&self, ns: &str) -> bool {
        self.exclude.is_match(ns)
    }

    /// The namespaces a load of these dump collection files replaces
    /// (renamed; excluded, system and unreadable names left out).
    pub(crate) fn replaced(&self, dump_files: &[String]) -> Vec<String> {
        dump_files
            .iter()
            .filter_map(|f| match dump_path(f) {
                Ok(DumpPath::Data { db, stem }) => {
                    let coll = unescape_collection(stem)?;
                    let excluded = self.excluded(&format!("{db}.{coll}"));
                    (!excluded && !coll.starts_with("system."))
                        .then(|| format!("{}.{coll}", self.target_db(db)))
                }
                _ => None,
            })
            .collect()
    }

    /// The database the dump's database `db` is loaded into.
    pub(crate) fn target_db(&self, db: &str) -> String {
        self.renames
            .iter()
            .find(|(from, _)| from == db)
            .map(|(_, to)| to.clone())
            .unwrap_or_else(|| db.to_string())
    }
}

/// What a path below `dump/` is, as mongorestore reads a dump directory.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum DumpPath<'a> {
    /// `oplog.bson`.
    Oplog,
    /// `prelude.json` (newer mongodump's note of the server version): not needed.
    Prelude,
    /// `<db>/<escaped collection>.metadata.json`.
    Metadata { db: &'a str, stem: &'a str },
    /// `<db>/<escaped collection>.bson`.
    Data { db: &'a str, stem: &'a str },
}

/// Classifies a path below `dump/`; anything else is refused, so no data
/// is ever left out silently.
pub(crate) fn dump_path(path: &str) -> Result<DumpPath<'_>> {
    let refuse = |reason: &str| Error::InvalidArchive {
        subject: format!("dump/{path}"),
        reason: reason.to_string(),
    };
    match path {
        "oplog.bson" => return Ok(DumpPath::Oplog),
        "prelude.json" => return Ok(DumpPath::Prelude),
        _ => {}
    }
    if path.ends_with(".gz") {
        return Err(refuse(
            "compressed dump files (mongodump --gzip) are not supported; the archive's dump/ must hold plain .bson and .metadata.json files",
        ));
    }
    let (db, file) = path.split_once('/').ok_or_else(|| {
        refuse("not a dump file: expected <db>/<collection>.bson, <db>/<collection>.metadata.json or oplog.bson")
    })?;
    if db.is_empty() || file.contains('/') {
        return Err(refuse(
            "not a dump file: a collection's files are directly under its database's directory (a '/' in a collection name is written as %2F)",
        ));
    }
    let kind = if let Some(stem) = file.strip_suffix(".metadata.json") {
        DumpPath::Metadata { db, stem }
    } else if let Some(stem) = file.strip_suffix(".bson") {
        DumpPath::Data { db, stem }
    } else {
        return Err(refuse(
            "not a dump file: expected <db>/<collection>.bson or <db>/<collection>.metadata.json",
        ));
    };
    match kind {
        DumpPath::Metadata { stem, .. } | DumpPath::Data { stem, .. } if stem.is_empty() => {
            Err(refuse("not a dump file: no collection name"))
        }
        DumpPath::Data { stem, .. } if stem.starts_with('$') => Err(refuse(
            "per-database users and roles (mongodump --dumpDbUsersAndRoles) are not supported",
        )),
        kind => Ok(kind),
    }
}

/// Longest escaped name mongodump writes whole (255 bytes less
/// `.metadata.json.gz`).
const MAX_ESCAPED: usize = 238;
/// How much of a longer escaped name it keeps before `%24` and the hash.
const TRUNCATED_PREFIX: usize = 208;

/// A collection name as mongodump writes it in file names: Go's
/// `url.PathEscape` (everything but `A-Za-z0-9-_.~$&+:=@` percent-encoded,
/// UTF-8 bytes one by one), and a name longer than 238 bytes escaped cut to
/// its first 208 bytes, `%24` and the unpadded base64url SHA-1 of the name.
pub(crate) fn escape_collection(name: &str) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(name.len());
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~$&+:=@".contains(&b) {
            out.push(b as char);
        } else {
            // Writing to a String cannot fail.
            let _ = write!(out, "%{b:02X}");
        }
    }
    if out.len() > MAX_ESCAPED {
        use base64::Engine;
        use sha1::Digest;
        let hash = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(sha1::Sha1::digest(name.as_bytes()));
        out.truncate(TRUNCATED_PREFIX);
        out.push_str("%24");
        out.push_str(&hash);
    }
    out
}

/// Whether an escaped file-name stem is a truncated long name, whose real
/// name only the metadata file's `collectionName` holds.
pub(crate) fn is_truncated(stem: &str) -> bool {
    stem.len() == TRUNCATED_PREFIX + 3 + 27
        && stem.get(TRUNCATED_PREFIX..TRUNCATED_PREFIX + 3) == Some("%24")
}

/// Decodes an escaped file-name stem (Go's `url.PathUnescape`).
pub(crate) use backups_core::database::unescape_dump_name as unescape_collection;

fn globs(patterns: &[String]) -> Result<GlobSet> {
    let mut b = GlobSetBuilder::new();
    for p in patterns {
        b.add(Glob::new(p).map_err(|e| Error::InvalidInput {
            what: InputKind::NamespacePattern,
            value: p.clone(),
            reason: e.to_string(),
        })?);
    }
    b.build().map_err(|e| Error::InvalidInput {
        what: InputKind::NamespacePattern,
        value: patterns.join(","),
        reason: e.to_string(),
    })
}

/// The collection a dump file belongs to (its real name, from its
/// metadata or its file name).
pub(crate) fn collection_name(
    path: &str,
    db: &str,
    stem: &str,
    meta: Option<&CollectionMeta>,
    names: &HashMap<(String, String), String>,
) -> Result<String> {
    let known = names.get(&(db.to_string(), stem.to_string()));
    match (meta.and_then(|m| m.name.clone()), known) {
        (Some(name), _) => Ok(name),
        (None, Some(name)) => Ok(name.clone()),
        (None, None) if meta.is_none() && is_truncated(stem) => Err(Error::InvalidArchive {
            subject: format!("dump/{path}"),
            reason: "the file name is a truncated collection name and its .metadata.json (which holds the real name) does not come before it".into(),
        }),
        (None, None) => unescape_collection(stem).ok_or_else(|| Error::InvalidArchive {
            subject: format!("dump/{path}"),
            reason: "the file name is not a percent-escaped collection name".into(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excludes_renames_and_paths() {
        let ns = Namespaces::new(&["logs.*".into()], &[("juju".into(), "copy".into())]).unwrap();
        assert!(ns.excluded("logs.x") && !ns.excluded("juju.x"));
        assert_eq!(ns.target_db("juju"), "copy");
        assert_eq!(ns.target_db("other"), "other");
        let err = Namespaces::new(&["a[".into()], &[]).unwrap_err();
        assert!(err.to_string().contains("namespace pattern"), "{err}");
    }

    #[test]
    fn dump_paths_are_classified_or_refused() {
        assert_eq!(
            dump_path("juju/machines.bson").unwrap(),
            DumpPath::Data {
                db: "juju",
                stem: "machines"
            }
        );
        assert_eq!(
            dump_path("juju/a%2Fb.metadata.json").unwrap(),
            DumpPath::Metadata {
                db: "juju",
                stem: "a%2Fb"
            }
        );
        assert_eq!(dump_path("oplog.bson").unwrap(), DumpPath::Oplog);
        for bad in [
            "a/b/c.bson",
            "x.bson",
            "juju/notes.txt",
            "juju/m.bson.gz",
            "juju/.bson",
        ] {
            let err = dump_path(bad).unwrap_err().to_string();
            assert!(err.contains(&format!("dump/{bad}")), "{err}");
        }
    }

    #[test]
    fn collection_names_escape_like_mongodump() {
        assert_eq!(escape_collection("a/b"), "a%2Fb");
        assert_eq!(escape_collection("p%q"), "p%25q");
        assert_eq!(escape_collection("cafés"), "caf%C3%A9s");
        assert_eq!(escape_collection("x y,z;$&+:=@~"), "x%20y%2Cz%3B$&+:=@~");
        for name in ["a/b", "p%q", "cafés", "plain.name"] {
            assert_eq!(
                unescape_collection(&escape_collection(name)).as_deref(),
                Some(name)
            );
        }
        assert_eq!(unescape_collection("bad%zz"), None);
        let long = "é".repeat(200);
        let escaped = escape_collection(&long);
        assert_eq!(escaped.len(), 238);
        assert!(is_truncated(&escaped) && !is_truncated("a%24b"));
    }
}
