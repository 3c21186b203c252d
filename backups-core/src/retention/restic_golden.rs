//! restic's own golden cases for `ApplyPolicy`: its snapshot list, each of
//! its policies, and what restic keeps (testdata/restic_policy_golden.txt),
//! checked against [`RetentionPolicy::apply_at`].

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use time::format_description::well_known::Rfc3339;

use super::*;

/// restic's `testExpireSnapshots` (internal/data/snapshot_policy_test.go):
/// the time (`YYYY-MM-DD HH:MM:SS[.f]`, UTC) and tags of each snapshot,
/// in restic's order (which its stable sort keeps for equal times).
const RESTIC_SNAPSHOTS: &[(&str, &[&str])] = &[
    ("2014-09-01 10:20:30", &[]),
    ("2014-09-02 10:20:30", &[]),
    ("2014-09-05 10:20:30", &[]),
    ("2014-09-06 10:20:30", &[]),
    ("2014-09-08 10:20:30", &[]),
    ("2014-09-09 10:20:30", &[]),
    ("2014-09-10 10:20:30", &[]),
    ("2014-09-11 10:20:30", &[]),
    ("2014-09-20 10:20:30", &[]),
    ("2014-09-22 10:20:30", &[]),
    ("2014-08-08 10:20:30", &[]),
    ("2014-08-10 10:20:30", &[]),
    ("2014-08-12 10:20:30", &[]),
    ("2014-08-13 10:20:30", &[]),
    ("2014-08-13 10:20:30.1", &[]),
    ("2014-08-15 10:20:30", &[]),
    ("2014-08-18 10:20:30", &[]),
    ("2014-08-20 10:20:30", &[]),
    ("2014-08-21 10:20:30", &[]),
    ("2014-08-22 10:20:30", &[]),
    ("2014-10-01 10:20:30", &["foo"]),
    ("2014-10-02 10:20:30", &["foo"]),
    ("2014-10-05 10:20:30", &["foo"]),
    ("2014-10-06 10:20:30", &["foo"]),
    ("2014-10-08 10:20:30", &["foo"]),
    ("2014-10-09 10:20:30", &["foo"]),
    ("2014-10-10 10:20:30", &["foo"]),
    ("2014-10-11 10:20:30", &["foo"]),
    ("2014-10-20 10:20:30", &["foo"]),
    ("2014-10-22 10:20:30", &["foo"]),
    ("2014-11-08 10:20:30", &["foo"]),
    ("2014-11-10 10:20:30", &["foo"]),
    ("2014-11-12 10:20:30", &["foo"]),
    ("2014-11-13 10:20:30", &["foo"]),
    ("2014-11-13 10:20:30.1", &["bar"]),
    ("2014-11-15 10:20:30", &["foo", "bar"]),
    ("2014-11-18 10:20:30", &[]),
    ("2014-11-20 10:20:30", &[]),
    ("2014-11-21 10:20:30", &[]),
    ("2014-11-22 10:20:30", &[]),
    ("2015-09-01 10:20:30", &[]),
    ("2015-09-02 10:20:30", &[]),
    ("2015-09-05 10:20:30", &[]),
    ("2015-09-06 10:20:30", &[]),
    ("2015-09-08 10:20:30", &[]),
    ("2015-09-09 10:20:30", &[]),
    ("2015-09-10 10:20:30", &[]),
    ("2015-09-11 10:20:30", &[]),
    ("2015-09-20 10:20:30", &[]),
    ("2015-09-22 10:20:30", &[]),
    ("2015-08-08 10:20:30", &[]),
    ("2015-08-10 10:20:30", &[]),
    ("2015-08-12 10:20:30", &[]),
    ("2015-08-13 10:20:30", &[]),
    ("2015-08-13 10:20:30.1", &[]),
    ("2015-08-15 10:20:30", &[]),
    ("2015-08-18 10:20:30", &[]),
    ("2015-08-20 10:20:30", &[]),
    ("2015-08-21 10:20:30", &[]),
    ("2015-08-22 10:20:30", &[]),
    ("2015-10-01 10:20:30", &[]),
    ("2015-10-02 10:20:30", &[]),
    ("2015-10-05 10:20:30", &[]),
    ("2015-10-06 10:20:30", &[]),
    ("2015-10-08 10:20:30", &[]),
    ("2015-10-09 10:20:30", &[]),
    ("2015-10-10 10:20:30", &[]),
    ("2015-10-11 10:20:30", &[]),
    ("2015-10-20 10:20:30", &[]),
    ("2015-10-22 10:20:30", &[]),
    ("2015-10-22 10:20:30", &[]),
    ("2015-10-22 10:20:30", &["foo", "bar"]),
    ("2015-10-22 10:20:30", &["foo", "bar"]),
    ("2015-10-22 10:20:30", &["foo", "bar"]),
    ("2015-11-08 10:20:30", &[]),
    ("2015-11-10 10:20:30", &[]),
    ("2015-11-12 10:20:30", &[]),
    ("2015-11-13 10:20:30", &[]),
    ("2015-11-13 10:20:30.1", &[]),
    ("2015-11-15 10:20:30", &[]),
    ("2015-11-18 10:20:30", &[]),
    ("2015-11-20 10:20:30", &[]),
    ("2015-11-21 10:20:30", &[]),
    ("2015-11-22 10:20:30", &[]),
    ("2016-01-01 01:02:03", &[]),
    ("2016-01-01 01:03:03", &[]),
    ("2016-01-01 07:08:03", &[]),
    ("2016-01-03 07:02:03", &[]),
    ("2016-01-04 10:23:03", &[]),
    ("2016-01-04 11:23:03", &[]),
    ("2016-01-04 12:23:03", &[]),
    ("2016-01-04 12:24:03", &[]),
    ("2016-01-04 12:28:03", &[]),
    ("2016-01-04 12:30:03", &[]),
    ("2016-01-04 16:23:03", &[]),
    ("2016-01-05 09:02:03", &[]),
    ("2016-01-06 08:02:03", &[]),
    ("2016-01-07 10:02:03", &[]),
    ("2016-01-08 20:02:03", &[]),
    ("2016-01-09 21:02:03", &[]),
    ("2016-01-12 21:02:03", &[]),
    ("2016-01-12 21:08:03", &[]),
    ("2016-01-18 12:02:03", &[]),
];

const GOLDEN: &str = include_str!("testdata/restic_policy_golden.txt");

/// A snapshot as the golden file names it: its time and its tags.
type Named = (OffsetDateTime, Vec<String>);

fn restic_time(t: &str) -> OffsetDateTime {
    OffsetDateTime::parse(&format!("{}Z", t.replace(' ', "T")), &Rfc3339).unwrap()
}

/// restic's snapshots as backups. Equal times sort by id, newest first:
/// the model UUID counts down, so they stay in restic's order.
fn restic_backups() -> Vec<Metadata> {
    RESTIC_SNAPSHOTS
        .iter()
        .enumerate()
        .map(|(i, (t, tags))| {
            let t = restic_time(t);
            let model = format!("{:08x}-0000-4000-8000-000000000000", 0xffff - i);
            Metadata {
                id: Some(BackupId::new(t, &model).unwrap()),
                started: Some(t),
                model_uuid: model,
                labels: tags.iter().map(|s| s.to_string()).collect(),
                ..Metadata::default()
            }
        })
        .collect()
}

/// restic's ExpirePolicy, written as `forget` flags.
fn policy(spec: &str) -> RetentionPolicy {
    let count = |v: &str| match v {
        "-1" => KeepCount::Unlimited,
        n => KeepCount::Count(n.parse().unwrap()),
    };
    let mut p = RetentionPolicy::new().with_group_by(GroupBy::None);
    for flag in spec.split_whitespace() {
        let (k, v) = flag.split_once('=').unwrap();
        let d = || v.parse::<RetentionDuration>().unwrap();
        p = match k {
            "last" => p.with_keep_last(count(v)),
            "hourly" => p.with_keep_hourly(count(v)),
            "daily" => p.with_keep_daily(count(v)),
            "weekly" => p.with_keep_weekly(count(v)),
            "monthly" => p.with_keep_monthly(count(v)),
            "yearly" => p.with_keep_yearly(count(v)),
            "within" => p.with_keep_within(d()),
            "within-hourly" => p.with_keep_within_hourly(d()),
            "within-daily" => p.with_keep_within_daily(d()),
            "within-weekly" => p.with_keep_within_weekly(d()),
            "within-monthly" => p.with_keep_within_monthly(d()),
            "within-yearly" => p.with_keep_within_yearly(d()),
            "tag" => p.with_keep_label(v),
            other => panic!("unknown flag {other}"),
        };
    }
    p
}

fn named(m: &Metadata) -> Named {
    let mut tags = m.labels.clone();
    tags.sort();
    (m.started.unwrap(), tags)
}

/// The snapshots a `kept` column names, sorted.
fn expected(kept: &str, all: &[Metadata]) -> Vec<Named> {
    let mut newest: Vec<Named> = all.iter().map(named).collect();
    // Newest first, equal times in restic's order (as sorted by apply).
    newest.reverse();
    newest.sort_by_key(|n| std::cmp::Reverse(n.0));
    let lookup = |token: &str| -> Named {
        let (t, tags) = match token.split_once('[') {
            Some((t, tags)) => {
                let mut tags: Vec<String> = tags
                    .trim_end_matches(']')
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect();
                tags.sort();
                (t, Some(tags))
            }
            None => (token, None),
        };
        let t = OffsetDateTime::parse(t, &Rfc3339).unwrap();
        let matching: Vec<&Named> = newest
            .iter()
            .filter(|n| n.0 == t && tags.as_ref().is_none_or(|tags| &n.1 == tags))
            .collect();
        assert!(!matching.is_empty(), "no snapshot {token}");
        if tags.is_none() {
            assert_eq!(matching.len(), 1, "{token} names several snapshots");
        }
        matching[0].clone()
    };
    let mut out: Vec<Named> = if kept == "none" {
        Vec::new()
    } else if kept == "all" {
        newest.clone()
    } else if let Some(n) = kept.strip_prefix("newest ") {
        newest[..n.parse::<usize>().unwrap()].to_vec()
    } else if let Some(rest) = kept.strip_prefix("all except ") {
        let mut left = newest.clone();
        for token in rest.split_whitespace() {
            let gone = lookup(token);
            let i = left.iter().position(|n| *n == gone).unwrap();
            left.remove(i);
        }
        left
    } else {
        kept.split_whitespace().map(lookup).collect()
    };
    out.sort();
    out
}

/// The backups a decision keeps by the policy's rules (restic's
/// reasons), leaving out what only our protections keep.
fn kept_by_policy(d: &Decision, all: &[Metadata]) -> Vec<Named> {
    let ours = ["newest backup", "newest verified backup", PINNED_LABEL];
    let by_id: BTreeMap<&BackupId, &Metadata> =
        all.iter().map(|m| (m.id.as_ref().unwrap(), m)).collect();
    let mut out: Vec<Named> = d
        .keep
        .iter()
        .filter(|k| k.reasons.iter().any(|r| !ours.contains(&r.as_str())))
        .map(|k| named(by_id[&k.id]))
        .collect();
    out.sort();
    out
}

#[test]
fn every_restic_golden_case_keeps_what_restic_keeps() {
    let all = restic_backups();
    assert_eq!(all.len(), 103);
    let now = restic_time("2030-01-01 00:00:00");
    let mut checked = 0;
    for line in GOLDEN.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let cols: Vec<&str> = line.split('|').map(str::trim).collect();
        let (case, spec, kept) = (cols[0], cols[1], cols[2]);
        if kept == "skip" {
            continue;
        }
        let d = policy(spec).apply_at(&all, now);
        assert_eq!(d.keep.len() + d.remove.len(), all.len(), "case {case}");
        if spec.is_empty() {
            // restic keeps nothing by an empty policy; we keep everything
            // (and `backups forget` refuses one).
            assert!(d.remove.is_empty(), "case {case}");
            assert!(d.keep.iter().all(|k| k.reasons == ["policy is empty"]));
            checked += 1;
            continue;
        }
        let want = expected(kept, &all);
        let got = kept_by_policy(&d, &all);
        let fmt = |v: &[Named]| -> Vec<String> {
            v.iter()
                .map(|(t, tags)| format!("{}{tags:?}", t.format(&Rfc3339).unwrap()))
                .collect()
        };
        assert_eq!(fmt(&got), fmt(&want), "case {case}: {spec}");
        checked += 1;
    }
    assert_eq!(checked, 39, "every case but 19 was checked");
}

#[test]
fn keep_within_buckets_keeps_the_oldest_as_restic_does() {
    // restic's case 35: the oldest backup (2014-08-08) is within 9999y,
    // in the same year as a newer kept one; restic keeps it too.
    let all = restic_backups();
    let p = policy(
        "within=1h within-hourly=1d within-daily=7d within-weekly=1m within-monthly=1y within-yearly=9999y",
    );
    let d = p.apply_at(&all, restic_time("2030-01-01 00:00:00"));
    let oldest = d.keep.last().unwrap();
    assert_eq!(oldest.id.as_str()[..15].to_string(), "20140808-102030");
    assert_eq!(oldest.reasons, ["oldest yearly within 9999y"]);
}
