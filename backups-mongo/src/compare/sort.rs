//! An external merge sort of `(key, SHA-256)` records, so a collection of
//! any size is compared in bounded memory: records are buffered up to a
//! byte budget, each full buffer sorted and written to a temp file (a
//! run), and the runs merged (at most [`MAX_FAN_IN`] at a time, merging
//! rounds of runs into longer ones first when there are more).

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Seek, Write};

/// Buffered bytes per collection side before a run is written.
pub(crate) const DEFAULT_CHUNK_BYTES: usize = 64 * 1024 * 1024;
/// Runs merged at once (open files, one read buffer each).
pub(crate) const MAX_FAN_IN: usize = 64;
/// Bookkeeping counted per buffered record besides its key and hash.
const RECORD_OVERHEAD: usize = 32;

/// One record: an `_id`'s canonical bytes and its document's SHA-256.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Record {
    pub(crate) key: Vec<u8>,
    pub(crate) hash: [u8; 32],
}

impl Ord for Record {
    fn cmp(&self, other: &Self) -> Ordering {
        self.key
            .cmp(&other.key)
            .then_with(|| self.hash.cmp(&other.hash))
    }
}

impl PartialOrd for Record {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Collects records, spilling sorted runs to temp files.
#[derive(Debug)]
pub(crate) struct ExternalSort {
    chunk_bytes: usize,
    buffer: Vec<Record>,
    buffered: usize,
    runs: Vec<File>,
    count: u64,
}

impl ExternalSort {
    /// Keeps at most about `chunk_bytes` of records in memory.
    pub(crate) fn new(chunk_bytes: usize) -> Self {
        ExternalSort {
            chunk_bytes: chunk_bytes.max(1),
            buffer: Vec::new(),
            buffered: 0,
            runs: Vec::new(),
            count: 0,
        }
    }

    /// Records pushed so far.
    pub(crate) fn len(&self) -> u64 {
        self.count
    }

    /// Adds a record.
    pub(crate) fn push(&mut self, key: Vec<u8>, hash: [u8; 32]) -> io::Result<()> {
        self.buffered += key.len() + hash.len() + RECORD_OVERHEAD;
        self.buffer.push(Record { key, hash });
        self.count += 1;
        if self.buffered >= self.chunk_bytes {
            self.spill()?;
        }
        Ok(())
    }

    /// Writes the buffer, sorted, as a new run.
    fn spill(&mut self) -> io::Result<()> {
        self.buffer.sort_unstable();
        let mut out = BufWriter::new(tempfile::tempfile()?);
        for record in self.buffer.drain(..) {
            write_record(&mut out, &record)?;
        }
        self.buffered = 0;
        let mut file = out.into_inner().map_err(io::IntoInnerError::into_error)?;
        file.rewind()?;
        self.runs.push(file);
        Ok(())
    }

    /// Every record, in order.
    pub(crate) fn finish(mut self) -> io::Result<Sorted> {
        if self.runs.is_empty() {
            self.buffer.sort_unstable();
            return Ok(Sorted::Memory(self.buffer.into_iter()));
        }
        if !self.buffer.is_empty() {
            self.spill()?;
        }
        let mut runs = self.runs;
        while runs.len() > MAX_FAN_IN {
            let mut longer = Vec::new();
            let mut rest = runs.into_iter();
            loop {
                let group: Vec<File> = rest.by_ref().take(MAX_FAN_IN).collect();
                if group.is_empty() {
                    break;
                }
                let mut merge = Merge::new(group)?;
                let mut out = BufWriter::new(tempfile::tempfile()?);
                while let Some(record) = merge.next()? {
                    write_record(&mut out, &record)?;
                }
                let mut file = out.into_inner().map_err(io::IntoInnerError::into_error)?;
                file.rewind()?;
                longer.push(file);
            }
            runs = longer;
        }
        Ok(Sorted::Merge(Merge::new(runs)?))
    }
}

/// The records of an [`ExternalSort`], in order.
#[derive(Debug)]
pub(crate) enum Sorted {
    /// Everything fitted in memory.
    Memory(std::vec::IntoIter<Record>),
    /// Merged from runs on disk.
    Merge(Merge),
}

impl Sorted {
    /// The next record; `None` at the end.
    pub(crate) fn next(&mut self) -> io::Result<Option<Record>> {
        match self {
            Sorted::Memory(records) => Ok(records.next()),
            Sorted::Merge(merge) => merge.next(),
        }
    }
}

/// A k-way merge of sorted runs.
#[derive(Debug)]
pub(crate) struct Merge {
    readers: Vec<BufReader<File>>,
    heap: BinaryHeap<Reverse<(Record, usize)>>,
}

impl Merge {
    fn new(runs: Vec<File>) -> io::Result<Self> {
        let mut readers: Vec<BufReader<File>> = runs
            .into_iter()
            .map(|f| BufReader::with_capacity(64 * 1024, f))
            .collect();
        let mut heap = BinaryHeap::new();
        for (i, reader) in readers.iter_mut().enumerate() {
            if let Some(record) = read_record(reader)? {
                heap.push(Reverse((record, i)));
            }
        }
        Ok(Merge { readers, heap })
    }

    fn next(&mut self) -> io::Result<Option<Record>> {
        let Some(Reverse((record, i))) = self.heap.pop() else {
            return Ok(None);
        };
        if let Some(reader) = self.readers.get_mut(i)
            && let Some(next) = read_record(reader)?
        {
            self.heap.push(Reverse((next, i)));
        }
        Ok(Some(record))
    }
}

fn write_record(out: &mut impl Write, record: &Record) -> io::Result<()> {
    let len = u32::try_from(record.key.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "_id too large"))?;
    out.write_all(&len.to_le_bytes())?;
    out.write_all(&record.key)?;
    out.write_all(&record.hash)
}

fn read_record(input: &mut impl Read) -> io::Result<Option<Record>> {
    let mut len = [0u8; 4];
    match input.read_exact(&mut len) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let mut key = vec![0u8; u32::from_le_bytes(len) as usize];
    input.read_exact(&mut key)?;
    let mut hash = [0u8; 32];
    input.read_exact(&mut hash)?;
    Ok(Some(Record { key, hash }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records(n: u32) -> Vec<(Vec<u8>, [u8; 32])> {
        // A fixed shuffle: 7919 is prime, so i * 7919 mod n visits all.
        (0..n)
            .map(|i| {
                let k = (i * 7919) % n;
                (format!("key{k:06}").into_bytes(), [k as u8; 32])
            })
            .collect()
    }

    fn drain(mut sorted: Sorted) -> Vec<Record> {
        let mut out = Vec::new();
        while let Some(r) = sorted.next().unwrap() {
            out.push(r);
        }
        out
    }

    #[test]
    fn small_input_sorts_in_memory() {
        let mut sort = ExternalSort::new(DEFAULT_CHUNK_BYTES);
        for (k, h) in records(100) {
            sort.push(k, h).unwrap();
        }
        let sorted = sort.finish().unwrap();
        assert!(matches!(sorted, Sorted::Memory(_)));
        let out = drain(sorted);
        assert_eq!(out.len(), 100);
        assert!(out.windows(2).all(|w| w[0].key < w[1].key));
    }

    #[test]
    fn runs_on_disk_merge_in_order_with_more_runs_than_the_fan_in() {
        // ~90 bytes a record, 1 KiB chunks: about 11 records a run, so
        // 3000 records make ~270 runs, more than MAX_FAN_IN: a merge round
        // then the final merge.
        let mut sort = ExternalSort::new(1024);
        for (k, h) in records(3000) {
            sort.push(k, h).unwrap();
        }
        assert!(sort.runs.len() > MAX_FAN_IN, "{}", sort.runs.len());
        assert_eq!(sort.len(), 3000);
        let sorted = sort.finish().unwrap();
        assert!(matches!(sorted, Sorted::Merge(_)));
        let out = drain(sorted);
        assert_eq!(out.len(), 3000);
        for (i, r) in out.iter().enumerate() {
            assert_eq!(r.key, format!("key{i:06}").into_bytes());
            assert_eq!(r.hash, [i as u8; 32]);
        }
    }
}
