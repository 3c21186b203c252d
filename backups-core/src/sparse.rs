//! Sparse files: where a file's data lies (found with `SEEK_DATA` and
//! `SEEK_HOLE`, reading nothing), as a map of data segments. `root.tar`
//! stores such a file as a GNU sparse entry holding only the segments, and
//! a restore writes them back at their offsets and sets the file's length,
//! so the holes stay holes.

use std::fs::File;
use std::io;

use rustix::fs::{SeekFrom, seek};

/// Most data segments one sparse entry may have: a scan that finds more
/// stores the rest of the file as one segment, and a reader refuses maps
/// that are longer (the sparse map is held in memory while the entry is
/// read; this bounds it to half a MiB).
pub const MAX_SEGMENTS: usize = 32 * 1024;

/// Fewest hole bytes for which a file is stored as a sparse entry.
const MIN_HOLE_BYTES: u64 = 4096;

const BLOCK: u64 = 512;

/// One run of data in a sparse file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    /// Where the run starts in the file.
    pub offset: u64,
    /// Its length in bytes.
    pub len: u64,
}

impl Segment {
    /// The offset just past the run.
    pub fn end(&self) -> u64 {
        self.offset + self.len
    }
}

/// The data segments of a file of `size` bytes; everything else is a hole.
///
/// Segments are in order, do not overlap, lie within the size and are never
/// empty. A map built by a scan also starts and ends each segment on a
/// 512-byte boundary (or the end of the file), as tar readers require.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SparseMap {
    size: u64,
    segments: Vec<Segment>,
}

impl SparseMap {
    /// The file's apparent size (its holes included).
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The data segments, in order.
    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    /// Bytes of data: what the archive stores for this file.
    pub fn stored(&self) -> u64 {
        self.segments.iter().map(|s| s.len).sum()
    }

    /// Bytes in holes.
    pub fn holes(&self) -> u64 {
        self.size - self.stored()
    }

    /// A map read from an archive, checked: segments in order, not
    /// overlapping, within `size` (at most `i64::MAX`, what a file may be)
    /// and at most [`MAX_SEGMENTS`]; empty segments are dropped. The error
    /// says what is wrong.
    pub fn from_archive(size: u64, listed: &[Segment]) -> Result<SparseMap, String> {
        if i64::try_from(size).is_err() {
            return Err(format!("sparse file size {size} is too large"));
        }
        if listed.len() > MAX_SEGMENTS {
            return Err(format!(
                "sparse map of {} segments is longer than {MAX_SEGMENTS}",
                listed.len()
            ));
        }
        let mut segments = Vec::with_capacity(listed.len());
        let mut end = 0u64;
        for s in listed {
            let Some(this_end) = s.offset.checked_add(s.len) else {
                return Err(format!(
                    "sparse segment at {} of {} bytes overflows",
                    s.offset, s.len
                ));
            };
            if s.offset < end {
                return Err(format!(
                    "sparse segment at {} overlaps or precedes the previous one (ending at {end})",
                    s.offset
                ));
            }
            if this_end > size {
                return Err(format!(
                    "sparse segment at {} of {} bytes ends beyond the file size {size}",
                    s.offset, s.len
                ));
            }
            if s.len > 0 {
                segments.push(*s);
                end = this_end;
            } else {
                end = s.offset;
            }
        }
        Ok(SparseMap { size, segments })
    }

    /// The data map of `file` (`size` bytes at scan time), or `None` when it
    /// has fewer than 4 KiB of holes (or the filesystem cannot tell). At
    /// most [`MAX_SEGMENTS`] segments: past that, the rest of the file is one
    /// segment. Moves the file's offset.
    pub fn probe(file: &File, size: u64) -> io::Result<Option<SparseMap>> {
        let mut segments: Vec<Segment> = Vec::new();
        let mut at = 0u64;
        while at < size {
            let start = match seek(file, SeekFrom::Data(at)) {
                Ok(pos) => pos,
                // No data past `at`: the rest is a hole.
                Err(rustix::io::Errno::NXIO) => break,
                Err(e) => return Err(e.into()),
            };
            if start >= size {
                break;
            }
            let end = if segments.len() + 1 == MAX_SEGMENTS {
                size
            } else {
                match seek(file, SeekFrom::Hole(start)) {
                    Ok(pos) => pos.min(size),
                    // Truncated under us: the data ends here.
                    Err(rustix::io::Errno::NXIO) => size,
                    Err(e) => return Err(e.into()),
                }
            };
            if end <= start {
                // Not advancing: the file is changing; store it whole.
                return Ok(None);
            }
            // 512-byte boundaries (holes read as zeros, so widening is safe).
            let offset = start - start % BLOCK;
            let end = end.div_ceil(BLOCK).saturating_mul(BLOCK).min(size);
            match segments.last_mut() {
                Some(last) if last.end() >= offset => last.len = end - last.offset,
                _ => segments.push(Segment {
                    offset,
                    len: end - offset,
                }),
            }
            at = end;
        }
        let map = SparseMap { size, segments };
        Ok((map.holes() >= MIN_HOLE_BYTES).then_some(map))
    }

    /// Whether every byte of data in `other` lies within this map's data
    /// (a file whose holes filled in while it was read does not pass).
    pub fn covers(&self, other: &SparseMap) -> bool {
        let mut mine = self.segments.iter().peekable();
        other.segments.iter().all(|s| {
            while mine.peek().is_some_and(|m| m.end() <= s.offset) {
                mine.next();
            }
            mine.peek()
                .is_some_and(|m| m.offset <= s.offset && m.end() >= s.end())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Seek, Write};
    use std::os::unix::fs::FileExt;

    fn seg(offset: u64, len: u64) -> Segment {
        Segment { offset, len }
    }

    #[test]
    fn probe_finds_the_data_islands_of_a_sparse_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sparse");
        let f = File::create(&path).unwrap();
        let mib = 1024 * 1024;
        f.write_all_at(&[1u8; 100], 0).unwrap();
        f.write_all_at(&[2u8; 5000], 8 * mib).unwrap();
        f.set_len(32 * mib + 10).unwrap();
        let map = SparseMap::probe(&f, 32 * mib + 10).unwrap();
        let Some(map) = map else {
            // A filesystem without holes (tmpfs has them, overlayfs on some
            // kernels not): nothing to check.
            return;
        };
        assert_eq!(map.size(), 32 * mib + 10);
        let segs = map.segments();
        assert_eq!(segs.len(), 2, "{segs:?}");
        assert_eq!(segs[0].offset, 0);
        assert!(segs[0].len >= 100 && segs[0].len % 512 == 0, "{segs:?}");
        assert!(segs[1].offset <= 8 * mib && segs[1].end() >= 8 * mib + 5000);
        assert!(map.holes() > 30 * mib);
    }

    #[test]
    fn a_file_without_holes_is_not_sparse() {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(&vec![3u8; 100_000]).unwrap();
        f.rewind().unwrap();
        assert_eq!(SparseMap::probe(&f, 100_000).unwrap(), None);
        let empty = tempfile::tempfile().unwrap();
        assert_eq!(SparseMap::probe(&empty, 0).unwrap(), None);
    }

    #[test]
    fn maps_from_an_archive_are_checked() {
        let ok = SparseMap::from_archive(10_000, &[seg(0, 512), seg(4096, 100), seg(10_000, 0)])
            .unwrap();
        assert_eq!(ok.segments(), &[seg(0, 512), seg(4096, 100)]);
        assert_eq!((ok.stored(), ok.holes()), (612, 9388));
        for (listed, want) in [
            (vec![seg(0, 512), seg(100, 10)], "overlaps"),
            (vec![seg(4096, 10), seg(0, 10)], "overlaps or precedes"),
            (vec![seg(9_990, 11)], "beyond the file size"),
            (vec![seg(u64::MAX, 2)], "overflows"),
        ] {
            let err = SparseMap::from_archive(10_000, &listed).unwrap_err();
            assert!(err.contains(want), "{listed:?}: {err}");
        }
        let many = vec![seg(0, 0); MAX_SEGMENTS + 1];
        assert!(
            SparseMap::from_archive(1, &many)
                .unwrap_err()
                .contains("longer")
        );
        assert!(
            SparseMap::from_archive(u64::MAX, &[])
                .unwrap_err()
                .contains("too large")
        );
    }

    #[test]
    fn covers_spots_data_outside_the_map() {
        let map = SparseMap::from_archive(10_000, &[seg(0, 1024), seg(4096, 1024)]).unwrap();
        let inside = SparseMap::from_archive(10_000, &[seg(512, 512), seg(4096, 100)]).unwrap();
        let outside = SparseMap::from_archive(10_000, &[seg(0, 512), seg(2048, 512)]).unwrap();
        assert!(map.covers(&inside));
        assert!(!map.covers(&outside));
    }
}
