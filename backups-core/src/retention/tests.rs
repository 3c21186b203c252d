//! The policy's decisions, case by case against restic's semantics.

#![allow(clippy::unwrap_used)]

use time::format_description::well_known::Rfc3339;

use super::*;
use crate::metadata::{Verification, VerifyLevel};

const A: &str = "0b6e3c52-8f1a-4c1e-9d3a-2f6c9a7e5b10";
const B: &str = "e2a6a1e5-abea-4393-8593-5a45ae53ab97";

fn at(t: &str) -> OffsetDateTime {
    OffsetDateTime::parse(t, &Rfc3339).unwrap()
}

fn backup(started: &str, model: &str) -> Metadata {
    let t = at(started);
    Metadata {
        id: Some(BackupId::new(t, model).unwrap()),
        started: Some(t),
        model_uuid: model.into(),
        ..Metadata::default()
    }
}

fn labelled(started: &str, label: &str) -> Metadata {
    let mut m = backup(started, A);
    m.labels.push(label.into());
    m
}

fn verified(started: &str, ok: bool) -> Metadata {
    let mut m = backup(started, A);
    m.verification = Some(Verification {
        time: Some(at(started)),
        level: VerifyLevel::Stored,
        ok,
        detail: String::new(),
    });
    m
}

fn many(times: &[&str]) -> Vec<Metadata> {
    times.iter().map(|t| backup(t, A)).collect()
}

const NOW: &str = "2030-01-01T00:00:00Z";

fn decide(policy: &RetentionPolicy, backups: &[Metadata]) -> Decision {
    policy.apply_at(backups, at(NOW))
}

/// The start times kept and removed (as the ids' `YYYYMMDD-HHMMSS`).
fn stamps(d: &Decision) -> (Vec<String>, Vec<String>) {
    let stamp = |id: &BackupId| id.as_str()[..15].to_string();
    (
        d.keep.iter().map(|k| stamp(&k.id)).collect(),
        d.remove.iter().map(stamp).collect(),
    )
}

fn reasons_of(d: &Decision, i: usize) -> Vec<&str> {
    d.keep[i].reasons.iter().map(String::as_str).collect()
}

fn dur(s: &str) -> RetentionDuration {
    s.parse().unwrap()
}

#[test]
fn durations_parse_in_restics_format() {
    assert_eq!(dur("1y5m7d2h"), RetentionDuration::new(1, 5, 7, 2));
    assert_eq!(dur("2h7d"), RetentionDuration::new(0, 0, 7, 2));
    assert_eq!(dur(" 3d "), RetentionDuration::new(0, 0, 3, 0));
    assert_eq!(dur("2d3d"), RetentionDuration::new(0, 0, 3, 0), "last wins");
    assert!(dur("").is_zero());
    assert_eq!(dur("1y5m7d2h").to_string(), "1y5m7d2h");
    assert_eq!(dur("0y7d").to_string(), "7d");
    for (bad, why) in [
        ("5", "no unit found after number 5"),
        ("d", "no number found"),
        ("5x", "invalid unit 'x' found after number 5"),
        ("-1d", "cannot be negative"),
        ("99999999999d", "too large"),
    ] {
        let e = bad.parse::<RetentionDuration>().unwrap_err().to_string();
        assert!(e.contains(why) && e.contains(bad), "{bad}: {e}");
    }
}

#[test]
fn counts_parse_numbers_and_unlimited() {
    assert_eq!("3".parse::<KeepCount>().unwrap(), KeepCount::Count(3));
    assert_eq!(
        "unlimited".parse::<KeepCount>().unwrap(),
        KeepCount::Unlimited
    );
    assert!(KeepCount::default().is_off());
    for (bad, why) in [
        ("-1", "positive number"),
        ("many", "positive number"),
        ("", "positive number"),
        ("0", "0 keeps nothing"),
        ("4294967296", "too large"),
    ] {
        let e = bad.parse::<KeepCount>().unwrap_err().to_string();
        assert!(e.contains(why), "{bad}: {e}");
    }
    assert_eq!("none".parse::<GroupBy>().unwrap(), GroupBy::None);
    assert_eq!("model".parse::<GroupBy>().unwrap(), GroupBy::Model);
    assert!("host".parse::<GroupBy>().is_err());
}

#[test]
fn durations_go_back_as_gos_add_date_does() {
    // Feb 31 2024 runs into Mar 2 (a leap year), as Go normalises it.
    let cut = dur("1m").before(at("2024-03-31T10:00:00Z")).unwrap();
    assert_eq!(cut, at("2024-03-02T10:00:00Z"));
    let cut = dur("1y2d5h").before(at("2024-01-01T03:00:00Z")).unwrap();
    assert_eq!(cut, at("2022-12-29T22:00:00Z"));
    // Past any date the time crate can hold (with or without its
    // large-dates feature, which another dependency may turn on).
    assert_eq!(dur("2000000y").before(at("2024-01-01T00:00:00Z")), None);
}

#[test]
fn an_empty_policy_keeps_everything_and_says_so() {
    let policy = RetentionPolicy::new();
    assert!(policy.is_empty());
    assert!(!RetentionPolicy::new().with_keep_label("x").is_empty());
    assert!(
        RetentionPolicy::new()
            .with_keep_last(KeepCount::Count(0))
            .with_keep_within(dur("0d"))
            .is_empty()
    );
    let d = decide(
        &policy,
        &many(&["2024-01-02T00:00:00Z", "2024-01-01T00:00:00Z"]),
    );
    assert!(d.remove.is_empty());
    assert_eq!(reasons_of(&d, 1), ["policy is empty"]);
}

#[test]
fn keep_last_keeps_the_n_newest_whatever_their_input_order() {
    let mut list = many(&[
        "2024-01-03T00:00:00Z",
        "2024-01-05T00:00:00Z",
        "2024-01-01T00:00:00Z",
        "2024-01-04T00:00:00Z",
        "2024-01-02T00:00:00Z",
    ]);
    list.reverse();
    let d = decide(
        &RetentionPolicy::new().with_keep_last(KeepCount::Count(2)),
        &list,
    );
    let (keep, remove) = stamps(&d);
    assert_eq!(keep, ["20240105-000000", "20240104-000000"]);
    assert_eq!(
        remove,
        ["20240103-000000", "20240102-000000", "20240101-000000"]
    );
    assert_eq!(reasons_of(&d, 0), ["last backup", "newest backup"]);
    assert_eq!(reasons_of(&d, 1), ["last backup"]);
}

#[test]
fn keep_daily_keeps_the_newest_of_each_of_the_n_newest_days_with_backups() {
    let list = many(&[
        "2024-01-06T18:00:00Z",
        "2024-01-06T06:00:00Z",
        "2024-01-03T12:00:00Z",
        "2024-01-03T09:00:00Z",
        "2024-01-01T10:00:00Z",
        "2024-01-01T08:00:00Z",
    ]);
    let d = decide(
        &RetentionPolicy::new().with_keep_daily(KeepCount::Count(2)),
        &list,
    );
    let (keep, remove) = stamps(&d);
    // Days without backups (Jan 4, 5) do not count.
    assert_eq!(keep, ["20240106-180000", "20240103-120000"]);
    assert_eq!(remove.len(), 4);
    assert_eq!(reasons_of(&d, 1), ["daily backup"]);
}

#[test]
fn a_count_left_over_keeps_the_oldest_backup_too_as_restic_does() {
    let list = many(&[
        "2024-01-03T12:00:00Z",
        "2024-01-02T12:00:00Z",
        "2024-01-01T12:00:00Z",
        "2024-01-01T08:00:00Z",
    ]);
    let d = decide(
        &RetentionPolicy::new().with_keep_daily(KeepCount::Count(5)),
        &list,
    );
    let (keep, remove) = stamps(&d);
    assert_eq!(
        keep,
        [
            "20240103-120000",
            "20240102-120000",
            "20240101-120000",
            "20240101-080000"
        ]
    );
    assert!(remove.is_empty());
    assert_eq!(reasons_of(&d, 3), ["oldest daily backup"]);
}

#[test]
fn unlimited_keeps_the_newest_of_every_bucket() {
    let list = many(&[
        "2024-03-01T12:00:00Z",
        "2024-03-01T08:00:00Z",
        "2024-02-10T12:00:00Z",
        "2024-02-01T12:00:00Z",
        "2023-12-01T12:00:00Z",
        "2023-11-01T12:00:00Z",
    ]);
    let policy = RetentionPolicy::new().with_keep_monthly(KeepCount::Unlimited);
    let (keep, remove) = stamps(&decide(&policy, &list));
    assert_eq!(
        keep,
        [
            "20240301-120000",
            "20240210-120000",
            "20231201-120000",
            "20231101-120000"
        ]
    );
    assert_eq!(remove, ["20240301-080000", "20240201-120000"]);
}

#[test]
fn hourly_and_yearly_buckets() {
    let list = many(&[
        "2024-01-01T10:50:00Z",
        "2024-01-01T10:10:00Z",
        "2024-01-01T09:30:00Z",
        "2023-06-01T00:00:00Z",
        "2023-01-01T00:00:00Z",
        "2021-01-01T00:00:00Z",
    ]);
    let policy = RetentionPolicy::new().with_keep_hourly(KeepCount::Count(2));
    let (keep, _) = stamps(&decide(&policy, &list));
    assert_eq!(keep, ["20240101-105000", "20240101-093000"]);
    let policy = RetentionPolicy::new().with_keep_yearly(KeepCount::Count(2));
    let (keep, _) = stamps(&decide(&policy, &list));
    assert_eq!(keep, ["20240101-105000", "20230601-000000"]);
}

#[test]
fn weeks_are_iso_weeks() {
    // Mon 2024-12-30 and Sun 2025-01-05 are both in 2025-W01; Sun
    // 2024-12-29 and Sat 2024-12-28 in 2024-W52.
    let list = many(&[
        "2025-01-05T12:00:00Z",
        "2024-12-30T12:00:00Z",
        "2024-12-29T12:00:00Z",
        "2024-12-28T12:00:00Z",
        "2024-12-20T12:00:00Z",
    ]);
    let policy = RetentionPolicy::new().with_keep_weekly(KeepCount::Count(2));
    let (keep, remove) = stamps(&decide(&policy, &list));
    assert_eq!(keep, ["20250105-120000", "20241229-120000"]);
    assert_eq!(
        remove,
        ["20241230-120000", "20241228-120000", "20241220-120000"]
    );
}

#[test]
fn buckets_are_computed_in_utc() {
    // 01:00 on Jan 2 at +05:00 is 20:00 on Jan 1 in UTC: the same day as
    // the newer backup, so keep-daily 1 removes it.
    let mut east = backup("2024-01-01T20:00:00Z", A);
    east.started = Some(at("2024-01-02T01:00:00+05:00"));
    let list = vec![backup("2024-01-01T23:00:00Z", A), east];
    let d = decide(
        &RetentionPolicy::new().with_keep_daily(KeepCount::Count(1)),
        &list,
    );
    let (keep, remove) = stamps(&d);
    assert_eq!(keep, ["20240101-230000"]);
    assert_eq!(remove, ["20240101-200000"]);
}

#[test]
fn keep_within_is_measured_from_the_newest_backup_not_now() {
    let list = many(&[
        "2020-01-10T12:00:00Z",
        "2020-01-09T12:00:00Z",
        "2020-01-07T12:00:01Z",
        "2020-01-07T12:00:00Z",
        "2019-12-01T00:00:00Z",
    ]);
    let d = decide(&RetentionPolicy::new().with_keep_within(dur("3d")), &list);
    let (keep, remove) = stamps(&d);
    // Exactly 3d before the newest is not within (restic: strictly after).
    assert_eq!(
        keep,
        ["20200110-120000", "20200109-120000", "20200107-120001"]
    );
    assert_eq!(remove, ["20200107-120000", "20191201-000000"]);
    assert_eq!(reasons_of(&d, 1), ["within 3d"]);
}

#[test]
fn a_backup_in_the_future_is_not_the_newest_for_within() {
    let list = many(&[
        "2031-01-01T00:00:00Z",
        "2029-12-31T00:00:00Z",
        "2029-12-29T00:00:00Z",
    ]);
    let d = decide(&RetentionPolicy::new().with_keep_within(dur("1d")), &list);
    let (keep, remove) = stamps(&d);
    assert_eq!(keep, ["20310101-000000", "20291231-000000"]);
    assert_eq!(remove, ["20291229-000000"]);
    assert_eq!(reasons_of(&d, 0), ["within 1d", "newest backup"]);
}

#[test]
fn keep_within_daily_keeps_one_a_day_within_the_duration() {
    let list = many(&[
        "2024-01-10T12:00:00Z",
        "2024-01-10T06:00:00Z",
        "2024-01-09T18:00:00Z",
        "2024-01-09T06:00:00Z",
        "2024-01-07T18:00:00Z",
        "2024-01-07T06:00:00Z",
        "2024-01-06T18:00:00Z",
    ]);
    let d = decide(
        &RetentionPolicy::new().with_keep_within_daily(dur("3d")),
        &list,
    );
    let (keep, remove) = stamps(&d);
    // Within 3d: after Jan 7 12:00; the oldest is not kept additionally.
    assert_eq!(
        keep,
        ["20240110-120000", "20240109-180000", "20240107-180000"]
    );
    assert_eq!(
        remove,
        [
            "20240110-060000",
            "20240109-060000",
            "20240107-060000",
            "20240106-180000"
        ]
    );
    assert_eq!(reasons_of(&d, 1), ["daily within 3d"]);
}

#[test]
fn the_other_within_buckets() {
    let list = many(&[
        "2024-06-10T12:00:00Z",
        "2024-06-10T11:30:00Z",
        "2024-06-10T10:30:00Z",
        "2024-05-20T00:00:00Z",
        "2024-05-01T00:00:00Z",
        "2023-12-01T00:00:00Z",
        "2022-12-01T00:00:00Z",
    ]);
    let keep = |p: RetentionPolicy| stamps(&decide(&p, &list)).0;
    assert_eq!(
        keep(RetentionPolicy::new().with_keep_within_hourly(dur("1h"))),
        ["20240610-120000", "20240610-113000"]
    );
    assert_eq!(
        keep(RetentionPolicy::new().with_keep_within_weekly(dur("1m"))),
        ["20240610-120000", "20240520-000000"]
    );
    assert_eq!(
        keep(RetentionPolicy::new().with_keep_within_monthly(dur("1y"))),
        ["20240610-120000", "20240520-000000", "20231201-000000"]
    );
    assert_eq!(
        keep(RetentionPolicy::new().with_keep_within_yearly(dur("5y"))),
        ["20240610-120000", "20231201-000000", "20221201-000000"]
    );
}

#[test]
fn rules_add_up_and_every_reason_is_given() {
    let list = many(&[
        "2024-01-03T12:00:00Z",
        "2024-01-03T08:00:00Z",
        "2024-01-02T12:00:00Z",
        "2023-12-31T12:00:00Z",
    ]);
    let policy = RetentionPolicy::new()
        .with_keep_last(KeepCount::Count(2))
        .with_keep_daily(KeepCount::Count(2))
        .with_keep_monthly(KeepCount::Count(2));
    let d = decide(&policy, &list);
    let (keep, remove) = stamps(&d);
    assert_eq!(
        keep,
        [
            "20240103-120000",
            "20240103-080000",
            "20240102-120000",
            "20231231-120000"
        ]
    );
    assert!(remove.is_empty());
    assert_eq!(
        reasons_of(&d, 0),
        [
            "last backup",
            "daily backup",
            "monthly backup",
            "newest backup"
        ]
    );
    assert_eq!(reasons_of(&d, 1), ["last backup"]);
    assert_eq!(reasons_of(&d, 2), ["daily backup"]);
    assert_eq!(reasons_of(&d, 3), ["monthly backup"]);
}

#[test]
fn keep_label_keeps_every_backup_with_the_label() {
    let list = vec![
        backup("2024-01-04T00:00:00Z", A),
        labelled("2024-01-03T00:00:00Z", "release"),
        backup("2024-01-02T00:00:00Z", A),
        labelled("2024-01-01T00:00:00Z", "release"),
        labelled("2023-01-01T00:00:00Z", "other"),
    ];
    let d = decide(&RetentionPolicy::new().with_keep_label("release"), &list);
    let (keep, remove) = stamps(&d);
    assert_eq!(
        keep,
        ["20240104-000000", "20240103-000000", "20240101-000000"]
    );
    assert_eq!(remove, ["20240102-000000", "20230101-000000"]);
    assert_eq!(reasons_of(&d, 1), ["has label release"]);
}

#[test]
fn the_newest_the_newest_verified_and_pinned_backups_are_always_kept() {
    let list = vec![
        verified("2024-01-05T00:00:00Z", false),
        backup("2024-01-04T00:00:00Z", A),
        verified("2024-01-03T00:00:00Z", true),
        verified("2024-01-02T00:00:00Z", true),
        labelled("2024-01-01T00:00:00Z", PINNED_LABEL),
        backup("2023-01-01T00:00:00Z", A),
    ];
    let d = decide(&RetentionPolicy::new().with_keep_label("nothing"), &list);
    let (keep, remove) = stamps(&d);
    assert_eq!(
        keep,
        ["20240105-000000", "20240103-000000", "20240101-000000"]
    );
    assert_eq!(
        remove,
        ["20240104-000000", "20240102-000000", "20230101-000000"]
    );
    assert_eq!(reasons_of(&d, 0), ["newest backup"]);
    assert_eq!(reasons_of(&d, 1), ["newest verified backup"]);
    assert_eq!(reasons_of(&d, 2), ["pinned"]);
}

#[test]
fn each_model_is_its_own_group_unless_grouped_by_none() {
    let list = vec![
        backup("2024-01-04T00:00:00Z", A),
        backup("2024-01-03T00:00:00Z", B),
        backup("2024-01-02T00:00:00Z", A),
        backup("2024-01-01T00:00:00Z", B),
    ];
    let policy = RetentionPolicy::new().with_keep_last(KeepCount::Count(1));
    let d = decide(&policy, &list);
    let ids = |v: &[BackupId]| {
        v.iter()
            .map(|i| i.model_uuid().to_string())
            .collect::<Vec<_>>()
    };
    let kept: Vec<BackupId> = d.keep.iter().map(|k| k.id.clone()).collect();
    assert_eq!(ids(&kept), [A, B]);
    assert_eq!(stamps(&d).0, ["20240104-000000", "20240103-000000"]);
    assert_eq!(ids(&d.remove), [A, B]);

    let d = decide(&policy.with_group_by(GroupBy::None), &list);
    let (keep, remove) = stamps(&d);
    assert_eq!(keep, ["20240104-000000"]);
    assert_eq!(remove.len(), 3);
}

#[test]
fn a_backup_without_a_start_time_is_placed_by_its_id() {
    let mut old = backup("2024-01-01T00:00:00Z", A);
    old.started = None;
    let list = vec![old, backup("2024-01-02T00:00:00Z", A)];
    let d = decide(
        &RetentionPolicy::new().with_keep_last(KeepCount::Count(1)),
        &list,
    );
    let (keep, remove) = stamps(&d);
    assert_eq!(keep, ["20240102-000000"]);
    assert_eq!(remove, ["20240101-000000"]);
}

#[test]
fn every_backup_with_an_id_is_decided_once() {
    let mut list = many(&[
        "2024-01-03T00:00:00Z",
        "2024-01-02T00:00:00Z",
        "2024-01-01T00:00:00Z",
    ]);
    list.push(Metadata::default());
    let d = decide(
        &RetentionPolicy::new().with_keep_daily(KeepCount::Count(1)),
        &list,
    );
    assert_eq!(d.keep.len() + d.remove.len(), 3);
}
