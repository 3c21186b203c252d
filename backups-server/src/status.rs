//! `GET /api/v1/status` (and the status page's lower half): the schedules'
//! last runs, from the status files `backups schedule run` writes in the
//! server's state directory, and the point-in-time coverage of each
//! replica set whose oplog is shipped to the store.

use std::path::Path;
use std::sync::Arc;

use axum::extract::State;
use axum::{Extension, Json};
use backups_core::metadata::format_time;
use backups_core::schedule::JobStatus;
use serde_json::{Value, json};

use crate::auth::{Caller, Role};
use crate::error::ApiError;
use crate::state::ServerState;

/// The schedules' status files (`<state>/schedule/*.json`), by name; a
/// file that cannot be read is left out.
pub(crate) fn schedules(state_dir: Option<&Path>) -> Vec<JobStatus> {
    let Some(dir) = state_dir else {
        return Vec::new();
    };
    let Ok(entries) = std::fs::read_dir(dir.join("schedule")) else {
        return Vec::new();
    };
    let mut jobs: Vec<JobStatus> = entries
        .filter_map(Result::ok)
        .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
        .filter_map(|e| serde_json::from_slice(&std::fs::read(e.path()).ok()?).ok())
        .collect();
    jobs.sort_by(|a, b| a.name.cmp(&b.name));
    jobs
}

/// The expected next run: the last one plus the job's interval.
pub(crate) fn next_run(job: &JobStatus) -> String {
    match (job.last_run, job.expected_interval_seconds) {
        // A status file is input: a huge interval must not overflow.
        (Some(t), Some(s)) if s.is_finite() && s > 0.0 => time::Duration::checked_seconds_f64(s)
            .and_then(|d| t.checked_add(d))
            .map_or_else(|| "-".into(), |next| format_time(Some(next))),
        _ => "-".into(),
    }
}

/// Each replica set's name, covered stretches and gap count.
pub(crate) async fn coverage(
    state: &ServerState,
) -> Result<Vec<(String, String, usize)>, ApiError> {
    let chains = backups_core::pitr::catalog(state.backups.storage()).await?;
    Ok(chains
        .iter()
        .map(|c| (c.name.clone(), c.describe_covered(), c.gaps().len()))
        .collect())
}

/// `{"Backups": N, "Schedules": [{"Name", "LastRun", "LastSuccess",
/// "NextRun", "ConsecutiveFailures", "LastError"}], "PointInTime":
/// [{"ReplicaSet", "Covered", "Gaps"}]}`.
pub(crate) async fn status(
    State(state): State<Arc<ServerState>>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Role::Read, "status")?;
    let backups = state.backups.listing().await?.backups.len();
    let schedules: Vec<Value> = schedules(state.state_dir.as_deref())
        .iter()
        .map(|j| {
            json!({
                "Name": j.name,
                "LastRun": j.last_run.map(|t| format_time(Some(t))),
                "LastSuccess": j.last_success.map(|t| format_time(Some(t))),
                "NextRun": next_run(j),
                "ConsecutiveFailures": j.consecutive_failures,
                "LastError": j.last_error,
            })
        })
        .collect();
    let pitr: Vec<Value> = coverage(&state)
        .await?
        .into_iter()
        .map(|(name, covered, gaps)| json!({"ReplicaSet": name, "Covered": covered, "Gaps": gaps}))
        .collect();
    Ok(Json(json!({
        "Backups": backups,
        "Schedules": schedules,
        "PointInTime": pitr,
    })))
}
