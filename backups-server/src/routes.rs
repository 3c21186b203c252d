//! The router: one route per command, each checking the caller's role
//! first, calling the library as the CLI does and answering in the CLI's
//! `--json` shapes.

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{HeaderMap, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use backups_core::immutable::ObjectLock;
use backups_core::retention::RetentionPolicy;
use backups_core::{BackupId, Backups, Edit, VerifyLevel, VerifyRequest};
use serde_json::{Value, json};

use crate::auth::{Caller, Role, TOKEN_COOKIE};
use crate::error::{ApiError, ErrorKind};
use crate::shapes::{metadata_json, parse_id};
use crate::state::{CreateOptions, MAX_JSON_BODY, ServerState};

type Shared = Arc<ServerState>;
type ApiResult<T = Json<Value>> = Result<T, ApiError>;

/// The facade's routes, for a controller to mount in its own server (or
/// [`crate::serve`] to run alone). Every route needs a token.
///
/// - `GET /` the status page; `GET /api/v1/whoami`; `GET /api/v1/status`
///   (schedules, point-in-time coverage)
/// - `GET /api/v1/backups` (list), `POST /api/v1/backups` (upload, the
///   archive as the body)
/// - `GET|DELETE /api/v1/backups/{id}` (show, remove)
/// - `GET /api/v1/backups/{id}/archive` (download, `Range` honoured)
/// - `POST /api/v1/backups/{id}/verify`, `POST .../labels`, `PUT .../notes`
/// - `POST /api/v1/forget`, `POST /api/v1/create`
/// - `POST /api/v1/backups/{id}/restore` (the plan and a token), `POST
///   /api/v1/restore` (the restore, with the token)
pub fn router(state: Arc<ServerState>) -> Router {
    Router::new()
        .route("/", get(crate::page::status_page))
        .route("/api/v1/whoami", get(whoami))
        .route("/api/v1/status", get(crate::status::status))
        .route(
            "/api/v1/backups",
            get(list)
                .post(crate::transfer::upload)
                .layer(DefaultBodyLimit::disable()),
        )
        .route("/api/v1/backups/{id}", get(show).delete(remove))
        .route(
            "/api/v1/backups/{id}/archive",
            get(crate::transfer::download),
        )
        .route("/api/v1/backups/{id}/verify", post(verify))
        .route("/api/v1/backups/{id}/labels", post(label))
        .route("/api/v1/backups/{id}/notes", put(notes))
        .route("/api/v1/backups/{id}/restore", post(crate::restore::plan))
        .route("/api/v1/restore", post(crate::restore::execute))
        .route("/api/v1/forget", post(forget))
        .route("/api/v1/create", post(create))
        .layer(DefaultBodyLimit::max(MAX_JSON_BODY))
        .layer(middleware::from_fn_with_state(state.clone(), authenticate))
        .with_state(state)
}

/// The token a request presents: `Authorization: Bearer T`, else (with
/// `cookie`, for the status page only, so no other site's page can make a
/// browser act with it) the status page's cookie.
fn presented_token(headers: &HeaderMap, cookie: bool) -> Option<String> {
    if let Some(v) = headers.get(header::AUTHORIZATION)
        && let Ok(v) = v.to_str()
    {
        return v.strip_prefix("Bearer ").map(|t| t.trim().to_string());
    }
    if !cookie {
        return None;
    }
    let cookies = headers.get(header::COOKIE)?.to_str().ok()?;
    cookies.split(';').find_map(|c| {
        let (k, v) = c.trim().split_once('=')?;
        (k == TOKEN_COOKIE).then(|| v.to_string())
    })
}

/// Finds the caller (401 without a valid token) and hands the request on
/// with it; the response carries the caller too, for the request log.
async fn authenticate(State(state): State<Shared>, mut request: Request, next: Next) -> Response {
    if let Some(response) = crate::page::token_from_query(&state, &request) {
        return response;
    }
    let page = request.method() == axum::http::Method::GET && request.uri().path() == "/";
    let caller = presented_token(request.headers(), page).and_then(|t| state.tokens.check(&t));
    let Some(caller) = caller else {
        return ApiError::new(
            ErrorKind::Unauthorized,
            "no valid token: send Authorization: Bearer TOKEN (`backups token generate` makes one)",
        )
        .into_response();
    };
    request.extensions_mut().insert(caller.clone());
    let mut response = next.run(request).await;
    response.extensions_mut().insert(caller);
    response
}

fn pending_ids(state: &ServerState) -> Vec<BackupId> {
    state
        .backups
        .pending_recoveries()
        .unwrap_or_default()
        .into_iter()
        .map(|(id, _)| id)
        .collect()
}

async fn whoami(axum::Extension(caller): axum::Extension<Caller>) -> Json<Value> {
    Json(json!({"Name": caller.name, "Role": caller.role}))
}

async fn list(
    State(state): State<Shared>,
    axum::Extension(caller): axum::Extension<Caller>,
) -> ApiResult {
    caller.require(Role::Read, "list")?;
    let listing = state.backups.listing().await?;
    let pending = pending_ids(&state);
    // The locks as the store reports them (HEAD), as the CLI's list.
    let locks = state.backups.object_locks(&listing.backups).await?;
    let values: Vec<Value> = listing
        .backups
        .iter()
        .zip(locks)
        .map(|(m, lock)| {
            let mut v = metadata_json(m, m.id.as_ref().is_some_and(|id| pending.contains(id)));
            v["Immutable"] = ObjectLock::json(lock);
            v
        })
        .collect();
    Ok(Json(Value::Array(values)))
}

async fn show(
    State(state): State<Shared>,
    axum::Extension(caller): axum::Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult {
    caller.require(Role::Read, "show")?;
    let id = parse_id(&id)?;
    let meta = state.backups.metadata(&id).await?;
    let lock = state.backups.object_lock(&meta).await?;
    let mut v = metadata_json(&meta, pending_ids(&state).contains(&id));
    v["Immutable"] = ObjectLock::json(lock);
    Ok(Json(v))
}

#[derive(serde::Deserialize)]
struct RemoveQuery {
    #[serde(default)]
    force: bool,
}

async fn remove(
    State(state): State<Shared>,
    axum::Extension(caller): axum::Extension<Caller>,
    Path(id): Path<String>,
    Query(q): Query<RemoveQuery>,
) -> ApiResult {
    caller.require(Role::Operator, "remove")?;
    let id = parse_id(&id)?;
    if q.force {
        state.backups.remove_forced(&id).await?;
    } else {
        state.backups.remove(&id).await?;
    }
    Ok(Json(json!({"ID": id.as_str(), "Removed": true})))
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct VerifyBody {
    #[serde(default = "stored")]
    level: VerifyLevel,
}

fn stored() -> VerifyLevel {
    VerifyLevel::Stored
}

async fn verify(
    State(state): State<Shared>,
    axum::Extension(caller): axum::Extension<Caller>,
    Path(id): Path<String>,
    Json(body): Json<VerifyBody>,
) -> ApiResult {
    caller.require(Role::Append, "verify")?;
    // A drill restores the archive into scratch space on this machine:
    // only an operator may have an uploaded archive unpacked here.
    if body.level == VerifyLevel::Drill {
        caller.require(Role::Operator, "verify at the drill level")?;
    }
    let id = parse_id(&id)?;
    let request = VerifyRequest::new(body.level);
    let record = state
        .backups
        .verify(&id, &request, Arc::new(backups_core::NoProgress))
        .await?;
    Ok(Json(json!({
        "ID": id.as_str(),
        "Level": record.level,
        "Ok": record.ok,
        "Detail": record.detail,
    })))
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct LabelBody {
    #[serde(default)]
    add: Vec<String>,
    #[serde(default)]
    remove: Vec<String>,
}

async fn label(
    State(state): State<Shared>,
    axum::Extension(caller): axum::Extension<Caller>,
    Path(id): Path<String>,
    Json(body): Json<LabelBody>,
) -> ApiResult {
    caller.require(Role::Append, "label")?;
    let id = parse_id(&id)?;
    for l in &body.add {
        backups_core::metadata::check_label(l)?;
    }
    if let Some(both) = body.add.iter().find(|l| body.remove.contains(l)) {
        return Err(ApiError::usage(format!(
            "label {both:?} is both added and removed"
        )));
    }
    let meta = state
        .backups
        .edit(&id, &Edit::labels(body.add, body.remove))
        .await?;
    Ok(Json(metadata_json(&meta, false)))
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct NotesBody {
    notes: String,
}

async fn notes(
    State(state): State<Shared>,
    axum::Extension(caller): axum::Extension<Caller>,
    Path(id): Path<String>,
    Json(body): Json<NotesBody>,
) -> ApiResult {
    caller.require(Role::Append, "notes")?;
    let id = parse_id(&id)?;
    let meta = state.backups.edit(&id, &Edit::notes(body.notes)).await?;
    Ok(Json(metadata_json(&meta, false)))
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct ForgetBody {
    policy: RetentionPolicy,
    #[serde(default)]
    dry_run: bool,
}

/// `{"Keep": [{"ID", "Reasons"}], "Remove": [{"ID"}], "Failed": [{"ID",
/// "Error", "Kind"}]}`: forget's `--json` plus what could not be removed.
async fn forget(
    State(state): State<Shared>,
    axum::Extension(caller): axum::Extension<Caller>,
    Json(body): Json<ForgetBody>,
) -> ApiResult {
    caller.require(Role::Operator, "forget")?;
    if body.policy.is_empty() {
        return Err(ApiError::usage(
            "refusing to forget without a policy: give at least one keep-* rule",
        ));
    }
    let (decision, failed) = if body.dry_run {
        let list = state.backups.listing().await?.backups;
        let policy = body.policy.with_pending_recovery(pending_ids(&state));
        (policy.apply(&list), Vec::new())
    } else {
        let report = state.backups.forget(&body.policy).await?;
        (report.decision, report.failed)
    };
    let keep: Vec<Value> = decision
        .keep
        .iter()
        .map(|k| json!({"ID": k.id.as_str(), "Reasons": k.reasons}))
        .collect();
    let remove: Vec<Value> = decision
        .remove
        .iter()
        .map(|id| json!({"ID": id.as_str()}))
        .collect();
    let failed: Vec<Value> = failed
        .into_iter()
        .map(|(id, e)| {
            let e = ApiError::from(e);
            json!({"ID": id.as_str(), "Error": e.message, "Kind": e.kind.as_str()})
        })
        .collect();
    Ok(Json(
        json!({"Keep": keep, "Remove": remove, "Failed": failed}),
    ))
}

async fn create(
    State(state): State<Shared>,
    axum::Extension(caller): axum::Extension<Caller>,
    Json(options): Json<CreateOptions>,
) -> ApiResult {
    caller.require(Role::Append, "create")?;
    for l in &options.labels {
        backups_core::metadata::check_label(l)?;
    }
    let Some(maker) = state.maker.clone() else {
        return Err(ApiError::new(
            ErrorKind::NotConfigured,
            "this server is not configured to create backups",
        ));
    };
    let meta = maker.create(options).await?;
    Ok(Json(metadata_json(&meta, false)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn token(name: header::HeaderName, v: &str) -> Option<String> {
        let mut h = HeaderMap::new();
        h.insert(name, HeaderValue::from_str(v).unwrap());
        presented_token(&h, true)
    }

    #[test]
    fn a_token_comes_from_the_bearer_header_else_the_cookie() {
        assert_eq!(
            token(header::AUTHORIZATION, "Bearer bk_1 ").as_deref(),
            Some("bk_1")
        );
        assert_eq!(token(header::AUTHORIZATION, "Basic dXNlcg=="), None);
        assert_eq!(
            token(header::COOKIE, "a=b; backups_token=bk_2; c=d").as_deref(),
            Some("bk_2")
        );
        assert_eq!(token(header::COOKIE, "xbackups_token=bk_3"), None);
        assert_eq!(token(header::COOKIE, "backups_token"), None);
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("backups_token=bk_2"),
        );
        assert_eq!(presented_token(&h, false), None, "the API takes no cookie");
    }
}
