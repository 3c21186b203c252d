//! Restore in two calls: the first answers the plan (a dry run: every
//! check, nothing changed) and a token; only a second call with that token,
//! within ten minutes and once, restores. What is restored where is the
//! server's [`Restorer`]'s: a caller names the target only to confirm it.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::{Extension, Json};
use serde_json::{Value, json};

use crate::auth::{Caller, Role};
use crate::error::{ApiError, ErrorKind};
use crate::shapes::parse_id;
use crate::state::{PLAN_TTL, Restorer, ServerState};

#[derive(serde::Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub(crate) struct PlanBody {
    target: std::path::PathBuf,
}

fn restorer(state: &ServerState) -> Result<Arc<dyn Restorer>, ApiError> {
    state.restorer.clone().ok_or_else(|| {
        ApiError::new(
            ErrorKind::NotConfigured,
            "this server is not configured to restore (backups serve --restore-target DIR)",
        )
    })
}

/// `POST /api/v1/backups/{id}/restore` `{"Target": DIR}`: `{"Plan",
/// "Token", "ExpiresIn"}`.
pub(crate) async fn plan(
    State(state): State<Arc<ServerState>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    Json(body): Json<PlanBody>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Role::Operator, "restore")?;
    let id = parse_id(&id)?;
    let restorer = restorer(&state)?;
    if body.target != restorer.target() {
        return Err(ApiError::usage(format!(
            "this server restores into {}, not {}: give --target {}",
            restorer.target().display(),
            body.target.display(),
            restorer.target().display()
        )));
    }
    let plan = restorer.plan(&id).await?;
    let token = state.plans.insert(id)?;
    Ok(Json(json!({
        "Plan": plan,
        "Token": token,
        "ExpiresIn": PLAN_TTL.as_secs(),
    })))
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub(crate) struct ExecuteBody {
    token: String,
}

/// `POST /api/v1/restore` `{"Token": T}` (in the body, so the request log
/// never shows it): restores the plan's backup; `{"Report"}`.
pub(crate) async fn execute(
    State(state): State<Arc<ServerState>>,
    Extension(caller): Extension<Caller>,
    Json(body): Json<ExecuteBody>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Role::Operator, "restore")?;
    let restorer = restorer(&state)?;
    let id = state.plans.take(&body.token).ok_or_else(|| {
        ApiError::usage("unknown, used or expired restore token: ask for a new plan")
    })?;
    let report = restorer.restore(&id).await?;
    Ok(Json(json!({"Report": report})))
}
