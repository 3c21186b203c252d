//! Inserting one batch of a load, idempotently when it is sent again.
//!
//! A batch whose outcome is unknown — the connection broke, or the server
//! wrote it but could not confirm the write concern — is sent again (up to
//! [`ATTEMPTS`] times), unordered: its documents that an earlier attempt
//! inserted are refused as duplicate keys, and each such refusal is taken
//! as done only when the stored document is byte for byte the one of the
//! batch. A duplicate key on a first attempt is an error, as before (the
//! dump holds an `_id` twice, or something else wrote the collection).

use std::time::Duration;

use backups_core::Result;
use futures::TryStreamExt;
use mongodb::Collection;
use mongodb::bson::{Bson, RawDocumentBuf, doc};
use mongodb::error::{ErrorKind, WriteFailure};

use crate::client::db_error;

/// Times a batch is sent at most.
const ATTEMPTS: u32 = 3;
/// MongoDB's duplicate key error.
const DUPLICATE_KEY: i32 = 11000;

/// Whether the documents of a failed insert may be in the collection
/// all the same, so that sending them again is the way on.
fn outcome_unknown(e: &mongodb::error::Error) -> bool {
    match e.kind.as_ref() {
        ErrorKind::InsertMany(m) => {
            m.write_concern_error.is_some()
                && m.write_errors
                    .iter()
                    .flatten()
                    .all(|w| w.code == DUPLICATE_KEY)
        }
        ErrorKind::Write(WriteFailure::WriteConcernError(_)) => true,
        ErrorKind::Io(_) | ErrorKind::ConnectionPoolCleared { .. } => true,
        _ => e.contains_label("RetryableWriteError"),
    }
}

/// The batch positions refused as duplicate keys, when every refusal of
/// the insert is one (a write concern error may come with them).
fn duplicates(e: &mongodb::error::Error) -> Option<Vec<usize>> {
    let ErrorKind::InsertMany(m) = e.kind.as_ref() else {
        return None;
    };
    let errors = m.write_errors.as_deref().unwrap_or_default();
    errors
        .iter()
        .all(|w| w.code == DUPLICATE_KEY)
        .then(|| errors.iter().map(|w| w.index).collect())
}

/// Whether the documents of `batch` at `positions` are stored exactly so.
async fn stored_as_sent(
    coll: &Collection<RawDocumentBuf>,
    batch: &[RawDocumentBuf],
    positions: &[usize],
) -> mongodb::error::Result<bool> {
    let mut ids = Vec::with_capacity(positions.len());
    for &i in positions {
        let Some(id) = batch.get(i).and_then(|d| d.get("_id").ok().flatten()) else {
            return Ok(false);
        };
        match Bson::try_from(id.to_raw_bson()) {
            Ok(id) => ids.push(id),
            Err(_) => return Ok(false),
        }
    }
    let stored: Vec<RawDocumentBuf> = coll
        .find(doc! {"_id": {"$in": ids}})
        .await?
        .try_collect()
        .await?;
    Ok(positions
        .iter()
        .all(|&i| stored.iter().any(|s| s.as_bytes() == batch[i].as_bytes())))
}

/// Inserts `batch` into `coll` (named `ns` in errors): ordered, validation
/// bypassed, as mongorestore does; sent again while its outcome is unknown.
pub(crate) async fn insert_batch(
    coll: &Collection<RawDocumentBuf>,
    ns: &str,
    batch: &[RawDocumentBuf],
) -> Result<()> {
    send(coll, ns, batch, 1).await
}

/// [`insert_batch`] from its `attempt`th sending on.
async fn send(
    coll: &Collection<RawDocumentBuf>,
    ns: &str,
    batch: &[RawDocumentBuf],
    mut attempt: u32,
) -> Result<()> {
    loop {
        let again = attempt > 1;
        let Err(e) = coll
            .insert_many(batch)
            .ordered(!again)
            .bypass_document_validation(true)
            .await
        else {
            return Ok(());
        };
        // Whether every document the server refused is in all the same
        // (none refused; or, sent again, each stored as sent).
        let refused_but_in = match (duplicates(&e), e.kind.as_ref()) {
            (Some(positions), _) if positions.is_empty() => true,
            (Some(positions), _) if again => stored_as_sent(coll, batch, &positions)
                .await
                .map_err(|e| db_error(format!("loading {ns}"), e))?,
            (_, ErrorKind::InsertMany(_)) => false,
            _ => true, // not a bulk write error: nothing was refused
        };
        let confirmed =
            !matches!(e.kind.as_ref(), ErrorKind::InsertMany(m) if m.write_concern_error.is_some());
        if again
            && refused_but_in
            && confirmed
            && matches!(e.kind.as_ref(), ErrorKind::InsertMany(_))
        {
            return Ok(());
        }
        if refused_but_in && attempt < ATTEMPTS && outcome_unknown(&e) {
            attempt += 1;
            tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt))).await;
            continue;
        }
        return Err(db_error(format!("loading {ns}"), e));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_writes_that_may_have_happened_are_sent_again() {
        let timeout = mongodb::error::Error::from(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "reset",
        ));
        assert!(outcome_unknown(&timeout));
        assert!(duplicates(&timeout).is_none());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_batch_sent_again_is_inserted_once_and_only_over_its_own_documents() {
        use backups_core::test_util::{service_env, unique_name};
        let Some(uri) = service_env("BACKUPS_TEST_MONGO_URI") else {
            return;
        };
        let client = mongodb::Client::with_uri_str(&uri).await.unwrap();
        let db = client.database(&unique_name("replay"));
        let coll = db.collection::<RawDocumentBuf>("c");
        let docs = |v: &str| -> Vec<RawDocumentBuf> {
            (0..50)
                .map(|i| RawDocumentBuf::from_document(&doc! {"_id": i, "v": v}).unwrap())
                .collect()
        };
        let batch = docs("x");
        // An earlier sending got its first 20 documents in, then its
        // outcome was lost (a broken connection, a write concern error).
        coll.insert_many(&batch[..20]).await.unwrap();
        send(&coll, "d.c", &batch, 2).await.unwrap();
        assert_eq!(coll.count_documents(doc! {}).await.unwrap(), 50);
        // Documents stored otherwise are not taken for the batch's ...
        let err = send(&coll, "d.c", &docs("y"), 2).await.unwrap_err();
        assert!(err.to_string().contains("duplicate"), "{err}");
        // ... and on a first sending a duplicate key is an error.
        let err = insert_batch(&coll, "d.c", &batch[..1]).await.unwrap_err();
        assert!(err.to_string().contains("d.c"), "{err}");
        db.drop().await.unwrap();
    }
}
