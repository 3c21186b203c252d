//! A schedule's retention policy (the `retention` table, keys named like
//! `backups forget`'s flags), applied after each successful, verified run
//! to that schedule's own backups (label `schedule:<name>`): a manual
//! backup or another schedule's is never counted nor removed.

use std::str::FromStr;

use backups_core::RetentionPolicy;
use backups_core::retention::{GroupBy, KeepCount, RetentionDuration};

use crate::config::{Keep, Retention};
use crate::failure::Failure;

/// The policy the table describes; a bad value or an empty policy is a
/// usage error naming the schedule and the key.
pub fn policy(name: &str, r: &Retention) -> Result<RetentionPolicy, Failure> {
    let bad =
        |key: &str, e: String| Failure::usage(format!("schedule {name}: retention {key}: {e}"));
    let count = |key: &str, k: &Option<Keep>| -> Result<KeepCount, Failure> {
        match k {
            None => Ok(KeepCount::Count(0)),
            Some(Keep::Count(n)) => {
                KeepCount::from_str(&n.to_string()).map_err(|e| bad(key, e.to_string()))
            }
            Some(Keep::Word(w)) => KeepCount::from_str(w).map_err(|e| bad(key, e.to_string())),
        }
    };
    let dur = |key: &str, d: &Option<String>| -> Result<RetentionDuration, Failure> {
        match d {
            None => Ok(RetentionDuration::default()),
            Some(s) => RetentionDuration::from_str(s).map_err(|e| bad(key, e.to_string())),
        }
    };
    let group_by = match &r.group_by {
        None => GroupBy::default(),
        Some(g) => GroupBy::from_str(g).map_err(|e| bad("group_by", e.to_string()))?,
    };
    let mut policy = RetentionPolicy::new()
        .with_keep_last(count("keep_last", &r.keep_last)?)
        .with_keep_hourly(count("keep_hourly", &r.keep_hourly)?)
        .with_keep_daily(count("keep_daily", &r.keep_daily)?)
        .with_keep_weekly(count("keep_weekly", &r.keep_weekly)?)
        .with_keep_monthly(count("keep_monthly", &r.keep_monthly)?)
        .with_keep_yearly(count("keep_yearly", &r.keep_yearly)?)
        .with_keep_within(dur("keep_within", &r.keep_within)?)
        .with_keep_within_hourly(dur("keep_within_hourly", &r.keep_within_hourly)?)
        .with_keep_within_daily(dur("keep_within_daily", &r.keep_within_daily)?)
        .with_keep_within_weekly(dur("keep_within_weekly", &r.keep_within_weekly)?)
        .with_keep_within_monthly(dur("keep_within_monthly", &r.keep_within_monthly)?)
        .with_keep_within_yearly(dur("keep_within_yearly", &r.keep_within_yearly)?)
        .with_group_by(group_by);
    for l in &r.keep_label {
        policy = policy.with_keep_label(l.clone());
    }
    if policy.is_empty() {
        return Err(Failure::usage(format!(
            "schedule {name}: the retention table has no keep_* rule (remove it to keep everything)"
        )));
    }
    Ok(policy)
}
