//! What the commands print. Results go to stdout ([`out`]): the list
//! table, `show`'s fields, JSON. Messages go to stderr ([`say`]), and so
//! does the restore's confirmation question ([`confirm`]).

use std::io::Write;

use backups_core::gc::{Garbage, GarbageKind};
use backups_core::immutable::{ImmutableMode, ObjectLock};
use backups_core::lease::LeaseInfo;
use backups_core::metadata::format_time;
use backups_core::{Metadata, Verification};

use crate::failure::{CliResult, Failure, INTERRUPTED, io_failure};

/// Writes to stdout; a closed pipe (`backups list | head`) is not an error.
pub fn out(text: &str) -> CliResult {
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|_| stdout.flush())
    {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(io_failure("writing output", e))
        }
        _ => Ok(()),
    }
}

/// A message on stderr unless `quiet` (control characters escaped, its
/// own line breaks kept).
pub fn say(quiet: bool, text: &str) {
    if !quiet {
        stderr_line!("{}", escape_lines(text));
    }
}

/// `text` with every control character escaped (`\n`, `\r`, `\t`,
/// `\x1b`...), so what an archive or an operator put in a name, a note or
/// a label cannot move the cursor, ring, or forge lines on a terminal.
pub fn escape(text: &str) -> std::borrow::Cow<'_, str> {
    escape_keeping(text, false)
}

/// [`escape`], except for line breaks (a message's own lines).
pub fn escape_lines(text: &str) -> std::borrow::Cow<'_, str> {
    escape_keeping(text, true)
}

fn escape_keeping(text: &str, keep_newlines: bool) -> std::borrow::Cow<'_, str> {
    let escaped = |c: char| c.is_control() && !(keep_newlines && c == '\n');
    if !text.chars().any(escaped) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            c if !escaped(c) => out.push(c),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x100 => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
        }
    }
    std::borrow::Cow::Owned(out)
}

/// The terminal's width for `list`: `$COLUMNS` if set, else stdout's
/// terminal's, else none (output to a pipe or file is not cut).
pub fn terminal_width() -> Option<usize> {
    if let Some(n) = std::env::var("COLUMNS").ok().and_then(|c| c.parse().ok()) {
        return Some(n);
    }
    terminal_size::terminal_size_of(std::io::stdout()).map(|(w, _)| usize::from(w.0))
}

/// Asks on the terminal; without one, refuses (use --yes).
pub fn confirm(question: &str) -> CliResult {
    use std::io::IsTerminal;
    if !std::io::stdin().is_terminal() {
        return Err(Failure::usage(
            "refusing to restore without confirmation: pass --yes",
        ));
    }
    stderr_line!("{question} [y/N]");
    let mut answer = String::new();
    std::io::stdin()
        .read_line(&mut answer)
        .map_err(|e| io_failure("reading the answer", e))?;
    if matches!(answer.trim(), "y" | "Y" | "yes") {
        Ok(())
    } else {
        Err(Failure {
            message: "restore cancelled".into(),
            code: INTERRUPTED,
        })
    }
}

/// Metadata as JSON for `--json`, secrets removed at any depth (as
/// sidecars leave them out, so sidecars written before that rule too).
pub fn json_value(meta: &Metadata) -> serde_json::Value {
    serde_json::to_value(meta.for_sidecar()).unwrap_or_default()
}

/// `12.3 MiB`-style sizes.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

fn short_time(meta: &Metadata) -> String {
    match meta.started {
        Some(t) => format!(
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        ),
        None => "-".into(),
    }
}

/// The `list` table; a backup whose `pending` flag is set (a pending
/// restore journal needs it) gets `(pending recovery)` after its labels;
/// notes (the last column) are cut to fit `width`.
pub fn table(
    list: &[Metadata],
    pending: &[bool],
    locks: &[Option<ObjectLock>],
    width: Option<usize>,
) -> String {
    let mut rows: Vec<[String; 8]> = list
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let mut labels = m.labels.join(",");
            if pending.get(i).copied().unwrap_or(false) {
                labels.push_str(if labels.is_empty() { "" } else { " " });
                labels.push_str("(pending recovery)");
            }
            [
                m.id.as_ref().map(ToString::to_string).unwrap_or_default(),
                short_time(m),
                human_size(m.size),
                verified_column(m),
                if m.clean() { "yes" } else { "no" }.to_string(),
                immutable_column(locks.get(i).copied().flatten()),
                escape(&labels).into_owned(),
                escape(&m.notes).into_owned(),
            ]
        })
        .collect();
    let header = [
        "ID",
        "STARTED (UTC)",
        "SIZE",
        "VERIFIED",
        "CLEAN",
        "IMMUTABLE",
        "LABELS",
        "NOTES",
    ];
    let mut widths = header.map(str::len);
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    if let Some(width) = width {
        // What the columns before the notes take, with their separators.
        let before: usize = widths[..7].iter().map(|w| w + 2).sum();
        let room = width.saturating_sub(before).max(8);
        for r in &mut rows {
            if r[7].chars().count() > room {
                r[7] = r[7].chars().take(room - 1).collect::<String>() + "…";
            }
        }
    }
    let fmt_row = |cells: &[String]| {
        let mut line = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                line.push_str(c);
            } else {
                line.push_str(&format!("{c:<w$}  ", w = widths[i]));
            }
        }
        line.trim_end().to_string() + "\n"
    };
    let mut out = fmt_row(&header.map(String::from));
    for r in &rows {
        out.push_str(&fmt_row(r));
    }
    out
}

/// The `list` table's IMMUTABLE cell: the day the store's lock ends
/// (`-` when there is none, or it ended), `compliance` marked.
fn immutable_column(lock: Option<ObjectLock>) -> String {
    match lock.filter(|l| l.holds_at(time::OffsetDateTime::now_utc())) {
        None => "-".into(),
        Some(l) => {
            let day: String = l.until_text().chars().take(10).collect();
            match l.mode {
                ImmutableMode::Compliance => format!("{day} (compliance)"),
                _ => day,
            }
        }
    }
}

/// The `Immutable` JSON field of list and show: the lock the store
/// reports (`{"Mode","RetainUntil"}`), or null.
pub fn immutable_json(lock: Option<ObjectLock>) -> serde_json::Value {
    ObjectLock::json(lock)
}

/// `show`'s `immutable:` line: the lock the store reports, or what is
/// missing.
pub fn immutable_line(meta: &Metadata, lock: Option<ObjectLock>) -> String {
    let what = match lock {
        Some(l) => format!("{} until {}", l.mode, l.until_text()),
        None if meta.lock_requested.is_some() => "NO LOCK in the store (one was asked for)".into(),
        None => "-".into(),
    };
    format!("immutable: {what}\n")
}

/// The `list` table's VERIFIED cell: `-` never, else the level and
/// `ok`/`FAILED` and the day.
fn verified_column(m: &Metadata) -> String {
    match &m.verification {
        None => "-".into(),
        Some(v) => {
            let day = format_time(v.time).chars().take(10).collect::<String>();
            format!(
                "{} {} {day}",
                v.level.name(),
                if v.ok { "ok" } else { "FAILED" }
            )
        }
    }
}

/// One verification as a line: level, outcome, when, detail.
pub fn format_verification(v: &Verification) -> String {
    format!(
        "{} {} at {}: {}",
        v.level.name(),
        if v.ok { "ok" } else { "FAILED" },
        format_time(v.time),
        v.detail
    )
}

/// `show`'s human output: every field Juju's show-backup prints, then ours.
pub fn details(m: &Metadata) -> String {
    let mut rows: Vec<(&str, String)> = vec![
        (
            "backup ID",
            m.id.as_ref().map(ToString::to_string).unwrap_or_default(),
        ),
        ("checksum", m.checksum.clone()),
        ("checksum format", m.checksum_format.clone()),
        ("size (B)", m.size.to_string()),
        ("stored", format_time(m.stored)),
        ("started", format_time(m.started)),
        ("finished", format_time(m.finished)),
        ("notes", m.notes.clone()),
        ("model ID", m.model_uuid.clone()),
        ("machine ID", m.machine.clone()),
        ("created on host", m.hostname.clone()),
        ("juju version", m.version.clone()),
        (
            if m.series.is_empty() && !m.base.is_empty() {
                "base"
            } else {
                "series"
            },
            m.series_or_base().to_string(),
        ),
        ("controller UUID", m.controller_uuid.clone()),
        ("controller machine ID", m.controller_machine_id.clone()),
        (
            "controller machine instance ID",
            m.controller_machine_instance_id.clone(),
        ),
        ("HA nodes", m.ha_nodes.to_string()),
        (
            "dumped from",
            match (&m.dumped_from, &m.replica_set) {
                (Some(member), Some(set)) => format!("{member} (replica set {set})"),
                (Some(member), None) => member.clone(),
                _ => String::new(),
            },
        ),
        ("format version", m.format_version.to_string()),
        ("sha256", m.sha256.clone()),
        ("labels", m.labels.join(", ")),
        (
            "files",
            m.file_count.map(|n| n.to_string()).unwrap_or_default(),
        ),
        (
            "file contents",
            m.file_bytes.map(human_size).unwrap_or_default(),
        ),
        ("tool version", m.tool_version.clone()),
        (
            "compression",
            if m.compression.is_empty() {
                "gzip".to_string()
            } else {
                m.compression.clone()
            },
        ),
    ];
    rows.extend(optional_details(m));
    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0) + 1;
    let mut out = String::new();
    for (k, v) in rows {
        out.push_str(format!("{:<width$} {}", format!("{k}:"), escape(&v)).trim_end());
        out.push('\n');
    }
    if !m.databases.is_empty() {
        out.push_str("databases:\n");
        for (ns, n) in &m.databases {
            out.push_str(&format!("  {}: {n} documents\n", escape(ns)));
        }
    }
    if !m.warnings.is_empty() {
        out.push_str("warnings:\n");
        for w in &m.warnings {
            out.push_str(&format!("  {}\n", escape(w)));
        }
    }
    out
}

/// The `show` rows only some backups have: device nodes, encryption,
/// verification, then whether it is clean, secrets and a CA certificate.
fn optional_details(m: &Metadata) -> Vec<(&'static str, String)> {
    let mut rows = Vec::new();
    if m.device_nodes > 0 {
        rows.push(("device nodes", m.device_nodes.to_string()));
    }
    if let Some(e) = &m.encryption {
        let to = if e.passphrase {
            "a passphrase".to_string()
        } else {
            e.recipients.join(", ")
        };
        rows.push(("encrypted", format!("{} (to {to})", e.scheme)));
        rows.push(("stored size (B)", e.stored_size.to_string()));
        rows.push(("stored sha256", e.stored_sha256.clone()));
    }
    if let Some(v) = &m.verification {
        rows.push(("verified", format_verification(v)));
    }
    rows.push((
        "clean",
        match (m.locked, m.clean()) {
            (_, true) => "yes (taken with writers locked; point-in-time)".to_string(),
            (true, false) => "no (locked, but the database dump is not point-in-time)".to_string(),
            (false, _) => "no (taken without a lock hook)".to_string(),
        },
    ));
    if !m.secrets_in_archive.is_empty() {
        rows.push(("secrets in archive only", m.secrets_in_archive.join(", ")));
    }
    if m.extra.contains_key("CACert") {
        rows.push(("CA certificate", "present".into()));
    }
    rows
}

/// A name for each kind of garbage.
pub fn garbage_kind(kind: &GarbageKind) -> &'static str {
    match kind {
        GarbageKind::OrphanArchive => "orphan-archive",
        GarbageKind::StagingFile => "staging-file",
        GarbageKind::BrokenSidecar => "broken-sidecar",
        GarbageKind::UnreadableSidecar => "unreadable-sidecar",
        GarbageKind::UncommittedSlice => "uncommitted-slice",
        _ => "other",
    }
}

/// `gc --json`: one object per piece of garbage.
pub fn garbage_json(items: &[Garbage]) -> serde_json::Value {
    items
        .iter()
        .map(|g| {
            serde_json::json!({
                "Key": g.key, "Size": g.size, "AgeSeconds": g.age_secs,
                "Kind": garbage_kind(&g.kind),
            })
        })
        .collect()
}

/// `unlock --json`: one object per lease, `removed` or kept.
pub fn lease_json(lease: &LeaseInfo, removed: bool) -> serde_json::Value {
    serde_json::json!({
        "Key": lease.key, "Holder": lease.holder, "Operation": lease.operation,
        "Since": lease.since, "Expires": lease.expires, "Stale": lease.stale,
        "Removed": removed,
    })
}

/// The `gc` table.
pub fn garbage_table(items: &[Garbage]) -> String {
    let mut out = format!("{:<18} {:>10} {:>8}  KEY\n", "KIND", "SIZE", "AGE");
    for g in items {
        let age = match g.age_secs {
            s if s >= 86400 => format!("{}d", s / 86400),
            s if s >= 3600 => format!("{}h", s / 3600),
            s if s >= 60 => format!("{}m", s / 60),
            s => format!("{s}s"),
        };
        out.push_str(&format!(
            "{:<18} {:>10} {:>8}  {}\n",
            garbage_kind(&g.kind),
            human_size(g.size),
            age,
            g.key
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(human_size(512), "512 B");
        assert_eq!(human_size(16160), "15.8 KiB");
        assert_eq!(human_size(3 * 1024 * 1024 * 1024), "3.0 GiB");
    }

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(
            escape("a\x1b[31mb\x07\r\nc\td\u{9b}"),
            "a\\x1b[31mb\\x07\\r\\nc\\td\\x9b"
        );
        assert_eq!(escape_lines("one\ntwo\x1b"), "one\ntwo\\x1b");
        assert!(matches!(escape("plain"), std::borrow::Cow::Borrowed(_)));
    }

    #[test]
    fn json_drops_the_private_key() {
        let mut m = Metadata::default();
        m.extra.insert("CAPrivateKey".into(), "secret".into());
        m.extra.insert("CACert".into(), "cert".into());
        let v = json_value(&m);
        assert!(v.get("CAPrivateKey").is_none());
        assert_eq!(v["CACert"], "cert");
    }
}
