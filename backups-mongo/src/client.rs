//! Connecting to MongoDB: short timeouts, the password kept out of every
//! message, and the list of user databases.

use std::time::Duration;

use backups_core::Error;
use mongodb::Client;
use mongodb::options::ClientOptions;

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

/// Replaces the password in a MongoDB URI, and the values of its secret
/// options (`tlsCertificateKeyFilePassword`, `authMechanismProperties`...),
/// with `***`: [`backups_core::secret::redact_uri`], the rule every message and
/// `config show` follow.
pub fn redact_uri(uri: &str) -> String {
    backups_core::secret::redact_uri(uri)
}

/// A database error with its context, the password scrubbed. A server's
/// refusal shows its code and message only (the driver's text of it ends in
/// a dump of the raw reply).
pub(crate) fn db_error(context: impl Into<String>, e: mongodb::error::Error) -> Error {
    let context = context.into();
    match server_refusal(&e) {
        // The driver's error stays the source (for callers that inspect
        // it); its text, which ends in a hex dump of the reply, is not
        // the message.
        Some(refusal) => Error::Database {
            message: format!("{context}: {refusal}"),
            source: Some(Box::new(e)),
        },
        None => Error::Database {
            message: format!("{context}: {e}"),
            source: Some(Box::new(e)),
        },
    }
}

/// `code (CodeName): message` of a command or write the server refused.
fn server_refusal(e: &mongodb::error::Error) -> Option<String> {
    use mongodb::error::{ErrorKind, WriteFailure};
    let shown = |code: i32, name: Option<&str>, message: &str| match name {
        Some(name) if !name.is_empty() => format!("server error {code} ({name}): {message}"),
        _ => format!("server error {code}: {message}"),
    };
    match e.kind.as_ref() {
        ErrorKind::Command(c) => Some(shown(c.code, Some(&c.code_name), &c.message)),
        ErrorKind::Write(WriteFailure::WriteError(w)) => {
            Some(shown(w.code, w.code_name.as_deref(), &w.message))
        }
        ErrorKind::Write(WriteFailure::WriteConcernError(w)) => {
            Some(shown(w.code, Some(&w.code_name), &w.message))
        }
        ErrorKind::InsertMany(m) => {
            let first = m.write_errors.as_ref().and_then(|w| w.first());
            match (first, &m.write_concern_error) {
                (Some(w), _) => Some(format!(
                    "document {} of the batch: {}",
                    w.index,
                    shown(w.code, w.code_name.as_deref(), &w.message)
                )),
                (None, Some(w)) => Some(shown(w.code, Some(&w.code_name), &w.message)),
                (None, None) => None,
            }
        }
        _ => None,
    }
}

/// Connects and checks the server answers, with short timeouts so an
/// unreachable server is reported in seconds.
pub(crate) async fn connect(uri: &str) -> backups_core::Result<Client> {
    connect_with(uri, |_| {}).await
}

/// [`connect`], with `adjust` applied to the options parsed from `uri`
/// (e.g. to pin one member of a replica set).
pub(crate) async fn connect_with(
    uri: &str,
    adjust: impl FnOnce(&mut ClientOptions),
) -> backups_core::Result<Client> {
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
    // Also the monitor's wait for each heartbeat: a busy server that
    // answers slowly must not have its connections interrupted mid-dump
    // (an unreachable one is still reported after the selection timeout).
    options
        .connect_timeout
        .get_or_insert(Duration::from_secs(30));
    adjust(&mut options);
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
            } else if text.contains("invalid peer certificate") {
                "the server's TLS certificate is not signed by the CA given (tlsCAFile) \
                 or does not name the host connected to; cannot reach MongoDB"
            } else {
                "cannot reach MongoDB"
            };
            // What the server or the driver said, without the driver's
            // debug dump of labels and sources.
            let said = match e.kind.as_ref() {
                mongodb::error::ErrorKind::Authentication { message, .. }
                | mongodb::error::ErrorKind::ServerSelection { message, .. } => message.clone(),
                _ => server_refusal(&e).unwrap_or_else(|| text.clone()),
            };
            // The driver's error is kept unless it would show the password.
            let source: Option<Box<dyn std::error::Error + Send + Sync>> =
                (!text.contains(uri)).then(|| Box::new(e) as _);
            Error::Database {
                message: format!("{why} at {shown}: {}", said.replace(uri, &shown)),
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
