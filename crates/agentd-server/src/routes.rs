//! Route rows: each module of the server lists its routes once — method,
//! path, least role, whether a change is audited, OpenAPI operation and
//! handler — and the router, the OpenAPI document and the role table are
//! all built from that one list.

use std::collections::HashMap;

use agentd_api::openapi::Op;
use agentd_core::KeyRole;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::Method;
use axum::routing::{MethodFilter, MethodRouter};
use schemars::JsonSchema;

use crate::AppState;

/// One route of the API.
pub(crate) struct Route {
    pub(crate) op: Op,
    /// The least role a key needs (`None`: anyone may call it).
    pub(crate) role: Option<KeyRole>,
    /// Whether a successful change is written to the audit log.
    pub(crate) audited: bool,
    handler: MethodRouter<AppState>,
}

impl Route {
    /// A route; reads (`GET`) need a viewer's key, changes a member's,
    /// unless the row says otherwise ([`Route::admin`], [`Route::viewer`], [`Route::open`]).
    fn new<H, T>(method: &'static str, path: &'static str, summary: &'static str, h: H) -> Route
    where
        H: axum::handler::Handler<T, AppState>,
        T: 'static,
    {
        Self::with_op(agentd_api::openapi::op(method, path, summary), h)
    }

    pub(crate) fn get<H: axum::handler::Handler<T, AppState>, T: 'static>(
        p: &'static str,
        s: &'static str,
        h: H,
    ) -> Self {
        Self::new("get", p, s, h)
    }

    pub(crate) fn post<H: axum::handler::Handler<T, AppState>, T: 'static>(
        p: &'static str,
        s: &'static str,
        h: H,
    ) -> Self {
        Self::new("post", p, s, h)
    }

    pub(crate) fn put<H: axum::handler::Handler<T, AppState>, T: 'static>(
        p: &'static str,
        s: &'static str,
        h: H,
    ) -> Self {
        Self::new("put", p, s, h)
    }

    pub(crate) fn delete<H: axum::handler::Handler<T, AppState>, T: 'static>(
        p: &'static str,
        s: &'static str,
        h: H,
    ) -> Self {
        Self::new("delete", p, s, h)
    }

    /// A route with a generic operation (the document kinds build theirs).
    pub(crate) fn with_op<H, T>(op: Op, h: H) -> Route
    where
        H: axum::handler::Handler<T, AppState>,
        T: 'static,
    {
        let handler = axum::routing::on(MethodFilter::try_from(method_of(op.method)).unwrap_or(MethodFilter::GET), h);
        let role = if op.method == "get" { KeyRole::Viewer } else { KeyRole::Member };
        Route { op, role: Some(role), audited: false, handler }
    }

    /// Only admins (and operators): what holds credentials or runs code, keys, audit.
    pub(crate) fn admin(mut self) -> Self {
        self.role = Some(KeyRole::Admin);
        self
    }

    /// A change that stores nothing (a preview): viewers may.
    pub(crate) fn viewer(mut self) -> Self {
        self.role = Some(KeyRole::Viewer);
        self
    }

    /// Anyone may call it, key or not.
    pub(crate) fn open(mut self) -> Self {
        self.role = None;
        self.op = self.op.open();
        self
    }

    /// Its JSON request body.
    pub(crate) fn body<B: JsonSchema>(mut self) -> Self {
        self.op = self.op.body::<B>();
        self
    }

    /// A JSON request body that may be left out.
    pub(crate) fn optional_body<B: JsonSchema>(mut self) -> Self {
        self.op = self.op.optional_body::<B>();
        self
    }

    /// Its success status and JSON answer.
    pub(crate) fn answer<A: JsonSchema>(mut self, status: u16) -> Self {
        self.op = self.op.answer::<A>(status);
        self
    }

    /// Its success status, with no JSON answer.
    pub(crate) fn empty(mut self, status: u16) -> Self {
        self.op = self.op.empty(status);
        self
    }

    /// Its query string, parsed as `Q` (`ApiQuery<Q>`).
    pub(crate) fn query<Q: JsonSchema>(mut self) -> Self {
        self.op = self.op.query::<Q>();
        self
    }

    /// Also answers `text/event-stream`.
    pub(crate) fn sse(mut self) -> Self {
        self.op = self.op.sse();
        self
    }

    /// Takes or answers raw bytes too.
    pub(crate) fn raw(mut self) -> Self {
        self.op = self.op.raw();
        self
    }

    /// Its successful changes go to the audit log.
    pub(crate) fn audited(mut self) -> Self {
        self.audited = true;
        self
    }

    /// Its own largest body (file uploads).
    pub(crate) fn max_body(mut self, max: usize) -> Self {
        self.handler = self.handler.layer(DefaultBodyLimit::max(max));
        self
    }
}

/// The HTTP method of an operation's spelling (`get`, `post`, `put`, `delete`).
fn method_of(method: &str) -> Method {
    match method {
        "get" => Method::GET,
        "post" => Method::POST,
        "put" => Method::PUT,
        _ => Method::DELETE,
    }
}

/// What the middleware needs to know of a matched route.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Meta {
    pub(crate) role: Option<KeyRole>,
    pub(crate) audited: bool,
}

/// The role and audit table, by method and route path as axum matched it.
#[derive(Debug, Default)]
pub(crate) struct Table(HashMap<Method, HashMap<String, Meta>>);

impl Table {
    /// The matched route's row; `HEAD` is answered by the `GET` route.
    pub(crate) fn get(&self, method: &Method, matched: &str) -> Option<Meta> {
        let method = if method == Method::HEAD { &Method::GET } else { method };
        self.0.get(method).and_then(|m| m.get(matched)).copied()
    }
}

/// The router, the role table and the OpenAPI operations of these routes.
pub(crate) fn build(routes: Vec<Route>) -> (Router<AppState>, Table, Vec<Op>) {
    let mut router = Router::new();
    let mut table: HashMap<Method, HashMap<String, Meta>> = HashMap::new();
    let mut ops = Vec::with_capacity(routes.len());
    for r in routes {
        table
            .entry(method_of(r.op.method))
            .or_default()
            .insert(r.op.path.to_string(), Meta { role: r.role, audited: r.audited });
        router = router.route(&r.op.path, r.handler);
        ops.push(r.op);
    }
    (router, Table(table), ops)
}
