//! The MongoDB connection of a Juju controller, built from its machine
//! agent's `agent.conf` the way Juju's own backups connect: user = the
//! agent's tag, password = `statepassword`, `authSource=admin`, TLS.
//!
//! TLS: the server certificate is verified against the controller's CA
//! (`cacert` in agent.conf), written to a 0600 temporary file for the
//! driver's `tlsCAFile`, and its names are checked against the address.
//! Juju's controller certificates name `localhost`, `127.0.0.1`, `::1`,
//! `juju-mongodb`, `anything` and the machine's addresses, so the default
//! `localhost:37017` and the controller's own addresses verify. The
//! driver's TLS (rustls) has no "allow invalid host names" switch, and
//! verification is never turned off here; a controller reached under a
//! name its certificate lacks needs an explicit URI (e.g. with
//! `tlsInsecure=true`, what Juju's mongodump used before MongoDB 4.4.30).
//! No client certificate is sent: Juju's mongod does not ask for one.
//!
//! `directConnection=true`: the one server at the address, as Juju's
//! `mongodump --host` talks to (the replica set's members are named by the
//! controllers' addresses, which need not be reachable from here).

use std::io::Write;
use std::path::Path;

use backups_core::juju::JujuAgentConfig;
use backups_core::{Error, InputKind, Result};

use crate::client::redact_uri;

/// A connection string for a Juju controller's MongoDB and the CA file it
/// names, which lives as long as this value.
pub struct JujuConnection {
    uri: String,
    ca_file: tempfile::NamedTempFile,
}

impl std::fmt::Debug for JujuConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JujuConnection")
            .field("uri", &redact_uri(&self.uri))
            .field("ca_file", &self.ca_file.path())
            .finish()
    }
}

impl JujuConnection {
    /// The connection to the MongoDB at `address` (`HOST:PORT`) of the
    /// controller `agent` describes.
    pub fn new(agent: &JujuAgentConfig, address: &str) -> Result<Self> {
        check_address(address)?;
        let missing = |key: &str| Error::JujuConfig {
            path: agent.path.clone(),
            reason: format!(
                "no `{key}`: not a controller machine's agent config, so its database cannot be reached"
            ),
        };
        if agent.state_password.is_empty() {
            return Err(missing("statepassword"));
        }
        if agent.ca_cert.trim().is_empty() {
            return Err(missing("cacert"));
        }
        let temp_dir = std::env::temp_dir();
        let io = |action: &'static str, path: &Path| {
            let path = path.to_path_buf();
            move |source| Error::Io {
                action,
                path,
                source,
            }
        };
        // NamedTempFile is created 0600: the CA is not secret, but the file
        // is only ours to read.
        let mut ca_file = tempfile::Builder::new()
            .prefix("backups-juju-ca-")
            .suffix(".pem")
            .tempfile_in(&temp_dir)
            .map_err(io("creating the CA file in", &temp_dir))?;
        let path = ca_file.path().to_path_buf();
        ca_file
            .write_all(agent.ca_cert.as_bytes())
            .and_then(|()| ca_file.flush())
            .map_err(io("writing the CA file", &path))?;
        let uri = format!(
            "mongodb://{}:{}@{address}/?authSource=admin&directConnection=true&tls=true&tlsCAFile={}",
            encode(&agent.tag),
            encode(&agent.state_password),
            encode(&path.to_string_lossy()),
        );
        Ok(JujuConnection { uri, ca_file })
    }

    /// The connection string (it holds the password: show it with
    /// [`redact_uri`]).
    pub fn uri(&self) -> &str {
        &self.uri
    }
}

/// Refuses an address that is not `HOST:PORT` (`[v6]:PORT` for IPv6).
fn check_address(address: &str) -> Result<()> {
    let bad = |reason: &str| Error::InvalidInput {
        what: InputKind::MongoAddress,
        value: address.to_string(),
        reason: reason.to_string(),
    };
    let (host, port) = address
        .rsplit_once(':')
        .ok_or_else(|| bad("expected HOST:PORT, e.g. localhost:37017"))?;
    if host.is_empty() || host.contains(['/', '?', '@', '#', ',']) {
        return Err(bad("expected HOST:PORT, e.g. localhost:37017"));
    }
    if host.contains(':') && !(host.starts_with('[') && host.ends_with(']')) {
        return Err(bad("an IPv6 address goes in brackets: [::1]:37017"));
    }
    port.parse::<u16>()
        .ok()
        .filter(|p| *p != 0)
        .map(|_| ())
        .ok_or_else(|| bad("the port must be a number from 1 to 65535"))
}

/// Percent-encodes all but RFC 3986's unreserved characters.
fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agent(password: &str, ca: &str) -> JujuAgentConfig {
        let text = format!(
            "tag: machine-0\ncontroller: controller-8a293c6a-855b-47fd-8201-affdf29c9605\n\
             model: model-e2a6a1e5-abea-4393-8593-5a45ae53ab97\nupgradedToVersion: 2.9.0\n\
             statepassword: '{password}'\ncacert: |\n  {ca}\n"
        );
        JujuAgentConfig::parse(&text, Path::new("/d/agents/machine-0/agent.conf")).unwrap()
    }

    #[test]
    fn the_uri_is_the_agents_with_tls_and_its_ca() {
        let conn = JujuConnection::new(&agent("p@ss:w/rd", "CA-PEM"), "localhost:37017").unwrap();
        let ca = conn.ca_file.path().to_path_buf();
        assert_eq!(std::fs::read_to_string(&ca).unwrap(), "CA-PEM\n");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&ca).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(
            conn.uri(),
            format!(
                "mongodb://machine-0:p%40ss%3Aw%2Frd@localhost:37017/?authSource=admin&directConnection=true&tls=true&tlsCAFile={}",
                encode(&ca.to_string_lossy())
            )
        );
        assert!(!format!("{conn:?}").contains("p%40ss"));
        drop(conn);
        assert!(!ca.exists(), "the CA file goes with the connection");
    }

    #[test]
    fn what_cannot_make_a_connection_is_named() {
        let no_password = JujuConnection::new(&agent("", "CA"), "localhost:37017").unwrap_err();
        let text = no_password.to_string();
        assert!(
            text.contains("statepassword") && text.contains("/d/agents/machine-0/agent.conf"),
            "{text}"
        );
        for address in ["localhost", ":37017", "h:0", "h:port", "::1:37017", "a/b:1"] {
            let err = JujuConnection::new(&agent("pw", "CA"), address).unwrap_err();
            assert!(
                matches!(
                    err,
                    Error::InvalidInput {
                        what: InputKind::MongoAddress,
                        ..
                    }
                ),
                "{address}: {err}"
            );
        }
        JujuConnection::new(&agent("pw", "CA"), "[::1]:37017").unwrap();
    }
}
