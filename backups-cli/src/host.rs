//! Who this host is: its name, the lease holder it names, and the identity
//! (model and controller UUID, version...) recorded in a backup or checked
//! against a restore's target.

use backups_core::Identity;
use clap::Args;

/// The variable that sets a backup's model UUID (`create --model-uuid`),
/// also used for a restore's safety backup.
pub const MODEL_UUID_ENV: &str = "BACKUPS_MODEL_UUID";

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
        let mut identity = Identity::new(
            self.target_model_uuid
                .clone()
                .or_else(|| std::env::var(MODEL_UUID_ENV).ok())
                .unwrap_or_else(host_model_uuid),
        );
        identity.controller_uuid = self.target_controller_uuid.clone().unwrap_or_default();
        identity.version = self.target_version.clone().unwrap_or_default();
        identity.ha_nodes = self.target_ha_nodes.unwrap_or(0);
        identity.hostname = host_name();
        identity
    }
}

/// The identity of a new backup of this host. `model_uuid` is
/// --model-uuid or $BACKUPS_MODEL_UUID; without it, one derived from the
/// host name. The machine is "0" unless given.
pub fn backup_identity(
    model_uuid: Option<String>,
    controller_uuid: Option<String>,
    machine: Option<String>,
) -> Identity {
    let mut identity = Identity::new(model_uuid.unwrap_or_else(host_model_uuid));
    identity.controller_uuid = controller_uuid.unwrap_or_default();
    identity.machine = machine.unwrap_or_else(|| "0".into());
    identity.hostname = host_name();
    identity.series = os_series();
    identity.version = format!("backups-{}", env!("CARGO_PKG_VERSION"));
    identity
}

/// How this process names itself in the store's lease: host and pid.
pub fn lease_holder() -> String {
    format!("{} pid {}", host_name(), std::process::id())
}

/// The kernel's host name (empty if it cannot be read).
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// A stable model UUID for hosts that have no controller model: UUIDv5 of the host name.
fn host_model_uuid() -> String {
    const NAMESPACE: uuid::Uuid = uuid::Uuid::from_u128(0x6b0d_2d3e_5a1f_4e53_9b7e_1c2a_3f4d_5e6f);
    uuid::Uuid::new_v5(&NAMESPACE, host_name().as_bytes()).to_string()
}

/// The OS release's code name (`VERSION_CODENAME`), recorded as the series.
pub fn os_series() -> String {
    std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix("VERSION_CODENAME=")
                    .map(|v| v.trim_matches('"').to_string())
            })
        })
        .unwrap_or_default()
}
