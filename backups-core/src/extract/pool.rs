//! Writer threads for small files. Creating a file is mostly kernel work
//! (an inode and a directory entry allocated, attributes set, a rename), so
//! one thread creating thousands of small files one after another is what
//! bounds a restore; the extractor reads each small file's contents and
//! hands it here, and a few threads create, write and rename files at once.
//!
//! Order is kept where it matters: the extractor waits for the pool
//! ([`WriterPool::drain`]) before anything that could depend on a file in
//! flight (the same path again, a path below it, a hard link), and before
//! it finishes. Bytes in flight are bounded.

use std::collections::HashSet;
use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;

use crate::error::{Error, Result};
use crate::progress::Progress;

use super::sys::{Attributes, place};

/// Files up to this size go to the pool; larger ones are streamed by the
/// extractor itself.
pub(super) const SMALL_FILE: u64 = 1024 * 1024;
/// Most bytes of file contents held for the pool at once.
const MAX_IN_FLIGHT: usize = 8 * 1024 * 1024;

/// One small file to create.
pub(super) struct WriteJob {
    /// Its temp name beside `dest`.
    pub(super) tmp: PathBuf,
    /// Where it goes.
    pub(super) dest: PathBuf,
    /// Owner, mode and mtime.
    pub(super) attributes: Attributes,
    /// Its contents.
    pub(super) data: Vec<u8>,
}

#[derive(Default)]
struct State {
    pending: usize,
    bytes: usize,
    error: Option<Error>,
    dests: HashSet<PathBuf>,
}

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    changed: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// See the module documentation.
pub(super) struct WriterPool {
    tx: Option<SyncSender<WriteJob>>,
    workers: Vec<JoinHandle<()>>,
    shared: Arc<Shared>,
}

impl WriterPool {
    /// Starts the writer threads (one per core, 2 to 4); the extractor
    /// journals each file before it hands it over.
    pub(super) fn start(progress: Arc<dyn Progress>) -> Self {
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get().clamp(2, 4));
        let (tx, rx) = sync_channel::<WriteJob>(threads * 4);
        let rx = Arc::new(Mutex::new(rx));
        let shared = Arc::new(Shared::default());
        let workers = (0..threads)
            .map(|_| {
                let (rx, shared) = (rx.clone(), shared.clone());
                let progress = progress.clone();
                std::thread::spawn(move || work(&rx, &shared, &*progress))
            })
            .collect();
        WriterPool {
            tx: Some(tx),
            workers,
            shared,
        }
    }

    /// Whether `path`, or any directory above it, is a file in flight.
    pub(super) fn in_flight(&self, path: &Path) -> bool {
        let state = self.shared.lock();
        !state.dests.is_empty() && path.ancestors().any(|p| state.dests.contains(p))
    }

    /// Queues `job` (waiting while too many bytes are in flight); fails
    /// with the first error of any writer.
    pub(super) fn submit(&self, job: WriteJob) -> Result<()> {
        let len = job.data.len();
        {
            let mut state = self.shared.lock();
            while state.error.is_none() && state.pending > 0 && state.bytes + len > MAX_IN_FLIGHT {
                state = self
                    .shared
                    .changed
                    .wait(state)
                    .unwrap_or_else(PoisonError::into_inner);
            }
            if let Some(e) = state.error.take() {
                return Err(e);
            }
            state.pending += 1;
            state.bytes += len;
            state.dests.insert(job.dest.clone());
        }
        let sent = match &self.tx {
            Some(tx) => tx.send(job).is_ok(),
            None => false,
        };
        if sent {
            Ok(())
        } else {
            Err(Error::internal("the file writer threads stopped"))
        }
    }

    /// Waits until every queued file is in place; the first error of any.
    pub(super) fn drain(&self) -> Result<()> {
        let mut state = self.shared.lock();
        while state.pending > 0 {
            state = self
                .shared
                .changed
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
        match state.error.take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Drains, then stops the threads.
    pub(super) fn finish(mut self) -> Result<()> {
        let drained = self.drain();
        self.tx = None;
        for w in self.workers.drain(..) {
            if w.join().is_err() {
                return Err(Error::internal("a file writer thread panicked"));
            }
        }
        drained
    }
}

impl Drop for WriterPool {
    fn drop(&mut self) {
        self.tx = None;
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

fn work(rx: &Mutex<Receiver<WriteJob>>, shared: &Shared, progress: &dyn Progress) {
    loop {
        let job = match rx.lock().unwrap_or_else(PoisonError::into_inner).recv() {
            Ok(job) => job,
            Err(_) => return,
        };
        let len = job.data.len();
        let result = place(&job.tmp, &job.dest, job.attributes, |tmp| {
            let mut out = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(tmp)
                .map_err(|e| Error::io("creating", tmp, e))?;
            out.write_all(&job.data)
                .map_err(|e| Error::io("writing", tmp, e))
        });
        if result.is_ok() {
            progress.advance(len as u64);
        }
        let mut state = shared.lock();
        state.pending -= 1;
        state.bytes -= len;
        state.dests.remove(&job.dest);
        if let Err(e) = result {
            state.error.get_or_insert(e);
        }
        shared.changed.notify_all();
    }
}
