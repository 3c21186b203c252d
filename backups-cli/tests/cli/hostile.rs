//! Hostile input: the corpus in tests/hostile/, device nodes, setuid bits,
//! symlinks already in the target, archives tampered with in the store.

use std::io::Write;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use flate2::Compression;
use flate2::write::GzEncoder;

use crate::support::*;

/// One crafted root.tar entry: raw name bytes, type, link name, data.
pub(crate) struct Raw {
    name: &'static [u8],
    kind: tar::EntryType,
    link: &'static [u8],
    data: &'static [u8],
}

pub(crate) fn raw(
    name: &'static [u8],
    kind: tar::EntryType,
    link: &'static [u8],
    data: &'static [u8],
) -> Raw {
    Raw {
        name,
        kind,
        link,
        data,
    }
}

/// Builds an outer archive (Juju v1 metadata, the crafted root.tar) without
/// the tar crate's path checks, the way an attacker would.
pub(crate) fn hostile_archive(entries: &[Raw]) -> Vec<u8> {
    juju_v1_archive("2021-01-01T00:00:00Z", &raw_tar(entries))
}

/// A tar of exactly these entries, without the tar crate's path checks.
pub(crate) fn raw_tar(entries: &[Raw]) -> Vec<u8> {
    let mut inner = Vec::new();
    for e in entries {
        push_raw(&mut inner, e.name, e.kind, e.link, e.data);
    }
    inner.extend_from_slice(&[0; 1024]);
    inner
}

/// Appends one tar entry, its name and link name exactly these bytes.
fn push_raw(out: &mut Vec<u8>, name: &[u8], kind: tar::EntryType, link: &[u8], data: &[u8]) {
    let mut h = tar::Header::new_old();
    h.as_old_mut().name[..name.len()].copy_from_slice(name);
    h.as_old_mut().linkname[..link.len()].copy_from_slice(link);
    h.set_entry_type(kind);
    h.set_mode(0o644);
    h.set_size(data.len() as u64);
    h.set_cksum();
    out.extend_from_slice(h.as_bytes());
    out.extend_from_slice(data);
    out.resize(out.len().div_ceil(512) * 512, 0);
}

/// An outer archive (gzip'd): Juju v1 metadata and an empty root.tar,
/// then these entries, names and links exactly as given.
fn hostile_outer(extra: &[Raw]) -> Vec<u8> {
    let mut tar = Vec::new();
    let regular = tar::EntryType::Regular;
    push_raw(
        &mut tar,
        b"juju-backup/metadata.json",
        regular,
        b"",
        &metadata_json(),
    );
    push_raw(&mut tar, b"juju-backup/root.tar", regular, b"", &[0; 1024]);
    for e in extra {
        push_raw(&mut tar, e.name, e.kind, e.link, e.data);
    }
    tar.extend_from_slice(&[0; 1024]);
    let mut gz = GzEncoder::new(Vec::new(), Compression::default());
    gz.write_all(&tar).unwrap();
    gz.finish().unwrap()
}

/// An outer archive: Juju v1 metadata started at `started`, then `root_tar`.
pub(crate) fn juju_v1_archive(started: &str, root_tar: &[u8]) -> Vec<u8> {
    let metadata =
        format!(r#"{{"ID":"","FormatVersion":1,"Started":"{started}","ModelUUID":"{MODEL}"}}"#);
    let mut outer = tar::Builder::new(GzEncoder::new(Vec::new(), Compression::default()));
    for (name, body) in [
        ("juju-backup/metadata.json", metadata.as_bytes()),
        ("juju-backup/root.tar", root_tar),
    ] {
        let mut h = tar::Header::new_gnu();
        h.set_size(body.len() as u64);
        h.set_mode(0o600);
        h.set_cksum();
        outer.append_data(&mut h, name, body).unwrap();
    }
    outer.into_inner().unwrap().finish().unwrap()
}

/// An archive whose root.tar holds `(name, type, mode, (major, minor))`
/// entries, made with the tar crate (well-formed, just special).
fn special_archive(entries: &[(&str, tar::EntryType, u32, (u32, u32))]) -> Vec<u8> {
    let mut inner = tar::Builder::new(Vec::new());
    for (name, kind, mode, (major, minor)) in entries {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(*kind);
        h.set_mode(*mode);
        h.set_mtime(1_600_000_000);
        h.set_size(if *kind == tar::EntryType::Regular {
            4
        } else {
            0
        });
        if matches!(kind, tar::EntryType::Char | tar::EntryType::Block) {
            h.set_device_major(*major).unwrap();
            h.set_device_minor(*minor).unwrap();
        }
        h.set_cksum();
        let data: &[u8] = if *kind == tar::EntryType::Regular {
            b"tool"
        } else {
            b""
        };
        inner.append_data(&mut h, name, data).unwrap();
    }
    juju_v1_archive("2021-02-03T00:00:00Z", &inner.into_inner().unwrap())
}

#[test]
fn hostile_device_node() {
    let env = Env::new();
    std::fs::copy(
        hostile_dir().join("device-nodes.tar.gz"),
        env.path().join("hostile.tar.gz"),
    )
    .unwrap();
    let before = snapshot(env.path());
    let (code, err) = env.fail(&["restore", "--file", "hostile.tar.gz", "--target", "target"]);
    assert_eq!(code, 5, "{err}");
    assert!(
        err.contains("dev/sda") && err.contains("--allow-devices"),
        "{err}"
    );
    assert_eq!(snapshot(env.path()), before, "nothing written anywhere");

    // A store may hold it (restores decide); the sidecar counts them, and a
    // restore by id without --allow-devices is refused before any write.
    env.ok(&["upload", "hostile.tar.gz"]);
    let id = first_id(&env);
    assert_eq!(env.json(&["show", &id, "--json"])["DeviceNodes"], 2);
    assert!(env.ok(&["show", &id]).contains("device nodes:"));
    let (code, err) = env.fail(&["restore", &id, "--target", "target"]);
    assert_eq!(code, 5, "{err}");
    assert!(
        err.contains("2 device nodes") && err.contains("--allow-devices"),
        "{err}"
    );
    assert_eq!(snapshot(env.path()), before, "nothing written anywhere");
}

#[test]
fn devices_and_fifos_are_created_only_when_allowed() {
    let env = Env::new();
    let a = special_archive(&[
        ("run", tar::EntryType::Directory, 0o755, (0, 0)),
        ("run/queue", tar::EntryType::Fifo, 0o620, (0, 0)),
        ("dev/null", tar::EntryType::Char, 0o666, (1, 3)),
    ]);
    std::fs::write(env.path().join("special.tar.gz"), &a).unwrap();
    let dry = env.ok(&[
        "restore",
        "--file",
        "special.tar.gz",
        "--target",
        "t",
        "--allow-devices",
        "--dry-run",
    ]);
    assert!(
        dry.contains("Special entries: 2 device nodes or FIFOs, 0 with setuid/setgid bits\n"),
        "{dry}"
    );
    let root = std::fs::metadata(env.path()).unwrap().uid() == 0;
    let out = env.run(&[
        "restore",
        "--file",
        "special.tar.gz",
        "--target",
        "t",
        "--allow-devices",
    ]);
    let t = env.path().join("t");
    if root {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let m = std::fs::symlink_metadata(t.join("run/queue")).unwrap();
        assert!(m.file_type().is_fifo());
        assert_eq!(m.mode() & 0o7777, 0o620);
        assert_eq!(m.mtime(), 1_600_000_000);
        let m = std::fs::symlink_metadata(t.join("dev/null")).unwrap();
        assert!(m.file_type().is_char_device());
        assert_eq!(m.rdev(), libc::makedev(1, 3));
        assert_eq!(m.mode() & 0o7777, 0o666);
        let names: Vec<_> = std::fs::read_dir(t.join("dev"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "no temporary names left: {names:?}");
    } else {
        // Without root a device node cannot be made: a clear error, no temp file left.
        assert_eq!(out.status.code(), Some(7));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("needs root"), "{err}");
        assert!(std::fs::read_dir(t.join("dev")).unwrap().next().is_none());
    }
}

#[test]
fn setuid_bits_are_dropped_unless_allowed() {
    let env = Env::new();
    let a = special_archive(&[
        ("bin", tar::EntryType::Directory, 0o2775, (0, 0)),
        ("bin/tool", tar::EntryType::Regular, 0o4755, (0, 0)),
    ]);
    std::fs::write(env.path().join("suid.tar.gz"), &a).unwrap();
    let mode = |p: &str| std::fs::metadata(env.path().join(p)).unwrap().mode() & 0o7777;

    let out = env.run(&["restore", "--file", "suid.tar.gz", "--target", "plain"]);
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bin/tool: setuid/setgid bits dropped"),
        "{err}"
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("2 with setuid/setgid bits (bits dropped)")
    );
    assert_eq!((mode("plain/bin"), mode("plain/bin/tool")), (0o775, 0o755));

    let out = env.ok(&[
        "restore",
        "--file",
        "suid.tar.gz",
        "--target",
        "kept",
        "--allow-setuid",
    ]);
    assert!(out.contains("(kept)"), "{out}");
    assert_eq!((mode("kept/bin"), mode("kept/bin/tool")), (0o2775, 0o4755));
}

#[test]
fn symlink_already_in_target_is_not_followed() {
    let env = Env::new();
    let outside = env.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::create_dir_all(env.path().join("target")).unwrap();
    std::os::unix::fs::symlink(&outside, env.path().join("target/etc")).unwrap();
    let a = hostile_archive(&[raw(b"etc/passwd", tar::EntryType::Regular, b"", b"pwned")]);
    std::fs::write(env.path().join("a.tar.gz"), a).unwrap();
    let (code, err) = env.fail(&["restore", "--file", "a.tar.gz", "--target", "target"]);
    assert_eq!(code, 5);
    assert!(
        err.contains("etc/passwd") && err.contains("symlink"),
        "{err}"
    );
    assert!(std::fs::read_dir(&outside).unwrap().next().is_none());
}

#[test]
fn tampered_archive_in_store_is_refused_before_restore() {
    let env = Env::new();
    let tree = sample_tree(env.path());
    let id = env
        .ok(&["create", "--path", tree.to_str().unwrap()])
        .trim()
        .to_string();
    let name = env.json(&["show", &id, "--json"])["Archive"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(name.starts_with(&id) && name.ends_with(".tar.gz"), "{name}");
    let archive = env.store().join(name);
    let mut bytes = std::fs::read(&archive).unwrap();
    let n = bytes.len();
    bytes[n - 100] ^= 0x55;
    std::fs::write(&archive, bytes).unwrap();
    let (code, err) = env.fail(&["restore", &id, "--target", "target"]);
    assert_eq!(code, 5, "{err}");
    assert!(err.contains(&id), "{err}");
    assert!(!env.path().join("target").exists());
    let (code, err) = env.fail(&["download", &id, "-o", "out.tar.gz"]);
    assert_eq!(code, 5);
    assert!(err.contains("mismatch"), "{err}");
    assert!(!env.path().join("out.tar.gz").exists());
}

// ---- the hostile corpus (tests/hostile/) -------------------------------------

fn hostile_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/hostile")
}

/// One archive of the corpus: its file name, what the error must say, and
/// how it is made (`BACKUPS_WRITE_CORPUS=1` rewrites the files from these).
struct Case {
    file: &'static str,
    says: &'static str,
    /// Whether `upload` refuses it too (the store may hold device nodes:
    /// restores decide about those).
    upload_refused: bool,
    build: fn() -> Vec<u8>,
}

fn tiny_root_tar() -> Vec<u8> {
    let mut inner = Vec::new();
    let mut t = tar::Builder::new(&mut inner);
    let mut h = tar::Header::new_gnu();
    h.set_size(4);
    h.set_mode(0o644);
    h.set_cksum();
    t.append_data(&mut h, "etc/ok", &b"fine"[..]).unwrap();
    t.finish().unwrap();
    drop(t);
    inner
}

/// An outer archive whose root.tar holds one GNU sparse entry `etc/disk`
/// of `real` bytes listing `segments` (in extension blocks past the
/// header's 4), with `stored` bytes of data.
fn sparse_archive(real: u64, segments: &[(u64, u64)], stored: u64) -> Vec<u8> {
    let mut h = tar::Header::new_gnu();
    h.set_path("etc/disk").unwrap();
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
    let mut inner = h.as_bytes().to_vec();
    let rest: Vec<_> = segments.iter().skip(4).collect();
    let chunks: Vec<_> = rest.chunks(21).collect();
    for (i, chunk) in chunks.iter().enumerate() {
        let mut ext = tar::GnuExtSparseHeader::new();
        for (slot, (o, l)) in ext.sparse_mut().iter_mut().zip(chunk.iter()) {
            slot.set_offset(*o);
            slot.set_length(*l);
        }
        ext.set_is_extended(i + 1 < chunks.len());
        inner.extend_from_slice(ext.as_bytes());
    }
    inner.resize(inner.len() + (stored.div_ceil(512) * 512) as usize, 7);
    inner.extend_from_slice(&[0; 1024]);
    juju_v1_archive("2021-01-01T00:00:00Z", &inner)
}

fn hostile_cases() -> Vec<Case> {
    let case = |file, says, build| Case {
        file,
        says,
        upload_refused: true,
        build,
    };
    vec![
        // Sparse maps (issue 15): segments that overlap, that lie past the
        // file's size, and a map of 100 000 segments.
        case("sparse-overlapping.tar.gz", "overlaps", || {
            sparse_archive(1 << 20, &[(0, 4096), (1024, 512)], 4608)
        }),
        case("sparse-beyond-size.tar.gz", "beyond the file size", || {
            sparse_archive(4096, &[(0, 512), (1 << 40, 512)], 1024)
        }),
        case("sparse-huge-count.tar.gz", "sparse map longer than", || {
            let segments: Vec<(u64, u64)> = (0..100_000).map(|i| (i * 4096, 0)).collect();
            sparse_archive(1 << 40, &segments, 0)
        }),
        case("parent-dir.tar.gz", "etc/../../escape", || {
            hostile_archive(&[
                raw(b"etc/ok", tar::EntryType::Regular, b"", b"fine"),
                raw(b"etc/../../escape", tar::EntryType::Regular, b"", b"pwned"),
            ])
        }),
        case(
            "absolute-path.tar.gz",
            "/tmp/backups-hostile-absolute",
            || {
                hostile_archive(&[raw(
                    b"/tmp/backups-hostile-absolute",
                    tar::EntryType::Regular,
                    b"",
                    b"pwned",
                )])
            },
        ),
        // `outside` is a directory beside the target.
        case("symlink-escape.tar.gz", "link/pwned", || {
            hostile_archive(&[
                raw(b"link", tar::EntryType::Symlink, b"../outside", b""),
                raw(b"link/pwned", tar::EntryType::Regular, b"", b"pwned"),
            ])
        }),
        // Issue 20: a file, then a symlink over the directory it was
        // written into (the verify pass models the tree it makes).
        case("symlink-over-directory.tar.gz", "esc", || {
            hostile_archive(&[
                raw(b"esc/evil", tar::EntryType::Regular, b"", b"pwned"),
                raw(
                    b"esc",
                    tar::EntryType::Symlink,
                    b"/tmp/backups-hostile-absolute",
                    b"",
                ),
                raw(b"esc/more", tar::EntryType::Regular, b"", b"pwned"),
            ])
        }),
        case("file-then-child.tar.gz", "etc/conf/inner", || {
            hostile_archive(&[
                raw(b"etc/conf", tar::EntryType::Regular, b"", b"a file"),
                raw(b"etc/conf/inner", tar::EntryType::Regular, b"", b"pwned"),
            ])
        }),
        // Issue 20: outer entries must lie under juju-backup/, normalised.
        case("outer-parent-dir.tar.gz", "juju-backup/../evil", || {
            hostile_outer(&[raw(
                b"juju-backup/../evil",
                tar::EntryType::Regular,
                b"",
                b"pwned",
            )])
        }),
        case("outer-absolute.tar.gz", "/juju-backup/evil", || {
            hostile_outer(&[raw(
                b"/juju-backup/evil",
                tar::EntryType::Regular,
                b"",
                b"pwned",
            )])
        }),
        case("outer-symlink-out.tar.gz", "juju-backup/etc", || {
            hostile_outer(&[raw(
                b"juju-backup/etc",
                tar::EntryType::Symlink,
                b"../../etc",
                b"",
            )])
        }),
        case("outer-hardlink-out.tar.gz", "juju-backup/passwd", || {
            hostile_outer(&[raw(
                b"juju-backup/passwd",
                tar::EntryType::Link,
                b"etc/passwd",
                b"",
            )])
        }),
        case("hardlink-absolute.tar.gz", "passwd", || {
            hostile_archive(&[raw(b"passwd", tar::EntryType::Link, b"/etc/passwd", b"")])
        }),
        case("hardlink-parent.tar.gz", "passwd", || {
            hostile_archive(&[raw(
                b"passwd",
                tar::EntryType::Link,
                b"../../../../etc/passwd",
                b"",
            )])
        }),
        Case {
            file: "device-nodes.tar.gz",
            says: "dev/sda",
            upload_refused: false,
            build: || {
                hostile_archive(&[
                    raw(b"dev/sda", tar::EntryType::Block, b"", b""),
                    raw(b"dev/null", tar::EntryType::Char, b"", b""),
                ])
            },
        },
        case("truncated-gzip.tar.gz", "truncated", || {
            let good = hostile_archive(&[raw(b"etc/ok", tar::EntryType::Regular, b"", &[7; 5000])]);
            good[..good.len() - 40].to_vec()
        }),
        case("duplicate-metadata.tar.gz", "duplicate entry", || {
            gz_tar(&[
                ("juju-backup/metadata.json", metadata_json()),
                ("juju-backup/root.tar", vec![0u8; 1024]),
                ("juju-backup/metadata.json", metadata_json()),
            ])
        }),
        case(
            "garbage-after-gzip.tar.gz",
            "unexpected data after the gzip stream",
            || {
                let mut a = gz_tar(&[
                    ("juju-backup/metadata.json", metadata_json()),
                    ("juju-backup/root.tar", vec![0u8; 1024]),
                ]);
                a.extend_from_slice(b"trailing garbage");
                a
            },
        ),
        // 100 MiB of metadata.json: refused at the 8 MiB limit, not read whole.
        case("huge-metadata.tar.gz", "larger than", || {
            let mut huge = b"{\"Notes\":\"".to_vec();
            huge.resize(100 << 20, b'a');
            huge.extend_from_slice(b"\"}");
            gz_tar(&[("juju-backup/metadata.json", huge)])
        }),
        // 100 MiB of manifest.json after a valid start.
        case("huge-manifest.tar.gz", "manifest.json is too large", || {
            let mut huge = b"{\"entries\":[".to_vec();
            huge.resize(100 << 20, b' ');
            gz_tar(&[
                ("juju-backup/metadata.json", metadata_json()),
                ("juju-backup/root.tar", tiny_root_tar()),
                ("juju-backup/manifest.json", huge),
            ])
        }),
        case(
            "invalid-utf8-metadata.tar.gz",
            "unreadable metadata.json",
            || {
                gz_tar(&[(
                    "juju-backup/metadata.json",
                    b"{\"Notes\":\"\xff\xfe\"}".to_vec(),
                )])
            },
        ),
        // 128 MiB of zeros after the end of the tar, about 128 KiB compressed.
        case(
            "bomb-after-tar-end.tar.gz",
            "unexpected data after the end of the tar",
            || {
                let mut raw = Vec::new();
                {
                    let mut t = tar::Builder::new(&mut raw);
                    let body = metadata_json();
                    let mut h = tar::Header::new_gnu();
                    h.set_size(body.len() as u64);
                    h.set_mode(0o600);
                    h.set_cksum();
                    t.append_data(&mut h, "juju-backup/metadata.json", &body[..])
                        .unwrap();
                    t.finish().unwrap();
                }
                let mut gz = GzEncoder::new(Vec::new(), Compression::best());
                gz.write_all(&raw).unwrap();
                let zeros = vec![0u8; 1 << 20];
                for _ in 0..128 {
                    gz.write_all(&zeros).unwrap();
                }
                gz.finish().unwrap()
            },
        ),
        // The mode field corrupted: the header checksum no longer matches.
        case("malformed-inner-header.tar.gz", "root.tar", || {
            let mut inner = tiny_root_tar();
            inner[100] ^= 0x55;
            gz_tar(&[
                ("juju-backup/metadata.json", metadata_json()),
                ("juju-backup/root.tar", inner),
            ])
        }),
        // A document claiming 64 bytes followed by only 10.
        case(
            "corrupt-bson-dump.tar.gz",
            "dump/juju/machines.bson",
            || {
                let mut bson = vec![64, 0, 0, 0];
                bson.extend_from_slice(&[1; 10]);
                gz_tar(&[
                    ("juju-backup/metadata.json", metadata_json()),
                    ("juju-backup/root.tar", tiny_root_tar()),
                    ("juju-backup/dump/juju/machines.bson", bson),
                ])
            },
        ),
        // A GNU long-name record of 64 MiB inside root.tar: refused at 1 MiB
        // before the tar crate would buffer it.
        case("giant-long-name.tar.gz", "larger than", || {
            let mut inner = Vec::new();
            let mut h = tar::Header::new_gnu();
            h.as_gnu_mut().unwrap().name[..13].copy_from_slice(b"././@LongLink");
            h.set_entry_type(tar::EntryType::GNULongName);
            h.set_size(64 << 20);
            h.set_mode(0o644);
            h.set_cksum();
            inner.extend_from_slice(h.as_bytes());
            inner.resize(inner.len() + (64 << 20), b'a');
            inner.extend_from_slice(&[0; 1024]);
            gz_tar(&[
                ("juju-backup/metadata.json", metadata_json()),
                ("juju-backup/root.tar", inner),
            ])
        }),
    ]
}

/// Every archive in tests/hostile/ is refused by restore (exit 5, the
/// offending entry named) with nothing written anywhere, and by upload.
#[test]
fn hostile_corpus_is_refused_and_nothing_is_written() {
    let dir = hostile_dir();
    let cases = hostile_cases();
    if std::env::var_os("BACKUPS_WRITE_CORPUS").is_some() {
        for case in &cases {
            std::fs::write(dir.join(case.file), (case.build)()).unwrap();
        }
    }
    let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tar.gz"))
        .collect();
    on_disk.sort();
    let mut named: Vec<String> = cases.iter().map(|c| c.file.to_string()).collect();
    named.sort();
    assert_eq!(
        on_disk, named,
        "every corpus file has a case and the other way round"
    );
    for case in &cases {
        let env = Env::new();
        std::fs::create_dir(env.path().join("outside")).unwrap();
        std::fs::copy(dir.join(case.file), env.path().join("a.tar.gz")).unwrap();
        let before = snapshot(env.path());
        let (code, err) = env.fail(&["restore", "--file", "a.tar.gz", "--target", "target"]);
        assert_eq!(code, 5, "{}: {err}", case.file);
        assert!(
            err.contains(case.says),
            "{}: the error should say {:?}: {err}",
            case.file,
            case.says
        );
        assert_eq!(
            snapshot(env.path()),
            before,
            "{}: nothing written",
            case.file
        );
        assert!(!Path::new("/tmp/backups-hostile-absolute").exists());
        let out = env.run(&["upload", "a.tar.gz"]);
        if case.upload_refused {
            assert_eq!(out.status.code(), Some(5), "{}: upload", case.file);
            assert_eq!(env.ok(&["list"]), "No backups to display.\n");
        } else {
            assert!(out.status.success(), "{}: upload", case.file);
        }
    }
}
