//! What a restore is told about its target (`--target-*`) and the lease
//! holder this process names. Who this host is (its name, the identity a
//! backup of it records) is the library's: `backups_core::host`.

use backups_core::Identity;
use backups_core::host::host_name;
use clap::Args;

/// What a restore is told about its target (`--target-*`): a backup of
/// another controller or model, or of a newer version, is refused.
#[derive(Debug, Args, Clone)]
pub struct TargetArgs {
    /// The target controller's UUID: a backup of another controller is refused.
    #[arg(long, value_name = "UUID")]
    pub target_controller_uuid: Option<String>,
    /// The target's model UUID: a backup of another model is refused.
    #[arg(long, value_name = "UUID")]
    pub target_model_uuid: Option<String>,
    /// The target's software version: newer backups are refused, older ones
    /// need --allow-downgrade.
    #[arg(long, value_name = "VERSION")]
    pub target_version: Option<String>,
    /// The target's HA node count (a different count is warned about).
    #[arg(long, value_name = "N")]
    pub target_ha_nodes: Option<u64>,
}

impl TargetArgs {
    /// Whether a controller, model or version is named: then the restore
    /// runs as a plan, with a preflight check.
    pub fn names_target(&self) -> bool {
        self.target_controller_uuid.is_some()
            || self.target_model_uuid.is_some()
            || self.target_version.is_some()
    }

    /// The target as the preflight checks it (what is not given is empty,
    /// and not checked).
    pub fn identity(&self) -> Identity {
        let mut identity = Identity::new(self.target_model_uuid.clone().unwrap_or_default());
        identity.controller_uuid = self.target_controller_uuid.clone().unwrap_or_default();
        identity.version = self.target_version.clone().unwrap_or_default();
        identity.ha_nodes = self.target_ha_nodes.unwrap_or(0);
        identity
    }

    /// The identity a safety backup of the target records: the target's,
    /// where known, else this host's.
    pub fn safety_identity(&self) -> Identity {
        let mut identity = Identity::safety_default(self.target_model_uuid.clone());
        identity.controller_uuid = self.target_controller_uuid.clone().unwrap_or_default();
        identity.version = self.target_version.clone().unwrap_or_default();
        identity.ha_nodes = self.target_ha_nodes.unwrap_or(0);
        identity
    }
}

/// How this process names itself in the store's lease: host and pid.
pub fn lease_holder() -> String {
    format!("{} pid {}", host_name(), std::process::id())
}
