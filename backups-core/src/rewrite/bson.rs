//! A walk over one raw BSON document's elements that rewrites (or only
//! counts the replacements in) its UTF-8 string values, recursing into
//! embedded documents and arrays. Every other byte is copied as it is:
//! keys, every other element type, element order.

use super::Rewrites;

/// Deeper than MongoDB allows (100 levels), with slack.
const MAX_DEPTH: u32 = 200;

fn le_i32(doc: &[u8], at: usize) -> Result<usize, String> {
    let bytes = doc
        .get(at..at.saturating_add(4))
        .ok_or_else(|| format!("length at byte {at} cut short"))?;
    let n = i32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    usize::try_from(n).map_err(|_| format!("negative length {n} at byte {at}"))
}

/// End (exclusive) of the NUL-terminated C string starting at `at`.
fn cstring_end(doc: &[u8], at: usize, end: usize) -> Result<usize, String> {
    doc.get(at..end)
        .and_then(|s| s.iter().position(|&b| b == 0))
        .map(|p| at + p + 1)
        .ok_or_else(|| format!("unterminated name at byte {at}"))
}

/// End (exclusive) of a BSON string (int32 length, bytes, NUL) at `at`.
fn string_end(doc: &[u8], at: usize, end: usize) -> Result<usize, String> {
    let len = le_i32(doc, at)?;
    let stop = at + 4 + len;
    if len == 0 || stop > end || doc[stop - 1] != 0 {
        return Err(format!("malformed string at byte {at}"));
    }
    Ok(stop)
}

/// Walks the document `doc` (exactly one document's bytes); with `out`,
/// appends the rewritten document to it. Returns the replacements.
pub(super) fn walk(
    rw: &Rewrites,
    doc: &[u8],
    mut out: Option<&mut Vec<u8>>,
    depth: u32,
) -> Result<u64, String> {
    if depth > MAX_DEPTH {
        return Err("documents nested too deeply".into());
    }
    let len = le_i32(doc, 0)?;
    if len < 5 || len != doc.len() || doc[len - 1] != 0 {
        return Err(format!(
            "document length {len} does not match its {} bytes",
            doc.len()
        ));
    }
    let end = len - 1;
    let start = out.as_ref().map(|o| o.len());
    if let Some(o) = out.as_deref_mut() {
        o.extend_from_slice(&[0; 4]);
    }
    let mut n = 0;
    let mut i = 4;
    while i < end {
        let kind = doc[i];
        let value = cstring_end(doc, i + 1, end)?;
        let at = i;
        let fixed = |size: usize| {
            let stop = value + size;
            (stop <= end)
                .then_some(stop)
                .ok_or_else(|| format!("element at byte {at} cut short"))
        };
        let stop = match kind {
            0x02 => {
                let stop = string_end(doc, value, end)?;
                let s = &doc[value + 4..stop - 1];
                // Not UTF-8 (not a valid BSON string): left alone.
                if let Ok(text) = std::str::from_utf8(s) {
                    let (new, k) = rw.rewrite_str(text);
                    n += k;
                    if let Some(o) = out.as_deref_mut()
                        && k > 0
                    {
                        let size = i32::try_from(new.len() + 1)
                            .map_err(|_| "rewritten string too long".to_string())?;
                        o.extend_from_slice(&doc[i..value]);
                        o.extend_from_slice(&size.to_le_bytes());
                        o.extend_from_slice(new.as_bytes());
                        o.push(0);
                        i = stop;
                        continue;
                    }
                }
                stop
            }
            0x03 | 0x04 => {
                let size = le_i32(doc, value)?;
                let stop = fixed(size)?;
                if let Some(o) = out.as_deref_mut() {
                    o.extend_from_slice(&doc[i..value]);
                }
                n += walk(rw, &doc[value..stop], out.as_deref_mut(), depth + 1)?;
                i = stop;
                continue;
            }
            0x01 | 0x09 | 0x11 | 0x12 => fixed(8)?,
            0x05 => fixed(le_i32(doc, value)? + 5)?,
            0x06 | 0x0A | 0x7F | 0xFF => value,
            0x07 => fixed(12)?,
            0x08 => fixed(1)?,
            0x0B => cstring_end(doc, cstring_end(doc, value, end)?, end)?,
            0x0C => {
                let s = string_end(doc, value, end)?;
                (s + 12 <= end)
                    .then_some(s + 12)
                    .ok_or_else(|| format!("element at byte {i} cut short"))?
            }
            0x0D | 0x0E => string_end(doc, value, end)?,
            0x0F => fixed(le_i32(doc, value)?)?,
            0x10 => fixed(4)?,
            0x13 => fixed(16)?,
            other => return Err(format!("unknown element type 0x{other:02x} at byte {i}")),
        };
        if let Some(o) = out.as_deref_mut() {
            o.extend_from_slice(&doc[i..stop]);
        }
        i = stop;
    }
    if i != end {
        return Err(format!("element runs past the document's end at byte {i}"));
    }
    if let (Some(o), Some(start)) = (out, start) {
        o.push(0);
        let size = i32::try_from(o.len() - start)
            .map_err(|_| "rewritten document too large".to_string())?;
        o[start..start + 4].copy_from_slice(&size.to_le_bytes());
    }
    Ok(n)
}
