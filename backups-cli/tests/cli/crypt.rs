//! Encrypted backups and private stores: age encryption checked with
//! Debian's `age`, GNU tar and openssl; every bad input refused before
//! anything is written; store files unreadable by other users.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use crate::support::{BIN, Env, fixtures, sample_tree, sh, snapshot};

/// Repeated in a backed-up file; must never appear in stored bytes.
const MARKER: &str = "MARKER-juju-shared-secret-4b1d";

/// A tree with the marker in it (and the usual sample files).
fn secret_tree(env: &Env) -> std::path::PathBuf {
    let tree = sample_tree(env.path());
    std::fs::write(tree.join("etc/juju/shared-secret"), MARKER.repeat(500)).unwrap();
    tree
}

/// `backups key generate -o FILE`: the recipient printed, the file 0600.
pub(crate) fn generate_key(env: &Env, name: &str) -> String {
    let recipient = env.ok(&["key", "generate", "-o", name]).trim().to_string();
    assert!(recipient.starts_with("age1"), "{recipient}");
    let mode = std::fs::metadata(env.path().join(name))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "identity file mode");
    recipient
}

fn sha1_base64(path: &Path, dir: &Path) -> String {
    let out = sh(
        &format!("openssl dgst -sha1 -binary '{}' | base64", path.display()),
        dir,
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn stored_archive(env: &Env, id: &str) -> std::path::PathBuf {
    let name = env.json(&["show", id, "--json"])["Archive"]
        .as_str()
        .unwrap()
        .to_string();
    env.store().join(name)
}

#[test]
fn encrypted_backups_decrypt_with_debian_age_and_restore_only_with_the_key() {
    let env = Env::new();
    let tree = secret_tree(&env);
    let recipient = generate_key(&env, "key.txt");
    let id = env
        .ok(&[
            "create",
            "--path",
            tree.to_str().unwrap(),
            "--encrypt-to",
            &recipient,
        ])
        .trim()
        .to_string();
    // list and show need no identity; show names the recipient.
    assert!(env.ok(&["list"]).contains(&id));
    let meta = env.json(&["show", &id, "--json"]);
    assert_eq!(meta["Encryption"]["Recipients"][0], recipient.as_str());
    let plain_checksum = meta["Checksum"].as_str().unwrap().to_string();
    assert!(env.ok(&["show", &id]).contains(&plain_checksum));

    // The stored object: age, no plaintext.
    let stored = stored_archive(&env, &id);
    assert!(stored.to_str().unwrap().ends_with(".tar.gz.age"));
    let bytes = std::fs::read(&stored).unwrap();
    assert!(bytes.starts_with(b"age-encryption.org/v1"));
    assert!(
        !bytes.windows(MARKER.len()).any(|w| w == MARKER.as_bytes()),
        "the marker is not in the stored bytes"
    );

    // A plain download is the stored .age; Debian's age decrypts it into a
    // .tar.gz GNU tar reads, whose SHA-1 is show's plaintext checksum.
    env.ok(&["download", &id, "-o", "b.tar.gz.age"]);
    let out = sh("age -d -i key.txt -o b.tar.gz b.tar.gz.age", env.path());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        sha1_base64(&env.path().join("b.tar.gz"), env.path()),
        plain_checksum
    );
    let listing = sh("tar tzf b.tar.gz", env.path());
    assert!(String::from_utf8_lossy(&listing.stdout).contains("juju-backup/root.tar"));

    // --decrypt gives the same plain archive.
    env.ok(&[
        "download",
        &id,
        "--decrypt",
        "--identity",
        "key.txt",
        "-o",
        "p.tar.gz",
    ]);
    assert_eq!(
        sha1_base64(&env.path().join("p.tar.gz"), env.path()),
        plain_checksum
    );

    // Restore: refused without the key (exit 13), nothing written; with a
    // wrong key too; with the key, the same tree.
    let (code, err) = env.fail(&["restore", &id, "--target", "t"]);
    assert_eq!(code, 13, "{err}");
    assert!(err.contains("--identity"), "{err}");
    assert!(!env.path().join("t").exists());
    generate_key(&env, "other.txt");
    let (code, err) = env.fail(&["restore", &id, "--target", "t", "-i", "other.txt"]);
    assert_eq!(code, 13, "{err}");
    assert!(err.contains("other.txt"), "{err}");
    assert!(!env.path().join("t").exists());
    env.ok(&["restore", &id, "--target", "t", "--identity", "key.txt"]);
    let rel = tree.strip_prefix("/").unwrap();
    assert_eq!(snapshot(&env.path().join("t").join(rel)), snapshot(&tree));
    // From the downloaded .age file too, and via BACKUPS_IDENTITY_FILE.
    let out = env.run_with(
        &["restore", "--file", "b.tar.gz.age", "--target", "f"],
        &[("BACKUPS_IDENTITY_FILE", "key.txt")],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(snapshot(&env.path().join("f").join(rel)), snapshot(&tree));
    env.ok(&["remove", &id]);
}

#[test]
fn tampered_swapped_and_plain_archives_are_refused_before_anything_is_written() {
    let env = Env::new();
    let tree = secret_tree(&env);
    // Incompressible, so the stored object spans several age chunks.
    std::fs::write(
        tree.join("noise"),
        backups_core::test_util::noise(300_000, 7),
    )
    .unwrap();
    let recipient = generate_key(&env, "key.txt");
    let create = |extra: &[&str]| {
        let mut args = vec!["create", "--path", tree.to_str().unwrap()];
        args.extend_from_slice(extra);
        env.ok(&args).trim().to_string()
    };
    let id = create(&["--encrypt-to", &recipient]);
    let stored = stored_archive(&env, &id);
    let original = std::fs::read(&stored).unwrap();
    // A flipped byte in the first, a middle and the last 64 KiB chunk.
    let n = original.len();
    assert!(n > 3 * 65536, "several chunks ({n} bytes)");
    for at in [300, n / 2, n - 10] {
        let mut bytes = original.clone();
        bytes[at] ^= 0x01;
        std::fs::write(&stored, &bytes).unwrap();
        let (code, err) = env.fail(&["restore", &id, "--target", "t", "-i", "key.txt"]);
        assert_eq!(code, 5, "byte {at}: {err}");
        assert!(err.contains("mismatch"), "byte {at}: {err}");
        assert!(!env.path().join("t").exists(), "byte {at}");
        // The same file restored without a sidecar: age's authentication
        // stops it in the verify pass.
        std::fs::write(env.path().join("x.age"), &bytes).unwrap();
        let (code, err) = env.fail(&[
            "restore", "--file", "x.age", "--target", "t", "-i", "key.txt",
        ]);
        assert_ne!(code, 0, "byte {at}: {err}");
        assert!(!env.path().join("t").exists(), "byte {at}: {err}");
    }
    // Cut short: refused too.
    std::fs::write(&stored, &original[..n - 5000]).unwrap();
    let (code, _) = env.fail(&["restore", &id, "--target", "t", "-i", "key.txt"]);
    assert_eq!(code, 5);
    // Another backup's archive in its place, or a plain archive where the
    // sidecar says encrypted.
    let other = create(&["--encrypt-to", &recipient, "--label", "other"]);
    std::fs::copy(stored_archive(&env, &other), &stored).unwrap();
    let (code, _) = env.fail(&["restore", &id, "--target", "t", "-i", "key.txt"]);
    assert_eq!(code, 5);
    let plain = create(&[]);
    std::fs::copy(stored_archive(&env, &plain), &stored).unwrap();
    let (code, _) = env.fail(&["restore", &id, "--target", "t", "-i", "key.txt"]);
    assert_eq!(code, 5);
    assert!(!env.path().join("t").exists());
    // --require-encryption refuses the plain backup and a plain file.
    let (code, err) = env.fail(&["restore", &plain, "--target", "t", "--require-encryption"]);
    assert_eq!(code, 13, "{err}");
    env.ok(&["download", &plain, "-o", "plain.tar.gz"]);
    let (code, err) = env.fail(&[
        "restore",
        "--file",
        "plain.tar.gz",
        "--target",
        "t",
        "--require-encryption",
    ]);
    assert_eq!(code, 13, "{err}");
    assert!(!env.path().join("t").exists());
}

#[test]
fn ssh_keys_and_passphrases_encrypt_too() {
    let env = Env::new();
    let tree = secret_tree(&env);
    let out = sh("ssh-keygen -q -t ed25519 -N '' -f id_ed25519", env.path());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let public = std::fs::read_to_string(env.path().join("id_ed25519.pub")).unwrap();
    let id = env
        .ok(&[
            "create",
            "--path",
            tree.to_str().unwrap(),
            "--encrypt-to",
            public.trim(),
        ])
        .trim()
        .to_string();
    env.ok(&["restore", &id, "--target", "t", "-i", "id_ed25519"]);
    let rel = tree.strip_prefix("/").unwrap();
    assert_eq!(snapshot(&env.path().join("t").join(rel)), snapshot(&tree));
    // Debian's age takes the SSH key as identity too.
    env.ok(&["download", &id, "-o", "s.age"]);
    let out = sh(
        "age -d -i id_ed25519 s.age | tar tzf - >/dev/null",
        env.path(),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    std::fs::write(env.path().join("pass"), "correct horse battery staple\n").unwrap();
    let id = env
        .ok(&[
            "create",
            "--path",
            tree.to_str().unwrap(),
            "--passphrase-file",
            "pass",
            "--label",
            "pw",
        ])
        .trim()
        .to_string();
    let (code, _) = env.fail(&["restore", &id, "--target", "p"]);
    assert_eq!(code, 13);
    env.ok(&["restore", &id, "--target", "p", "--passphrase-file", "pass"]);
    assert_eq!(snapshot(&env.path().join("p").join(rel)), snapshot(&tree));
}

#[test]
fn uploads_encrypt_and_sidecars_keep_no_private_key() {
    let env = Env::new();
    let fixture = fixtures().join("valid-backup-ver-1.tar.gz");
    let fixture = fixture.to_str().unwrap();
    let (code, err) = env.fail(&["upload", fixture, "--require-encryption"]);
    assert_eq!(code, 13, "{err}");
    assert!(env.ok(&["list"]).contains("No backups"), "nothing stored");
    let recipient = generate_key(&env, "key.txt");
    let out = env.ok(&["upload", fixture, "--encrypt-to", &recipient]);
    let id = out.trim().rsplit(' ').next().unwrap().to_string();
    let meta = env.json(&["show", &id, "--json"]);
    assert!(meta["Encryption"].is_object(), "{meta}");
    // The sidecar on disk: no private key, but says one is in the archive.
    let sidecar = std::fs::read_to_string(env.store().join(format!("{id}.json"))).unwrap();
    assert!(!sidecar.contains("CAPrivateKey\":"), "{sidecar}");
    assert!(!sidecar.contains("BEGIN RSA PRIVATE KEY"), "{sidecar}");
    assert!(env.ok(&["show", &id]).contains("CAPrivateKey"));
    // The decrypted download is the fixture, byte for byte.
    env.ok(&[
        "download",
        &id,
        "--decrypt",
        "-i",
        "key.txt",
        "-o",
        "back.tar.gz",
    ]);
    assert_eq!(
        std::fs::read(env.path().join("back.tar.gz")).unwrap(),
        std::fs::read(fixture).unwrap()
    );
    // And to standard output, the same bytes.
    let piped = env.run(&["download", &id, "--decrypt", "-i", "key.txt", "-o", "-"]);
    assert!(piped.status.success(), "{piped:?}");
    assert_eq!(piped.stdout, std::fs::read(fixture).unwrap());
    // An .age file is not an archive to upload.
    env.ok(&["download", &id, "-o", "enc.age"]);
    let (code, err) = env.fail(&["upload", "enc.age"]);
    assert_eq!(code, 5, "{err}");
    assert!(err.contains("encrypted"), "{err}");
}

/// Runs the binary as `nobody` (uid 65534), the way another user of the
/// host would.
fn as_nobody(args: &[&str], dir: &Path) -> std::process::Output {
    Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", BIN])
        .args(args)
        .current_dir(dir)
        .env("HOME", dir)
        .env_remove("BACKUPS_STORE")
        .output()
        .unwrap()
}

#[test]
fn a_new_local_store_is_private_to_its_owner() {
    let env = Env::new();
    let tree = secret_tree(&env);
    let id = env
        .ok(&["create", "--path", tree.to_str().unwrap()])
        .trim()
        .to_string();
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&env.store()), 0o700, "store directory");
    assert_eq!(mode(&stored_archive(&env, &id)), 0o600, "archive");
    assert_eq!(
        mode(&env.store().join(format!("{id}.json"))),
        0o600,
        "sidecar"
    );

    // Another user of the host cannot read it (the temp dir itself is
    // opened up, so only the store's own modes protect it).
    if !is_root() {
        eprintln!("skipping the unprivileged-user part: not root, cannot switch users");
        return;
    }
    std::fs::set_permissions(env.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let store = env.store();
    let store = store.to_str().unwrap();
    let out = as_nobody(
        &[
            "--store",
            store,
            "download",
            &id,
            "-o",
            "/tmp/stolen.tar.gz",
        ],
        Path::new("/tmp"),
    );
    assert!(!out.status.success(), "nobody downloaded the backup");
    assert!(!Path::new("/tmp/stolen.tar.gz").exists());
    let out = as_nobody(&["--store", store, "list"], Path::new("/tmp"));
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains(&id),
        "nobody listed it"
    );
    // gc reports files someone opened up.
    std::fs::set_permissions(
        env.store().join(format!("{id}.json")),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let out = env.run(&["gc"]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("can be read by any user"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // With group access asked for: 0750 / 0640.
    let shared = env.path().join("shared");
    let shared_s = shared.to_str().unwrap().to_string();
    let out = Command::new(BIN)
        .args([
            "--store",
            &shared_s,
            "--store-option",
            "group_access=true",
            "--progress",
            "none",
            "create",
            "--path",
            tree.to_str().unwrap(),
        ])
        .env("BACKUPS_STATE_DIR", env.path().join("state"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(mode(&shared), 0o750);
}

fn is_root() -> bool {
    // The real uid, from /proc/self/status.
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1).map(|u| u == "0"))
        })
        .unwrap_or(false)
}
