//! Immutable backups: what a backup writes once (its archive and its
//! commit record, the sidecar) may be written under an object lock that
//! nobody holding the store's credentials can lift before it ends (S3
//! Object Lock, in governance or compliance mode).
//!
//! Labels, notes and verification records change after a backup is made,
//! so for a backup whose commit record is locked they are written as
//! annotations beside it (`<id>.annotations/<seq>.json`; the newest
//! readable one wins) instead of rewriting the locked record.
//!
//! ```
//! use backups_core::immutable::{Immutability, ImmutableMode};
//!
//! let imm: Immutability = Immutability::new("30d".parse().unwrap(), ImmutableMode::Governance);
//! assert_eq!(imm.to_string(), "30d (governance)");
//! ```

use std::fmt;

use time::OffsetDateTime;

use crate::error::{Error, InputKind, Result};
use crate::retention::{RetentionDuration, RetentionPolicy};

pub(crate) mod lock;

pub use self::lock::{ImmutableMode, ObjectLock};

/// What `--immutable-for DUR --immutable-mode MODE` asks: every object a
/// backup writes once is locked for `duration` from when it is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Immutability {
    /// How long (restic's duration format, `30d`, `1y`).
    pub duration: RetentionDuration,
    /// Governance (the default) or compliance.
    pub mode: ImmutableMode,
}

/// Longer than this, a lock is warned about (compliance cannot be undone).
const LONG_LOCK: RetentionDuration = RetentionDuration::years(10);

impl Immutability {
    /// Locks of `duration` in `mode`.
    pub fn new(duration: RetentionDuration, mode: ImmutableMode) -> Self {
        Immutability { duration, mode }
    }

    /// Refuses a zero duration (`--immutable-for 0d` locks nothing).
    pub fn check(&self) -> Result<()> {
        if self.duration.is_zero() {
            return Err(Error::InvalidInput {
                what: InputKind::Immutability,
                value: self.duration.to_string(),
                reason: "--immutable-for needs a duration of at least an hour (e.g. 30d)".into(),
            });
        }
        Ok(())
    }

    /// The lock of an object written at `now`.
    pub fn lock_at(&self, now: OffsetDateTime) -> Result<ObjectLock> {
        let until = self
            .duration
            .after(now)
            .ok_or_else(|| Error::InvalidInput {
                what: InputKind::Immutability,
                value: self.duration.to_string(),
                reason: "the lock would end out of range".into(),
            })?;
        Ok(ObjectLock::new(self.mode, until))
    }

    /// Warnings about this lock: longer than 10 years, or shorter than
    /// `retention` (a schedule's, named `schedule`) may keep a backup
    /// (retention would then keep a backup whose lock is gone).
    pub fn warnings(&self, schedule: &str, retention: Option<&RetentionPolicy>) -> Vec<String> {
        let now = OffsetDateTime::now_utc();
        let mut out = Vec::new();
        let ends = self.duration.after(now);
        if ends.is_none_or(|e| LONG_LOCK.after(now).is_some_and(|l| e > l)) {
            out.push(format!(
                "--immutable-for {} is longer than 10 years{}",
                self.duration,
                match self.mode {
                    ImmutableMode::Compliance => ": in compliance mode nothing can remove these backups or shorten their locks before then",
                    ImmutableMode::Governance => "",
                }
            ));
        }
        if let Some(policy) = retention {
            let kept = policy.longest_kept();
            let shorter = match (kept, ends) {
                (None, _) => true,
                (Some(k), Some(e)) => k.after(now).is_none_or(|k| k > e),
                (Some(_), None) => false,
            };
            if shorter && !policy.is_empty() {
                let keeps = kept.map_or("unlimited".to_string(), |k| k.to_string());
                out.push(format!(
                    "--immutable-for {} is shorter than schedule {schedule}'s retention may keep a backup (up to {keeps}): older backups it keeps are no longer locked",
                    self.duration
                ));
            }
        }
        out
    }
}

impl fmt::Display for Immutability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.duration, self.mode)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_ends_the_duration_after_now() {
        let now = time::macros::datetime!(2026-01-31 10:00 UTC);
        let imm = Immutability::new("1m1d2h".parse().unwrap(), ImmutableMode::Compliance);
        let lock = imm.lock_at(now).unwrap();
        // Go's AddDate: Jan 31 + 1 month is "Feb 31", March 3rd; then 1 day, 2 hours.
        assert_eq!(lock.until_text(), "2026-03-04T12:00:00Z");
        assert_eq!(lock.mode.s3_name(), "COMPLIANCE");
        assert!(lock.holds_at(now));
        assert!(!lock.holds_at(lock.retain_until));
    }

    #[test]
    fn warns_of_long_locks_and_of_retention_beyond_the_lock() {
        let long = Immutability::new("11y".parse().unwrap(), ImmutableMode::Compliance);
        let w = long.warnings("nightly", None);
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(w[0].contains("longer than 10 years"), "{w:?}");
        let short = Immutability::new("7d".parse().unwrap(), ImmutableMode::Governance);
        let monthly = RetentionPolicy::new().with_keep_monthly("3".parse().unwrap());
        let w = short.warnings("nightly", Some(&monthly));
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(w[0].contains("up to 3m"), "{w:?}");
        let daily = RetentionPolicy::new().with_keep_daily("7".parse().unwrap());
        let month = Immutability::new("1m".parse().unwrap(), ImmutableMode::Governance);
        assert!(month.warnings("nightly", Some(&daily)).is_empty());
        assert!(
            Immutability::new(RetentionDuration::default(), ImmutableMode::Governance)
                .check()
                .is_err()
        );
    }
}
