//! A lock's mode and end (what a commit record records and what the
//! store reports); nothing here depends on the rest of the crate but errors.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::error::{Error, InputKind, Result};

/// How strict a lock is (S3's two retention modes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[non_exhaustive]
pub enum ImmutableMode {
    /// Users with `s3:BypassGovernanceRetention` may still remove the
    /// object (`--bypass-governance`) or shorten its lock.
    #[default]
    Governance,
    /// Nobody, not even the account's root user, can remove the object or
    /// shorten its lock before it ends.
    Compliance,
}

impl ImmutableMode {
    /// The value of S3's `x-amz-object-lock-mode` header.
    pub fn s3_name(self) -> &'static str {
        match self {
            ImmutableMode::Governance => "GOVERNANCE",
            ImmutableMode::Compliance => "COMPLIANCE",
        }
    }

    /// The mode an S3 header names (any case).
    pub fn from_s3(value: &str) -> Option<Self> {
        match value.to_ascii_uppercase().as_str() {
            "GOVERNANCE" => Some(ImmutableMode::Governance),
            "COMPLIANCE" => Some(ImmutableMode::Compliance),
            _ => None,
        }
    }
}

impl fmt::Display for ImmutableMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ImmutableMode::Governance => "governance",
            ImmutableMode::Compliance => "compliance",
        })
    }
}

impl FromStr for ImmutableMode {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "governance" => Ok(ImmutableMode::Governance),
            "compliance" => Ok(ImmutableMode::Compliance),
            other => Err(Error::InvalidInput {
                what: InputKind::Immutability,
                value: other.to_string(),
                reason: "an immutable mode is governance or compliance".into(),
            }),
        }
    }
}

/// A lock: its mode and when it ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
#[non_exhaustive]
pub struct ObjectLock {
    /// Governance or compliance.
    pub mode: ImmutableMode,
    /// When it ends (S3's `x-amz-object-lock-retain-until-date`).
    #[serde(with = "time::serde::rfc3339")]
    pub retain_until: OffsetDateTime,
}

impl ObjectLock {
    /// A lock of `mode` until `retain_until`.
    pub fn new(mode: ImmutableMode, retain_until: OffsetDateTime) -> Self {
        ObjectLock { mode, retain_until }
    }

    /// Whether it still holds at `now`.
    pub fn holds_at(&self, now: OffsetDateTime) -> bool {
        self.retain_until > now
    }

    /// `retain_until` in RFC 3339, to the second (`2026-12-31T23:59:59Z`).
    pub fn until_text(&self) -> String {
        format_until(self.retain_until)
    }

    /// The `Immutable` field of a backup's `list`/`show` JSON (the CLI's and
    /// the server's): `{"Mode","RetainUntil"}` to the second, or null.
    pub fn json(lock: Option<ObjectLock>) -> serde_json::Value {
        lock.map_or(
            serde_json::Value::Null,
            |l| serde_json::json!({"Mode": l.mode.to_string(), "RetainUntil": l.until_text()}),
        )
    }
}

/// `t` in RFC 3339 to the second, UTC (the form S3 takes in its headers).
fn format_until(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}
