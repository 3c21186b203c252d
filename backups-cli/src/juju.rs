//! The Juju profile's glue (`create --juju`, `restore --juju`): which data
//! dir, the identity a backup records, the connection to the controller's
//! MongoDB, and what a restore leaves alone. What Juju takes and how
//! agent.conf reads live in backups-core ([`backups_core::juju_files`],
//! [`JujuAgentConfig`]); the connection in backups-mongo
//! ([`backups_mongo::JujuConnection`]).

use std::path::Path;

use crate::host::{host_name, os_series};
use backups_core::{Identity, JujuAgentConfig, juju_tools_series};

/// Where a Juju controller's MongoDB listens (`--juju-mongo-address`).
pub const DEFAULT_MONGO_ADDRESS: &str = "localhost:37017";

/// The databases Juju's backups leave out, besides admin, local and
/// config (which are never dumped unless named).
pub const EXCLUDED_DBS: [&str; 1] = ["backups"];

/// What `restore --juju` leaves alone, as juju-restore does: the logs and
/// (unless `--include-status-history`) the status history.
pub fn restore_ns_excludes(include_status_history: bool) -> Vec<String> {
    let mut excludes = vec!["logs.*".to_string()];
    if !include_status_history {
        excludes.push("juju.statuseshistory".to_string());
    }
    excludes
}

/// The identity a backup of this controller records: agent.conf's model,
/// controller, machine and version, this host's name, and the series in
/// the name of the agent's tools (else this host's OS release).
pub fn backup_identity(agent: &JujuAgentConfig, data_dir: &Path) -> Identity {
    let mut identity = agent.identity();
    identity.hostname = host_name();
    identity.series = juju_tools_series(data_dir, &agent.tag)
        .filter(|s| !is_os_name(s))
        .unwrap_or_else(os_series);
    identity
}

/// Juju 3 names tools by OS (`3.1.6-ubuntu-amd64`), not by series.
fn is_os_name(series: &str) -> bool {
    matches!(
        series,
        "ubuntu" | "centos" | "windows" | "opensuse" | "genericlinux" | "osx" | "kubernetes"
    )
}
