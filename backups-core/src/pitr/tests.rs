use super::*;

fn slice(after: (u32, u32), first: (u32, u32), last: (u32, u32), until: u32) -> SliceRecord {
    SliceRecord {
        replica_set: "rs0".into(),
        object: slice_stem(
            Position::new(first.0, first.1),
            Position::new(last.0, last.1),
        ),
        after: Position::new(after.0, after.1),
        first: Position::new(first.0, first.1),
        last: Position::new(last.0, last.1),
        complete_until: until,
        entries: 1,
        size: 0,
        sha256: String::new(),
        encrypted: false,
    }
}

fn chain(slices: Vec<SliceRecord>) -> ReplicaSetChain {
    ReplicaSetChain {
        name: "rs0".into(),
        slices,
        ..Default::default()
    }
}

#[test]
fn a_plan_takes_the_slices_after_the_base_up_to_the_time() {
    let c = chain(vec![
        slice((100, 1), (101, 1), (105, 3), 105),
        slice((105, 3), (106, 1), (110, 1), 110),
        slice((110, 1), (111, 1), (115, 1), 115),
    ]);
    let plan = c.plan(Position::new(103, 0), 108).expect("covered");
    let firsts: Vec<u32> = plan.iter().map(|s| s.first.seconds).collect();
    assert_eq!(firsts, vec![101, 106]);
    assert!(c.gaps().is_empty());
    let beyond = c.plan(Position::new(103, 0), 116).expect_err("beyond");
    assert!(
        beyond.reason.contains("beyond the last slice"),
        "{}",
        beyond.reason
    );
    let before = c.plan(Position::new(103, 0), 102).expect_err("before");
    assert!(
        before.reason.contains("before the base"),
        "{}",
        before.reason
    );
}

#[test]
fn a_missing_slice_is_a_gap_and_a_time_in_it_is_refused() {
    let c = chain(vec![
        slice((100, 1), (101, 1), (105, 3), 105),
        slice((110, 1), (111, 1), (115, 1), 115),
    ]);
    let gaps = c.gaps();
    assert_eq!(gaps.len(), 1);
    assert_eq!(gaps[0].reason, "missing slice");
    assert_eq!(
        (gaps[0].from, gaps[0].to),
        (Position::new(105, 3), Position::new(111, 1))
    );
    let err = c.plan(Position::new(100, 1), 108).expect_err("in the gap");
    assert!(err.reason.contains("in a gap"), "{}", err.reason);
    assert!(c.plan(Position::new(100, 1), 104).is_ok());
    let beyond = c.plan(Position::new(100, 1), 200).expect_err("beyond");
    assert!(
        beyond
            .reason
            .contains("beyond the last slice (complete until 1970-01-01T00:01:55Z)"),
        "{}",
        beyond.reason
    );
    // A base inside the later stretch restores from it.
    assert_eq!(c.plan(Position::new(110, 1), 115).map(|p| p.len()), Ok(1));
}

#[test]
fn positions_sort_as_their_keys_do() {
    let a = Position::new(9, 10);
    let b = Position::new(10, 1);
    assert!(a < b && a.key() < b.key());
    assert_eq!(Position::parse_key(&b.key()), Some(b));
    assert_eq!("10:1".parse::<Position>(), Ok(b));
    assert_eq!(
        Position::new(10, 0).just_before(),
        Position::new(9, u32::MAX)
    );
}

/// The bug that made the CLI test flaky: the slice before a gap claimed
/// (wrongly: the server had made an entry of that second visible late) to
/// hold every entry up to a second at the gap's end, and the plan trusted
/// the claim over the chain, which shows the missing entries come after
/// the slice's last one.
#[test]
fn a_time_at_a_gaps_end_is_refused_whatever_the_slice_before_claims() {
    let c = chain(vec![
        // Claims second 110 complete, though its last entry is at 105.
        slice((100, 1), (101, 1), (105, 3), 110),
        // Continues from 108:2, an entry of the missing slice.
        slice((108, 2), (109, 1), (115, 1), 115),
    ]);
    let gaps = c.gaps();
    assert_eq!(
        (gaps[0].from, gaps[0].to),
        (Position::new(105, 3), Position::new(109, 1))
    );
    for to in [105, 108, 109, 110] {
        let err = c.plan(Position::new(100, 1), to).expect_err("in the gap");
        assert!(err.reason.contains("in a gap"), "{to}: {}", err.reason);
        assert!(
            c.plan_from(Position::new(99, 0), Position::new(100, 1), to)
                .is_err(),
            "{to}"
        );
    }
    assert_eq!(c.plan(Position::new(100, 1), 104).map(|p| p.len()), Ok(1));
    assert_eq!(c.covered()[0].until, 104);
    // The stretch after the gap is trusted: nothing missing follows it.
    assert_eq!(c.covered()[1].until, 115);
}

/// A recorded gap (the oplog rolled over) at the end of a stretch caps it too.
#[test]
fn a_recorded_gap_ends_the_stretch_before_it() {
    let mut c = chain(vec![slice((100, 1), (101, 1), (105, 3), 108)]);
    c.recorded_gaps.push(Gap {
        from: Position::new(105, 3),
        to: Position::new(120, 1),
        reason: "oplog rolled over before it was read".into(),
    });
    assert_eq!(c.covered()[0].until, 104);
    assert!(c.plan(Position::new(100, 1), 106).is_err());
}

/// The other bug: the slices right after the base deleted, the chain
/// starts later, and no gap showed (gaps were looked for only between
/// slices).
#[test]
fn a_missing_first_slice_is_a_gap_from_the_base() {
    let c = chain(vec![slice((108, 2), (109, 1), (115, 1), 115)]);
    let base = Position::new(100, 1);
    // An older base (before the shipper started) does not make a gap.
    let gaps = c.gaps_for(&[Position::new(90, 0), base]);
    assert_eq!(gaps.len(), 1, "{gaps:?}");
    assert_eq!(gaps[0].reason, MISSING_SLICE);
    assert_eq!((gaps[0].from, gaps[0].to), (base, Position::new(109, 1)));
    let err = c.plan(base, 112).expect_err("in the gap");
    assert!(
        err.reason.contains("in a gap") && err.reason.contains("covering"),
        "{}",
        err.reason
    );
    // A base where the chain starts: no gap, and it restores.
    assert!(
        c.gaps_for(&[Position::new(90, 0), Position::new(108, 2)])
            .is_empty()
    );
    assert!(c.plan(Position::new(108, 2), 112).is_ok());
    // The rolled-over gap from the base is recorded: not counted twice.
    let mut r = c.clone();
    r.recorded_gaps.push(Gap {
        from: base,
        to: Position::new(108, 3),
        reason: "oplog rolled over before it was read".into(),
    });
    assert_eq!(r.gaps_for(&[base]).len(), 1);
}

fn base(end: (u32, u32), started: i64) -> Metadata {
    let mut m: Metadata = serde_json::from_str(r#"{"ID":"","FormatVersion":1}"#).expect("metadata");
    m.oplog_end = Some(format!("{}:{}", end.0, end.1));
    m.started = time::OffsetDateTime::from_unix_timestamp(started).ok();
    m
}

#[test]
fn forget_keeps_every_slice_a_kept_base_replays() {
    let c = chain(vec![
        slice((100, 1), (101, 1), (105, 3), 105),
        slice((105, 3), (106, 1), (110, 1), 110),
        slice((110, 1), (111, 1), (115, 1), 115),
    ]);
    // Started at 108, consistent at 109: its replay starts at 107:0, so
    // the slice ending at 110:1 holds entries it needs.
    let plan = forget_plan(std::slice::from_ref(&c), &[base((109, 0), 108)]);
    let removed: Vec<u32> = plan[0].remove.iter().map(|s| s.first.seconds).collect();
    assert_eq!(removed, vec![101]);
    assert_eq!(plan[0].kept, 2);
    assert_eq!(plan[0].cutoff, Some(Position::new(107, 0)));
    // The chain left starts before the kept base: no gap.
    let left = chain(c.slices[1..].to_vec());
    assert!(left.gaps_for(&[Position::new(109, 0)]).is_empty());
    // No kept base with a consistent point: every slice stays.
    let mut no_point = base((109, 0), 108);
    no_point.oplog_end = None;
    assert!(forget_plan(&[c], &[no_point])[0].remove.is_empty());
}

/// A raw oplog entry with `ts` after a few fields of other types.
fn entry(seconds: u32, ordinal: u32) -> Vec<u8> {
    let mut body = Vec::new();
    body.push(0x02);
    body.extend(b"op\0");
    body.extend(2i32.to_le_bytes());
    body.extend(b"i\0");
    body.push(0x03);
    body.extend(b"o\0");
    body.extend(5i32.to_le_bytes());
    body.push(0);
    body.push(0x11);
    body.extend(b"ts\0");
    body.extend(ordinal.to_le_bytes());
    body.extend(seconds.to_le_bytes());
    let mut doc = ((body.len() + 5) as i32).to_le_bytes().to_vec();
    doc.extend(body);
    doc.push(0);
    doc
}

#[test]
fn a_slice_read_back_must_hold_its_entries_in_its_range() {
    let s = slice((100, 1), (101, 1), (102, 2), 102);
    let mut plain = entry(101, 1);
    assert_eq!(lifecycle_count(&plain, &s), Ok(1));
    plain.extend(entry(102, 2));
    let mut two = s.clone();
    two.entries = 2;
    assert_eq!(lifecycle_count(&plain, &two), Ok(2));
    assert!(
        lifecycle_count(&plain, &s)
            .unwrap_err()
            .contains("record says 1")
    );
    let mut out_of_range = entry(101, 1);
    out_of_range.extend(entry(103, 1));
    assert!(
        lifecycle_count(&out_of_range, &two)
            .unwrap_err()
            .contains("outside")
    );
    assert!(
        lifecycle_count(&plain[..plain.len() - 3], &two)
            .unwrap_err()
            .contains("truncated")
    );
}

fn lifecycle_count(plain: &[u8], s: &SliceRecord) -> std::result::Result<u64, String> {
    lifecycle::count_entries(plain, s).map_err(|e| e.to_string())
}
