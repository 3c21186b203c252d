//! Generated datasets for the benchmarks in `benches/`.

use std::path::{Path, PathBuf};

/// A dataset kind.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    /// 2,000 text files of 4 KiB in 20 directories.
    ManySmall,
    /// Four 8 MiB log-like text files.
    FewLargeCompressible,
    /// Two 8 MiB files of random bytes.
    Incompressible,
}

fn text(n: usize, seed: &mut u64) -> Vec<u8> {
    const WORDS: [&str; 12] = [
        "machine",
        "unit",
        "alive",
        "dying",
        "agent",
        "controller",
        "model",
        "relation",
        "charm",
        "status",
        "error",
        "ok",
    ];
    let mut out = Vec::with_capacity(n + 64);
    while out.len() < n {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        out.extend_from_slice(WORDS[(*seed % 12) as usize].as_bytes());
        out.push(if (*seed).is_multiple_of(9) {
            b'\n'
        } else {
            b' '
        });
        out.extend_from_slice(format!("{}", *seed % 10_000).as_bytes());
        out.push(b' ');
    }
    out.truncate(n);
    out
}

fn random(n: usize, seed: &mut u64) -> Vec<u8> {
    let mut out = vec![0u8; n];
    for chunk in out.chunks_mut(8) {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        let b = seed.to_le_bytes();
        chunk.copy_from_slice(&b[..chunk.len()]);
    }
    out
}

/// Writes the dataset under `root`; returns its directory and byte count.
pub fn generate(root: &Path, kind: Kind) -> (PathBuf, u64) {
    let dir = root.join(format!("{kind:?}"));
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut total = 0u64;
    let mut write = |path: PathBuf, data: Vec<u8>| {
        total += data.len() as u64;
        std::fs::create_dir_all(path.parent().unwrap_or(root)).ok();
        std::fs::write(path, data).ok();
    };
    match kind {
        Kind::ManySmall => {
            for i in 0..2000 {
                write(
                    dir.join(format!("d{:02}/f{i:05}.txt", i % 20)),
                    text(4096, &mut seed),
                );
            }
        }
        Kind::FewLargeCompressible => {
            for i in 0..4 {
                write(dir.join(format!("log{i}.txt")), text(8 << 20, &mut seed));
            }
        }
        Kind::Incompressible => {
            for i in 0..2 {
                write(dir.join(format!("blob{i}.bin")), random(8 << 20, &mut seed));
            }
        }
    }
    (dir, total)
}

/// Bytes of text-like data for the compression and checksum benchmarks.
pub fn sample_text(n: usize) -> Vec<u8> {
    let mut seed = 42;
    text(n, &mut seed)
}
