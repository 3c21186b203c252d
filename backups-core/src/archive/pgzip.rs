//! Parallel gzip compression that still produces one standard gzip member,
//! the way pigz does: the input is cut into blocks, each block is deflated
//! on a worker thread with the previous 32 KiB as its dictionary and ends
//! with a sync flush (byte-aligned), the last with the final block; the
//! CRC-32s are combined. Any gzip reader (and Juju) reads the result, and it
//! is within a fraction of a percent of single-threaded gzip's size.

use std::collections::VecDeque;
use std::io::{self, Write};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

use flate2::{Compress, Compression, FlushCompress, Status};

/// Bytes of input per block (pigz uses 128 KiB).
pub(crate) const BLOCK_SIZE: usize = 128 * 1024;
/// The deflate window: how much of the previous block primes the next.
const DICT_SIZE: usize = 32 * 1024;

struct Job {
    data: Vec<u8>,
    dict: Vec<u8>,
    last: bool,
}

struct Done {
    compressed: Vec<u8>,
    crc: crc32fast::Hasher,
}

struct Worker {
    jobs: SyncSender<Job>,
    done: Receiver<io::Result<Done>>,
    handle: JoinHandle<()>,
}

/// Bytes of each of the three samples the probe compresses.
const PROBE_SAMPLE: usize = 4 * 1024;
/// A block whose samples shrink by less than this (in 1/1000) is stored.
const PROBE_MIN_SAVING_PERMILLE: usize = 30;

/// Whether `data` is worth deflating: three samples (start, middle, end)
/// compressed at level 2 must save at least 3%. Random or already
/// compressed data fails, and is emitted as stored deflate blocks, which
/// costs nothing and keeps the stream standard.
///
/// Level 2, not 1: zlib-rs (like zlib-ng) runs level 1 as "deflate quick",
/// which codes with the fixed Huffman table only, where every byte from
/// 0x00 to 0x8f costs 8 bits. Text whose gain comes from its small
/// alphabet rather than from repeats (base64: 6 bits a byte) then looked
/// incompressible and was stored, 31% larger than `gzip -6`. Level 2
/// builds dynamic trees.
fn worth_deflating(data: &[u8]) -> bool {
    if data.len() < 4 * PROBE_SAMPLE {
        return true;
    }
    let mid = data.len() / 2;
    let samples = [
        &data[..PROBE_SAMPLE],
        &data[mid..mid + PROBE_SAMPLE],
        &data[data.len() - PROBE_SAMPLE..],
    ];
    let mut c = Compress::new(Compression::new(2), false);
    let mut out = Vec::with_capacity(4 * PROBE_SAMPLE);
    for sample in samples {
        let before = c.total_in();
        let result = c.compress_vec(sample, &mut out, FlushCompress::Sync);
        if result.is_err() || (c.total_in() - before) as usize != sample.len() {
            return true; // cannot tell: deflate it
        }
    }
    let input = 3 * PROBE_SAMPLE;
    out.len() * 1000 < input * (1000 - PROBE_MIN_SAVING_PERMILLE)
}

fn deflate_block(level: Compression, job: Job) -> io::Result<Done> {
    let mut crc = crc32fast::Hasher::new();
    crc.update(&job.data);
    let level = if level.level() > 0 && !worth_deflating(&job.data) {
        Compression::none()
    } else {
        level
    };
    let mut c = Compress::new(level, false);
    if !job.dict.is_empty() {
        c.set_dictionary(&job.dict).map_err(io::Error::other)?;
    }
    let mut out = Vec::with_capacity(job.data.len() / 2 + 1024);
    let flush = if job.last {
        FlushCompress::Finish
    } else {
        FlushCompress::Sync
    };
    let mut input = &job.data[..];
    loop {
        if out.capacity() - out.len() < 4096 {
            out.reserve(out.capacity().max(64 * 1024));
        }
        let before = c.total_in();
        let status = c
            .compress_vec(input, &mut out, flush)
            .map_err(io::Error::other)?;
        input = &input[(c.total_in() - before) as usize..];
        match status {
            Status::StreamEnd => break,
            // A sync flush is done when all input is consumed and it fit in `out`.
            _ if !job.last && input.is_empty() && out.len() < out.capacity() => break,
            _ => {}
        }
    }
    Ok(Done {
        compressed: out,
        crc,
    })
}

/// A [`Write`] that gzips on `threads` worker threads into `inner`.
pub struct ParallelGzWriter<W: Write> {
    inner: Option<W>,
    level: Compression,
    workers: Vec<Worker>,
    pending: Vec<u8>,
    dict: Vec<u8>,
    next_worker: usize,
    in_flight: VecDeque<usize>,
    crc: crc32fast::Hasher,
    total_in: u64,
    header_written: bool,
    finished: bool,
}

impl<W: Write> std::fmt::Debug for ParallelGzWriter<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParallelGzWriter")
            .field("workers", &self.workers.len())
            .finish_non_exhaustive()
    }
}

impl<W: Write> ParallelGzWriter<W> {
    /// Compresses at `level` (0-9) on `threads` workers (at least one).
    pub fn new(inner: W, level: u32, threads: usize) -> Self {
        let level = Compression::new(level.min(9));
        let workers = (0..threads.max(1))
            .map(|_| {
                let (jobs, job_rx) = sync_channel::<Job>(2);
                let (done_tx, done) = sync_channel::<io::Result<Done>>(2);
                let handle = std::thread::spawn(move || {
                    for job in job_rx {
                        if done_tx.send(deflate_block(level, job)).is_err() {
                            return;
                        }
                    }
                });
                Worker { jobs, done, handle }
            })
            .collect();
        ParallelGzWriter {
            inner: Some(inner),
            level,
            workers,
            pending: Vec::with_capacity(BLOCK_SIZE),
            dict: Vec::new(),
            next_worker: 0,
            in_flight: VecDeque::new(),
            crc: crc32fast::Hasher::new(),
            total_in: 0,
            header_written: false,
            finished: false,
        }
    }

    fn inner(&mut self) -> io::Result<&mut W> {
        self.inner
            .as_mut()
            .ok_or_else(|| io::Error::other("gzip writer already finished"))
    }

    fn write_header(&mut self) -> io::Result<()> {
        if !self.header_written {
            self.header_written = true;
            let xfl = match self.level.level() {
                9 => 2,
                1 => 4,
                _ => 0,
            };
            // magic, deflate, no flags, mtime 0, xfl, OS = Unix
            let header = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, xfl, 3];
            self.inner()?.write_all(&header)?;
        }
        Ok(())
    }

    /// Writes the oldest block's output once its worker is done.
    fn collect_oldest(&mut self) -> io::Result<()> {
        if let Some(w) = self.in_flight.pop_front() {
            let done = self.workers[w]
                .done
                .recv()
                .map_err(|_| io::Error::other("gzip worker stopped"))??;
            self.crc.combine(&done.crc);
            self.inner()?.write_all(&done.compressed)?;
        }
        Ok(())
    }

    fn dispatch(&mut self, last: bool) -> io::Result<()> {
        self.write_header()?;
        let data = std::mem::replace(&mut self.pending, Vec::with_capacity(BLOCK_SIZE));
        let dict = std::mem::take(&mut self.dict);
        self.dict = data[data.len().saturating_sub(DICT_SIZE)..].to_vec();
        // Keep at most two blocks per worker in flight: memory stays bounded.
        if self.in_flight.len() >= 2 * self.workers.len() {
            self.collect_oldest()?;
        }
        let w = self.next_worker;
        self.next_worker = (w + 1) % self.workers.len();
        self.workers[w]
            .jobs
            .send(Job { data, dict, last })
            .map_err(|_| io::Error::other("gzip worker stopped"))?;
        self.in_flight.push_back(w);
        Ok(())
    }

    /// Ends the gzip member (final block, CRC-32, size) and returns `inner`.
    pub fn finish(mut self) -> io::Result<W> {
        self.finish_stream()?;
        self.inner
            .take()
            .ok_or_else(|| io::Error::other("gzip writer already finished"))
    }

    fn finish_stream(&mut self) -> io::Result<()> {
        if self.finished {
            return Ok(());
        }
        self.finished = true;
        self.dispatch(true)?;
        while !self.in_flight.is_empty() {
            self.collect_oldest()?;
        }
        let crc = std::mem::replace(&mut self.crc, crc32fast::Hasher::new());
        let len = self.total_in;
        let sum = crc.finalize();
        let inner = self.inner()?;
        inner.write_all(&sum.to_le_bytes())?;
        inner.write_all(&(len as u32).to_le_bytes())?;
        inner.flush()
    }
}

impl<W: Write> Write for ParallelGzWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.finished {
            return Err(io::Error::other("gzip writer already finished"));
        }
        let n = buf.len().min(BLOCK_SIZE - self.pending.len());
        self.pending.extend_from_slice(&buf[..n]);
        self.total_in += n as u64;
        if self.pending.len() == BLOCK_SIZE {
            self.dispatch(false)?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        // Blocks are only cut at BLOCK_SIZE so output does not depend on
        // flush timing; what is compressed so far is passed on.
        while self.in_flight.len() > self.workers.len() {
            self.collect_oldest()?;
        }
        self.inner()?.flush()
    }
}

impl<W: Write> Drop for ParallelGzWriter<W> {
    fn drop(&mut self) {
        // Closing the job channels ends the workers.
        for w in std::mem::take(&mut self.workers) {
            drop(w.jobs);
            drop(w.done);
            let _ = w.handle.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn gunzip(data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(data)
            .read_to_end(&mut out)
            .unwrap();
        out
    }

    fn sample(n: usize) -> Vec<u8> {
        let mut seed = 7u64;
        (0..n)
            .map(|i| {
                seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
                if i % 3 == 0 {
                    (seed >> 56) as u8
                } else {
                    b"abcdefgh"[i % 8]
                }
            })
            .collect()
    }

    #[test]
    fn round_trips_at_every_size_and_level() {
        for n in [
            0,
            1,
            1000,
            BLOCK_SIZE - 1,
            BLOCK_SIZE,
            BLOCK_SIZE + 1,
            5 * BLOCK_SIZE + 77,
        ] {
            for level in [0, 1, 6, 9] {
                let data = sample(n);
                let mut w = ParallelGzWriter::new(Vec::new(), level, 3);
                for chunk in data.chunks(10_000) {
                    w.write_all(chunk).unwrap();
                }
                let gz = w.finish().unwrap();
                assert_eq!(gunzip(&gz), data, "n={n} level={level}");
                // A single member: a multi-member-unaware reader sees it all.
                let mut single = Vec::new();
                flate2::read::GzDecoder::new(&gz[..])
                    .read_to_end(&mut single)
                    .unwrap();
                assert_eq!(single.len(), n);
            }
        }
    }

    #[test]
    fn size_is_close_to_single_threaded_gzip() {
        let data = sample(40 * BLOCK_SIZE);
        let mut w = ParallelGzWriter::new(Vec::new(), 6, 2);
        w.write_all(&data).unwrap();
        let ours = w.finish().unwrap().len();
        let mut single = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
        single.write_all(&data).unwrap();
        let theirs = single.finish().unwrap().len();
        assert!(
            (ours as f64) < theirs as f64 * 1.01,
            "ours {ours} vs single {theirs}"
        );
    }

    /// `n` bytes that do not compress (xorshift from `seed`).
    fn noise(n: usize, mut seed: u64) -> Vec<u8> {
        (0..n)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                (seed >> 24) as u8
            })
            .collect()
    }

    #[test]
    fn incompressible_blocks_are_stored_and_the_rest_still_shrinks() {
        let random = noise(8 * BLOCK_SIZE, 0x2545_f491_4f6c_dd1d);
        assert!(!worth_deflating(&random[..BLOCK_SIZE]));
        assert!(worth_deflating(&sample(BLOCK_SIZE)));
        let text = sample(8 * BLOCK_SIZE);
        let data = [random.clone(), text.clone(), random].concat();
        let mut w = ParallelGzWriter::new(Vec::new(), 6, 2);
        w.write_all(&data).unwrap();
        let gz = w.finish().unwrap();
        assert_eq!(gunzip(&gz), data, "one standard gzip stream");
        let mut single = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
        single.write_all(&data).unwrap();
        let theirs = single.finish().unwrap().len();
        assert!(
            (gz.len() as f64) < theirs as f64 * 1.01,
            "stored blocks cost under 1%: ours {} vs gzip -6 {theirs}",
            gz.len()
        );
    }

    #[test]
    fn base64_text_is_deflated_and_as_small_as_gzip() {
        use base64::Engine as _;
        let random = noise(6 * BLOCK_SIZE, 0x9e37_79b9_7f4a_7c15);
        let text = base64::engine::general_purpose::STANDARD.encode(&random);
        let text = text.as_bytes();
        assert!(worth_deflating(&text[..BLOCK_SIZE]), "base64 is text");
        let mut w = ParallelGzWriter::new(Vec::new(), 6, 2);
        w.write_all(text).unwrap();
        let ours = w.finish().unwrap().len();
        let mut single = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
        single.write_all(text).unwrap();
        let theirs = single.finish().unwrap().len();
        assert!(
            (ours as f64) < theirs as f64 * 1.01,
            "base64: ours {ours} vs gzip -6 {theirs} of {}",
            text.len()
        );
    }
}
