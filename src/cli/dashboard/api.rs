//! The HTTP API under `/api/v1` and the page at `/`.
//!
//! Owns: the routes (listed once in [`ROUTES`], which the checked-in `OpenAPI` file must
//! match: see the test), their parameters, and the Server-Sent Event streams. Every
//! operation is one of [`crate::cli::ops`], run on a blocking thread; state streams come
//! from the supervisors' `subscribe`, never from polling.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::{Path, Query};
use axum::http::{StatusCode, header};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use futures_util::Stream;
use serde::Deserialize;
use tokio::io::AsyncBufReadExt as _;
use tokio::sync::mpsc;

use super::auth::{self, Guard};
use crate::cli::ops::{self, Action, ErrorJson, ErrorKind, LogLine, LogQuery, ProjectInfo};
use crate::control::client;
use crate::logs::Followed;
use crate::platform;

/// The `OpenAPI` document, checked in and served as is.
pub const OPENAPI: &str = include_str!("../../../docs/openapi.json");
/// The page: plain HTML, CSS and JavaScript, embedded (no build step, no CDN).
const PAGE_HTML: &str = include_str!("page/index.html");
const PAGE_CSS: &str = include_str!("page/app.css");
const PAGE_JS: &str = include_str!("page/app.js");

/// Every route: method and path (`OpenAPI` syntax, which is also axum's).
pub const ROUTES: &[(&str, &str)] = &[
    ("get", "/api/v1/openapi.json"),
    ("get", "/api/v1/projects"),
    ("get", "/api/v1/projects/{id}/processes"),
    ("get", "/api/v1/projects/{id}/processes/{name}"),
    ("post", "/api/v1/projects/{id}/processes/{name}/{action}"),
    ("post", "/api/v1/projects/{id}/{action}"),
    ("get", "/api/v1/projects/{id}/processes/{name}/logs"),
    ("get", "/api/v1/events"),
    ("get", "/api/v1/projects/{id}/logs"),
    ("get", "/api/v1/projects/{id}/graph"),
];

/// The whole app: the page, the API, behind the guard.
pub fn router(guard: Arc<Guard>) -> Router {
    Router::new()
        .route("/", get(|| async { Html(PAGE_HTML) }))
        .route(
            "/app.css",
            get(|| async { asset("text/css; charset=utf-8", PAGE_CSS) }),
        )
        .route(
            "/app.js",
            get(|| async { asset("text/javascript; charset=utf-8", PAGE_JS) }),
        )
        .route(ROUTES[0].1, get(openapi))
        .route(ROUTES[1].1, get(projects))
        .route(ROUTES[2].1, get(processes))
        .route(ROUTES[3].1, get(process))
        .route(ROUTES[4].1, post(process_action))
        .route(ROUTES[5].1, post(project_action))
        .route(ROUTES[6].1, get(logs))
        .route(ROUTES[7].1, get(events))
        .route(ROUTES[8].1, get(project_logs))
        .route(ROUTES[9].1, get(graph))
        .layer(axum::middleware::from_fn_with_state(guard, auth::guard))
}

/// An operation's failure, answered as JSON in the project's wording.
pub struct ApiError(ErrorJson);

impl From<anyhow::Error> for ApiError {
    fn from(err: anyhow::Error) -> Self {
        Self(ErrorJson::from_anyhow(&err))
    }
}

impl From<crate::error::Error> for ApiError {
    fn from(err: crate::error::Error) -> Self {
        Self::from(anyhow::Error::from(err))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = match self.0.kind {
            ErrorKind::NotFound => StatusCode::NOT_FOUND,
            ErrorKind::BadRequest => StatusCode::BAD_REQUEST,
            ErrorKind::Failed => StatusCode::INTERNAL_SERVER_ERROR,
        };
        (status, Json(self.0)).into_response()
    }
}

type ApiResult<T> = Result<T, ApiError>;

/// Run a blocking operation off the runtime's thread.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
) -> ApiResult<T> {
    match tokio::task::spawn_blocking(f).await {
        Ok(result) => result.map_err(ApiError::from),
        Err(join) => Err(anyhow::anyhow!("the operation failed: {join}").into()),
    }
}

async fn project(id: String) -> ApiResult<ProjectInfo> {
    blocking(move || Ok(ops::find(&id)?)).await
}

fn asset(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, content_type)], body)
}

async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI)
}

async fn projects() -> ApiResult<Json<serde_json::Value>> {
    let list = blocking(|| Ok(ops::projects())).await?;
    Ok(Json(serde_json::json!({ "projects": list })))
}

async fn processes(Path(id): Path<String>) -> ApiResult<Json<serde_json::Value>> {
    let p = project(id).await?;
    Ok(Json(blocking(move || ops::status(&p, None)).await?))
}

async fn process(Path((id, name)): Path<(String, String)>) -> ApiResult<Json<serde_json::Value>> {
    let p = project(id).await?;
    let status = blocking(move || ops::status(&p, Some(&name))).await?;
    Ok(Json(
        status["processes"]
            .get(0)
            .cloned()
            .unwrap_or(serde_json::Value::Null),
    ))
}

fn bad_verb(verb: &str, allowed: &str) -> ApiError {
    crate::error::Error::BadRequest {
        message: format!("unknown action `{verb}` (expected one of: {allowed})"),
    }
    .into()
}

async fn process_action(
    Path((id, name, verb)): Path<(String, String, String)>,
) -> ApiResult<Json<serde_json::Value>> {
    let action =
        Action::for_process(&verb).ok_or_else(|| bad_verb(&verb, "start, stop, restart"))?;
    let p = project(id).await?;
    let outcome = blocking(move || ops::act(&p, action, &[name])).await?;
    Ok(Json(serde_json::to_value(outcome).unwrap_or_default()))
}

async fn project_action(
    Path((id, verb)): Path<(String, String)>,
) -> ApiResult<Json<serde_json::Value>> {
    let action = Action::for_project(&verb).ok_or_else(|| bad_verb(&verb, "up, down, restart"))?;
    let p = project(id).await?;
    let outcome = blocking(move || ops::act(&p, action, &[])).await?;
    Ok(Json(serde_json::to_value(outcome).unwrap_or_default()))
}

#[derive(Debug, Deserialize)]
struct LogParams {
    n: Option<usize>,
    grep: Option<String>,
    since: Option<String>,
    #[serde(default)]
    follow: bool,
}

fn sse_from(rx: mpsc::Receiver<SseEvent>) -> Sse<impl Stream<Item = Result<SseEvent, Infallible>>> {
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|event| (Ok(event), rx))
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

fn json_event(kind: &str, value: &impl serde::Serialize) -> SseEvent {
    SseEvent::default()
        .event(kind)
        .data(serde_json::to_string(value).unwrap_or_default())
}

async fn logs(
    Path((id, name)): Path<(String, String)>,
    Query(params): Query<LogParams>,
) -> ApiResult<Response> {
    let query = LogQuery::parse(params.n, params.grep.as_deref(), params.since.as_deref())?;
    let p = project(id).await?;
    if !params.follow {
        let lines = blocking(move || ops::log_lines(&p, &name, &query)).await?;
        return Ok(Json(serde_json::json!({ "lines": lines })).into_response());
    }
    let names = vec![name];
    {
        let (p, names) = (p.clone(), names.clone());
        blocking(move || ops::check_process(&p, &names[0])).await?;
    }
    Ok(follow_response(p, names, query))
}

/// Every process's log, merged by time.
async fn project_logs(
    Path(id): Path<String>,
    Query(params): Query<LogParams>,
) -> ApiResult<Response> {
    let query = LogQuery::parse(params.n, params.grep.as_deref(), params.since.as_deref())?;
    let p = project(id).await?;
    if !params.follow {
        let lines = blocking(move || ops::log_lines_all(&p, &query)).await?;
        return Ok(Json(serde_json::json!({ "lines": lines })).into_response());
    }
    let names = {
        let p = p.clone();
        blocking(move || ops::names(&p)).await?
    };
    Ok(follow_response(p, names, query))
}

/// The stream of `names`' logs: the tail, then every new line.
fn follow_response(p: ProjectInfo, names: Vec<String>, query: LogQuery) -> Response {
    let (tx, rx) = mpsc::channel(256);
    std::thread::spawn(move || follow_logs(&p, &names, &query, &tx));
    sse_from(rx).into_response()
}

/// Send the tail of the `names`' logs (merged by time), then every new line, until the
/// client goes away. The followers start first and the tail ends at the exact offset each
/// one starts from: a line written meanwhile is sent once, by the follower.
fn follow_logs(p: &ProjectInfo, names: &[String], query: &LogQuery, tx: &mpsc::Sender<SseEvent>) {
    let Ok(watch) = platform::DirWatch::new(&p.paths.logs_dir) else {
        return;
    };
    let mut files: Vec<(String, Followed)> = names
        .iter()
        .map(|name| (name.clone(), Followed::at_end(name, p.paths.log_file(name))))
        .collect();
    let ends: Vec<(String, Option<u64>)> = files
        .iter()
        .map(|(name, f)| (name.clone(), Some(f.offset())))
        .collect();
    for line in ops::tail_until(p, &ends, query) {
        if tx.blocking_send(json_event("log", &line)).is_err() {
            return;
        }
    }
    loop {
        for (name, file) in &mut files {
            for line in file.read_new_timed() {
                if query.keeps(&line.text)
                    && tx
                        .blocking_send(json_event("log", &LogLine::new(name, &line)))
                        .is_err()
                {
                    return;
                }
            }
        }
        if tx.is_closed() || watch.wait(Some(Duration::from_millis(250))).is_err() {
            return;
        }
    }
}

async fn graph(Path(id): Path<String>) -> ApiResult<Json<ops::GraphJson>> {
    let p = project(id).await?;
    Ok(Json(blocking(move || ops::graph(&p)).await?))
}

async fn events() -> ApiResult<Response> {
    let projects = blocking(|| Ok(ops::projects())).await?;
    let (tx, rx) = mpsc::channel(256);
    for p in projects {
        let tx = tx.clone();
        tokio::spawn(async move { relay(p, tx).await });
    }
    // The stream stays open (with keep-alives) after every relay ended, until the client
    // goes: a client that reconnects to learn of new supervisors does so when it chooses.
    tokio::spawn(async move { tx.closed().await });
    Ok(sse_from(rx).into_response())
}

/// Forward one project's subscription (snapshot, then events), each frame tagged with
/// the project's id, until the supervisor or the client goes away.
async fn relay(p: ProjectInfo, tx: mpsc::Sender<SseEvent>) {
    let paths = p.paths.clone();
    let Ok(Ok(conn)) = tokio::task::spawn_blocking(move || client::subscribe(&paths)).await else {
        return;
    };
    let stream = conn.into_stream();
    if stream.set_nonblocking(true).is_err() {
        return;
    }
    let Ok(stream) = tokio::net::UnixStream::from_std(stream) else {
        return;
    };
    let mut lines = tokio::io::BufReader::new(stream).lines();
    loop {
        let line = tokio::select! {
            () = tx.closed() => return,
            line = lines.next_line() => line,
        };
        let Ok(Some(line)) = line else { return };
        let Ok(mut frame) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue;
        };
        let kind = frame["type"].as_str().unwrap_or("event").to_owned();
        frame["project"] = p.id.clone().into();
        if tx.send(json_event(&kind, &frame)).await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_is_in_the_openapi_file_and_nothing_else() {
        let doc: serde_json::Value = serde_json::from_str(OPENAPI).expect("openapi.json is JSON");
        let paths = doc["paths"].as_object().expect("paths");
        for (method, path) in ROUTES {
            assert!(
                paths.get(*path).and_then(|p| p.get(*method)).is_some(),
                "{method} {path} is routed but not in docs/openapi.json"
            );
        }
        for (path, ops) in paths {
            for method in ops.as_object().expect("operations").keys() {
                if method == "parameters" {
                    continue;
                }
                assert!(
                    ROUTES.contains(&(method.as_str(), path.as_str())),
                    "{method} {path} is in docs/openapi.json but not routed"
                );
            }
        }
    }
}
