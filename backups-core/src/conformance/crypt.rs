//! Encrypted backups on every store: the stored object is age ciphertext
//! holding none of the files' bytes, listing and showing need no key, a
//! restore needs the identity and gets the same tree, a decrypted download
//! is the plain archive whose SHA-1 the sidecar records, and tampered or
//! swapped ciphertext is refused before anything is written.

use crate::download::DownloadTo;
use std::sync::Arc;

use bytes::Bytes;
use object_store::{ObjectStoreExt, PutPayload};

use crate::backups::Backups;
use crate::catalog::StoreBackups;
use crate::crypt::AGE_MAGIC;
use crate::crypt::{Encryption, Identities, generate_identity};
use crate::digest::Hasher;
use crate::error::Error;
use crate::progress::NoProgress;
use crate::request::{RestoreRequest, RestoreSource};

use super::{archive_bytes, assert_same_tree, request};

/// A marker planted in a file, to look for in the stored bytes.
const MARKER: &[u8] = b"MARKER-the-controller-secret-7f3a";

/// The checks above, on a fresh store.
pub async fn encrypted_backups_round_trip_and_refuse_tampering(b: &StoreBackups) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let tree = tmp.path().join("tree");
    std::fs::create_dir_all(&tree).expect("mkdir");
    // Repeated so the marker survives in a compressed plain archive's window.
    std::fs::write(tree.join("secret.pem"), MARKER.repeat(1000)).expect("write");
    std::fs::write(tree.join("other"), vec![b'x'; 300_000]).expect("write");
    let tree = tree.canonicalize().expect("canonicalize");
    let (key_text, recipient) = generate_identity();
    let key = tmp.path().join("key.txt");
    std::fs::write(&key, key_text).expect("write key");
    let mut identities = Identities::none();
    identities.add_file(&key).expect("identity");

    let meta = b
        .create(
            request(vec![tree.clone()]).with_encryption(
                Encryption::to_recipients(std::slice::from_ref(&recipient)).expect("recipient"),
            ),
            Arc::new(NoProgress),
        )
        .await
        .expect("create encrypted");
    let id = meta.id.clone().expect("id");
    assert!(meta.archive.ends_with(".tar.gz.age"), "{}", meta.archive);
    let info = meta.encryption.clone().expect("sidecar says encrypted");
    assert_eq!(info.recipients, vec![recipient.clone()]);
    let listed = b.list().await.expect("list needs no key");
    assert_eq!(listed[0].encryption, Some(info.clone()));

    let stored = archive_bytes(b, &id).await;
    assert!(stored.starts_with(AGE_MAGIC), "stored bytes are age");
    assert!(
        !stored.windows(MARKER.len()).any(|w| w == MARKER),
        "no plaintext in the stored bytes"
    );
    assert_eq!(stored.len() as u64, info.stored_size);
    assert_eq!(meta.stored_size(), info.stored_size);

    // Without a key: refused, nothing written.
    let target = tmp.path().join("restored");
    let err = b
        .restore(
            RestoreRequest::new(RestoreSource::Id(id.clone()), &target),
            Arc::new(NoProgress),
        )
        .await
        .expect_err("no identity");
    assert!(matches!(err, Error::Encrypted { .. }), "{err}");
    assert!(!target.exists(), "nothing written without a key");

    // With the key: the same tree.
    b.restore(
        RestoreRequest::new(RestoreSource::Id(id.clone()), &target)
            .with_identities(identities.clone()),
        Arc::new(NoProgress),
    )
    .await
    .expect("restore with the identity");
    assert_same_tree(&tree, &target.join(tree.strip_prefix("/").expect("abs")));

    // Decrypted download: the plain archive Juju's checksum names.
    let plain = tmp.path().join("plain.tar.gz");
    b.download_decrypted(
        &id,
        identities.clone(),
        DownloadTo::File(&plain),
        Arc::new(NoProgress),
    )
    .await
    .expect("decrypted download");
    let bytes = std::fs::read(&plain).expect("read plain");
    let mut h = Hasher::default();
    h.update(&bytes);
    let digests = h.finish();
    assert_eq!(digests.sha1_base64, meta.checksum, "Juju's checksum");
    assert_eq!(digests.size, meta.size);
    assert_eq!(&bytes[..2], &[0x1f, 0x8b], "a gzip file");

    let plain_id = refuse_tampering(b, &meta, &stored, &tree, &identities, tmp.path()).await;
    let target = tmp.path().join("plain-restore");

    // --require-encryption refuses the plain backup.
    let err = b
        .restore(
            RestoreRequest::new(RestoreSource::Id(plain_id.clone()), &target)
                .with_require_encryption(true),
            Arc::new(NoProgress),
        )
        .await
        .expect_err("plain where encryption is required");
    assert!(matches!(err, Error::NotEncrypted { .. }), "{err}");
    b.remove(&id).await.expect("remove needs no key");
    b.remove(&plain_id).await.expect("remove");
}

/// A flipped byte in the first, a middle and the last chunk, then a plain
/// archive where the sidecar says encrypted: each refused before anything
/// is written. Returns the plain backup it made.
async fn refuse_tampering(
    b: &StoreBackups,
    meta: &crate::metadata::Metadata,
    stored: &Bytes,
    tree: &std::path::Path,
    identities: &Identities,
    tmp: &std::path::Path,
) -> crate::id::BackupId {
    // A flipped byte in the first, a middle and the last chunk, then a
    // plain archive where the sidecar says encrypted: each refused before
    // anything is written.
    let plain_meta = b
        .create(request(vec![tree.to_path_buf()]), Arc::new(NoProgress))
        .await
        .expect("plain create");
    let plain_id = plain_meta.id.clone().expect("id");
    let id = meta.id.clone().expect("id");
    let plain_stored = archive_bytes(b, &plain_id).await;
    let key_of = b.storage().archive_key(&id, meta);
    let flipped = |at: usize| {
        let mut tampered = stored.to_vec();
        tampered[at] ^= 0x40;
        (format!("byte {at} flipped"), Bytes::from(tampered))
    };
    let cases = [
        flipped(200),
        flipped(stored.len() / 2),
        flipped(stored.len() - 3),
        ("a plain archive".to_string(), plain_stored),
    ];
    for (i, (what, bytes)) in cases.into_iter().enumerate() {
        b.storage()
            .object_store()
            .put(&key_of, PutPayload::from(bytes))
            .await
            .expect("tamper");
        let target = tmp.join(format!("tampered-{i}"));
        let err = b
            .restore(
                RestoreRequest::new(RestoreSource::Id(id.clone()), &target)
                    .with_identities(identities.clone()),
                Arc::new(NoProgress),
            )
            .await
            .expect_err("tampered archive");
        assert!(
            matches!(err, Error::ChecksumMismatch { .. }),
            "{what}: {err}"
        );
        assert!(!target.exists(), "{what}: nothing written");
    }
    plain_id
}
