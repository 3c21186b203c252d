//! The scheduler's notifiers: told of every recorded run with its status,
//! a failing or hanging one changes nothing, and a scheduled run does not
//! wait for the last run's notification.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use tokio_util::sync::CancellationToken;

use crate::schedule::{
    CronSchedule, JobError, JobOutcome, Notification, Notifier, RunResult, Scheduler, job_fn,
};

/// What a notifier does when told.
#[derive(Clone, Copy)]
enum Behaviour {
    Succeed,
    Fail,
    Hang,
}

struct Recorder {
    seen: Mutex<Vec<Notification>>,
    behaviour: Behaviour,
}

#[async_trait]
impl Notifier for Recorder {
    fn describe(&self) -> String {
        "test notifier".into()
    }

    fn timeout(&self) -> Duration {
        Duration::from_secs(5)
    }

    async fn notify(&self, n: &Notification) -> Result<(), JobError> {
        self.seen.lock().unwrap().push(n.clone());
        match self.behaviour {
            Behaviour::Succeed => Ok(()),
            Behaviour::Fail => Err("the pager is down".into()),
            Behaviour::Hang => std::future::pending().await,
        }
    }
}

fn recorder(behaviour: Behaviour) -> Arc<Recorder> {
    Arc::new(Recorder {
        seen: Mutex::new(Vec::new()),
        behaviour,
    })
}

/// A scheduler with the job `nightly` failing on its first run (with a
/// password in its error) and succeeding after, and `events` collected.
fn scheduler(dir: &std::path::Path, events: Arc<Mutex<Vec<String>>>) -> Scheduler {
    let runs = Arc::new(AtomicUsize::new(0));
    let mut s = Scheduler::new(dir).on_event(move |e| events.lock().unwrap().push(e.to_string()));
    s.add_job(
        "nightly",
        CronSchedule::parse("0 3 * * *").unwrap(),
        false,
        job_fn(move |_| {
            let first = runs.fetch_add(1, Ordering::SeqCst) == 0;
            async move {
                if first {
                    Err("cannot reach mongodb://admin:hunter2@db:27017/juju".into())
                } else {
                    Ok(JobOutcome::backup("20261201-030000.x", 7))
                }
            }
        }),
    )
    .unwrap();
    s
}

#[tokio::test]
async fn a_notifier_is_told_of_each_run_with_its_status_and_secrets_redacted() {
    let dir = tempfile::tempdir().unwrap();
    let events = Arc::new(Mutex::new(Vec::new()));
    let mut s = scheduler(dir.path(), events.clone());
    let told = recorder(Behaviour::Succeed);
    s.add_notifier("nightly", told.clone()).unwrap();
    assert!(s.add_notifier("weekly", told.clone()).is_err());
    let stop = CancellationToken::new();
    assert!(matches!(
        s.run_now("nightly", stop.clone()).await.unwrap(),
        RunResult::Failed(_)
    ));
    assert!(matches!(
        s.run_now("nightly", stop).await.unwrap(),
        RunResult::Succeeded(_)
    ));
    let seen = told.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2);
    let failed = &seen[0];
    assert_eq!((failed.job.as_str(), failed.ok), ("nightly", false));
    assert_eq!(failed.backup, None);
    let error = failed.error.as_deref().unwrap();
    assert_eq!(error, "cannot reach mongodb://admin:***@db:27017/juju");
    assert_eq!(failed.status.last_error.as_deref(), Some(error));
    assert_eq!((failed.status.runs, failed.status.failures), (1, 1));
    let ok = &seen[1];
    assert!(ok.ok);
    assert_eq!(ok.backup.as_deref(), Some("20261201-030000.x"));
    assert_eq!(ok.error, None);
    // The status told is the one recorded in the status file.
    assert_eq!(ok.status, s.status("nightly").unwrap());
    let events = events.lock().unwrap().clone();
    assert!(!events.iter().any(|e| e.contains("hunter2")), "{events:?}");
}

#[tokio::test(start_paused = true)]
async fn a_failing_or_hanging_notifier_changes_nothing_but_a_warning() {
    for (behaviour, why) in [
        (Behaviour::Fail, "the pager is down"),
        (Behaviour::Hang, "timed out after 5s"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let events = Arc::new(Mutex::new(Vec::new()));
        let mut s = scheduler(dir.path(), events.clone());
        s.add_notifier("nightly", recorder(behaviour)).unwrap();
        let stop = CancellationToken::new();
        s.run_now("nightly", stop.clone()).await.unwrap();
        let result = s.run_now("nightly", stop).await.unwrap();
        assert!(matches!(result, RunResult::Succeeded(_)), "{result:?}");
        let st = s.status("nightly").unwrap();
        assert_eq!((st.runs, st.failures, st.last_error), (2, 1, None));
        let warnings: Vec<String> = events
            .lock()
            .unwrap()
            .iter()
            .filter(|e| e.contains("warning"))
            .cloned()
            .collect();
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(
            warnings[1].starts_with("schedule nightly: warning: test notifier failed: ")
                && warnings[1].contains(why),
            "{warnings:?}"
        );
    }
}

/// Blocks the first notification until the job's second run has started.
struct Gate {
    calls: AtomicUsize,
    second_run: Arc<tokio::sync::Notify>,
    released: Mutex<Vec<bool>>,
}

#[async_trait]
impl Notifier for Gate {
    fn describe(&self) -> String {
        "gate".into()
    }

    fn timeout(&self) -> Duration {
        Duration::from_secs(60)
    }

    async fn notify(&self, _: &Notification) -> Result<(), JobError> {
        if self.calls.fetch_add(1, Ordering::SeqCst) == 0 {
            self.second_run.notified().await;
        }
        self.released.lock().unwrap().push(true);
        Ok(())
    }
}

#[tokio::test]
async fn a_scheduled_run_does_not_wait_for_the_last_runs_notification() {
    let dir = tempfile::tempdir().unwrap();
    let events = Arc::new(Mutex::new(Vec::new()));
    let seen = events.clone();
    let second_run = Arc::new(tokio::sync::Notify::new());
    let runs = Arc::new(AtomicUsize::new(0));
    let stop = CancellationToken::new();
    let (gate, stopper, runs_in) = (second_run.clone(), stop.clone(), runs.clone());
    let mut s =
        Scheduler::new(dir.path()).on_event(move |e| seen.lock().unwrap().push(e.to_string()));
    // Every second: the second run can only start if the first run's
    // notification (held until then) does not hold up the loop.
    s.add_job(
        "tick",
        CronSchedule::parse("* * * * * *").unwrap(),
        false,
        job_fn(move |_| {
            if runs_in.fetch_add(1, Ordering::SeqCst) == 1 {
                gate.notify_one();
                stopper.cancel();
            }
            async { Ok(JobOutcome::backup("b", 1)) }
        }),
    )
    .unwrap();
    let notifier = Arc::new(Gate {
        calls: AtomicUsize::new(0),
        second_run,
        released: Mutex::new(Vec::new()),
    });
    s.add_notifier("tick", notifier.clone()).unwrap();
    s.run(stop).await.unwrap();
    assert_eq!(runs.load(Ordering::SeqCst), 2);
    let events = events.lock().unwrap().clone();
    assert!(!events.iter().any(|e| e.contains("warning")), "{events:?}");
    // Both notifications ended before `run` returned.
    assert_eq!(notifier.released.lock().unwrap().len(), 2, "{events:?}");
}
