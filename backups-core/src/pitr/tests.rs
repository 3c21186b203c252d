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
