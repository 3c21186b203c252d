//! Sparse files end to end: scan, `root.tar` (its size computed up front),
//! the tar crate reading it back, the extractor restoring the holes, and
//! crafted sparse maps refused.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::Path;
use std::sync::Arc;

use super::reader::RootVisitor;
use super::root_tar::{RootTar, root_tar_size};
use crate::extract::{ExtractOptions, Extractor, RootCheck};
use crate::files::{EntryKind, FileSet};
use crate::progress::NoProgress;
use crate::sparse::MAX_SEGMENTS;

const MIB: u64 = 1024 * 1024;

/// A file of `size` bytes with `islands` of data `(offset, len)`.
fn sparse_file(path: &Path, size: u64, islands: &[(u64, usize)]) {
    let f = File::create(path).unwrap();
    for (i, (offset, len)) in islands.iter().enumerate() {
        f.write_all_at(&vec![(i % 250) as u8 + 1; *len], *offset)
            .unwrap();
    }
    f.set_len(size).unwrap();
}

fn root_tar_of(root: &Path) -> (Vec<u8>, Vec<crate::files::FileEntry>) {
    let scanned = FileSet::new(vec![root.to_path_buf()]).scan().unwrap();
    let expected = root_tar_size(&scanned.entries).unwrap();
    let mut bytes = Vec::new();
    RootTar::new(
        scanned.entries.clone(),
        Arc::default(),
        Arc::new(NoProgress),
    )
    .read_to_end(&mut bytes)
    .unwrap();
    assert_eq!(bytes.len() as u64, expected, "root_tar_size is exact");
    (bytes, scanned.entries)
}

#[test]
fn sparse_files_are_stored_as_their_data_and_restored_with_holes() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().canonicalize().unwrap().join("src");
    std::fs::create_dir(&root).unwrap();
    // Few islands (the header's 4 slots), many (extension blocks), one
    // ending in data at an odd size, one all hole, one plain file.
    sparse_file(
        &root.join("few"),
        16 * MIB,
        &[(0, 100), (5 * MIB, 5000), (9 * MIB + 3, 10)],
    );
    let many: Vec<(u64, usize)> = (0..60).map(|i| (i * 256 * 1024, 700)).collect();
    sparse_file(&root.join("many"), 16 * MIB, &many);
    sparse_file(&root.join("tail"), 8 * MIB + 77, &[(8 * MIB, 77)]);
    sparse_file(&root.join("hole"), 4 * MIB, &[]);
    std::fs::write(root.join("plain"), vec![9u8; 10_000]).unwrap();
    let (bytes, entries) = root_tar_of(&root);
    let sparse: Vec<&str> = entries
        .iter()
        .filter(|e| matches!(e.kind, EntryKind::Sparse { .. }))
        .map(|e| {
            e.name
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default()
        })
        .collect();
    if sparse.is_empty() {
        return; // a filesystem without holes here: nothing to check
    }
    assert_eq!(sparse, vec!["few", "hole", "many", "tail"]);
    assert!(
        (bytes.len() as u64) < 2 * MIB,
        "only data is stored: {}",
        bytes.len()
    );

    // The tar crate reads every file back byte for byte.
    let mut archive = tar::Archive::new(&bytes[..]);
    for e in archive.entries().unwrap() {
        let mut e = e.unwrap();
        let path = Path::new("/").join(e.path().unwrap());
        if e.header().entry_type().is_dir() {
            continue;
        }
        let mut data = Vec::new();
        e.read_to_end(&mut data).unwrap();
        assert!(data == std::fs::read(&path).unwrap(), "{}", path.display());
    }

    // The verify pass counts the real sizes and the holes.
    let mut check = RootCheck::new(ExtractOptions::default());
    check.visit(&mut &bytes[..]).unwrap();
    let real: u64 = [16 * MIB, 16 * MIB, 8 * MIB + 77, 4 * MIB, 10_000]
        .iter()
        .sum();
    assert_eq!(check.stats.bytes, real);
    assert!(check.stats.hole_bytes > real - 2 * MIB);

    // The extractor writes the data back and leaves the holes unallocated.
    let target = dir.path().join("target");
    let mut x = Extractor::new(&target, Arc::new(NoProgress)).unwrap();
    x.visit(&mut &bytes[..]).unwrap();
    assert_eq!(x.stats.bytes, real);
    let rel = root.strip_prefix("/").unwrap();
    for name in ["few", "many", "tail", "hole", "plain"] {
        let restored = target.join(rel).join(name);
        assert!(
            std::fs::read(&restored).unwrap() == std::fs::read(root.join(name)).unwrap(),
            "{name} restored byte for byte"
        );
        let meta = std::fs::metadata(&restored).unwrap();
        if name != "plain" {
            assert!(
                meta.blocks() * 512 < MIB,
                "{name}: {} blocks allocated for {} bytes",
                meta.blocks(),
                meta.len()
            );
        }
    }
}

#[test]
fn a_file_with_more_islands_than_a_map_holds_keeps_its_tail_whole() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().canonicalize().unwrap().join("src");
    std::fs::create_dir(&root).unwrap();
    let islands: Vec<(u64, usize)> = (0..MAX_SEGMENTS as u64 + 10)
        .map(|i| (i * 8192, 512))
        .collect();
    let size = islands.len() as u64 * 8192;
    sparse_file(&root.join("f"), size, &islands);
    let (bytes, entries) = root_tar_of(&root);
    let Some(map) = entries.iter().find_map(|e| match &e.kind {
        EntryKind::Sparse { map } => Some(map),
        _ => None,
    }) else {
        return;
    };
    assert_eq!(map.segments().len(), MAX_SEGMENTS);
    assert_eq!(map.segments().last().map(|s| s.end()), Some(size));
    let target = dir.path().join("target");
    let mut x = Extractor::new(&target, Arc::new(NoProgress)).unwrap();
    x.visit(&mut &bytes[..]).unwrap();
    let restored = target.join(root.strip_prefix("/").unwrap()).join("f");
    assert!(std::fs::read(restored).unwrap() == std::fs::read(root.join("f")).unwrap());
}

/// A root.tar with one GNU sparse entry `f` of `real` bytes listing
/// `segments` (extension blocks as needed), `stored` bytes of data.
fn crafted(real: u64, segments: &[(u64, u64)], stored: u64) -> Vec<u8> {
    let mut h = tar::Header::new_gnu();
    h.set_path("f").unwrap();
    h.set_entry_type(tar::EntryType::GNUSparse);
    h.set_mode(0o644);
    h.set_size(stored);
    let gnu = h.as_gnu_mut().unwrap();
    gnu.set_real_size(real);
    for (slot, (o, l)) in gnu.sparse.iter_mut().zip(segments) {
        slot.set_offset(*o);
        slot.set_length(*l);
    }
    gnu.set_is_extended(segments.len() > 4);
    h.set_cksum();
    let mut out = h.as_bytes().to_vec();
    let rest: Vec<_> = segments.iter().skip(4).collect();
    let chunks: Vec<_> = rest.chunks(21).collect();
    for (i, chunk) in chunks.iter().enumerate() {
        let mut ext = tar::GnuExtSparseHeader::new();
        for (slot, (o, l)) in ext.sparse_mut().iter_mut().zip(chunk.iter()) {
            slot.set_offset(*o);
            slot.set_length(*l);
        }
        ext.set_is_extended(i + 1 < chunks.len());
        out.extend_from_slice(ext.as_bytes());
    }
    out.resize(out.len() + (stored.div_ceil(512) * 512) as usize, 7);
    out.extend_from_slice(&[0; 1024]);
    out
}

fn refused(bytes: &[u8]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("target");
    let mut check = RootCheck::new(ExtractOptions::default());
    let checked = check.visit(&mut &bytes[..]).unwrap_err().to_string();
    let mut x = Extractor::new(&target, Arc::new(NoProgress)).unwrap();
    let err = x.visit(&mut &bytes[..]).unwrap_err().to_string();
    assert_eq!(checked, err, "the verify pass refuses it the same way");
    let written: Vec<_> = walkdir::WalkDir::new(dir.path())
        .min_depth(1)
        .into_iter()
        .filter_map(|e| e.ok())
        .filter(|e| !e.file_type().is_dir())
        .map(|e| e.path().display().to_string())
        .collect();
    assert!(written.is_empty(), "nothing written: {written:?}");
    err
}

#[test]
fn crafted_sparse_maps_are_refused_before_anything_is_written() {
    let good = crafted(10_000, &[(0, 512), (4096, 100), (10_000, 0)], 612);
    let mut check = RootCheck::new(ExtractOptions::default());
    check.visit(&mut &good[..]).unwrap();
    assert_eq!((check.stats.bytes, check.stats.hole_bytes), (10_000, 9388));

    for (what, bytes, want) in [
        (
            "overlapping",
            crafted(10_000, &[(0, 1024), (512, 100)], 1124),
            "overlaps",
        ),
        (
            "out of order",
            crafted(10_000, &[(4096, 512), (0, 100)], 612),
            "overlaps or precedes",
        ),
        (
            "beyond the size",
            crafted(1000, &[(0, 512), (900, 512)], 1024),
            "beyond the file size",
        ),
        (
            "more data listed than stored",
            crafted(10_000, &[(0, 512), (4096, 100)], 512),
            "lists 612 bytes of data but the entry holds 512",
        ),
        (
            "a size no file can have",
            crafted(u64::MAX - 1, &[(0, 512)], 512),
            "too large",
        ),
        (
            "a huge count",
            crafted(
                u64::MAX / 4,
                &(0..MAX_SEGMENTS as u64 + 1)
                    .map(|i| (i * 1024, 0))
                    .collect::<Vec<_>>(),
                0,
            ),
            "longer than",
        ),
    ] {
        let err = refused(&bytes);
        assert!(err.contains(want), "{what}: {err}");
        assert!(
            err.contains("sparse entry \"f\""),
            "{what} names the entry: {err}"
        );
    }
}

#[test]
fn endless_empty_extension_blocks_are_refused() {
    let mut bytes = crafted(10_000, &[(0, 0)], 0);
    bytes.truncate(512);
    bytes[482] = 1; // isextended
    let h = tar::Header::from_byte_slice(&bytes[..512]).clone();
    let mut h = h;
    h.set_cksum();
    bytes[..512].copy_from_slice(h.as_bytes());
    let mut ext = tar::GnuExtSparseHeader::new();
    ext.set_is_extended(true);
    for _ in 0..(MAX_SEGMENTS / 21 + 5) {
        bytes.extend_from_slice(ext.as_bytes());
    }
    let err = refused(&bytes);
    assert!(err.contains("sparse extension blocks"), "{err}");
}
