//! Who this host is: its name, its OS series and the identity a backup of
//! it records (or a restore's safety backup records when nothing better is
//! known). One rule for the library and the CLI.

use crate::request::Identity;

/// The variable that sets a backup's model UUID (the CLI's
/// `create --model-uuid`), also used for a restore's safety backup.
pub const MODEL_UUID_ENV: &str = "BACKUPS_MODEL_UUID";

/// The kernel's host name (empty if it cannot be read).
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// A stable model UUID for a host that has no controller model: UUIDv5 of
/// its host name.
pub fn host_model_uuid() -> String {
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

/// The model UUID given, else `$BACKUPS_MODEL_UUID`, else this host's own
/// ([`host_model_uuid`]).
pub fn model_uuid_or_host(model_uuid: Option<String>) -> String {
    model_uuid
        .or_else(|| std::env::var(MODEL_UUID_ENV).ok().filter(|v| !v.is_empty()))
        .unwrap_or_else(host_model_uuid)
}

impl Identity {
    /// The identity of a new backup of this host: `model_uuid` (else
    /// [`model_uuid_or_host`]), this host's name and OS series, machine
    /// `0` and this library's version.
    pub fn this_host(model_uuid: Option<String>) -> Identity {
        let mut identity = Identity::new(model_uuid_or_host(model_uuid));
        identity.machine = "0".into();
        identity.hostname = host_name();
        identity.series = os_series();
        identity.version = format!("backups-{}", env!("CARGO_PKG_VERSION"));
        identity
    }

    /// The identity a restore's safety backup records when the caller
    /// names none: the target's model where known, else this host's, with
    /// this host's name.
    pub fn safety_default(model_uuid: Option<String>) -> Identity {
        let mut identity = Identity::new(model_uuid_or_host(model_uuid));
        identity.hostname = host_name();
        identity
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_host_names_machine_zero_and_this_version() {
        let id = Identity::this_host(Some("m".into()));
        assert_eq!(id.model_uuid, "m");
        assert_eq!(id.machine, "0");
        assert!(id.version.starts_with("backups-"));
    }

    #[test]
    fn host_model_uuid_is_a_stable_uuid() {
        let a = host_model_uuid();
        assert_eq!(a, host_model_uuid());
        assert!(uuid::Uuid::parse_str(&a).is_ok());
    }
}
