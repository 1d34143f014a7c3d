//! The one HTTP path of the simple tenant document kinds: five route rows
//! per kind (create, list, read, replace, remove), tenant-scoped, audited,
//! in the OpenAPI document, answered from the runtime's `Documents`.

use agentd_api as api;
use agentd_api::openapi::op;
use agentd_api::{Document, Named};
use agentd_runtime::documents::DocumentKind;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use schemars::JsonSchema;

use crate::AppState;
use crate::error::{ApiError, ApiJson, ApiQuery, Scope, limit};
use crate::routes::Route;

/// A kind served over HTTP: its paths.
pub(crate) trait Resource: DocumentKind + JsonSchema {
    /// The collection, e.g. `/v1/prompts`.
    const PATH: &'static str;
    /// One of it, e.g. `/v1/prompts/{name}`.
    const ITEM: &'static str;
}

async fn create<K: Resource>(
    State(s): State<AppState>,
    Scope(t): Scope,
    ApiJson(b): ApiJson<Named<K>>,
) -> Result<Response, ApiError> {
    let d = s.rt.documents().create(&t, &b.name, b.body).await?;
    Ok((StatusCode::CREATED, Json(d)).into_response())
}

async fn list<K: Resource>(
    State(s): State<AppState>,
    Scope(t): Scope,
    ApiQuery(p): ApiQuery<api::PageQuery>,
) -> Result<Response, ApiError> {
    let limit = limit(p.limit, 100, 1000)?;
    let rows: Vec<Document<K>> = s.rt.documents().page::<K>(&t, p.after.as_deref(), limit + 1).await?;
    Ok(crate::page(rows, limit as usize, |d| api::Cursor::Id(d.name.clone())).into_response())
}

async fn get_one<K: Resource>(
    State(s): State<AppState>,
    Scope(t): Scope,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    Ok(Json(s.rt.documents().get::<K>(&t, &name).await?).into_response())
}

async fn replace<K: Resource>(
    State(s): State<AppState>,
    Scope(t): Scope,
    Path(name): Path<String>,
    ApiJson(b): ApiJson<K>,
) -> Result<Response, ApiError> {
    Ok(Json(s.rt.documents().replace(&t, &name, b).await?).into_response())
}

async fn delete<K: Resource>(
    State(s): State<AppState>,
    Scope(t): Scope,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    s.rt.documents().delete::<K>(&t, &name).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// The five routes of a kind: reads for viewers, changes for members (audited).
pub(crate) fn rows<K: Resource>() -> Vec<Route> {
    let noun = K::NOUN;
    vec![
        Route::with_op(
            op("post", K::PATH, format!("Create a {noun}")).body::<Named<K>>().answer::<Document<K>>(201),
            create::<K>,
        )
        .audited(),
        Route::with_op(
            op("get", K::PATH, format!("The tenant's {noun}s, by name"))
                .query::<api::PageQuery>()
                .answer::<api::Page<Document<K>>>(200),
            list::<K>,
        ),
        Route::with_op(op("get", K::ITEM, format!("One {noun}")).answer::<Document<K>>(200), get_one::<K>),
        Route::with_op(
            op("put", K::ITEM, format!("Replace a {noun}")).body::<K>().answer::<Document<K>>(200),
            replace::<K>,
        )
        .audited(),
        Route::with_op(op("delete", K::ITEM, format!("Remove a {noun}")).empty(204), delete::<K>).audited(),
    ]
}
