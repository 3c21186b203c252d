//! The values a retention policy is written in: counts (`7`,
//! `unlimited`) and restic's durations (`1y5m7d2h`).

use std::fmt;
use std::marker::PhantomData;
use std::str::FromStr;

use serde::de::{self, Deserialize, Deserializer, Visitor};

use time::{Date, Month, OffsetDateTime};

/// A retention count or duration that could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidRetention {
    value: String,
    reason: String,
}

impl InvalidRetention {
    pub(super) fn new(value: &str, reason: impl Into<String>) -> Self {
        InvalidRetention {
            value: value.to_string(),
            reason: reason.into(),
        }
    }
}

impl fmt::Display for InvalidRetention {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid retention value {:?}: {}",
            self.value, self.reason
        )
    }
}

impl std::error::Error for InvalidRetention {}

/// How many buckets a `--keep-*` count keeps: a number (0 is off) or
/// `unlimited` (every bucket).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeepCount {
    /// The newest backup of each of the N most recent buckets.
    Count(u32),
    /// The newest backup of every bucket.
    Unlimited,
}

impl Default for KeepCount {
    fn default() -> Self {
        KeepCount::Count(0)
    }
}

impl KeepCount {
    /// Whether this count keeps anything.
    pub fn is_off(self) -> bool {
        self == KeepCount::Count(0)
    }
}

impl FromStr for KeepCount {
    type Err = InvalidRetention;

    /// `unlimited` or a positive number (`0` keeps nothing: refused).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let why = match s.parse::<u32>() {
            _ if s == "unlimited" => return Ok(KeepCount::Unlimited),
            Ok(0) => "0 keeps nothing: give at least 1 (or `unlimited`), or leave it out".into(),
            Ok(n) => return Ok(KeepCount::Count(n)),
            Err(e) if *e.kind() == std::num::IntErrorKind::PosOverflow => {
                format!("too large (at most {})", u32::MAX)
            }
            Err(_) => "expected a positive number or `unlimited`".into(),
        };
        Err(InvalidRetention::new(s, why))
    }
}

impl fmt::Display for KeepCount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeepCount::Count(n) => write!(f, "{n}"),
            KeepCount::Unlimited => f.write_str("unlimited"),
        }
    }
}

/// restic's duration: years, months, days and hours, written like
/// `1y5m7d2h` (any order; a unit given twice keeps the last; the empty
/// string is zero, which is off).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RetentionDuration {
    years: u32,
    months: u32,
    days: u32,
    hours: u32,
}

impl RetentionDuration {
    /// A duration of so many years, months, days and hours.
    pub fn new(years: u32, months: u32, days: u32, hours: u32) -> Self {
        RetentionDuration {
            years,
            months,
            days,
            hours,
        }
    }

    /// A duration of `years` years.
    pub const fn years(years: u32) -> Self {
        RetentionDuration {
            years,
            months: 0,
            days: 0,
            hours: 0,
        }
    }

    /// Whether every part is zero (the duration keeps nothing).
    pub fn is_zero(&self) -> bool {
        *self == RetentionDuration::default()
    }

    /// The point this duration before `t`, as Go's
    /// `t.AddDate(-y, -m, -d).Add(-h hours)` computes it (a day past the
    /// end of a month runs into the next); `None` when out of range (then
    /// every backup is within).
    pub(super) fn before(&self, t: OffsetDateTime) -> Option<OffsetDateTime> {
        self.shift(t, -1)
    }

    /// The point this duration after `t`, as Go's
    /// `t.AddDate(y, m, d).Add(h hours)` computes it (how long an object
    /// lock of this duration lasts); `None` when out of range.
    pub fn after(&self, t: OffsetDateTime) -> Option<OffsetDateTime> {
        self.shift(t, 1)
    }

    /// `t` moved by this duration, forward (`sign` 1) or back (-1).
    fn shift(&self, t: OffsetDateTime, sign: i64) -> Option<OffsetDateTime> {
        let months = i64::from(t.year()) * 12 + i64::from(u8::from(t.month())) - 1
            + sign * (i64::from(self.years) * 12 + i64::from(self.months));
        let year = i32::try_from(months.div_euclid(12)).ok()?;
        let month = Month::try_from(u8::try_from(months.rem_euclid(12) + 1).ok()?).ok()?;
        let first = Date::from_calendar_date(year, month, 1).ok()?;
        let offset = i64::from(t.day()) - 1 + sign * i64::from(self.days);
        let date = first.checked_add(time::Duration::days(offset))?;
        date.with_time(t.time())
            .assume_utc()
            .checked_add(time::Duration::hours(sign * i64::from(self.hours)))
    }
}

impl FromStr for RetentionDuration {
    type Err = InvalidRetention;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let mut d = RetentionDuration::default();
        let mut rest = input.trim();
        while !rest.is_empty() {
            if rest.starts_with('-') {
                return Err(InvalidRetention::new(
                    input,
                    "a duration cannot be negative",
                ));
            }
            let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
            if digits == 0 {
                return Err(InvalidRetention::new(
                    input,
                    "no number found (expected e.g. 1y5m7d2h)",
                ));
            }
            let num: u32 = rest[..digits]
                .parse()
                .map_err(|_| InvalidRetention::new(input, "number too large"))?;
            rest = &rest[digits..];
            let mut chars = rest.chars();
            match chars.next() {
                None => {
                    return Err(InvalidRetention::new(
                        input,
                        format!("no unit found after number {num} (y, m, d or h)"),
                    ));
                }
                Some('y') => d.years = num,
                Some('m') => d.months = num,
                Some('d') => d.days = num,
                Some('h') => d.hours = num,
                Some(c) => {
                    return Err(InvalidRetention::new(
                        input,
                        format!("invalid unit {c:?} found after number {num} (y, m, d or h)"),
                    ));
                }
            }
            rest = chars.as_str();
        }
        Ok(d)
    }
}

impl fmt::Display for RetentionDuration {
    /// As restic prints it: `1y5m7d2h`, zero parts left out.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (n, unit) in [
            (self.years, 'y'),
            (self.months, 'm'),
            (self.days, 'd'),
            (self.hours, 'h'),
        ] {
            if n != 0 {
                write!(f, "{n}{unit}")?;
            }
        }
        Ok(())
    }
}

/// Reads a value written as a string (`"unlimited"`, `"2d"`) or a bare
/// integer (`7`) through its `FromStr`, so a config file refuses exactly
/// what the command line refuses, with the same message.
struct ParsedVisitor<T>(PhantomData<T>);

impl<T: FromStr<Err = InvalidRetention>> Visitor<'_> for ParsedVisitor<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a number or a string")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
        v.parse().map_err(E::custom)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<T, E> {
        self.visit_str(&v.to_string())
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<T, E> {
        self.visit_str(&v.to_string())
    }
}

/// Deserializes `T` from a string or an integer through `FromStr`.
pub(super) fn deserialize_parsed<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: FromStr<Err = InvalidRetention>,
{
    d.deserialize_any(ParsedVisitor(PhantomData))
}

impl serde::Serialize for KeepCount {
    /// As it is written: `7` or `"unlimited"` (a string either way).
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl serde::Serialize for RetentionDuration {
    /// As it is written: `"1y5m7d2h"`.
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for KeepCount {
    /// `7` or `"unlimited"`; `0` is refused like `--keep-daily 0`.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        deserialize_parsed(d)
    }
}

impl<'de> Deserialize<'de> for RetentionDuration {
    /// restic's `"1y5m7d2h"`.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        deserialize_parsed(d)
    }
}
