//! `/v1/sessions/{id}/files`: the session's workspace for people (the
//! console's file manager). Files are served inert: never as HTML, with a
//! sandboxing CSP, so a file a model wrote cannot run in agentd's origin.

use crate::routes::Route;
use agentd_api as api;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use agentd_api::{FileHit, FileListing, FileWritten};

use crate::AppState;
use crate::error::{ApiError, ApiJson, ApiQuery, Scope};

fn listing(path: &str, entries: Vec<agentd_runtime::files::FileEntry>) -> Result<Response, ApiError> {
    Ok(Json(FileListing { path: path.to_string(), entries, hits: vec![] }).into_response())
}

/// The content type a file is served with; markup and scripts as plain text.
fn content_type(path: &str) -> &'static str {
    if let Some(image) = agentd_runtime::files::image_type(path) {
        return image;
    }
    match path.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase()).as_deref() {
        Some("pdf") => "application/pdf",
        Some("json") => "application/json",
        _ => "text/plain; charset=utf-8",
    }
}

/// `GET /v1/sessions/{id}/files`: the root's entries, another directory's
/// with `?path=`, or search hits with `?q=`.
pub(crate) async fn root(
    State(s): State<AppState>,
    Scope(t): Scope,
    Path(id): Path<String>,
    ApiQuery(p): ApiQuery<api::FilesQuery>,
) -> Result<Response, ApiError> {
    if let Some(q) = p.q.filter(|q| !q.trim().is_empty()) {
        let hits: Vec<FileHit> = s.rt.search_files(&t, &id, q.trim()).await?;
        return Ok(Json(FileListing { path: ".".into(), entries: vec![], hits }).into_response());
    }
    let path = p.path.unwrap_or_else(|| ".".into());
    match s.rt.list_files(&t, &id, &path).await? {
        Some(entries) => listing(&path, entries),
        None => read(&s, &t, &id, &path, false).await,
    }
}

async fn read(
    s: &AppState,
    t: &agentd_core::Tenant,
    id: &str,
    path: &str,
    download: bool,
) -> Result<Response, ApiError> {
    // Streamed in small chunks as the client reads them: a client that
    // stalls holds one chunk and a download slot, never the whole file.
    let agentd_runtime::files::Download { file, size, slot } = s.rt.open_download(t, id, path).await?;
    // At most the size it had when opened: a file that grows meanwhile
    // would break the announced length.
    let reader = tokio::io::AsyncReadExt::take(tokio::fs::File::from_std(file), size);
    let stream = tokio_util::io::ReaderStream::with_capacity(reader, 16 * 1024);
    // The slot goes with the stream and is freed when the body is dropped.
    let stream = futures::StreamExt::map(stream, move |chunk| {
        let _held = &slot;
        chunk
    });
    let mut r = axum::body::Body::from_stream(stream).into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(size));
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type(path)));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static("default-src 'none'; sandbox"));
    if download {
        let name: String = path
            .rsplit('/')
            .next()
            .unwrap_or("file")
            .chars()
            .filter(|c| c.is_ascii_graphic() && *c != '"' && *c != '\\')
            .collect();
        if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
            h.insert(header::CONTENT_DISPOSITION, v);
        }
    }
    Ok(r)
}

/// `GET /v1/sessions/{id}/files/{path}`: a directory's entries or a file's bytes (`?download=1`).
pub(crate) async fn get(
    State(s): State<AppState>,
    Scope(t): Scope,
    Path((id, path)): Path<(String, String)>,
    ApiQuery(p): ApiQuery<api::FileQuery>,
) -> Result<Response, ApiError> {
    match s.rt.list_files(&t, &id, &path).await? {
        Some(entries) => listing(&path, entries),
        None => read(&s, &t, &id, &path, p.download.is_some_and(|v| v == "1" || v == "true")).await,
    }
}

/// `PUT /v1/sessions/{id}/files/{path}`: the body becomes the file.
pub(crate) async fn put(
    State(s): State<AppState>,
    Scope(t): Scope,
    Path((id, path)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let size = body.len() as u64;
    s.rt.write_file(&t, &id, &path, body.to_vec()).await?;
    Ok((StatusCode::CREATED, Json(FileWritten { path, size })).into_response())
}

pub(crate) async fn delete(
    State(s): State<AppState>,
    Scope(t): Scope,
    Path((id, path)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    s.rt.delete_file(&t, &id, &path).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub(crate) async fn rename(
    State(s): State<AppState>,
    Scope(t): Scope,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<agentd_api::RenameFile>,
) -> Result<Response, ApiError> {
    s.rt.rename_file(&t, &id, &b.from, &b.to).await?;
    Ok((StatusCode::OK, Json(FileWritten { path: b.to, size: 0 })).into_response())
}

/// This module's routes: method, path, least role, OpenAPI operation, handler.
pub(crate) fn routes() -> Vec<Route> {
    vec![
        Route::get(
            "/v1/sessions/{id}/files",
            "The session workspace's root (`path` for another directory, `q` to search names and text)",
            root,
        )
        .query::<api::FilesQuery>()
        .answer::<api::FileListing>(200),
        Route::get(
            "/v1/sessions/{id}/files/{*path}",
            "A directory's entries, or a file's bytes (`download=1` as an attachment)",
            get,
        )
        .query::<api::FileQuery>()
        .raw()
        .answer::<api::FileListing>(200),
        Route::put("/v1/sessions/{id}/files/{*path}", "Upload a file (the raw body; parents are made)", put)
            .raw()
            .answer::<api::FileWritten>(201)
            .audited()
            .max_body(agentd_runtime::files::MAX_FILE),
        Route::delete("/v1/sessions/{id}/files/{*path}", "Remove a file or an empty directory", delete)
            .empty(204)
            .audited(),
        Route::post("/v1/sessions/{id}/rename-file", "Rename or move a file or directory (never over another)", rename)
            .body::<api::RenameFile>()
            .answer::<api::FileWritten>(200)
            .audited(),
    ]
}
