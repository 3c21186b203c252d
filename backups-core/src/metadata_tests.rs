//! Tests of [`super`]: Juju's formats, our additions, secrets.

use super::*;

const V0: &str = r#"{"ID":"","Checksum":"","ChecksumFormat":"","Size":0,"Stored":"0001-01-01T00:00:00Z","Started":"2020-02-25T04:12:41.038760008Z","Finished":"0001-01-01T00:00:00Z","Notes":"","Environment":"e2a6a1e5-abea-4393-8593-5a45ae53ab97","Machine":"0","Hostname":"juju-53ab97-0","Version":"2.8-beta1.1","Series":"bionic","CACert":"cert","CAPrivateKey":"key"}"#;

#[test]
fn reads_v0_environment_key() {
    let m = Metadata::from_json(V0.as_bytes(), "v0").unwrap();
    assert_eq!(m.format_version, 0);
    assert_eq!(m.model_uuid, "e2a6a1e5-abea-4393-8593-5a45ae53ab97");
    assert_eq!(m.id, None);
    assert_eq!(m.stored, None);
    assert_eq!(m.extra["CACert"], "cert");
    assert_eq!(
        m.derive_id("v0").unwrap().as_str(),
        "20200225-041241.e2a6a1e5-abea-4393-8593-5a45ae53ab97"
    );
    assert_eq!(
        format_time(m.started),
        "2020-02-25T04:12:41.038760008Z",
        "nanoseconds survive"
    );
}

#[test]
fn writes_v1_names_and_keeps_unknown_keys() {
    let m = Metadata::from_json(V0.as_bytes(), "v0").unwrap();
    let json: serde_json::Value = serde_json::from_slice(&m.to_json()).unwrap();
    assert_eq!(json["ModelUUID"], "e2a6a1e5-abea-4393-8593-5a45ae53ab97");
    assert!(json.get("Environment").is_none());
    assert_eq!(json["Stored"], "0001-01-01T00:00:00Z");
    assert_eq!(json["ID"], "");
    assert_eq!(json["CAPrivateKey"], "key");
    let back = Metadata::from_json(&m.to_json(), "again").unwrap();
    assert_eq!(back, m);
}

#[test]
fn v2_may_omit_checksum_and_size() {
    let m = Metadata::from_json(
        br#"{"FormatVersion":2,"Started":"2024-01-02T03:04:05Z","ModelUUID":"1be318f6-9460-4fe1-8eb4-b1df2db23b53","Base":"ubuntu@22.04"}"#,
        "v2",
    )
    .unwrap();
    assert_eq!(m.format_version, 2);
    assert_eq!(m.size, 0);
    assert_eq!(m.series_or_base(), "ubuntu@22.04");
}

/// Found by fuzz/metadata: unknown keys holding floats changed in the
/// last digit on a write/read round trip (serde_json's fast float parse).
#[test]
fn unknown_float_values_round_trip_exactly() {
    let raw = br#"{"k":56666666666666666666666666666666666666666666666666,"f":0.1}"#;
    let m = Metadata::from_json(raw, "fuzz").unwrap();
    assert_eq!(Metadata::from_json(&m.to_json(), "again").unwrap(), m);
}

#[test]
fn garbage_names_the_source() {
    let err = Metadata::from_json(b"{not json", "juju-backup/metadata.json").unwrap_err();
    assert!(
        err.to_string().contains("juju-backup/metadata.json"),
        "{err}"
    );
}
