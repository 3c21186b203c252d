//! Namespaces (`db.collection`): which ones a dump or a load leaves out
//! (exclude globs), which database a dumped one is loaded into (renames),
//! and how dump file paths name them. Used by dump, load and the oplog
//! replay alike.

use backups_core::{Error, InputKind, Result};
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

    /// The database the dump's database `db` is loaded into.
    pub(crate) fn target_db(&self, db: &str) -> String {
        self.renames
            .iter()
            .find(|(from, _)| from == db)
            .map(|(_, to)| to.clone())
            .unwrap_or_else(|| db.to_string())
    }
}

/// `db/coll.suffix` -> (db, collection), for dump file paths.
pub(crate) fn split_dump_path<'a>(path: &'a str, suffix: &str) -> Option<(&'a str, &'a str)> {
    let stem = path.strip_suffix(suffix)?;
    let (db, coll) = stem.split_once('/')?;
    (!db.is_empty() && !coll.is_empty() && !coll.contains('/')).then_some((db, coll))
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excludes_renames_and_paths() {
        let ns = Namespaces::new(&["logs.*".into()], &[("juju".into(), "copy".into())]).unwrap();
        assert!(ns.excluded("logs.x") && !ns.excluded("juju.x"));
        assert_eq!(ns.target_db("juju"), "copy");
        assert_eq!(ns.target_db("other"), "other");
        assert_eq!(
            split_dump_path("juju/machines.bson", ".bson"),
            Some(("juju", "machines"))
        );
        assert_eq!(split_dump_path("oplog.bson", ".bson"), None);
        assert_eq!(split_dump_path("a/b/c.bson", ".bson"), None);
        let err = Namespaces::new(&["a[".into()], &[]).unwrap_err();
        assert!(err.to_string().contains("namespace pattern"), "{err}");
    }
}
