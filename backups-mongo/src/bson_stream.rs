//! Splitting a stream of concatenated BSON documents (a `.bson` dump file,
//! the oplog) as its chunks arrive.

use backups_core::{Error, Result};
use mongodb::bson::RawDocumentBuf;

/// Splits a stream of concatenated BSON documents.
#[derive(Default)]
pub(crate) struct BsonSplitter {
    buf: Vec<u8>,
}

impl BsonSplitter {
    pub(crate) fn push(
        &mut self,
        bytes: &[u8],
        path: &str,
        out: &mut Vec<RawDocumentBuf>,
    ) -> Result<()> {
        self.buf.extend_from_slice(bytes);
        let mut at = 0;
        while self.buf.len() - at >= 4 {
            let len = i32::from_le_bytes([
                self.buf[at],
                self.buf[at + 1],
                self.buf[at + 2],
                self.buf[at + 3],
            ]);
            if len < 5 || len as u64 > backups_core::database::MAX_BSON_DOCUMENT {
                return Err(corrupt(path, format!("bad document length {len}")));
            }
            let len = len as usize;
            if self.buf.len() - at < len {
                break;
            }
            let doc = RawDocumentBuf::from_bytes(self.buf[at..at + len].to_vec())
                .map_err(|e| corrupt(path, e.to_string()))?;
            out.push(doc);
            at += len;
        }
        self.buf.drain(..at);
        Ok(())
    }

    pub(crate) fn finish(&self, path: &str) -> Result<()> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(corrupt(
                path,
                format!(
                    "{} bytes of a truncated document at the end",
                    self.buf.len()
                ),
            ))
        }
    }
}

fn corrupt(path: &str, reason: String) -> Error {
    Error::InvalidArchive {
        subject: format!("dump/{path}"),
        reason: format!("corrupt BSON: {reason}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mongodb::bson::doc;

    #[test]
    fn splitter_handles_documents_across_chunks() {
        let a = mongodb::bson::to_vec(&doc! {"_id": 1, "s": "x".repeat(100)}).unwrap();
        let b = mongodb::bson::to_vec(&doc! {"_id": 2}).unwrap();
        let all = [a.clone(), b.clone()].concat();
        let mut s = BsonSplitter::default();
        let mut out = Vec::new();
        for chunk in all.chunks(7) {
            s.push(chunk, "x.bson", &mut out).unwrap();
        }
        s.finish("x.bson").unwrap();
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].as_bytes(), &a[..]);
        let mut t = BsonSplitter::default();
        t.push(&all[..all.len() - 3], "x.bson", &mut Vec::new())
            .unwrap();
        assert!(
            t.finish("x.bson")
                .unwrap_err()
                .to_string()
                .contains("truncated")
        );
        let err = BsonSplitter::default()
            .push(&[1, 0, 0, 0, 0], "y.bson", &mut Vec::new())
            .unwrap_err();
        assert!(err.to_string().contains("dump/y.bson"), "{err}");
    }
}
