use std::sync::atomic::{AtomicUsize, Ordering};

use time::macros::datetime;

use super::*;
use crate::schedule::job_fn;

/// A job that counts its runs and stops the scheduler after the first.
fn counting(runs: Arc<AtomicUsize>, stop: CancellationToken) -> Arc<dyn Job> {
    job_fn(move |_| {
        let runs = runs.clone();
        let stop = stop.clone();
        async move {
            runs.fetch_add(1, Ordering::SeqCst);
            stop.cancel();
            Ok(JobOutcome::backup("20261201-030000.x", 7))
        }
    })
}

fn seeded(dir: &Path, last_run: OffsetDateTime) {
    let mut s = JobStatus::new("nightly");
    s.last_run = Some(last_run);
    s.runs = 1;
    status::save(dir, &s).unwrap();
}

#[tokio::test]
async fn a_missed_run_is_caught_up_once_at_start() {
    let dir = tempfile::tempdir().unwrap();
    seeded(dir.path(), datetime!(2020-01-01 03:00:00 UTC));
    let events = Arc::new(Mutex::new(Vec::new()));
    let seen = events.clone();
    let runs = Arc::new(AtomicUsize::new(0));
    let stop = CancellationToken::new();
    let mut s = Scheduler::new(dir.path()).on_event(move |e| {
        seen.lock().unwrap().push(e.to_string());
    });
    // Yearly on 1 January: its next match is far away, so the only run
    // this test can see is the catch-up.
    s.add_job(
        "nightly",
        CronSchedule::parse("0 3 1 1 *").unwrap(),
        true,
        counting(runs.clone(), stop.clone()),
    )
    .unwrap();
    s.run(stop).await.unwrap();
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    let events = events.lock().unwrap().clone();
    assert_eq!(
        events[0], "schedule nightly: started (catching up a missed run)",
        "{events:?}"
    );
    let status = s.status("nightly").unwrap();
    assert_eq!(status.runs, 2);
    assert_eq!(status.last_size_bytes, Some(7));
    assert!(status.last_success.unwrap() > datetime!(2020-01-01 03:00:00 UTC));
}

#[tokio::test]
async fn without_catch_up_a_missed_run_waits_for_the_next_match() {
    let dir = tempfile::tempdir().unwrap();
    seeded(dir.path(), datetime!(2020-01-01 03:00:00 UTC));
    let runs = Arc::new(AtomicUsize::new(0));
    let stop = CancellationToken::new();
    let waiting = stop.clone();
    let mut s = Scheduler::new(dir.path()).on_event(move |e| {
        if matches!(e, ScheduleEvent::Waiting { .. }) {
            waiting.cancel();
        }
    });
    s.add_job(
        "nightly",
        CronSchedule::parse("0 3 1 1 *").unwrap(),
        false,
        counting(runs.clone(), stop.clone()),
    )
    .unwrap();
    s.run(stop).await.unwrap();
    assert_eq!(runs.load(Ordering::SeqCst), 0);
    assert_eq!(s.status("nightly").unwrap().runs, 1, "status untouched");
}

#[tokio::test]
async fn a_failed_run_counts_and_a_success_clears_the_error() {
    let dir = tempfile::tempdir().unwrap();
    let metrics = dir.path().join("metrics/backups.prom");
    let fail = Arc::new(AtomicUsize::new(1));
    let f = fail.clone();
    let mut s = Scheduler::new(dir.path()).with_metrics_file(&metrics);
    s.add_job(
        "nightly",
        CronSchedule::parse("0 3 * * *").unwrap(),
        false,
        job_fn(move |_| {
            let fail = f.fetch_sub(1, Ordering::SeqCst) == 1;
            async move {
                if fail {
                    Err("store unreachable".into())
                } else {
                    Ok(JobOutcome::backup("b", 1))
                }
            }
        }),
    )
    .unwrap();
    let stop = CancellationToken::new();
    assert!(matches!(
        s.run_now("nightly", stop.clone()).await.unwrap(),
        RunResult::Failed(_)
    ));
    let st = s.status("nightly").unwrap();
    assert_eq!((st.runs, st.failures), (1, 1));
    assert_eq!(st.last_error.as_deref(), Some("store unreachable"));
    assert!(
        std::fs::read_to_string(&metrics)
            .unwrap()
            .contains("backups_schedule_failures_total{schedule=\"nightly\"} 1")
    );
    assert!(matches!(
        s.run_now("nightly", stop.clone()).await.unwrap(),
        RunResult::Succeeded(_)
    ));
    let st = s.status("nightly").unwrap();
    assert_eq!((st.runs, st.failures, st.consecutive_failures), (2, 1, 0));
    assert_eq!(st.last_error, None);
    assert!(s.run_now("weekly", stop).await.is_err());
}

#[test]
fn job_names_are_checked() {
    let mut s = Scheduler::new("/nonexistent");
    let job = || job_fn(|_| async { Ok(JobOutcome::default()) });
    let cron = || CronSchedule::parse("0 3 * * *").unwrap();
    assert!(s.add_job("../etc", cron(), false, job()).is_err());
    assert!(s.add_job("", cron(), false, job()).is_err());
    s.add_job("nightly-1", cron(), false, job()).unwrap();
    let e = s.add_job("nightly-1", cron(), false, job()).unwrap_err();
    assert!(e.to_string().contains("two jobs"), "{e}");
}

#[test]
fn runs_that_came_due_during_a_run_are_counted_as_skipped() {
    let every_two = CronSchedule::parse("*/2 * * * * *").unwrap();
    let ran = datetime!(2026-12-01 12:00:00 UTC);
    assert_eq!(
        skipped_runs(&every_two, ran, datetime!(2026-12-01 12:00:01 UTC)),
        0
    );
    assert_eq!(
        skipped_runs(&every_two, ran, datetime!(2026-12-01 12:00:05 UTC)),
        2
    );
}

#[tokio::test]
async fn stopping_aborts_a_run_in_flight_and_leaves_its_status_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    seeded(dir.path(), datetime!(2020-01-01 03:00:00 UTC));
    let stop = CancellationToken::new();
    let started = stop.clone();
    let events = Arc::new(Mutex::new(Vec::new()));
    let seen = events.clone();
    let mut s = Scheduler::new(dir.path()).on_event(move |e| {
        seen.lock().unwrap().push(e.to_string());
        // Stop as soon as the (catch-up) run has started.
        if matches!(e, ScheduleEvent::Started { .. }) {
            started.cancel();
        }
    });
    s.add_job(
        "nightly",
        CronSchedule::parse("0 3 1 1 *").unwrap(),
        true,
        // Like an upload: runs until its token is cancelled, then fails.
        job_fn(|cancel: CancellationToken| async move {
            cancel.cancelled().await;
            Err("upload aborted".into())
        }),
    )
    .unwrap();
    s.run(stop).await.unwrap();
    let mut events = events.lock().unwrap().clone();
    // The stop and the abort happen together: either may be told first.
    events[1..].sort();
    assert_eq!(
        events,
        [
            "schedule nightly: started (catching up a missed run)",
            "schedule nightly: aborted (stopping); nothing committed",
            "scheduler: stopping",
        ]
    );
    let st = s.status("nightly").unwrap();
    assert_eq!(
        (st.runs, st.failures),
        (1, 0),
        "an aborted run is not recorded"
    );
    assert_eq!(st.last_run, Some(datetime!(2020-01-01 03:00:00 UTC)));
}

#[tokio::test]
async fn failures_are_classified_for_the_metrics_with_the_expected_interval() {
    #[derive(Debug)]
    struct NotVerified;
    impl fmt::Display for NotVerified {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("failed verification")
        }
    }
    impl std::error::Error for NotVerified {}

    let dir = tempfile::tempdir().unwrap();
    let metrics = dir.path().join("backups.prom");
    let mut s = Scheduler::new(dir.path())
        .with_metrics_file(&metrics)
        .with_failure_kinds(|e| {
            if e.downcast_ref::<NotVerified>().is_some() {
                FailureKind::Verification
            } else {
                FailureKind::Other
            }
        });
    let hourly = || CronSchedule::parse("0 * * * *").unwrap();
    s.add_job(
        "ok",
        hourly(),
        false,
        job_fn(|_| async {
            Ok(JobOutcome::backup("x", 1).with_verified(OffsetDateTime::now_utc()))
        }),
    )
    .unwrap();
    s.add_job(
        "offline",
        hourly(),
        false,
        job_fn(|_| async {
            let refused = object_store::Error::Generic {
                store: "S3",
                source: "connection refused".into(),
            };
            Err(Error::storage("s3://b/p", refused).into())
        }),
    )
    .unwrap();
    s.add_job(
        "corrupt",
        hourly(),
        false,
        job_fn(|_| async { Err(Box::new(NotVerified) as crate::schedule::JobError) }),
    )
    .unwrap();
    for job in ["ok", "offline", "corrupt"] {
        s.run_now(job, CancellationToken::new()).await.unwrap();
    }
    let text = std::fs::read_to_string(&metrics).unwrap();
    for line in [
        "backups_schedule_store_reachable{schedule=\"ok\"} 1",
        "backups_schedule_store_reachable{schedule=\"offline\"} 0",
        "backups_schedule_last_verify_ok{schedule=\"ok\"} 1",
        "backups_schedule_last_verify_ok{schedule=\"corrupt\"} 0",
        "backups_schedule_expected_interval_seconds{schedule=\"ok\"} 3600",
        "backups_schedule_expected_interval_seconds{schedule=\"offline\"} 3600",
        "backups_schedule_expected_interval_seconds{schedule=\"corrupt\"} 3600",
    ] {
        assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
    }
    // Neither failure says anything about what it did not get to.
    assert!(
        !text.contains("last_verify_ok{schedule=\"offline\"}"),
        "{text}"
    );
    assert!(
        !text.contains("store_reachable{schedule=\"corrupt\"}"),
        "{text}"
    );
}
