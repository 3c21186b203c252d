//! The embedding controller's services, stopped around a restore: the
//! [`ServiceController`] a restore plan drives, and [`OrderedServices`],
//! one built from ordered steps across nodes (BOSH's restore order: stop
//! the data nodes, then the leader; start the leader, then the data nodes).

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;

use crate::database::BackupLock;
use crate::error::Result;

/// The embedding controller's services, stopped around a restore.
#[async_trait]
pub trait ServiceController: Send + Sync {
    /// Stops what uses the database and files. When it fails part-way it
    /// has started again whatever it had stopped: the plan then changes
    /// nothing and does not call [`ServiceController::start`].
    async fn stop(&self) -> Result<()>;
    /// Rewrites addresses/configuration after the restore (before start).
    async fn post_restore(&self) -> Result<()>;
    /// Starts the services again.
    async fn start(&self) -> Result<()>;
    /// Starts the services after a rollback put the pre-restore state back
    /// (by default the same as [`ServiceController::start`]).
    async fn start_after_rollback(&self) -> Result<()> {
        self.start().await
    }
}

/// One step of an ordered stop or start: a command on one node.
#[async_trait]
pub trait ServiceStep: Send + Sync {
    /// What the step is, for messages (e.g. the command line).
    fn describe(&self) -> String;
    /// Runs the step; `rolled_back` says a start follows a rollback.
    async fn run(&self, rolled_back: bool) -> Result<()>;
}

/// A [`ServiceController`] from ordered steps: `stop` runs in the order
/// given, then, after the restore, `post_restore` and `start` in the order
/// given.
///
/// A stop that fails part-way starts again what was stopped: when there
/// are as many start steps as stop steps they are taken to undo them in
/// reverse (the stop steps `[data, leader]` go with the start steps
/// `[leader, data]`), so after `k` stops only the last `k` start steps run;
/// otherwise every start step runs. A start keeps going past a failing step
/// (so as much as possible runs again) and reports the first failure.
#[derive(Clone, Default)]
pub struct OrderedServices {
    /// Steps that stop the services, in order.
    pub stop: Vec<Arc<dyn ServiceStep>>,
    /// Steps run after the restore, before start, in order.
    pub post_restore: Vec<Arc<dyn ServiceStep>>,
    /// Steps that start the services, in order.
    pub start: Vec<Arc<dyn ServiceStep>>,
}

impl fmt::Debug for OrderedServices {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names = |steps: &[Arc<dyn ServiceStep>]| -> Vec<String> {
            steps.iter().map(|s| s.describe()).collect()
        };
        f.debug_struct("OrderedServices")
            .field("stop", &names(&self.stop))
            .field("post_restore", &names(&self.post_restore))
            .field("start", &names(&self.start))
            .finish()
    }
}

/// The steps of `undo` that take back the first `done` of `done_steps`:
/// with one undo step per step, given in reverse order, the last `done`
/// of them; else all of them.
fn undoing<'a>(
    undo: &'a [Arc<dyn ServiceStep>],
    done_steps: &[Arc<dyn ServiceStep>],
    done: usize,
) -> &'a [Arc<dyn ServiceStep>] {
    if undo.len() == done_steps.len() {
        &undo[undo.len() - done.min(undo.len())..]
    } else {
        undo
    }
}

impl OrderedServices {
    /// The start steps that undo the first `stopped` stop steps.
    fn undoing(&self, stopped: usize) -> &[Arc<dyn ServiceStep>] {
        undoing(&self.start, &self.stop, stopped)
    }
}

/// A [`BackupLock`] from ordered steps across nodes (BOSH's consistent
/// backup: lock every node, then dump, then unlock in reverse): `lock`
/// runs in the order given; `unlock` runs every step in the order given,
/// each with `true` when the backup was not committed. A lock step that
/// fails stops the lock and unlocks what the lock steps that ran locked
/// (the failing one included: it may have locked part of what it locks):
/// with one unlock step per lock step, given in reverse order, exactly
/// those; else every unlock step.
#[derive(Clone, Default)]
#[non_exhaustive]
pub struct OrderedLock {
    /// Steps that lock, in order.
    pub lock: Vec<Arc<dyn ServiceStep>>,
    /// Steps that unlock, in order.
    pub unlock: Vec<Arc<dyn ServiceStep>>,
}

impl OrderedLock {
    /// A lock of these steps.
    pub fn new(lock: Vec<Arc<dyn ServiceStep>>, unlock: Vec<Arc<dyn ServiceStep>>) -> Self {
        OrderedLock { lock, unlock }
    }
}

impl fmt::Debug for OrderedLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names = |steps: &[Arc<dyn ServiceStep>]| -> Vec<String> {
            steps.iter().map(|s| s.describe()).collect()
        };
        f.debug_struct("OrderedLock")
            .field("lock", &names(&self.lock))
            .field("unlock", &names(&self.unlock))
            .finish()
    }
}

#[async_trait]
impl BackupLock for OrderedLock {
    async fn lock(&self) -> Result<()> {
        for (done, step) in self.lock.iter().enumerate() {
            if let Err(e) = step.run(false).await {
                // Best effort: the lock's own failure is what is reported.
                let _ = run_all(undoing(&self.unlock, &self.lock, done + 1), true).await;
                return Err(e);
            }
        }
        Ok(())
    }

    async fn unlock(&self, ok: bool) -> Result<()> {
        run_all(&self.unlock, !ok).await
    }
}

/// Runs every step, in order, even past a failure; returns the first one.
async fn run_all(steps: &[Arc<dyn ServiceStep>], rolled_back: bool) -> Result<()> {
    let mut first = Ok(());
    for step in steps {
        let ran = step.run(rolled_back).await;
        if first.is_ok() {
            first = ran;
        }
    }
    first
}

#[async_trait]
impl ServiceController for OrderedServices {
    async fn stop(&self) -> Result<()> {
        for (done, step) in self.stop.iter().enumerate() {
            if let Err(e) = step.run(false).await {
                if done > 0 {
                    // Best effort: the stop's own failure is what is reported.
                    let _ = run_all(self.undoing(done), false).await;
                }
                return Err(e);
            }
        }
        Ok(())
    }

    async fn post_restore(&self) -> Result<()> {
        for step in &self.post_restore {
            step.run(false).await?;
        }
        Ok(())
    }

    async fn start(&self) -> Result<()> {
        run_all(&self.start, false).await
    }

    async fn start_after_rollback(&self) -> Result<()> {
        run_all(&self.start, true).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;
    use std::sync::Mutex;

    /// Records its name when run; fails when told to.
    struct Step {
        name: &'static str,
        fail: bool,
        log: Arc<Mutex<Vec<String>>>,
    }

    #[async_trait]
    impl ServiceStep for Step {
        fn describe(&self) -> String {
            self.name.into()
        }
        async fn run(&self, rolled_back: bool) -> Result<()> {
            let mark = if rolled_back { "!" } else { "" };
            self.log
                .lock()
                .map_err(|_| Error::internal("poisoned"))?
                .push(format!("{}{mark}", self.name));
            if self.fail {
                return Err(Error::internal(format!("{} failed", self.name)));
            }
            Ok(())
        }
    }

    fn steps(
        names: &[&'static str],
        failing: &str,
        log: &Arc<Mutex<Vec<String>>>,
    ) -> Vec<Arc<dyn ServiceStep>> {
        names
            .iter()
            .map(|&name| {
                Arc::new(Step {
                    name,
                    fail: name == failing,
                    log: log.clone(),
                }) as Arc<dyn ServiceStep>
            })
            .collect()
    }

    fn logged(log: &Arc<Mutex<Vec<String>>>) -> Vec<String> {
        log.lock().map(|l| l.clone()).unwrap_or_default()
    }

    #[tokio::test]
    async fn stops_in_order_and_starts_in_order() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let services = OrderedServices {
            stop: steps(&["stop-data", "stop-leader"], "", &log),
            post_restore: steps(&["rewrite"], "", &log),
            start: steps(&["start-leader", "start-data"], "", &log),
        };
        services.stop().await.expect("stop");
        services.post_restore().await.expect("post");
        services.start().await.expect("start");
        services.start_after_rollback().await.expect("start again");
        assert_eq!(
            logged(&log),
            [
                "stop-data",
                "stop-leader",
                "rewrite",
                "start-leader",
                "start-data",
                "start-leader!",
                "start-data!"
            ]
        );
    }

    #[tokio::test]
    async fn a_stop_failing_part_way_starts_again_what_was_stopped() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let services = OrderedServices {
            stop: steps(&["stop-d1", "stop-d2", "stop-leader"], "stop-leader", &log),
            post_restore: vec![],
            start: steps(&["start-leader", "start-d2", "start-d1"], "", &log),
        };
        let err = services.stop().await.expect_err("the leader's stop fails");
        assert!(err.to_string().contains("stop-leader failed"), "{err}");
        assert_eq!(
            logged(&log),
            ["stop-d1", "stop-d2", "stop-leader", "start-d2", "start-d1"]
        );
    }

    #[tokio::test]
    async fn unpaired_steps_start_everything_and_the_first_stop_failing_starts_nothing() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let services = OrderedServices {
            stop: steps(&["stop-a", "stop-b"], "stop-b", &log),
            post_restore: vec![],
            start: steps(&["start-all"], "", &log),
        };
        assert!(services.stop().await.is_err());
        assert_eq!(logged(&log), ["stop-a", "stop-b", "start-all"]);

        let log = Arc::new(Mutex::new(Vec::new()));
        let services = OrderedServices {
            stop: steps(&["stop-a", "stop-b"], "stop-a", &log),
            post_restore: vec![],
            start: steps(&["start-b", "start-a"], "", &log),
        };
        assert!(services.stop().await.is_err());
        assert_eq!(logged(&log), ["stop-a"]);
    }

    #[tokio::test]
    async fn a_failing_start_step_does_not_keep_the_others_from_running() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let services = OrderedServices {
            stop: vec![],
            post_restore: vec![],
            start: steps(&["start-a", "start-b", "start-c"], "start-b", &log),
        };
        let err = services.start().await.expect_err("start-b fails");
        assert!(err.to_string().contains("start-b"), "{err}");
        assert_eq!(logged(&log), ["start-a", "start-b", "start-c"]);
    }
}

/// Kills a child's process group (SIGKILL) when dropped, unless disarmed:
/// a hook or notification command given up on at its timeout (its future
/// dropped) takes whatever it started with it. Start the child in its own
/// group (`process_group(0)`) for this to reach only what it started.
#[derive(Debug)]
pub struct GroupKiller(Option<u32>);

impl GroupKiller {
    /// Guards the group led by `pid` (a child's `id()`; `None`: nothing).
    pub fn new(pid: Option<u32>) -> Self {
        GroupKiller(pid)
    }

    /// Leaves the group alone when dropped (the command exited in time; a
    /// daemon it left behind on purpose stays).
    pub fn disarm(&mut self) {
        self.0 = None;
    }
}

impl Drop for GroupKiller {
    fn drop(&mut self) {
        if let Some(pid) = self
            .0
            .and_then(|p| i32::try_from(p).ok())
            .and_then(rustix::process::Pid::from_raw)
        {
            let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
        }
    }
}
