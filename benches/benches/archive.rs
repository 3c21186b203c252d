//! Archive throughput: create (scan + root.tar + parallel gzip + checksums),
//! extract (verify + safe extraction), compression options, checksums.
//! Criterion reports each as MB/s (`cargo bench`).
#![allow(missing_docs, clippy::unwrap_used)]

use std::hint::black_box;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use backups_benches::{Kind, generate, sample_text};
use backups_core::internals::{
    ArchiveWriter, Extractor, Hasher, ParallelGzWriter, RootTar, read_archive, root_tar_size, scan,
};
use backups_core::{ArchiveCompression, FileSet, NoProgress};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};

fn archive_of(dir: &std::path::Path, compression: ArchiveCompression) -> Vec<u8> {
    let scanned = scan(&FileSet::new(vec![dir.to_path_buf()])).unwrap();
    let size = root_tar_size(&scanned.entries).unwrap();
    let root = RootTar::new(
        scanned.entries,
        Arc::new(Mutex::new(Vec::new())),
        Arc::new(NoProgress),
    );
    let mut w = ArchiveWriter::with_compression(Vec::new(), compression, 0).unwrap();
    w.add_file("metadata.json", 2, 0o600, &b"{}"[..]).unwrap();
    w.add_file("root.tar", size, 0o600, root).unwrap();
    w.finish().unwrap().0
}

fn create_and_extract(c: &mut Criterion) {
    let tmp = tempfile::tempdir().unwrap();
    for kind in [
        Kind::ManySmall,
        Kind::FewLargeCompressible,
        Kind::Incompressible,
    ] {
        let (dir, bytes) = generate(tmp.path(), kind);
        let mut group = c.benchmark_group(format!("{kind:?}"));
        group.throughput(Throughput::Bytes(bytes));
        group
            .sample_size(10)
            .measurement_time(Duration::from_secs(4));
        group.bench_function("create gzip-6", |b| {
            b.iter(|| black_box(archive_of(&dir, ArchiveCompression::default()).len()))
        });
        group.bench_function("create zstd-3", |b| {
            b.iter(|| {
                black_box(
                    archive_of(
                        &dir,
                        ArchiveCompression::Zstd {
                            level: 3,
                            threads: 0,
                        },
                    )
                    .len(),
                )
            })
        });
        let archive = archive_of(&dir, ArchiveCompression::default());
        group.bench_function("extract gzip-6", |b| {
            b.iter_batched(
                || tempfile::tempdir().unwrap(),
                |target| {
                    let mut x = Extractor::new(target.path(), Arc::new(NoProgress)).unwrap();
                    read_archive(&archive[..], "bench", Some(&mut x), Arc::new(NoProgress))
                        .unwrap();
                    target
                },
                BatchSize::PerIteration,
            )
        });
        group.finish();
    }
}

fn compression(c: &mut Criterion) {
    let data = sample_text(32 << 20);
    let mut group = c.benchmark_group("compress 32 MiB text");
    group.throughput(Throughput::Bytes(data.len() as u64));
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(4));
    group.bench_function("flate2 zlib-rs gzip-6, 1 thread", |b| {
        b.iter(|| {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
            e.write_all(&data).unwrap();
            black_box(e.finish().unwrap().len())
        })
    });
    for threads in [1, 2] {
        group.bench_function(format!("parallel gzip-6, {threads} threads"), |b| {
            b.iter(|| {
                let mut e = ParallelGzWriter::new(Vec::new(), 6, threads);
                e.write_all(&data).unwrap();
                black_box(e.finish().unwrap().len())
            })
        });
    }
    group.bench_function("zstd-3, all cores", |b| {
        b.iter(|| {
            let mut e = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
            e.multithread(2).unwrap();
            e.write_all(&data).unwrap();
            black_box(e.finish().unwrap().len())
        })
    });
    group.finish();
}

fn checksums(c: &mut Criterion) {
    let data = sample_text(64 << 20);
    let mut group = c.benchmark_group("checksum 64 MiB");
    group.throughput(Throughput::Bytes(data.len() as u64));
    group.sample_size(10);
    group.bench_function("SHA-1 + SHA-256 + size", |b| {
        b.iter(|| {
            let mut h = Hasher::default();
            h.update(&data);
            black_box(h.finish())
        })
    });
    group.finish();
}

criterion_group!(benches, create_and_extract, compression, checksums);
criterion_main!(benches);
