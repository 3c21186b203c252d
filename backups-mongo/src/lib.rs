//! MongoDB dump and load for backups-core, in mongodump's layout.
//!
//! [`MongoDumper`] writes `dump/<db>/<collection>.bson` (documents copied as
//! raw BSON straight from the cursor's batches: no decode/encode round trip)
//! and `<collection>.metadata.json` (options, indexes, uuid, name and type,
//! as canonical extended JSON like mongodump), plus `dump/oplog.bson` when
//! the server has an oplog. [`MongoLoader`] drops and re-creates each
//! collection with its options, inserts in large ordered batches (validation
//! bypassed, as mongorestore does), builds indexes after the data, creates
//! views, and replays the oplog.
//!
//! # Consistency
//!
//! The strongest mode the server supports is used:
//! - **oplog** (replica sets): the newest oplog timestamp is read before the
//!   first collection, every collection is dumped, then the oplog entries
//!   written meanwhile go to `dump/oplog.bson`. Loading replays them (as
//!   idempotent upserts, `$set`/`$unset` and deletes), so the restored state
//!   is the source's state at the end of the dump — one instant.
//! - **none** (standalone servers): a plain dump; the metadata records that
//!   it is not point-in-time and `create` warns.
//!
//! Snapshot reads (`readConcern: snapshot` with `atClusterTime`) would avoid
//! the replay, but SecantusDB — the MongoDB-compatible server these tests
//! run against — accepts them and returns current data, so they are not
//! used. What SecantusDB 0.7 supports, as probed: sessions, transactions,
//! change streams and `local.oplog.rs` in replica-set mode (entries `i`,
//! `u`, `d`, `c` with `ts`/`ns`/`o`/`o2`); no `applyOps` (replay is done
//! with ordinary writes); its `u` entries use `{"$v": 2, "diff":
//! {"updatedFields", "removedFields", "truncatedArrays"}}`, which the
//! replay understands alongside MongoDB's own v2 diff format.
//!
//! ```no_run
//! use std::sync::Arc;
//! use backups_mongo::{DumpOptions, MongoDumper};
//!
//! # async fn run() -> backups_core::Result<()> {
//! let dumper = MongoDumper::connect("mongodb://127.0.0.1:27017/", DumpOptions::default()).await?;
//! // Pass `Some(Arc::new(dumper))` as `CreateRequest::database`.
//! # let _ = Arc::new(dumper);
//! # Ok(())
//! # }
//! ```

mod dump;
mod load;
mod oplog;

use std::time::Duration;

use backups_core::Error;
use mongodb::Client;
use mongodb::options::ClientOptions;

pub use dump::{DumpOptions, MongoDumper};
pub use load::{LoadOptions, MongoLoader};

/// Databases never dumped unless asked for by name.
pub const SYSTEM_DATABASES: [&str; 3] = ["admin", "local", "config"];

/// The databases on the server other than [`SYSTEM_DATABASES`], sorted.
pub(crate) async fn user_databases(
    client: &Client,
    shown: &str,
) -> backups_core::Result<Vec<String>> {
    let mut names = client
        .list_database_names()
        .await
        .map_err(|e| db_error(format!("listing databases on {shown}"), e))?;
    names.retain(|n| !SYSTEM_DATABASES.contains(&n.as_str()));
    names.sort();
    Ok(names)
}

/// Replaces the password in a MongoDB URI with `***`.
pub fn redact_uri(uri: &str) -> String {
    let Some(scheme_end) = uri.find("://") else {
        return uri.to_string();
    };
    let rest = &uri[scheme_end + 3..];
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    match authority.rfind('@') {
        Some(at) => {
            let userinfo = &authority[..at];
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{}{}:***@{}", &uri[..scheme_end + 3], user, &rest[at + 1..])
        }
        None => uri.to_string(),
    }
}

/// A database error with its context, the password scrubbed.
pub(crate) fn db_error(context: impl Into<String>, e: mongodb::error::Error) -> Error {
    Error::Database {
        message: format!("{}: {e}", context.into()),
        source: Some(Box::new(e)),
    }
}

/// Connects and checks the server answers, with short timeouts so an
/// unreachable server is reported in seconds.
pub(crate) async fn connect(uri: &str) -> backups_core::Result<Client> {
    let shown = redact_uri(uri);
    let mut options = ClientOptions::parse(uri)
        .await
        .map_err(|e| Error::InvalidInput {
            what: backups_core::InputKind::MongoUri,
            value: shown.clone(),
            reason: e.to_string().replace(uri, &shown),
        })?;
    options.app_name = Some("backups".into());
    options
        .server_selection_timeout
        .get_or_insert(Duration::from_secs(10));
    options
        .connect_timeout
        .get_or_insert(Duration::from_secs(5));
    let client = Client::with_options(options)
        .map_err(|e| db_error(format!("cannot use MongoDB at {shown}"), e))?;
    client
        .database("admin")
        .run_command(mongodb::bson::doc! {"ping": 1})
        .await
        .map_err(|e| {
            let text = e.to_string();
            let why = if text.contains("Authentication") || text.contains("auth") {
                "authentication failed"
            } else {
                "cannot reach MongoDB"
            };
            // The driver's error is kept unless it would show the password.
            let source: Option<Box<dyn std::error::Error + Send + Sync>> =
                (!text.contains(uri)).then(|| Box::new(e) as _);
            Error::Database {
                message: format!("{why} at {shown}: {}", text.replace(uri, &shown)),
                source,
            }
        })?;
    Ok(client)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact_uri("mongodb://admin:s3cr%40t@db1:27017,db2/juju?authSource=admin"),
            "mongodb://admin:***@db1:27017,db2/juju?authSource=admin"
        );
        assert_eq!(
            redact_uri("mongodb://127.0.0.1:27017/"),
            "mongodb://127.0.0.1:27017/"
        );
        assert_eq!(
            redact_uri("mongodb+srv://u:p@x.example/"),
            "mongodb+srv://u:***@x.example/"
        );
    }
}
