//! Secrets kept out of what is printed and stored beside the archive:
//! sidecars, `show`, `config show` (issue 20 items 6 and 7).

use serde_json::{Value, json};

use crate::support::*;

/// Issue 20 item 6: secrets nested in Juju's metadata, and token,
/// credential and API key names, stay in the archive only: not in the
/// sidecar, not in `show --json`, with or without `--encrypt-to`; their
/// paths are listed in `SecretsInArchive`.
#[test]
fn nested_metadata_secrets_stay_out_of_sidecars_and_show() {
    let env = Env::new();
    let recipient = env
        .ok(&["key", "generate", "-o", "key.txt"])
        .trim()
        .to_string();
    let mut meta = json!({
        "ID": "", "FormatVersion": 1, "ModelUUID": MODEL,
        "APIToken": "tok1",
        "Credentials": {"password": "nested1"},
        "Cloud": {"Region": "r1", "Auth": {"ApiKey": "key1", "User": "u1"}},
        "Items": [{"Name": "n1", "private_key": "pk1"}],
        "CAPrivateKey": "ca1",
        "CACert": "cert1",
    });
    let secrets = ["tok1", "nested1", "key1", "pk1", "ca1"];
    for (started, extra) in [
        ("2021-01-01T00:00:00Z", &[][..]),
        (
            "2021-01-02T00:00:00Z",
            &["--encrypt-to", recipient.as_str()][..],
        ),
    ] {
        meta["Started"] = started.into();
        let archive = gz_tar(&[
            ("juju-backup/metadata.json", meta.to_string().into_bytes()),
            ("juju-backup/root.tar", vec![0u8; 1024]),
        ]);
        std::fs::write(env.path().join("a.tar.gz"), archive).unwrap();
        let mut args = vec!["upload", "a.tar.gz"];
        args.extend_from_slice(extra);
        env.ok(&args);
        let id = first_id(&env);
        let sidecar = std::fs::read_to_string(env.store().join(format!("{id}.json"))).unwrap();
        let shown = env.ok(&["show", &id, "--json"]);
        let listed = env.ok(&["list", "--json"]);
        for secret in secrets {
            assert!(!sidecar.contains(secret), "{extra:?} sidecar: {sidecar}");
            assert!(!shown.contains(secret), "{extra:?} show: {shown}");
            assert!(!listed.contains(secret), "{extra:?} list: {listed}");
        }
        let v: Value = serde_json::from_str(&shown).unwrap();
        assert_eq!(
            v["SecretsInArchive"],
            json!([
                "APIToken",
                "CAPrivateKey",
                "Cloud.Auth.ApiKey",
                "Credentials",
                "Items[0].private_key"
            ]),
            "{shown}"
        );
        assert_eq!(v["Cloud"], json!({"Region": "r1", "Auth": {"User": "u1"}}));
        assert_eq!(v["CACert"], "cert1", "what is not secret is kept");
        let human = env.ok(&["show", &id]);
        assert!(human.contains("Cloud.Auth.ApiKey"), "{human}");
    }
}

/// Issue 20 item 7: `config show` redacts every secret store option and
/// the secret options of the MongoDB URI, by the rule error messages use.
#[test]
fn config_show_redacts_every_secret_option() {
    let env = Env::new();
    let options = [
        ("aws_sse_customer_key_base64", "sse-c-key"),
        ("azure_storage_encryption_key", "enc-key"),
        ("azure_storage_master_key", "master-key"),
        ("aws_session_token", "session-tok"),
        ("azure_storage_token", "az-tok"),
        ("google_service_account_secret", "g-secret"),
        ("proxy_password", "proxy-pw"),
    ];
    let mut args: Vec<String> = Vec::new();
    for (k, v) in options {
        args.push("--store-option".into());
        args.push(format!("{k}={v}"));
    }
    args.extend(["config", "show"].map(String::from));
    let uri = "mongodb://admin:mongo-pw@db:27017/?tls=true&tlsCertificateKeyFilePassword=tls-pw\
               &authMechanism=MONGODB-AWS&authMechanismProperties=AWS_SESSION_TOKEN:aws-tok";
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    for json_flag in [false, true] {
        let mut a = args.clone();
        if json_flag {
            a.push("--json");
        }
        let out = env.run_with(&a, &[("BACKUPS_MONGO_URI", uri)]);
        assert!(out.status.success(), "{out:?}");
        let out = String::from_utf8(out.stdout).unwrap();
        for secret in [
            "sse-c-key",
            "enc-key",
            "master-key",
            "session-tok",
            "az-tok",
            "g-secret",
            "proxy-pw",
            "mongo-pw",
            "tls-pw",
            "aws-tok",
        ] {
            assert!(!out.contains(secret), "{secret} shown: {out}");
        }
        assert!(out.contains("azure_storage_master_key"), "{out}");
        assert!(out.contains("tlsCertificateKeyFilePassword=***"), "{out}");
        assert!(out.contains("authMechanism=MONGODB-AWS"), "{out}");
    }
}
