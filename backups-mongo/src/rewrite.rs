//! The restore's `OLD=NEW` rules ([`backups_core::rewrite::Rewrites`]) applied to
//! the documents of one loaded collection as they come from the dump.

use std::sync::Arc;

use backups_core::rewrite::Rewrites;
use backups_core::{Error, Result};
use mongodb::bson::RawDocumentBuf;

/// Rewrites the documents of one collection, counting the replacements.
#[derive(Debug, Default)]
pub(crate) struct DocumentRewriter {
    rewrites: Option<Arc<Rewrites>>,
    /// Replacements made so far.
    pub(crate) replacements: u64,
}

impl DocumentRewriter {
    /// For the dump's namespace `ns`: does nothing unless `rewrites` cover it.
    pub(crate) fn new(rewrites: Option<&Arc<Rewrites>>, ns: &str) -> Self {
        DocumentRewriter {
            rewrites: rewrites.filter(|r| r.applies_to_namespace(ns)).cloned(),
            replacements: 0,
        }
    }

    /// `doc` with its string values rewritten; the very same bytes when
    /// nothing matched. `path` names the dump file in errors.
    pub(crate) fn apply(&mut self, doc: RawDocumentBuf, path: &str) -> Result<RawDocumentBuf> {
        let Some(rw) = &self.rewrites else {
            return Ok(doc);
        };
        let invalid = |reason: String| Error::InvalidArchive {
            subject: format!("dump/{path}"),
            reason: format!("rewriting a document: {reason}"),
        };
        match rw.rewrite_bson(doc.as_bytes()).map_err(invalid)? {
            None => Ok(doc),
            Some((bytes, n)) => {
                self.replacements += n;
                RawDocumentBuf::from_bytes(bytes).map_err(|e| invalid(e.to_string()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mongodb::bson::{doc, rawdoc};

    #[test]
    fn only_changed_documents_are_rebuilt() {
        let rw = Arc::new(Rewrites::parse(["10.0.0.5=10.0.9.9"]).unwrap());
        let mut r = DocumentRewriter::new(Some(&rw), "juju.machines");
        let doc = rawdoc! {"_id": 1, "addresses": [{"value": "10.0.0.5"}], "n": 2.5};
        let out = r.apply(doc, "juju/machines.bson").unwrap();
        assert_eq!(
            out.to_document().unwrap(),
            doc! {"_id": 1, "addresses": [{"value": "10.0.9.9"}], "n": 2.5}
        );
        let same = rawdoc! {"value": "10.0.0.50"};
        assert_eq!(
            r.apply(same.clone(), "x").unwrap().as_bytes(),
            same.as_bytes()
        );
        assert_eq!(r.replacements, 1);
        let mut other = DocumentRewriter::new(Some(&rw), "juju.system.views");
        let doc = rawdoc! {"value": "10.0.0.5"};
        assert_eq!(other.apply(doc.clone(), "x").unwrap(), doc);
    }
}
