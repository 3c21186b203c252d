//! Sparse files (issue 15): backed up as their data only, in GNU sparse
//! entries GNU tar reads, and restored with their holes.

use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::Path;

use crate::support::*;

const MIB: u64 = 1024 * 1024;

/// A 64 MiB + 1234 bytes file with three data islands, ending in data,
/// and a 32 MiB one ending in a hole.
fn sparse_tree(root: &Path) -> std::path::PathBuf {
    let tree = root.canonicalize().unwrap().join("src");
    std::fs::create_dir_all(&tree).unwrap();
    let img = std::fs::File::create(tree.join("disk.img")).unwrap();
    let pattern: Vec<u8> = (0..200 * 1024u32).map(|i| (i * 7 % 251) as u8).collect();
    img.write_all_at(&pattern[..4096], 0).unwrap();
    img.write_all_at(&pattern, 20 * MIB + 3).unwrap();
    img.write_all_at(&pattern[..1234], 64 * MIB).unwrap();
    let tail = std::fs::File::create(tree.join("tail.img")).unwrap();
    tail.write_all_at(&pattern[..5000], MIB).unwrap();
    tail.set_len(32 * MIB).unwrap();
    std::fs::write(tree.join("plain.txt"), b"not sparse\n").unwrap();
    tree
}

fn allocated(path: &Path) -> u64 {
    std::fs::metadata(path).unwrap().blocks() * 512
}

#[test]
fn sparse_files_round_trip_with_their_holes_through_gnu_tar_and_restore() {
    let env = Env::new();
    let tree = sparse_tree(env.path());
    if allocated(&tree.join("disk.img")) > 8 * MIB {
        return; // no holes on this filesystem: nothing sparse to back up
    }
    let id = env
        .ok(&[
            "create",
            "--path",
            tree.to_str().unwrap(),
            "--download",
            "b.tar.gz",
        ])
        .trim()
        .to_string();
    let meta = env.json(&["show", &id, "--json"]);
    assert_eq!(
        meta["FileBytes"],
        64 * MIB + 1234 + 32 * MIB + 11,
        "real sizes are counted"
    );

    // root.tar holds the data only, as GNU sparse entries GNU tar lists
    // and extracts with the holes.
    let gnu = env.path().join("gnu");
    std::fs::create_dir(&gnu).unwrap();
    sh("tar xzf ../b.tar.gz juju-backup/root.tar", &gnu);
    let root_tar = gnu.join("juju-backup/root.tar");
    let stored = std::fs::metadata(&root_tar).unwrap().len();
    assert!(stored < 2 * MIB, "root.tar is {stored} bytes");
    let listing = String::from_utf8(sh("tar tvf juju-backup/root.tar", &gnu).stdout).unwrap();
    let line = listing.lines().find(|l| l.ends_with("disk.img")).unwrap();
    assert!(line.contains(&(64 * MIB + 1234).to_string()), "{listing}");
    sh("mkdir out && tar xf juju-backup/root.tar -C out", &gnu);
    let rel = tree.strip_prefix("/").unwrap();
    for name in ["disk.img", "tail.img", "plain.txt"] {
        let out = gnu.join("out").join(rel).join(name);
        sh(
            &format!("cmp '{}' '{}'", out.display(), tree.join(name).display()),
            &gnu,
        );
    }
    assert!(allocated(&gnu.join("out").join(rel).join("disk.img")) < 4 * MIB);

    // Our restore: the same bytes, the holes left unallocated.
    let report = env.ok(&["restore", &id, "--target", "restored"]);
    assert!(report.starts_with("Restored 3 files"), "{report}");
    let restored = env.path().join("restored").join(rel);
    assert_eq!(snapshot(&restored), snapshot(&tree));
    for (name, size) in [("disk.img", 64 * MIB + 1234), ("tail.img", 32 * MIB)] {
        let path = restored.join(name);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), size);
        assert!(
            allocated(&path) < size / 16,
            "{name}: {} bytes allocated",
            allocated(&path)
        );
    }
    // A verify by digests (the manifest and every entry) passes too.
    env.ok(&["verify", &id]);
}
