//! `GET /`: the status page. Server-rendered HTML with no external assets:
//! per controller (model UUID) its backups (size, age, verified, clean,
//! labels) and an SVG chart of backup size and duration over time; the
//! schedules' last and next runs; each replica set's point-in-time coverage.
//! `/?token=T` sets the token as a cookie once and redirects to `/`.

use std::fmt::Write as _;
use std::sync::Arc;

use axum::Extension;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use backups_core::Metadata;
use backups_core::metadata::format_time;
use time::OffsetDateTime;

use crate::auth::{Caller, Role, TOKEN_COOKIE};
use crate::error::ApiError;
use crate::state::ServerState;

/// For `GET /?token=T` with a valid token: a redirect to `/` that sets the
/// cookie (HttpOnly, Secure, SameSite=Strict), so the token leaves the
/// address bar. `None` for every other request.
pub(crate) fn token_from_query(state: &ServerState, request: &Request) -> Option<Response> {
    if request.uri().path() != "/" {
        return None;
    }
    let query = request.uri().query()?;
    let token = query.split('&').find_map(|kv| kv.strip_prefix("token="))?;
    let caller = state.tokens.check(token);
    let mut response = StatusCode::SEE_OTHER.into_response();
    response
        .headers_mut()
        .insert(header::LOCATION, HeaderValue::from_static("/"));
    if let Some(caller) = caller {
        let cookie = format!("{TOKEN_COOKIE}={token}; Path=/; HttpOnly; Secure; SameSite=Strict");
        if let Ok(v) = HeaderValue::from_str(&cookie) {
            response.headers_mut().insert(header::SET_COOKIE, v);
        }
        response.extensions_mut().insert(caller);
    }
    Some(response)
}

/// `<`, `>`, `&` and quotes escaped.
fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

fn age(meta: &Metadata, now: OffsetDateTime) -> String {
    let Some(t) = meta.started else {
        return "-".into();
    };
    let secs = (now - t).whole_seconds().max(0);
    match secs {
        s if s < 120 => format!("{s} s"),
        s if s < 7200 => format!("{} min", s / 60),
        s if s < 172_800 => format!("{} h", s / 3600),
        s => format!("{} d", s / 86400),
    }
}

fn duration_secs(meta: &Metadata) -> f64 {
    match (meta.started, meta.finished) {
        (Some(s), Some(f)) => (f - s).as_seconds_f64().max(0.0),
        _ => 0.0,
    }
}

/// The chart: one point per backup (oldest left), size in blue and
/// duration in orange, each scaled to its own maximum.
fn chart(backups: &[&Metadata]) -> String {
    let (w, h, pad) = (640.0_f64, 160.0_f64, 24.0_f64);
    let mut points: Vec<&&Metadata> = backups.iter().filter(|m| m.started.is_some()).collect();
    points.sort_by_key(|m| m.started);
    let max_size = points.iter().map(|m| m.size).max().unwrap_or(1).max(1) as f64;
    let max_dur = points
        .iter()
        .map(|m| duration_secs(m))
        .fold(0.0_f64, f64::max)
        .max(0.001);
    let n = points.len().max(2) as f64 - 1.0;
    let x = |i: usize| pad + (w - 2.0 * pad) * (i as f64) / n;
    let y = |v: f64| h - pad - (h - 2.0 * pad) * v;
    let line = |f: &dyn Fn(&Metadata) -> f64| {
        points
            .iter()
            .enumerate()
            .map(|(i, m)| format!("{:.1},{:.1}", x(i), y(f(m))))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let sizes = line(&|m| m.size as f64 / max_size);
    let durations = line(&|m| duration_secs(m) / max_dur);
    format!(
        r##"<svg class="chart" xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img" aria-label="backup size and duration over time">
<rect x="0" y="0" width="{w}" height="{h}" fill="#fafafa" stroke="#ccc"/>
<polyline id="size-line" fill="none" stroke="#1f77b4" stroke-width="2" points="{sizes}"/>
<polyline id="duration-line" fill="none" stroke="#ff7f0e" stroke-width="2" points="{durations}"/>
<text x="{pad}" y="16" font-size="12" fill="#1f77b4">size (max {})</text>
<text x="{}" y="16" font-size="12" fill="#ff7f0e">duration (max {max_dur:.1} s)</text>
</svg>"##,
        esc(&human_size(max_size as u64)),
        w / 2.0
    )
}

fn controller_section(out: &mut String, model: &str, backups: &[&Metadata], now: OffsetDateTime) {
    let _ = write!(
        out,
        "<section><h2>Controller model {}</h2>\n{}\n<table><tr><th>ID</th><th>size</th><th>age</th><th>verified</th><th>clean</th><th>labels</th></tr>\n",
        esc(model),
        chart(backups)
    );
    for m in backups {
        let id = m.id.as_ref().map(|i| i.to_string()).unwrap_or_default();
        let verified = match &m.verification {
            Some(v) if v.ok => "yes",
            Some(_) => "FAILED",
            None => "-",
        };
        let _ = writeln!(
            out,
            "<tr><td class=\"id\">{}</td><td>{}</td><td>{}</td><td>{verified}</td><td>{}</td><td>{}</td></tr>",
            esc(&id),
            esc(&human_size(m.stored_size())),
            esc(&age(m, now)),
            if m.clean() { "yes" } else { "no" },
            esc(&m.labels.join(", "))
        );
    }
    out.push_str("</table></section>\n");
}

fn schedules_section(out: &mut String, state: &ServerState) {
    let jobs = crate::status::schedules(state.state_dir.as_deref());
    if jobs.is_empty() {
        return;
    }
    out.push_str("<section><h2>Schedules</h2><table><tr><th>job</th><th>last run</th><th>last success</th><th>next run</th><th>failures in a row</th><th>last error</th></tr>\n");
    for j in &jobs {
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&j.name),
            esc(&format_time(j.last_run)),
            esc(&format_time(j.last_success)),
            esc(&crate::status::next_run(j)),
            j.consecutive_failures,
            esc(j.last_error.as_deref().unwrap_or("-"))
        );
    }
    out.push_str("</table></section>\n");
}

/// `GET /`: the page (a `read` token).
pub(crate) async fn status_page(
    State(state): State<Arc<ServerState>>,
    Extension(caller): Extension<Caller>,
) -> Result<Response, ApiError> {
    caller.require(Role::Read, "the status page")?;
    let listing = state.backups.listing().await?;
    let now = OffsetDateTime::now_utc();
    let mut models: Vec<&str> = listing
        .backups
        .iter()
        .map(|m| m.model_uuid.as_str())
        .collect();
    models.sort_unstable();
    models.dedup();
    let mut body = String::new();
    if listing.backups.is_empty() {
        body.push_str("<p>No backups to display.</p>\n");
    }
    for model in models {
        let backups: Vec<&Metadata> = listing
            .backups
            .iter()
            .filter(|m| m.model_uuid == model)
            .collect();
        controller_section(&mut body, model, &backups, now);
    }
    schedules_section(&mut body, &state);
    let coverage = crate::status::coverage(&state).await.unwrap_or_default();
    if !coverage.is_empty() {
        body.push_str("<section><h2>Point-in-time coverage</h2><table><tr><th>replica set</th><th>covered</th><th>gaps</th></tr>\n");
        for (name, covered, gaps) in coverage {
            let _ = writeln!(
                body,
                "<tr><td>{}</td><td>{}</td><td>{gaps}</td></tr>",
                esc(&name),
                esc(&covered)
            );
        }
        body.push_str("</table></section>\n");
    }
    let html = format!(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>backups: {store}</title>\n<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:2px 8px;text-align:left}}.id{{font-family:monospace}}</style></head>\n<body><h1>Backups in {store}</h1>\n<p>{count} backups; signed in as {name} ({role}).</p>\n{body}</body></html>\n",
        store = esc(&backups_core::secret::redact_uri(
            state.backups.storage().url()
        )),
        count = listing.backups.len(),
        name = esc(&caller.name),
        role = caller.role,
    );
    let mut response = Html(html).into_response();
    response.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'; img-src data:"),
    );
    Ok(response)
}
