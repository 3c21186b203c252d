//! A reader under the tar crate that follows a tar stream header by header:
//! it refuses header extensions too large to buffer, reads GNU sparse maps
//! (header slots and extension blocks) with a bound on their length, and,
//! for `root.tar`, hands a sparse entry to the tar crate as a plain file of
//! its stored data while the map goes to the extractor — so a restore
//! writes the data at its offsets and never reads or writes the holes.

use std::cell::RefCell;
use std::io::{self, Read};
use std::rc::Rc;

use crate::sparse::{MAX_SEGMENTS, Segment, SparseMap};

/// Largest tar header extension (GNU long name/link, PAX record) accepted:
/// the tar crate reads them whole into memory.
pub(crate) const MAX_HEADER_EXTENSION: u64 = 1024 * 1024;

const BLOCK: usize = 512;
/// Sparse map slots in a GNU header, and in each extension block.
const HEADER_SLOTS: usize = 4;
const EXTENSION_SLOTS: usize = 21;

/// Where the guard leaves the sparse map of the entry the tar crate has
/// just read (`None` for any other entry).
pub(crate) type SparseSlot = Rc<RefCell<Option<SparseMap>>>;

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

/// See the module documentation.
pub(crate) struct HeaderGuard<R> {
    inner: R,
    /// Header blocks to hand out (as read, or rewritten).
    out: Vec<u8>,
    out_pos: usize,
    /// Data (with padding) of the current entry still to pass through.
    data_left: u64,
    /// The data of a PAX header being passed through (its `size` record
    /// overrides the next header's size, as the tar crate applies it).
    pax: Option<Vec<u8>>,
    pax_size: Option<u64>,
    /// With a slot, sparse entries are rewritten as plain files.
    sparse: Option<SparseSlot>,
    eof: bool,
}

impl<R: Read> HeaderGuard<R> {
    /// A guard that passes every block through unchanged.
    pub(crate) fn new(inner: R) -> Self {
        HeaderGuard {
            inner,
            out: Vec::with_capacity(BLOCK),
            out_pos: 0,
            data_left: 0,
            pax: None,
            pax_size: None,
            sparse: None,
            eof: false,
        }
    }

    /// Hands each sparse entry to the tar crate as a plain file of its
    /// stored data, its checked map in `slot`.
    pub(crate) fn with_sparse_maps(mut self, slot: SparseSlot) -> Self {
        self.sparse = Some(slot);
        self
    }

    /// Reads one 512-byte block; `Ok(n)` with `n < 512` only at the end.
    fn read_block(&mut self, block: &mut [u8; BLOCK]) -> io::Result<usize> {
        let mut filled = 0;
        while filled < BLOCK {
            match self.inner.read(&mut block[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(filled)
    }

    /// Reads the next header block and decides what follows it.
    fn next_header(&mut self) -> io::Result<()> {
        let mut block = [0u8; BLOCK];
        let n = self.read_block(&mut block)?;
        self.out.clear();
        self.out_pos = 0;
        self.out.extend_from_slice(&block[..n]);
        if n < BLOCK {
            // Truncated: the tar crate reports it.
            self.eof = true;
            return Ok(());
        }
        if block.iter().all(|b| *b == 0) {
            return Ok(());
        }
        if let Some(data) = self.pax.take() {
            // A PAX header's records apply to the entry after it.
            self.pax_size = pax_size_record(&data);
        }
        let header = tar::Header::from_byte_slice(&block);
        let recognized = header.as_gnu().is_some() || header.as_ustar().is_some();
        let kind = header.entry_type();
        let extension = kind.is_gnu_longname()
            || kind.is_gnu_longlink()
            || kind.is_pax_local_extensions()
            || kind.is_pax_global_extensions();
        let mut size = header.entry_size().unwrap_or(0);
        if extension {
            if size > MAX_HEADER_EXTENSION {
                return Err(invalid(format!(
                    "tar header extension of {size} bytes is larger than {MAX_HEADER_EXTENSION}"
                )));
            }
            if recognized && kind.is_pax_local_extensions() {
                self.pax = Some(Vec::with_capacity(size as usize));
            }
        } else {
            let pax_size = self.pax_size.take();
            if let Some(s) = pax_size {
                size = s;
            }
            if let Some(slot) = &self.sparse {
                slot.replace(None);
            }
            if kind.is_gnu_sparse() && header.as_gnu().is_some() {
                if pax_size.is_some() {
                    return Err(invalid(format!(
                        "sparse entry {:?} with a PAX size record",
                        String::from_utf8_lossy(&header.path_bytes())
                    )));
                }
                self.sparse_entry(&block)?;
            }
        }
        self.data_left = (size.div_ceil(BLOCK as u64)).saturating_mul(BLOCK as u64);
        Ok(())
    }

    /// A GNU sparse header (in `self.out`): reads its extension blocks, and
    /// with a slot, checks the map and rewrites the header as a plain file.
    fn sparse_entry(&mut self, block: &[u8; BLOCK]) -> io::Result<()> {
        let header = tar::Header::from_byte_slice(block);
        let name = String::from_utf8_lossy(&header.path_bytes()).into_owned();
        let Some(gnu) = header.as_gnu() else {
            return Ok(());
        };
        let valid_checksum = header.cksum().is_ok_and(|c| c == checksum(block));
        let bad = |reason: String| invalid(format!("sparse entry {name:?}: {reason}"));
        let mut listed = Vec::new();
        let mut add = |slots: &[tar::GnuSparseHeader]| -> io::Result<()> {
            for slot in slots {
                if slot.numbytes[0] == 0 {
                    break; // GNU tar: an unused slot ends the list of this block
                }
                if listed.len() == MAX_SEGMENTS {
                    return Err(bad(format!(
                        "sparse map longer than {MAX_SEGMENTS} segments"
                    )));
                }
                let offset = slot.offset().map_err(|e| bad(e.to_string()))?;
                let len = slot.length().map_err(|e| bad(e.to_string()))?;
                listed.push(Segment { offset, len });
            }
            Ok(())
        };
        add(&gnu.sparse[..HEADER_SLOTS])?;
        let mut extended = gnu.is_extended();
        let mut blocks = 0usize;
        while extended {
            blocks += 1;
            if blocks > MAX_SEGMENTS / EXTENSION_SLOTS + 1 {
                return Err(bad(format!(
                    "more than {} sparse extension blocks",
                    MAX_SEGMENTS / EXTENSION_SLOTS + 1
                )));
            }
            let mut ext = tar::GnuExtSparseHeader::new();
            if self.read_block(ext.as_mut_bytes())? < BLOCK {
                return Err(bad("truncated in its sparse map".into()));
            }
            add(&ext.sparse()[..])?;
            extended = ext.is_extended();
            if self.sparse.is_none() {
                self.out.extend_from_slice(ext.as_bytes());
            }
        }
        let Some(slot) = &self.sparse else {
            return Ok(());
        };
        if !valid_checksum {
            // Left as it is: the tar crate refuses the header.
            return Ok(());
        }
        let real = gnu.real_size().map_err(|e| bad(e.to_string()))?;
        let map = SparseMap::from_archive(real, &listed).map_err(bad)?;
        let stored = header.entry_size().map_err(|e| bad(e.to_string()))?;
        if map.stored() != stored {
            return Err(bad(format!(
                "its sparse map lists {} bytes of data but the entry holds {stored}",
                map.stored()
            )));
        }
        let mut plain = tar::Header::from_byte_slice(block).clone();
        plain.set_entry_type(tar::EntryType::Regular);
        if let Some(g) = plain.as_gnu_mut() {
            for s in g.sparse.iter_mut() {
                s.offset = [0; 12];
                s.numbytes = [0; 12];
            }
            g.isextended = [0];
            g.realsize = [0; 12];
        }
        plain.set_cksum();
        self.out.clear();
        self.out.extend_from_slice(plain.as_bytes());
        slot.replace(Some(map));
        Ok(())
    }
}

/// A header's checksum as computed over `block` (checksum field as spaces).
fn checksum(block: &[u8; BLOCK]) -> u32 {
    block
        .iter()
        .enumerate()
        .map(|(i, b)| {
            if (148..156).contains(&i) {
                32
            } else {
                u32::from(*b)
            }
        })
        .sum()
}

/// The `size` record of PAX extension data, read as the tar crate does.
fn pax_size_record(data: &[u8]) -> Option<u64> {
    for ext in tar::PaxExtensions::new(data) {
        let ext = ext.ok()?;
        if ext.key() == Ok("size") {
            return ext.value().ok()?.parse().ok();
        }
    }
    None
}

impl<R: Read> Read for HeaderGuard<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            if self.out_pos < self.out.len() {
                let n = (self.out.len() - self.out_pos).min(buf.len());
                buf[..n].copy_from_slice(&self.out[self.out_pos..self.out_pos + n]);
                self.out_pos += n;
                return Ok(n);
            }
            if self.eof {
                return Ok(0);
            }
            if self.data_left > 0 {
                let want = self.data_left.min(buf.len() as u64) as usize;
                let n = self.inner.read(&mut buf[..want])?;
                if n == 0 {
                    self.eof = true;
                    return Ok(0);
                }
                self.data_left -= n as u64;
                if let Some(pax) = self.pax.as_mut() {
                    let room = (MAX_HEADER_EXTENSION as usize).saturating_sub(pax.len());
                    pax.extend_from_slice(&buf[..n.min(room)]);
                }
                return Ok(n);
            }
            self.next_header()?;
        }
    }
}
