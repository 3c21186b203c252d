//! Backup identifiers: `YYYYMMDD-HHMMSS.<model-uuid>`, Juju's scheme.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::OffsetDateTime;
use time::macros::format_description;

/// A validated backup id: the UTC start time to the second, a dot, and the
/// model UUID, e.g. `20200225-041241.e2a6a1e5-abea-4393-8593-5a45ae53ab97`.
///
/// The characters are restricted to `[0-9a-f-.]`, so an id is always safe
/// as an object key component.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BackupId(String);

impl BackupId {
    /// Builds the id Juju gives a backup started at `started` for `model_uuid`.
    pub fn new(started: OffsetDateTime, model_uuid: &str) -> Result<Self, InvalidId> {
        let started = started.to_offset(time::UtcOffset::UTC);
        let stamp = started
            .format(format_description!(
                "[year][month][day]-[hour][minute][second]"
            ))
            .map_err(|e| InvalidId {
                value: started.to_string(),
                reason: e.to_string(),
                start_time: true,
            })?;
        format!("{stamp}.{model_uuid}").parse()
    }

    /// The id as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The model UUID part.
    pub fn model_uuid(&self) -> &str {
        self.0.split_once('.').map(|(_, u)| u).unwrap_or_default()
    }
}

/// Why a backup id could not be parsed (or made from a start time).
/// Converts into [`crate::Error::InvalidInput`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidId {
    pub(crate) value: String,
    pub(crate) reason: String,
    /// The start time, not the id, was at fault.
    pub(crate) start_time: bool,
}

impl fmt::Display for InvalidId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = if self.start_time {
            "backup start time"
        } else {
            "backup id"
        };
        write!(f, "invalid {what} {:?}: {}", self.value, self.reason)
    }
}

impl std::error::Error for InvalidId {}

fn invalid(value: &str, reason: &str) -> InvalidId {
    InvalidId {
        value: value.to_string(),
        reason: format!("{reason} (expected YYYYMMDD-HHMMSS.<model-uuid>)"),
        start_time: false,
    }
}

impl FromStr for BackupId {
    type Err = InvalidId;

    fn from_str(s: &str) -> Result<Self, InvalidId> {
        let (stamp, uuid) = s.split_once('.').ok_or_else(|| invalid(s, "no '.'"))?;
        let b = stamp.as_bytes();
        let stamp_ok = b.len() == 15
            && b[8] == b'-'
            && b.iter()
                .enumerate()
                .all(|(i, c)| i == 8 || c.is_ascii_digit());
        if !stamp_ok {
            return Err(invalid(s, "bad timestamp"));
        }
        // A real date and time (no month 13, no 24:60:60).
        if time::PrimitiveDateTime::parse(
            stamp,
            format_description!("[year][month][day]-[hour][minute][second]"),
        )
        .is_err()
        {
            return Err(invalid(s, "its timestamp is not a valid date and time"));
        }
        let uuid_ok = uuid.len() == 36
            && uuid.bytes().enumerate().all(|(i, c)| match i {
                8 | 13 | 18 | 23 => c == b'-',
                _ => c.is_ascii_hexdigit() && !c.is_ascii_uppercase(),
            });
        if !uuid_ok {
            return Err(invalid(s, "bad model UUID"));
        }
        Ok(BackupId(s.to_string()))
    }
}

impl fmt::Display for BackupId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for BackupId {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for BackupId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn juju_scheme() {
        let id = BackupId::new(
            datetime!(2020-02-25 04:12:41.038760008 UTC),
            "e2a6a1e5-abea-4393-8593-5a45ae53ab97",
        )
        .unwrap();
        assert_eq!(
            id.as_str(),
            "20200225-041241.e2a6a1e5-abea-4393-8593-5a45ae53ab97"
        );
        assert_eq!(id.model_uuid(), "e2a6a1e5-abea-4393-8593-5a45ae53ab97");
    }

    #[test]
    fn rejects_paths_and_garbage() {
        for bad in [
            "",
            "../etc/passwd",
            "20200225-041241",
            "20200225-041241./e2a6a1e5-abea-4393-8593-5a45ae53ab9",
            "20200225-041241.e2a6a1e5-abea-4393-8593-5a45ae53ab97/..",
            "2020022x-041241.e2a6a1e5-abea-4393-8593-5a45ae53ab97",
            "20200225-041241.E2A6A1E5-abea-4393-8593-5a45ae53ab97",
            "20200225-246060.e2a6a1e5-abea-4393-8593-5a45ae53ab97",
            "20201325-041241.e2a6a1e5-abea-4393-8593-5a45ae53ab97",
            "20200230-041241.e2a6a1e5-abea-4393-8593-5a45ae53ab97",
        ] {
            let err = bad.parse::<BackupId>().unwrap_err();
            assert!(err.to_string().contains("invalid backup id"), "{err}");
        }
    }
}
