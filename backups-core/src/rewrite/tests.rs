use super::*;
use crate::database::dump_namespace;

fn rules(specs: &[&str]) -> Rewrites {
    Rewrites::parse(specs).unwrap()
}

#[test]
fn whole_tokens_only() {
    let rw = rules(&["10.0.0.5=10.0.9.9"]);
    for (text, want, n) in [
        ("10.0.0.5", "10.0.9.9", 1),
        ("10.0.0.5:17070", "10.0.9.9:17070", 1),
        ("- 10.0.0.5:17070\n", "- 10.0.9.9:17070\n", 1),
        ("\"10.0.0.5\",'10.0.0.5'", "\"10.0.9.9\",'10.0.9.9'", 2),
        ("https://10.0.0.5/x", "https://10.0.9.9/x", 1),
        ("10.0.0.50", "10.0.0.50", 0),
        ("110.0.0.5", "110.0.0.5", 0),
        ("10.0.0.5.1", "10.0.0.5.1", 0),
        ("a10.0.0.5", "a10.0.0.5", 0),
        ("10.0.0.5_x 10.0.0.5-y", "10.0.0.5_x 10.0.0.5-y", 0),
        ("é10.0.0.5é", "é10.0.9.9é", 1),
        ("10.0.0.510.0.0.5", "10.0.0.510.0.0.5", 0),
        ("", "", 0),
    ] {
        let (got, k) = rw.rewrite_str(text);
        assert_eq!((got.as_ref(), k), (want, n), "{text:?}");
        assert_eq!(rw.count(text), n, "{text:?}");
    }
    let hosts = rules(&["host-a=host-z"]);
    assert_eq!(hosts.rewrite_str("host-ab host-a").0, "host-ab host-z");
}

#[test]
fn unchanged_text_is_borrowed() {
    let rw = rules(&["10.0.0.5=10.0.9.9"]);
    assert!(matches!(rw.rewrite_str("10.0.0.50").0, Cow::Borrowed(_)));
}

#[test]
fn longest_old_first_in_one_pass() {
    // Overlapping rules: the longer OLD wins where both match.
    let rw = rules(&["10.0.0.5=A", "10.0.0.5:17070=B"]);
    assert_eq!(
        rw.rewrite_str("10.0.0.5:17070 10.0.0.5:37017").0,
        "B A:37017"
    );
    assert_eq!(rw.rules()[0].0, "10.0.0.5:17070");
    // Replaced text is not scanned again: a swap works.
    let swap = rules(&["a=b", "b=a"]);
    assert_eq!(swap.rewrite_str("a b a.b").0, "b a a.b");
    // NEW containing OLD does not loop.
    let grow = rules(&["x=x x"]);
    assert_eq!(grow.rewrite_str("x:x"), (Cow::Owned("x x:x x".into()), 2));
}

#[test]
fn bad_rules_are_refused_with_the_rule_in_the_message() {
    for (spec, why) in [
        ("10.0.0.5", "expected OLD=NEW"),
        ("=10.0.0.5", "OLD side"),
        ("a=a", "same"),
    ] {
        let err = Rewrites::parse([spec]).unwrap_err().to_string();
        assert!(
            err.contains("rewrite rule") && err.contains(spec) && err.contains(why),
            "{err}"
        );
    }
    let err = Rewrites::parse(["a=b", "a=c"]).unwrap_err().to_string();
    assert!(err.contains("also rewritten"), "{err}");
    assert!(
        Rewrites::parse(["a=b", "a=b"]).is_ok(),
        "the same rule twice"
    );
    assert_eq!(
        parse_rewrite_rule("a=b=c").unwrap(),
        ("a".into(), "b=c".into())
    );
}

#[test]
fn path_and_namespace_scopes() {
    let rw = rules(&["a=b"]);
    assert!(rw.applies_to_path("var/lib/juju/x") && rw.applies_to_namespace("juju.machines"));
    assert!(!rw.applies_to_namespace("admin.system.users"));
    let rw = rw
        .with_paths(&["/var/lib/juju/agents/*/agent.conf".into()])
        .unwrap()
        .with_namespaces(&["juju.*".into()], &["juju.logs".into()])
        .unwrap();
    assert!(rw.applies_to_path("var/lib/juju/agents/machine-0/agent.conf"));
    assert!(!rw.applies_to_path("var/lib/juju/server.pem"));
    assert!(rw.applies_to_namespace("juju.machines"));
    assert!(!rw.applies_to_namespace("juju.logs") && !rw.applies_to_namespace("other.x"));
    let err = rules(&["a=b"])
        .with_paths(&["a[".into()])
        .unwrap_err()
        .to_string();
    assert!(err.contains("path pattern") && err.contains("a["), "{err}");
}

#[test]
fn dump_namespaces_from_file_names() {
    assert_eq!(
        dump_namespace("juju/machines.bson").as_deref(),
        Some("juju.machines")
    );
    assert_eq!(
        dump_namespace("juju/a%2Fb.bson").as_deref(),
        Some("juju.a/b")
    );
    assert_eq!(dump_namespace("juju/m.metadata.json"), None);
    assert_eq!(dump_namespace("oplog.bson"), None);
}

/// A BSON document from (key, element type, value bytes) triples.
fn doc(elements: &[(&str, u8, Vec<u8>)]) -> Vec<u8> {
    let mut body = Vec::new();
    for (k, t, v) in elements {
        body.push(*t);
        body.extend_from_slice(k.as_bytes());
        body.push(0);
        body.extend_from_slice(v);
    }
    let mut out = ((body.len() + 5) as i32).to_le_bytes().to_vec();
    out.extend(body);
    out.push(0);
    out
}

fn string(s: &str) -> Vec<u8> {
    let mut v = ((s.len() + 1) as i32).to_le_bytes().to_vec();
    v.extend_from_slice(s.as_bytes());
    v.push(0);
    v
}

#[test]
fn bson_string_values_are_rewritten_keys_and_other_values_kept() {
    let rw = rules(&["10.0.0.5=10.0.99.99"]);
    let address = |v: &str| doc(&[("value", 0x02, string(v)), ("n", 0x10, vec![7, 0, 0, 0])]);
    let original = doc(&[
        ("10.0.0.5", 0x02, string("10.0.0.5")),
        ("double", 0x01, 1.5f64.to_le_bytes().to_vec()),
        ("oid", 0x07, vec![9; 12]),
        (
            "bin",
            0x05,
            [&3i32.to_le_bytes()[..], &[0], b"10."].concat(),
        ),
        ("code", 0x0D, string("10.0.0.5")),
        ("re", 0x0B, b"10.0.0.5\0i\0".to_vec()),
        ("null", 0x0A, vec![]),
        ("sub", 0x03, address("10.0.0.5:17070")),
        (
            "list",
            0x04,
            doc(&[
                ("0", 0x03, address("10.0.0.5")),
                ("1", 0x02, string("10.0.0.50")),
            ]),
        ),
        ("t", 0x11, vec![1; 8]),
        ("dec", 0x13, vec![2; 16]),
    ]);
    let expected = doc(&[
        ("10.0.0.5", 0x02, string("10.0.99.99")),
        ("double", 0x01, 1.5f64.to_le_bytes().to_vec()),
        ("oid", 0x07, vec![9; 12]),
        (
            "bin",
            0x05,
            [&3i32.to_le_bytes()[..], &[0], b"10."].concat(),
        ),
        ("code", 0x0D, string("10.0.0.5")),
        ("re", 0x0B, b"10.0.0.5\0i\0".to_vec()),
        ("null", 0x0A, vec![]),
        ("sub", 0x03, address("10.0.99.99:17070")),
        (
            "list",
            0x04,
            doc(&[
                ("0", 0x03, address("10.0.99.99")),
                ("1", 0x02, string("10.0.0.50")),
            ]),
        ),
        ("t", 0x11, vec![1; 8]),
        ("dec", 0x13, vec![2; 16]),
    ]);
    assert_eq!(rw.count_bson(&original), Ok(3));
    assert_eq!(rw.rewrite_bson(&original), Ok(Some((expected, 3))));
    let untouched = doc(&[("a", 0x02, string("10.0.0.50"))]);
    assert_eq!(rw.rewrite_bson(&untouched), Ok(None));
}

#[test]
fn malformed_bson_is_an_error_not_a_panic() {
    let rw = rules(&["a=b"]);
    let good = doc(&[("k", 0x02, string("a"))]);
    for cut in 0..good.len() {
        assert!(rw.rewrite_bson(&good[..cut]).is_err(), "cut at {cut}");
    }
    let mut bad_len = good.clone();
    bad_len[7] = 200; // the string's length
    assert!(rw.rewrite_bson(&bad_len).is_err());
    let unknown = doc(&[("k", 0x42, vec![])]);
    let err = rw.count_bson(&unknown).unwrap_err();
    assert!(err.contains("0x42"), "{err}");
    let mut deep = doc(&[("k", 0x02, string("a"))]);
    for _ in 0..300 {
        deep = doc(&[("d", 0x03, deep)]);
    }
    assert!(rw.count_bson(&deep).unwrap_err().contains("nested"));
}

#[test]
fn mutated_bson_never_panics_and_rewritten_output_is_well_formed() {
    let rw = rules(&["10.0.0.5=10.0.99.99", "host-a=h"]);
    let back = rules(&["10.0.99.99=10.0.0.5", "h=host-a"]);
    let address = |v: &str| doc(&[("value", 0x02, string(v)), ("n", 0x10, vec![7, 0, 0, 0])]);
    let original = doc(&[
        ("a", 0x02, string("host-a 10.0.0.5")),
        ("oid", 0x07, vec![9; 12]),
        ("sub", 0x03, address("10.0.0.5:17070")),
        ("list", 0x04, doc(&[("0", 0x03, address("host-a"))])),
        ("bin", 0x05, [&2i32.to_le_bytes()[..], &[0], b"10"].concat()),
    ]);
    // Rewriting there and back gives the very same bytes.
    let (there, n) = rw.rewrite_bson(&original).unwrap().unwrap();
    assert_eq!(n, 4);
    assert_eq!(
        back.rewrite_bson(&there).unwrap().unwrap(),
        (original.clone(), 4)
    );
    // Arbitrary damage: an error or a well-formed document, never a panic.
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for _ in 0..5000 {
        let mut bytes = original.clone();
        for _ in 0..1 + next() % 3 {
            let at = (next() % bytes.len() as u64) as usize;
            bytes[at] = next() as u8;
        }
        if next() % 4 == 0 {
            bytes.truncate((next() % bytes.len() as u64) as usize);
        }
        match rw.rewrite_bson(&bytes) {
            Ok(Some((out, n))) => {
                assert!(n > 0);
                assert_eq!(rw.count_bson(&out), Ok(0), "fully rewritten, well formed");
                let len = i32::from_le_bytes([out[0], out[1], out[2], out[3]]);
                assert_eq!(len as usize, out.len());
            }
            Ok(None) => assert_eq!(rw.count_bson(&bytes), Ok(0)),
            Err(_) => assert!(rw.count_bson(&bytes).is_err()),
        }
    }
}
