//! The path sanitiser: every entry path of an archive is checked here
//! before anything uses it.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

/// Checks an entry path from an archive and returns it as a relative path.
pub fn sanitize_entry_path(raw: &[u8]) -> std::result::Result<PathBuf, String> {
    if raw.is_empty() {
        return Err("empty path".into());
    }
    if raw.contains(&0) {
        return Err("path contains a NUL byte".into());
    }
    if raw.starts_with(b"/") {
        return Err("absolute path".into());
    }
    let mut out = PathBuf::new();
    for c in Path::new(OsStr::from_bytes(raw)).components() {
        match c {
            Component::Normal(p) => out.push(p),
            Component::CurDir => {}
            Component::ParentDir => return Err("path contains '..'".into()),
            Component::RootDir | Component::Prefix(_) => return Err("absolute path".into()),
        }
    }
    if out.as_os_str().is_empty() {
        return Err("path names the target itself".into());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitizer_rules() {
        assert_eq!(sanitize_entry_path(b"./a/b").unwrap(), PathBuf::from("a/b"));
        assert_eq!(
            sanitize_entry_path(b"a/./b/").unwrap(),
            PathBuf::from("a/b")
        );
        for bad in [&b"/etc/passwd"[..], b"a/../../b", b"..", b"", b".", b"a\0b"] {
            assert!(
                sanitize_entry_path(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
