//! Retention: which backups a policy keeps and which it removes, with
//! restic's `forget` policies and meanings, plus protections of our own.
//!
//! Pure: [`RetentionPolicy::apply`] looks at metadata only and changes
//! nothing; [`crate::StoreBackups::forget`] applies a policy to a store.
//!
//! As in restic, backups are sorted newest first and, for each `--keep-*`
//! count, a bucket (the hour, day, ISO week, month or year, here in UTC)
//! keeps its newest backup, in each of the N most recent buckets that have
//! backups; while a count is left over, the oldest backup is kept too, and
//! so it is when a `--keep-within-*` duration reaches back to it (restic's
//! "oldest" reasons). `within` durations are measured back from the newest backup that is not
//! in the future. Beyond restic, whatever the policy: the newest backup of
//! each group, the newest one that passed verification in each group, and
//! every backup labelled [`PINNED_LABEL`] or a pending restore needs are kept.

use std::collections::BTreeMap;
use std::str::FromStr;

use time::macros::format_description;
use time::{OffsetDateTime, PrimitiveDateTime, UtcOffset};

use crate::id::BackupId;
use crate::metadata::Metadata;

mod values;

pub use self::values::{InvalidRetention, KeepCount, RetentionDuration};

/// The label that keeps a backup whatever the policy says.
pub const PINNED_LABEL: &str = "pinned";

/// Which backups a policy is applied to together.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GroupBy {
    /// Each model UUID (one controller's history) on its own.
    #[default]
    Model,
    /// Every backup in the store as one group.
    None,
}

impl serde::Serialize for GroupBy {
    /// `"model"` or `"none"`.
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(match self {
            GroupBy::Model => "model",
            GroupBy::None => "none",
        })
    }
}

impl<'de> serde::Deserialize<'de> for GroupBy {
    /// `"model"` or `"none"`.
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        values::deserialize_parsed(d)
    }
}

impl FromStr for GroupBy {
    type Err = InvalidRetention;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "model" => Ok(GroupBy::Model),
            "none" => Ok(GroupBy::None),
            _ => Err(InvalidRetention::new(s, "expected `model` or `none`")),
        }
    }
}

/// The time buckets of restic's policies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Bucket {
    Last,
    Hourly,
    Daily,
    Weekly,
    Monthly,
    Yearly,
}

impl Bucket {
    /// In the order of [`RetentionPolicy`]'s counts.
    const ALL: [Bucket; 6] = [
        Bucket::Last,
        Bucket::Hourly,
        Bucket::Daily,
        Bucket::Weekly,
        Bucket::Monthly,
        Bucket::Yearly,
    ];
    /// In the order of [`RetentionPolicy`]'s within durations.
    const TIMED: [Bucket; 5] = [
        Bucket::Hourly,
        Bucket::Daily,
        Bucket::Weekly,
        Bucket::Monthly,
        Bucket::Yearly,
    ];

    /// The bucket `t` (the `nr`th newest backup) falls in.
    fn of(self, t: OffsetDateTime, nr: usize) -> i64 {
        let (y, m, d, h) = (
            i64::from(t.year()),
            i64::from(u8::from(t.month())),
            i64::from(t.day()),
            i64::from(t.hour()),
        );
        match self {
            Bucket::Last => i64::try_from(nr).unwrap_or(i64::MAX),
            Bucket::Hourly => y * 1_000_000 + m * 10_000 + d * 100 + h,
            Bucket::Daily => y * 10_000 + m * 100 + d,
            Bucket::Weekly => {
                let (iso_year, week, _) = t.to_iso_week_date();
                i64::from(iso_year) * 100 + i64::from(week)
            }
            Bucket::Monthly => y * 100 + m,
            Bucket::Yearly => y,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Bucket::Last => "last",
            Bucket::Hourly => "hourly",
            Bucket::Daily => "daily",
            Bucket::Weekly => "weekly",
            Bucket::Monthly => "monthly",
            Bucket::Yearly => "yearly",
        }
    }
}

/// A retention policy: restic's `forget` flags, and the grouping.
///
/// [`RetentionPolicy::new`] keeps nothing by policy ([`is_empty`]); the
/// `with_*` setters add rules, and a backup any rule keeps is kept.
///
/// [`is_empty`]: RetentionPolicy::is_empty
/// It also reads from a config table whose keys are named like
/// `backups forget`'s flags, refusing unknown keys and bad values as the
/// flags do:
///
/// ```
/// # use backups_core::RetentionPolicy;
/// # use backups_core::retention::{KeepCount, RetentionDuration};
/// let policy: RetentionPolicy = serde_json::from_str(
///     r#"{"keep_daily": 7, "keep_weekly": "unlimited", "keep_within": "2d"}"#,
/// ).unwrap();
/// assert_eq!(policy, RetentionPolicy::new()
///     .with_keep_daily(KeepCount::Count(7))
///     .with_keep_weekly(KeepCount::Unlimited)
///     .with_keep_within("2d".parse::<RetentionDuration>().unwrap()));
/// assert!(serde_json::from_str::<RetentionPolicy>(r#"{"keep_daily": 0}"#).is_err());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(from = "RetentionOptions")]
#[non_exhaustive]
pub struct RetentionPolicy {
    counts: [KeepCount; 6],
    within: RetentionDuration,
    within_buckets: [RetentionDuration; 5],
    labels: Vec<String>,
    group_by: GroupBy,
    pending_recovery: Vec<BackupId>,
    only_label: Option<String>,
}

/// A [`RetentionPolicy`] as the user writes it: the config table
/// (`retention = { keep_daily = 7 }`, unknown keys refused) and, with the
/// `clap` feature, `backups forget`'s `--keep-*` flags (`#[command(flatten)]`).
/// A key left out keeps nothing by its rule.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct RetentionOptions {
    /// Keep the N newest backups (`unlimited`: all).
    #[cfg_attr(feature = "clap", arg(long, value_name = "N"))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep_last: Option<KeepCount>,
    /// Keep the newest backup of each of the N newest hours with backups.
    #[cfg_attr(feature = "clap", arg(long, value_name = "N"))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep_hourly: Option<KeepCount>,
    /// Keep the newest backup of each of the N newest days with backups.
    #[cfg_attr(feature = "clap", arg(long, value_name = "N"))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep_daily: Option<KeepCount>,
    /// Keep the newest backup of each of the N newest ISO weeks with backups.
    #[cfg_attr(feature = "clap", arg(long, value_name = "N"))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep_weekly: Option<KeepCount>,
    /// Keep the newest backup of each of the N newest months with backups.
    #[cfg_attr(feature = "clap", arg(long, value_name = "N"))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep_monthly: Option<KeepCount>,
    /// Keep the newest backup of each of the N newest years with backups.
    #[cfg_attr(feature = "clap", arg(long, value_name = "N"))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep_yearly: Option<KeepCount>,
    /// Keep every backup less than DUR (e.g. 1y5m7d2h) older than the newest.
    #[cfg_attr(feature = "clap", arg(long, value_name = "DUR"))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep_within: Option<RetentionDuration>,
    /// Keep the newest backup of each hour within DUR of the newest.
    #[cfg_attr(feature = "clap", arg(long, value_name = "DUR"))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep_within_hourly: Option<RetentionDuration>,
    /// Keep the newest backup of each day within DUR of the newest.
    #[cfg_attr(feature = "clap", arg(long, value_name = "DUR"))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep_within_daily: Option<RetentionDuration>,
    /// Keep the newest backup of each ISO week within DUR of the newest.
    #[cfg_attr(feature = "clap", arg(long, value_name = "DUR"))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep_within_weekly: Option<RetentionDuration>,
    /// Keep the newest backup of each month within DUR of the newest.
    #[cfg_attr(feature = "clap", arg(long, value_name = "DUR"))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep_within_monthly: Option<RetentionDuration>,
    /// Keep the newest backup of each year within DUR of the newest.
    #[cfg_attr(feature = "clap", arg(long, value_name = "DUR"))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep_within_yearly: Option<RetentionDuration>,
    /// Keep every backup with this label (repeatable).
    #[cfg_attr(feature = "clap", arg(long, value_name = "L"))]
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keep_label: Vec<String>,
    /// Apply the policy to each model's backups (`model`, the default) or
    /// to all at once (`none`).
    #[cfg_attr(feature = "clap", arg(long, value_name = "model|none"))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group_by: Option<GroupBy>,
}

impl From<RetentionOptions> for RetentionPolicy {
    fn from(t: RetentionOptions) -> Self {
        let c = Option::unwrap_or_default;
        let mut policy = RetentionPolicy::new()
            .with_keep_last(c(t.keep_last))
            .with_keep_hourly(c(t.keep_hourly))
            .with_keep_daily(c(t.keep_daily))
            .with_keep_weekly(c(t.keep_weekly))
            .with_keep_monthly(c(t.keep_monthly))
            .with_keep_yearly(c(t.keep_yearly))
            .with_keep_within(t.keep_within.unwrap_or_default())
            .with_keep_within_hourly(t.keep_within_hourly.unwrap_or_default())
            .with_keep_within_daily(t.keep_within_daily.unwrap_or_default())
            .with_keep_within_weekly(t.keep_within_weekly.unwrap_or_default())
            .with_keep_within_monthly(t.keep_within_monthly.unwrap_or_default())
            .with_keep_within_yearly(t.keep_within_yearly.unwrap_or_default())
            .with_group_by(t.group_by.unwrap_or_default());
        for l in t.keep_label {
            policy = policy.with_keep_label(l);
        }
        policy
    }
}

/// Why one backup is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Kept {
    /// The backup.
    pub id: BackupId,
    /// restic's reasons, with "backup" for "snapshot" (`last backup`,
    /// `daily backup`, `within 7d`, `daily within 1m`, `has label L`), then
    /// ours (`newest backup`, `newest verified backup`, `pinned`, `pending-recovery`).
    pub reasons: Vec<String>,
}

/// What a policy decided: each backup with an id is in one list, newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Decision {
    /// The backups kept, with why.
    pub keep: Vec<Kept>,
    /// The backups to remove.
    pub remove: Vec<BackupId>,
}

/// What [`crate::StoreBackups::forget`] did.
#[derive(Debug)]
#[non_exhaustive]
pub struct ForgetReport {
    /// What the policy decided.
    pub decision: Decision,
    /// The backups of [`Decision::remove`] not removed, and why (the rest were).
    pub failed: Vec<(BackupId, crate::error::Error)>,
    /// The sidecars skipped as unreadable (not counted, not removed).
    pub unreadable: Vec<crate::metadata::UnreadableSidecar>,
}

/// One backup as the policy sees it.
struct Entry<'a> {
    id: &'a BackupId,
    time: OffsetDateTime,
    meta: &'a Metadata,
}

impl RetentionPolicy {
    /// A policy with no rule: it keeps only what is always kept.
    pub fn new() -> Self {
        Self::default()
    }

    fn with_count(mut self, bucket: Bucket, n: KeepCount) -> Self {
        self.counts[bucket as usize] = n;
        self
    }

    /// Keeps the N newest backups (`--keep-last`).
    pub fn with_keep_last(self, n: KeepCount) -> Self {
        self.with_count(Bucket::Last, n)
    }
    /// Keeps the newest backup of each of the N newest hours with backups.
    pub fn with_keep_hourly(self, n: KeepCount) -> Self {
        self.with_count(Bucket::Hourly, n)
    }
    /// Keeps the newest backup of each of the N newest days with backups.
    pub fn with_keep_daily(self, n: KeepCount) -> Self {
        self.with_count(Bucket::Daily, n)
    }
    /// Keeps the newest backup of each of the N newest ISO weeks with backups.
    pub fn with_keep_weekly(self, n: KeepCount) -> Self {
        self.with_count(Bucket::Weekly, n)
    }
    /// Keeps the newest backup of each of the N newest months with backups.
    pub fn with_keep_monthly(self, n: KeepCount) -> Self {
        self.with_count(Bucket::Monthly, n)
    }
    /// Keeps the newest backup of each of the N newest years with backups.
    pub fn with_keep_yearly(self, n: KeepCount) -> Self {
        self.with_count(Bucket::Yearly, n)
    }
    /// Keeps every backup started less than `d` before the newest.
    pub fn with_keep_within(mut self, d: RetentionDuration) -> Self {
        self.within = d;
        self
    }
    /// Keeps the newest backup of each hour within `d` of the newest.
    pub fn with_keep_within_hourly(mut self, d: RetentionDuration) -> Self {
        self.within_buckets[0] = d;
        self
    }
    /// Keeps the newest backup of each day within `d` of the newest.
    pub fn with_keep_within_daily(mut self, d: RetentionDuration) -> Self {
        self.within_buckets[1] = d;
        self
    }
    /// Keeps the newest backup of each ISO week within `d` of the newest.
    pub fn with_keep_within_weekly(mut self, d: RetentionDuration) -> Self {
        self.within_buckets[2] = d;
        self
    }
    /// Keeps the newest backup of each month within `d` of the newest.
    pub fn with_keep_within_monthly(mut self, d: RetentionDuration) -> Self {
        self.within_buckets[3] = d;
        self
    }
    /// Keeps the newest backup of each year within `d` of the newest.
    pub fn with_keep_within_yearly(mut self, d: RetentionDuration) -> Self {
        self.within_buckets[4] = d;
        self
    }
    /// Keeps every backup labelled `label` (may be given many times).
    pub fn with_keep_label(mut self, label: impl Into<String>) -> Self {
        self.labels.push(label.into());
        self
    }
    /// Which backups the policy is applied to together.
    pub fn with_group_by(mut self, group_by: GroupBy) -> Self {
        self.group_by = group_by;
        self
    }
    /// Keeps these backups whatever the policy (reason `pending-recovery`):
    /// those pending restore journals need (not a rule for `is_empty`).
    pub fn with_pending_recovery(mut self, ids: impl IntoIterator<Item = BackupId>) -> Self {
        self.pending_recovery.extend(ids);
        self
    }

    /// About how long the policy may keep a backup: the longest of its
    /// `within` durations and of its bucket counts as spans (7 daily: 7d,
    /// 4 weekly: 28d, 12 monthly: 12m...); `None` when a count is
    /// unlimited or a label keeps backups forever. `keep_last` is no span.
    pub fn longest_kept(&self) -> Option<RetentionDuration> {
        if !self.labels.is_empty() {
            return None;
        }
        let mut spans = vec![self.within];
        spans.extend(self.within_buckets);
        for (bucket, count) in Bucket::ALL.iter().zip(self.counts) {
            let n = match count {
                KeepCount::Count(n) => n,
                KeepCount::Unlimited if *bucket == Bucket::Last => continue,
                KeepCount::Unlimited => return None,
            };
            spans.push(match bucket {
                Bucket::Last => continue,
                Bucket::Hourly => RetentionDuration::new(0, 0, 0, n),
                Bucket::Daily => RetentionDuration::new(0, 0, n, 0),
                Bucket::Weekly => RetentionDuration::new(0, 0, n.saturating_mul(7), 0),
                Bucket::Monthly => RetentionDuration::new(0, n, 0, 0),
                Bucket::Yearly => RetentionDuration::new(n, 0, 0, 0),
            });
        }
        let now = OffsetDateTime::now_utc();
        spans.into_iter().max_by_key(|d| d.after(now))
    }

    /// Whether the policy has no rule at all (then it would keep only the
    /// protected backups; `backups forget` refuses it, and [`apply`]
    /// keeps everything, as restic does).
    ///
    /// [`apply`]: RetentionPolicy::apply
    pub fn is_empty(&self) -> bool {
        self.counts.iter().all(|c| c.is_off())
            && self.within.is_zero()
            && self.within_buckets.iter().all(RetentionDuration::is_zero)
            && self.labels.is_empty()
    }

    /// Decides which of `backups` to keep, `within` measured from the
    /// newest one not after now. Backups without an id (never the case in a
    /// store's listing) are left out of both lists.
    pub fn apply(&self, backups: &[Metadata]) -> Decision {
        self.apply_at(backups, OffsetDateTime::now_utc())
    }

    /// Applies the policy to only the backups labelled `label` (e.g. a
    /// schedule's `schedule:<name>`): the others are neither counted nor
    /// in the decision, so neither kept nor removed.
    pub fn with_only_label(mut self, label: impl Into<String>) -> Self {
        self.only_label = Some(label.into());
        self
    }

    /// [`RetentionPolicy::apply`] as if it were `now`.
    pub fn apply_at(&self, backups: &[Metadata], now: OffsetDateTime) -> Decision {
        let mut entries: Vec<Entry<'_>> = backups
            .iter()
            .filter(|meta| {
                self.only_label
                    .as_ref()
                    .is_none_or(|label| meta.labels.iter().any(|l| l == label))
            })
            .filter_map(|meta| {
                let id = meta.id.as_ref()?;
                Some(Entry {
                    id,
                    time: start_time(meta, id),
                    meta,
                })
            })
            .collect();
        entries.sort_by(|a, b| b.time.cmp(&a.time).then_with(|| b.id.cmp(a.id)));
        let mut groups: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
        for (i, e) in entries.iter().enumerate() {
            let key = match self.group_by {
                GroupBy::None => "",
                GroupBy::Model if e.meta.model_uuid.is_empty() => e.id.model_uuid(),
                GroupBy::Model => e.meta.model_uuid.as_str(),
            };
            groups.entry(key).or_default().push(i);
        }
        let mut reasons: Vec<Vec<String>> = vec![Vec::new(); entries.len()];
        for members in groups.values() {
            let group: Vec<&Entry<'_>> = members.iter().map(|&i| &entries[i]).collect();
            for (&i, r) in members.iter().zip(self.group_reasons(&group, now)) {
                reasons[i] = r;
            }
        }
        let mut decision = Decision::default();
        for (e, r) in entries.iter().zip(reasons) {
            if r.is_empty() {
                decision.remove.push(e.id.clone());
            } else {
                decision.keep.push(Kept {
                    id: e.id.clone(),
                    reasons: r,
                });
            }
        }
        decision
    }

    /// The reasons to keep each backup of one group (newest first); empty
    /// for a backup to remove. restic's `ApplyPolicy`, then ours.
    fn group_reasons(&self, group: &[&Entry<'_>], now: OffsetDateTime) -> Vec<Vec<String>> {
        if self.is_empty() {
            return vec![vec!["policy is empty".to_string()]; group.len()];
        }
        // restic: the newest backup that is not in the future.
        let latest = group.iter().map(|e| e.time).filter(|t| *t < now).max();
        let cutoff = |d: &RetentionDuration| latest.and_then(|t| d.before(t));
        let within = |t: OffsetDateTime, cut: Option<OffsetDateTime>| cut.is_none_or(|c| t > c);
        let mut counts = self.counts;
        let mut last: [Option<i64>; 6] = [None; 6];
        let mut last_within: [Option<i64>; 5] = [None; 5];
        let oldest = group.len().saturating_sub(1);
        let mut out = Vec::with_capacity(group.len());
        for (nr, e) in group.iter().enumerate() {
            let mut r = Vec::new();
            for l in &self.labels {
                if e.meta.labels.contains(l) {
                    r.push(format!("has label {l}"));
                }
            }
            if !self.within.is_zero() && within(e.time, cutoff(&self.within)) {
                r.push(format!("within {}", self.within));
            }
            for (i, &b) in Bucket::ALL.iter().enumerate() {
                if counts[i].is_off() {
                    continue;
                }
                let val = b.of(e.time, nr);
                // restic keeps the oldest too while a count is left.
                if last[i] != Some(val) || nr == oldest {
                    let prefix = oldest_prefix(last[i] == Some(val));
                    last[i] = Some(val);
                    if let KeepCount::Count(n) = &mut counts[i] {
                        *n -= 1;
                    }
                    r.push(format!("{prefix}{} backup", b.name()));
                }
            }
            for (i, b) in Bucket::TIMED.iter().enumerate() {
                let d = &self.within_buckets[i];
                if d.is_zero() || !within(e.time, cutoff(d)) {
                    continue;
                }
                let val = b.of(e.time, nr);
                // restic keeps the oldest backup within the duration too.
                if last_within[i] != Some(val) || nr == oldest {
                    let prefix = oldest_prefix(last_within[i] == Some(val));
                    last_within[i] = Some(val);
                    r.push(format!("{prefix}{} within {d}", b.name()));
                }
            }
            out.push(r);
        }
        // Ours, whatever the policy.
        if let Some(r) = out.first_mut() {
            r.push("newest backup".into());
        }
        let verified = group
            .iter()
            .position(|e| e.meta.verification.as_ref().is_some_and(|v| v.ok));
        if let Some(r) = verified.and_then(|i| out.get_mut(i)) {
            r.push("newest verified backup".into());
        }
        for (e, r) in group.iter().zip(out.iter_mut()) {
            if e.meta.labels.iter().any(|l| l == PINNED_LABEL) {
                r.push(PINNED_LABEL.into());
            }
            if self.pending_recovery.contains(e.id) {
                r.push("pending-recovery".into());
            }
        }
        out
    }
}

/// restic's reason prefix for the oldest backup, kept although its bucket
/// already has a newer one.
fn oldest_prefix(same_bucket: bool) -> &'static str {
    if same_bucket { "oldest " } else { "" }
}

/// A backup's start time in UTC: its metadata's, else its id's, else the
/// oldest time there is.
fn start_time(meta: &Metadata, id: &BackupId) -> OffsetDateTime {
    meta.started
        .or_else(|| {
            let stamp = id.as_str().split_once('.')?.0;
            PrimitiveDateTime::parse(
                stamp,
                format_description!("[year][month][day]-[hour][minute][second]"),
            )
            .ok()
            .map(PrimitiveDateTime::assume_utc)
        })
        .unwrap_or(PrimitiveDateTime::MIN.assume_utc())
        .to_offset(UtcOffset::UTC)
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod restic_golden;
