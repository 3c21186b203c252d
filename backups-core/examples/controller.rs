//! A toy controller that embeds the library, the way a real one would.
//!
//! It owns its tokio runtime, keeps some live state (files, and with
//! `--mongo-uri` a MongoDB database), and:
//!
//! 1. runs a schedule (every second: create, verify by reading every
//!    entry, retention keeping the last 2) until three runs succeeded;
//! 2. shuts the scheduler down on a cancellation token, cleanly;
//! 3. answers "restore this backup in place" with the library's defaults:
//!    the restore takes a `pre-restore` safety backup of what it replaces
//!    without being asked, and the live state comes back.
//!
//! ```text
//! cargo run -p backups-core --example controller [-- --mongo-uri URI]
//! ```
//!
//! It prints what it did and exits 0, or names what went wrong and exits 1.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use backups_core::retention::KeepCount;
use backups_core::schedule::{
    BackupJob, BackupSource, CronSchedule, JobError, ScheduleEvent, Scheduler,
};
use backups_core::{
    Backups, CancellationToken, CreateRequest, DatabaseDumper, DatabaseLoader, FileSet, Identity,
    NoProgress, RestoreRequest, RestoreSource, RetentionPolicy, Storage, StoreBackups, VerifyLevel,
};
use backups_mongo::{DumpOptions, LoadOptions, MongoDumper, MongoLoader};

type Failure = Box<dyn std::error::Error + Send + Sync>;

/// The controller's identity: what its backups record.
const MODEL: &str = "6f1d2a70-3c1e-4b7f-9a55-0c1e2d3f4a5b";

/// What the controller backs up: its data directory and, when it has one,
/// its database (connections are made afresh for each run).
struct ControllerState {
    data_dir: PathBuf,
    mongo: Option<(String, String)>,
}

#[async_trait]
impl BackupSource for ControllerState {
    async fn create_request(&self) -> Result<CreateRequest, JobError> {
        let mut request = CreateRequest::new(
            FileSet::new(vec![self.data_dir.clone()]),
            Identity::new(MODEL),
        );
        if let Some((uri, db)) = &self.mongo {
            request = request.with_database(Arc::new(dumper(uri, db).await?));
        }
        Ok(request)
    }
}

async fn dumper(uri: &str, db: &str) -> Result<MongoDumper, Failure> {
    let options = DumpOptions {
        include_dbs: vec![db.to_string()],
        ..Default::default()
    };
    Ok(MongoDumper::connect(uri, options).await?)
}

fn main() -> ExitCode {
    let mongo_uri = std::env::args()
        .skip_while(|a| a != "--mongo-uri")
        .nth(1)
        .or_else(|| std::env::var("BACKUPS_EXAMPLE_MONGO_URI").ok());
    // The controller's own runtime, not a macro's.
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("controller: cannot start a runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(mongo_uri)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("controller: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(mongo_uri: Option<String>) -> Result<(), Failure> {
    let work = tempfile::tempdir()?;
    let data_dir = work.path().join("var/lib/toy");
    std::fs::create_dir_all(data_dir.join("agents"))?;
    std::fs::write(
        data_dir.join("agents/agent.conf"),
        "api-address: 10.0.0.5\n",
    )?;
    std::fs::write(data_dir.join("server.pem"), "the controller's key\n")?;
    let db = format!("toy_controller_{}", std::process::id());
    if let Some(uri) = &mongo_uri {
        seed_database(uri, &db).await?;
    }
    let store = Storage::from_url(
        &format!("file://{}", work.path().join("store").display()),
        Vec::<(String, String)>::new(),
    )?;
    let backups = StoreBackups::new(store).with_holder("toy-controller");
    let state = Arc::new(ControllerState {
        data_dir: data_dir.clone(),
        mongo: mongo_uri.clone().map(|u| (u, db.clone())),
    });

    // 1. The schedule, run by the library's scheduler.
    scheduled_backups(&backups, state, work.path()).await?;
    let listed = backups.list().await?;
    println!(
        "schedule: 3 runs succeeded; retention left {} backups",
        listed.len()
    );
    if listed.len() != 2 {
        return Err(format!("retention should have left 2 backups, not {}", listed.len()).into());
    }
    let newest = listed[0]
        .id
        .clone()
        .ok_or("a listed backup without an id")?;

    // 3. "Restore this backup in place": the live state moved on since.
    std::fs::write(
        data_dir.join("agents/agent.conf"),
        "api-address: 10.9.9.9\n",
    )?;
    let mut request = RestoreRequest::new(RestoreSource::Id(newest.clone()), "/")
        .with_safety_identity(Identity::new(MODEL));
    if let Some(uri) = &mongo_uri {
        let loader: Arc<dyn DatabaseLoader> =
            Arc::new(MongoLoader::connect(uri, LoadOptions::default()).await?);
        let dumper: Arc<dyn DatabaseDumper> = Arc::new(dumper(uri, &db).await?);
        request = request.with_database(loader).with_safety_database(dumper);
    }
    let report = backups.restore(request, Arc::new(NoProgress)).await?;
    let safety = report
        .safety_backup
        .ok_or("an in-place restore with default options took no safety backup")?;
    let conf = std::fs::read_to_string(data_dir.join("agents/agent.conf"))?;
    if conf != "api-address: 10.0.0.5\n" {
        return Err(format!("agent.conf was not restored: {conf:?}").into());
    }
    println!("restore: {newest} restored in place; safety backup {safety} (label pre-restore)");
    if let Some(db_report) = &report.database {
        let docs: u64 = db_report.collections.values().sum();
        println!("restore: {docs} documents loaded");
    }
    if let Some(uri) = &mongo_uri {
        drop_database(uri, &db).await?;
    }
    println!("controller: done");
    Ok(())
}

/// Runs the schedule until three runs succeeded, then cancels the
/// scheduler and waits for it to stop.
async fn scheduled_backups(
    backups: &StoreBackups,
    state: Arc<ControllerState>,
    dir: &Path,
) -> Result<(), Failure> {
    let job = BackupJob::new("every-second", backups.clone(), state)
        .with_verify(Some(VerifyLevel::ReadData))
        .with_retention(Some(
            RetentionPolicy::new().with_keep_last(KeepCount::Count(2)),
        ));
    let cancel = CancellationToken::new();
    let succeeded = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let (stop, seen) = (cancel.clone(), (succeeded.clone(), failed.clone()));
    let mut scheduler = Scheduler::new(dir.join("state")).on_event(move |event| {
        println!("scheduler: {event}");
        match event {
            ScheduleEvent::Succeeded { .. } if seen.0.fetch_add(1, Ordering::SeqCst) + 1 >= 3 => {
                stop.cancel();
            }
            ScheduleEvent::Failed { .. } => {
                seen.1.fetch_add(1, Ordering::SeqCst);
                stop.cancel();
            }
            _ => {}
        }
    });
    scheduler.add_job(
        "every-second",
        CronSchedule::parse("* * * * * *")?,
        false,
        Arc::new(job),
    )?;
    // 2. A clean shutdown: the token stops the scheduler between runs (or
    // aborts a run in progress) and `run` returns.
    scheduler.run(cancel).await?;
    if failed.load(Ordering::SeqCst) > 0 {
        return Err("a scheduled run failed (see above)".into());
    }
    if succeeded.load(Ordering::SeqCst) < 3 {
        return Err("the scheduler stopped before three runs succeeded".into());
    }
    Ok(())
}

async fn seed_database(uri: &str, db: &str) -> Result<(), Failure> {
    let client = mongodb::Client::with_uri_str(uri).await?;
    let machines = client
        .database(db)
        .collection::<mongodb::bson::Document>("machines");
    machines.drop().await?;
    machines
        .insert_many((0..3).map(|i| mongodb::bson::doc! {"_id": i, "series": "noble"}))
        .await?;
    Ok(())
}

async fn drop_database(uri: &str, db: &str) -> Result<(), Failure> {
    let client = mongodb::Client::with_uri_str(uri).await?;
    client.database(db).drop().await?;
    Ok(())
}
