//! The writes of a killed restore that are still running at the server:
//! found by the killed loader's own `appName` (unique to each loader, see
//! [`unique_app_name`], and recorded in the restore's journal), ended with
//! `killOp` and waited for until `currentOp` lists none.
//!
//! A client killed with SIGKILL leaves its operations running: MongoDB
//! runs one to completion unless it is killed, and SecantusDB cannot
//! interrupt one at all (its `killOp` closes the connection after the
//! operation in flight). Both list a connection (`$all` includes idle
//! ones) until the server has seen it closed, which it can only do once
//! the connection's operation in flight is done. So once `currentOp`
//! lists nothing of that client, nothing it sent can still be applied: a
//! command runs only on a connection the server has open, and a driver
//! sends one only after the handshake that names its application.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use backups_core::{Error, Result};
use mongodb::Client;
use mongodb::bson::{Bson, Document, doc};

use crate::client::db_error;

/// How long a killed client's operations may take to end.
const PATIENCE: Duration = Duration::from_secs(300);
/// How often the server is asked again meanwhile.
const POLL: Duration = Duration::from_millis(100);

/// A name no other loader has: `backups-load-<pid>-<nanoseconds>-<n>`.
pub(crate) fn unique_app_name() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("backups-load-{}-{nanos}-{n}", std::process::id())
}

/// One entry of `currentOp` that belongs to the client looked for.
#[derive(Debug)]
struct Operation {
    opid: Option<Bson>,
    active: bool,
    what: String,
}

/// The application name of a `currentOp` entry: MongoDB's top-level
/// `appName`, else the handshake's `clientMetadata.application.name`
/// (SecantusDB lists only the latter).
fn app_name(entry: &Document) -> Option<&str> {
    entry.get_str("appName").ok().or_else(|| {
        entry
            .get_document("clientMetadata")
            .and_then(|m| m.get_document("application"))
            .and_then(|a| a.get_str("name"))
            .ok()
    })
}

/// The operations and connections of client `name` the server lists.
async fn operations(client: &Client, name: &str) -> mongodb::error::Result<Vec<Operation>> {
    let reply = client
        .database("admin")
        .run_command(doc! {"currentOp": 1, "$all": true, "appName": name})
        .await?;
    let mut out = Vec::new();
    let Ok(inprog) = reply.get_array("inprog") else {
        return Ok(out);
    };
    for entry in inprog.iter().filter_map(Bson::as_document) {
        if app_name(entry) != Some(name) {
            continue;
        }
        let what = match (entry.get_str("op"), entry.get_str("desc")) {
            (Ok(op), Ok(desc)) => format!("{op} on {desc}"),
            (Ok(op), Err(_)) => op.to_string(),
            (Err(_), Ok(desc)) => desc.to_string(),
            (Err(_), Err(_)) => "a connection".to_string(),
        };
        out.push(Operation {
            opid: entry.get("opid").cloned(),
            active: entry.get_bool("active").unwrap_or(true),
            what,
        });
    }
    Ok(out)
}

fn unauthorized(e: &mongodb::error::Error) -> bool {
    matches!(e.kind.as_ref(), mongodb::error::ErrorKind::Command(c) if c.code == 13)
}

/// Kills what client `name` still runs at the server and waits until the
/// server lists none of its operations or connections; a user not allowed
/// to list operations gets a warning instead.
pub(crate) async fn quiesce(client: &Client, name: &str, shown: &str) -> Result<Vec<String>> {
    let deadline = Instant::now() + PATIENCE;
    let mut killed: Vec<Bson> = Vec::new();
    loop {
        let ops = match operations(client, name).await {
            Ok(ops) => ops,
            Err(e) if unauthorized(&e) => {
                return Ok(vec![format!(
                    "could not check that no write of the interrupted restore (client {name}) still runs at {shown}: the user may not list operations (currentOp needs the inprog privilege, e.g. role clusterMonitor)"
                )]);
            }
            Err(e) => {
                return Err(db_error(
                    format!("listing the operations of the interrupted restore on {shown}"),
                    e,
                ));
            }
        };
        if ops.is_empty() {
            return Ok(Vec::new());
        }
        for op in ops.iter().filter(|op| op.active) {
            let Some(opid) = &op.opid else { continue };
            if killed.contains(opid) {
                continue;
            }
            client
                .database("admin")
                .run_command(doc! {"killOp": 1, "op": opid.clone()})
                .await
                .map_err(|e| {
                    db_error(
                        format!("ending an operation of the interrupted restore on {shown}"),
                        e,
                    )
                })?;
            killed.push(opid.clone());
        }
        if Instant::now() >= deadline {
            let what: Vec<&str> = ops.iter().map(|op| op.what.as_str()).collect();
            return Err(Error::Database {
                message: format!(
                    "{} operations of the interrupted restore (client {name}) still run at {shown} after {} s ({}); wait for them to end (db.currentOp()) and restore again",
                    ops.len(),
                    PATIENCE.as_secs(),
                    what.join(", ")
                ),
                source: None,
            });
        }
        tokio::time::sleep(POLL).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_names_are_unique_and_read_from_either_field() {
        assert_ne!(unique_app_name(), unique_app_name());
        assert!(unique_app_name().len() < 128, "MongoDB's limit");
        let top = doc! {"appName": "a", "clientMetadata": {"application": {"name": "b"}}};
        assert_eq!(app_name(&top), Some("a"));
        let nested = doc! {"clientMetadata": {"application": {"name": "b"}}};
        assert_eq!(app_name(&nested), Some("b"));
        assert_eq!(app_name(&doc! {"op": "insert"}), None);
    }
}
