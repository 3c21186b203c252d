//! The checks a restore plan runs before it changes anything: is the
//! backup of this controller and of a version it can take, and does the
//! target filesystem have room for it.

use std::path::Path;

use crate::error::{Error, Result};
use crate::metadata::Metadata;
use crate::progress::Progress;
use crate::request::Identity;

/// What the restore target is, for the identity and version checks. Empty
/// fields are not checked.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct Preflight {
    /// The target controller's identity and version.
    pub target: Identity,
    /// Restore a backup of another controller or model.
    pub allow_other_controller: bool,
    /// Restore a backup older than the target's version.
    pub allow_downgrade: bool,
    /// `host:port` addresses of the old controller (its API, its MongoDB)
    /// that must not answer: a rebuild refuses while any accepts a TCP
    /// connection.
    pub ensure_down: Vec<String>,
}

/// How long to wait for an address that must be down to answer.
const DOWN_PATIENCE: std::time::Duration = std::time::Duration::from_secs(3);

/// Refuses, changing nothing, when any of `addresses` accepts a TCP
/// connection within a few seconds (the old controller is still running:
/// two controllers would fight over the same addresses and data).
pub(crate) async fn check_down(addresses: &[String]) -> Result<()> {
    for address in addresses {
        let connected = tokio::time::timeout(
            DOWN_PATIENCE,
            tokio::net::TcpStream::connect(address.as_str()),
        )
        .await;
        if let Ok(Ok(_)) = connected {
            return Err(Error::Incompatible {
                subject: address.clone(),
                reason: format!(
                    "something still answers at {address}: stop the old controller (or check the address) before restoring in its place"
                ),
            });
        }
    }
    Ok(())
}

/// Numeric parts of a version (`2.8-beta1.1` -> [2, 8, 1, 1]).
fn version_parts(v: &str) -> Vec<u64> {
    v.split(|c: char| !c.is_ascii_digit())
        .filter(|p| !p.is_empty())
        .filter_map(|p| p.parse().ok())
        .collect()
}

/// Identity and version checks; HA node count differences are warnings.
pub(crate) fn check_identity(
    backup: &Metadata,
    pre: &Preflight,
    progress: &dyn Progress,
) -> Result<()> {
    let subject = backup
        .id
        .as_ref()
        .map(ToString::to_string)
        .unwrap_or_default();
    let t = &pre.target;
    let refuse = |reason: String| Error::Incompatible {
        subject: subject.clone(),
        reason,
    };
    for (what, theirs, ours) in [
        ("controller", &backup.controller_uuid, &t.controller_uuid),
        ("model", &backup.model_uuid, &t.model_uuid),
    ] {
        if !theirs.is_empty() && !ours.is_empty() && theirs != ours && !pre.allow_other_controller {
            return Err(refuse(format!(
                "the backup is of {what} {theirs}, the target is {what} {ours} (use --allow-other-controller to restore it anyway)"
            )));
        }
    }
    if !backup.version.is_empty() && !t.version.is_empty() {
        let (b, tv) = (version_parts(&backup.version), version_parts(&t.version));
        if b > tv {
            return Err(refuse(format!(
                "the backup is from version {}, newer than the target's {}: upgrade the target first",
                backup.version, t.version
            )));
        }
        if b < tv && !pre.allow_downgrade {
            return Err(refuse(format!(
                "the backup is from version {}, older than the target's {} (use --allow-downgrade)",
                backup.version, t.version
            )));
        }
    }
    if backup.ha_nodes != 0 && t.ha_nodes != 0 && backup.ha_nodes != t.ha_nodes {
        progress.warn(&format!(
            "the backup was taken with {} HA controller nodes, the target has {}",
            backup.ha_nodes, t.ha_nodes
        ));
    }
    Ok(())
}

/// Free and total bytes of the filesystem holding `path` (or its nearest
/// existing ancestor).
pub(crate) fn free_space(path: &Path) -> Result<(u64, u64)> {
    let absolute = std::path::absolute(path).map_err(|e| Error::Io {
        action: "resolving",
        path: path.to_path_buf(),
        source: e,
    })?;
    let mut at = absolute.as_path();
    loop {
        if at.exists() {
            break;
        }
        match at.parent() {
            Some(p) => at = p,
            None => break,
        }
    }
    let st = rustix::fs::statvfs(at).map_err(|e| Error::Io {
        action: "measuring free space of",
        path: at.to_path_buf(),
        source: e.into(),
    })?;
    Ok((st.f_bavail * st.f_frsize, st.f_blocks * st.f_frsize))
}

/// The margin kept free beyond the restore's estimate: the larger of 20% of
/// the estimate and min(256 MiB, 5% of the disk). The fixed part is small so
/// that a small restore onto a busy disk (the worst day) is not refused; the
/// proportional part covers directory blocks and the estimate's error.
pub(crate) fn space_margin(needed: u64, total: u64) -> u64 {
    (needed / 5).max((256u64 << 20).min(total / 20))
}

/// Refuses a restore the target filesystem cannot hold with the margin.
pub(crate) fn check_space(target: &Path, needed: u64, (free, total): (u64, u64)) -> Result<()> {
    let margin = space_margin(needed, total);
    if free < needed.saturating_add(margin) {
        return Err(Error::Io {
            action: "restoring into",
            path: target.to_path_buf(),
            source: std::io::Error::new(
                std::io::ErrorKind::StorageFull,
                format!(
                    "not enough free disk space: needs {} ({} and a margin of {}), {} free on its filesystem (of {} in all); nothing was written",
                    size(needed.saturating_add(margin)),
                    size(needed),
                    size(margin),
                    size(free),
                    size(total)
                ),
            ),
        });
    }
    Ok(())
}

/// `3.2 MiB`: a byte count for a message.
fn size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    // Precision is not needed in a message: f64 is exact to 2^53 bytes.
    #[allow(clippy::cast_precision_loss)]
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn margin_is_the_larger_of_a_fifth_and_a_capped_twentieth_of_the_disk() {
        const GIB: u64 = 1 << 30;
        const MIB: u64 = 1 << 20;
        assert_eq!(space_margin(10 * GIB, 100 * GIB), 2 * GIB);
        assert_eq!(space_margin(100 * GIB, 1000 * GIB), 20 * GIB);
        assert_eq!(space_margin(GIB, 20 * GIB), 256 * MIB);
        // A tiny restore onto a large disk with a few GiB free is allowed.
        assert_eq!(space_margin(43, 252 * GIB), 256 * MIB);
        assert!(check_space(Path::new("/"), 43, (4 * GIB, 252 * GIB)).is_ok());
        assert_eq!(space_margin(0, 2 * MIB), 2 * MIB / 20);
        assert!(check_space(Path::new("/t"), GIB, (3 * GIB, 20 * GIB)).is_ok());
        let err = check_space(Path::new("/t"), GIB, (GIB + 200 * MIB, 20 * GIB)).unwrap_err();
        assert!(
            err.to_string().contains("not enough free disk space"),
            "{err}"
        );
        assert!(err.to_string().contains("/t"), "{err}");
    }

    #[test]
    fn identity_and_version_checks() {
        let backup = Metadata {
            controller_uuid: "c1".into(),
            model_uuid: "m1".into(),
            version: "2.8-beta1.1".into(),
            ..Default::default()
        };
        let np = crate::progress::NoProgress;
        let mut pre = Preflight::default();
        assert!(
            check_identity(&backup, &pre, &np).is_ok(),
            "nothing known, nothing checked"
        );
        pre.target.controller_uuid = "c2".into();
        let err = check_identity(&backup, &pre, &np).unwrap_err();
        assert!(
            err.to_string().contains("--allow-other-controller"),
            "{err}"
        );
        pre.allow_other_controller = true;
        pre.target.version = "2.8.0".into();
        let err = check_identity(&backup, &pre, &np).unwrap_err();
        assert!(err.to_string().contains("newer than the target"), "{err}");
        pre.target.version = "2.9.1".into();
        let err = check_identity(&backup, &pre, &np).unwrap_err();
        assert!(err.to_string().contains("--allow-downgrade"), "{err}");
        pre.allow_downgrade = true;
        assert!(check_identity(&backup, &pre, &np).is_ok());
        pre.target.version = "2.8-beta1.1".into();
        pre.allow_downgrade = false;
        assert!(check_identity(&backup, &pre, &np).is_ok(), "same version");
    }

    #[test]
    fn free_space_of_a_missing_path_uses_its_parent() {
        let dir = tempfile::tempdir().unwrap();
        let (free, total) = free_space(&dir.path().join("not/yet")).unwrap();
        assert!(total > 0 && free <= total);
        let (_, total) = free_space(Path::new("relative/not/there")).unwrap();
        assert!(
            total > 0,
            "a relative target is measured from the current directory"
        );
    }
}
