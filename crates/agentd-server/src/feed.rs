//! `GET /v1/events`: the run lifecycle events of the caller's tenant, so a
//! console can keep every session's status live from one connection. As
//! SSE it streams from now (or after `Last-Event-ID`); as JSON it answers
//! the events after `after` (default: the last day).

use crate::routes::Route;
use agentd_api as api;

use std::collections::HashSet;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use agentd_api::{ErrorCode, FeedItem};
use agentd_core::Tenant;
use agentd_runtime::{FeedEvent, Runtime};
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use crate::AppState;
use crate::error::{ApiError, ApiQuery, Scope, limit};

/// How far back each read looks before the cursor: commits that land late.
const SLACK: Duration = Duration::from_secs(2);
/// The longest wait between reads when nothing wakes the feed.
const POLL: Duration = Duration::from_secs(1);
const BATCH: u32 = 500;

/// `created_at|run_id|seq`, ordered as the feed is.
type Key = (String, String, i64);

fn parse_id(s: &str) -> Option<Key> {
    let mut it = s.trim().splitn(3, '|');
    let (ts, run, seq) = (it.next()?, it.next()?, it.next()?.parse().ok()?);
    chrono_like(ts).then(|| (ts.to_string(), run.to_string(), seq))
}

/// A stored timestamp's shape (`2026-01-02T03:04:05.678Z`).
fn chrono_like(ts: &str) -> bool {
    ts.len() >= 20 && ts.len() <= 35 && ts.chars().all(|c| c.is_ascii_alphanumeric() || ":.-+".contains(c))
}

fn item(f: FeedEvent) -> FeedItem {
    let e = f.event;
    FeedItem {
        id: format!("{}|{}|{}", e.created_at, e.run_id, e.seq),
        run_id: e.run_id,
        session_id: f.session_id,
        seq: e.seq,
        type_name: e.type_name,
        data: e.data,
        created_at: e.created_at,
    }
}

fn key(i: &FeedItem) -> Key {
    (i.created_at.clone(), i.run_id.clone(), i.seq)
}

pub(crate) async fn events(
    State(s): State<AppState>,
    Scope(t): Scope,
    headers: HeaderMap,
    ApiQuery(p): ApiQuery<api::PageQuery>,
) -> Result<Response, ApiError> {
    let bad = || ApiError::bad_request(ErrorCode::InvalidLastEventId, "an event id is `created_at|run_id|seq`");
    let header = headers.get("last-event-id").map(|v| v.to_str().ok().and_then(parse_id).ok_or_else(bad));
    let after = match (header.transpose()?, p.after) {
        (Some(k), _) => Some(k),
        (None, Some(a)) => Some(parse_id(&a).ok_or_else(bad)?),
        (None, None) => None,
    };
    let wants_sse =
        headers.get("accept").and_then(|v| v.to_str().ok()).is_some_and(|v| v.contains("text/event-stream"));
    if wants_sse {
        return Ok(stream(s.rt.clone(), t, after));
    }
    let limit = limit(p.limit, 100, 1000)?;
    let since = match &after {
        Some(k) => Runtime::feed_since(Some(&k.0), SLACK),
        None => Runtime::feed_since(None, Duration::from_secs(86_400)),
    };
    let rows = s.rt.tenant_feed(&t, &since, BATCH.max(limit)).await?;
    let mut items: Vec<FeedItem> =
        rows.into_iter().map(item).filter(|i| after.as_ref().is_none_or(|a| key(i) > *a)).collect();
    items.truncate(limit as usize + 1);
    Ok(crate::page(items, limit as usize, |i| agentd_api::Cursor::Id(i.id.clone())).into_response())
}

fn stream(rt: Arc<Runtime>, t: Tenant, after: Option<Key>) -> Response {
    let (tx, out) = mpsc::channel::<Result<Event, Infallible>>(256);
    tokio::spawn(async move {
        let mut wake = rt.hub().feed();
        // Without a cursor the feed starts now: earlier state comes from the listings.
        let mut cursor: Key =
            after.clone().unwrap_or_else(|| (Runtime::feed_since(None, Duration::ZERO), String::new(), 0));
        let mut sent: HashSet<Key> = HashSet::new();
        loop {
            let since = Runtime::feed_since(Some(&cursor.0), SLACK);
            let rows = match rt.tenant_feed(&t, &since, BATCH).await {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!(error = %e, "tenant feed read failed");
                    return;
                }
            };
            let full = rows.len() as u32 == BATCH;
            for i in rows.into_iter().map(item) {
                let k = key(&i);
                // Resuming: what the client saw is not sent again.
                if sent.contains(&k) || after.as_ref().is_some_and(|a| k <= *a) {
                    continue;
                }
                let ev = match Event::default().id(i.id.clone()).event(i.type_name.clone()).json_data(&i) {
                    Ok(ev) => ev,
                    Err(_) => continue,
                };
                if tx.send(Ok(ev)).await.is_err() {
                    return;
                }
                if k > cursor {
                    cursor = k.clone();
                }
                sent.insert(k);
            }
            // Only keys still inside the read window can come again.
            let floor = Runtime::feed_since(Some(&cursor.0), SLACK * 2);
            sent.retain(|k| k.0 >= floor);
            if full {
                continue;
            }
            tokio::select! {
                r = wake.changed() => if r.is_err() { return },
                _ = tokio::time::sleep(POLL) => {}
                _ = tx.closed() => return,
            }
        }
    });
    Sse::new(ReceiverStream::new(out)).keep_alive(KeepAlive::default()).into_response()
}

/// This module's routes: method, path, least role, OpenAPI operation, handler.
pub(crate) fn routes() -> Vec<Route> {
    vec![
        Route::get(
            "/v1/events",
            "The tenant's run lifecycle events (SSE with `Accept: text/event-stream`, resumable by `Last-Event-ID`)",
            events,
        )
        .query::<api::PageQuery>()
        .answer::<api::Page<api::FeedItem>>(200)
        .sse(),
    ]
}
