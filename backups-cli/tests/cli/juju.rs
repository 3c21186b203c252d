//! Real Juju archives (the fixtures): upload, show, download, restore.

use crate::support::*;

struct Fixture {
    file: &'static str,
    id: &'static str,
    checksum: &'static str,
    size: u64,
    model: &'static str,
}

const FIXTURES: [Fixture; 4] = [
    Fixture {
        file: "valid-backup.tar.gz",
        id: "20200225-041241.e2a6a1e5-abea-4393-8593-5a45ae53ab97",
        checksum: "CnlHI2qyBXXpMFLPCEBx7gwOtf0=",
        size: 16160,
        model: "e2a6a1e5-abea-4393-8593-5a45ae53ab97",
    },
    Fixture {
        file: "valid-backup-ver-1.tar.gz",
        id: "20200303-155649.1be318f6-9460-4fe1-8eb4-b1df2db23b53",
        checksum: "Re1CfBK94SfHPwpRQVhn+Y5pCtE=",
        size: 15031,
        model: "1be318f6-9460-4fe1-8eb4-b1df2db23b53",
    },
    Fixture {
        file: "valid-backup-ver-2.tar.gz",
        id: "20200303-155649.1be318f6-9460-4fe1-8eb4-b1df2db23b53",
        checksum: "ypmdKdCiehvT8VjowCvOUL3NrsM=",
        size: 14532,
        model: "1be318f6-9460-4fe1-8eb4-b1df2db23b53",
    },
    Fixture {
        file: "missing-root-backup.tar.gz",
        id: "20200225-041241.e2a6a1e5-abea-4393-8593-5a45ae53ab97",
        checksum: "2Fu8pY1V3SlYxc97UjBipoVGyfQ=",
        size: 3483,
        model: "e2a6a1e5-abea-4393-8593-5a45ae53ab97",
    },
];

#[test]
fn juju_archives_upload_show_download_restore() {
    for fx in &FIXTURES {
        let env = Env::new();
        let src = fixtures().join(fx.file);
        let out = env.ok(&["upload", src.to_str().unwrap()]);
        assert_eq!(
            out,
            format!("Uploaded backup file, creating backup ID {}\n", fx.id),
            "{}",
            fx.file
        );
        assert!(env.ok(&["list"]).contains(fx.id));

        let meta = env.json(&["show", fx.id, "--json"]);
        assert_eq!(meta["ID"], fx.id);
        assert_eq!(
            meta["FileBytes"].is_u64(),
            meta["FileCount"].is_u64(),
            "measured at upload wherever there is a root.tar"
        );
        assert_eq!(meta["Checksum"], fx.checksum, "{}", fx.file);
        assert_eq!(meta["Size"], fx.size);
        assert_eq!(meta["ModelUUID"], fx.model);
        assert_eq!(meta["Version"], "2.8-beta1.1");
        assert!(
            meta.get("CAPrivateKey").is_none(),
            "the CA key is never printed"
        );

        env.ok(&["download", fx.id, "-o", "copy.tar.gz"]);
        assert_eq!(
            std::fs::read(env.path().join("copy.tar.gz")).unwrap(),
            std::fs::read(&src).unwrap(),
            "{}",
            fx.file
        );

        if fx.file.starts_with("missing-root") {
            let (code, err) = env.fail(&["restore", fx.id, "--target", "t"]);
            assert_eq!(code, 5, "{err}");
            assert!(err.contains("juju-backup/root.tar"), "{err}");
            assert!(!env.path().join("t").exists());
            continue;
        }
        let report = env.ok(&["restore", fx.id, "--target", "ours"]);
        assert!(report.contains("1 symlinks"), "{report}");
        let gnu = env.path().join("gnu");
        std::fs::create_dir_all(gnu.join("root")).unwrap();
        sh(
            "tar xzf ../copy.tar.gz && tar xpf juju-backup/root.tar -C root",
            &gnu,
        );
        let ours = snapshot(&env.path().join("ours"));
        assert_eq!(ours, snapshot(&gnu.join("root")), "{}", fx.file);
        let link = ours
            .iter()
            .find(|(k, v)| k.starts_with("var/lib/juju/tools/machine-") && v.0 == 'l')
            .expect("tools symlink");
        assert!(
            link.1.2.starts_with("/var/lib/juju/tools/2.8-beta1"),
            "absolute symlink kept as it was: {link:?}"
        );
        assert_eq!(ours["var/lib/juju/server.pem"].1, 0o600);
    }
}

#[test]
fn upload_is_idempotent_and_refuses_other_bytes_under_the_same_id() {
    let env = Env::new();
    let valid = fixtures().join("valid-backup.tar.gz");
    env.ok(&["upload", valid.to_str().unwrap()]);
    let again = env.ok(&["upload", valid.to_str().unwrap()]);
    assert!(again.contains("already uploaded"), "{again}");
    let other = fixtures().join("missing-root-backup.tar.gz");
    let (code, err) = env.fail(&["upload", other.to_str().unwrap()]);
    assert_eq!(code, 4, "{err}");
    assert!(
        err.contains("already exists") && err.contains("CnlHI2qyBXXpMFLPCEBx7gwOtf0="),
        "{err}"
    );
    assert_eq!(env.json(&["list", "--json"]).as_array().unwrap().len(), 1);
}
