//! The pool blocking tool work runs on: bounded overall and per tenant, so
//! one tenant's slow or stuck file calls can neither exhaust the threads
//! the rest of the process needs (the store has its own) nor starve
//! another tenant's calls.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};

use tokio::sync::Semaphore;

/// Blocking tool calls running at once, across all tenants.
pub const MAX_BLOCKING_TOOLS: usize = 64;
/// Blocking tool calls one organisation may run at once.
pub const MAX_BLOCKING_TOOLS_PER_ORG: usize = 16;

static GLOBAL: LazyLock<Arc<Semaphore>> = LazyLock::new(|| Arc::new(Semaphore::new(MAX_BLOCKING_TOOLS)));
static PER_ORG: LazyLock<Mutex<HashMap<String, Arc<Semaphore>>>> = LazyLock::new(Default::default);

fn org_gate(org: &str) -> Arc<Semaphore> {
    let mut m = PER_ORG.lock().unwrap_or_else(|e| e.into_inner());
    // Forget idle organisations now and then so the map stays small.
    if m.len() > 1024 {
        m.retain(|_, s| s.available_permits() < MAX_BLOCKING_TOOLS_PER_ORG);
    }
    m.entry(org.to_string()).or_insert_with(|| Arc::new(Semaphore::new(MAX_BLOCKING_TOOLS_PER_ORG))).clone()
}

/// Tool calls (of any kind) one organisation may have running at once.
pub const MAX_TOOL_CALLS_PER_ORG: usize = 64;

static CALLS_PER_ORG: LazyLock<Mutex<HashMap<String, Arc<Semaphore>>>> = LazyLock::new(Default::default);

/// Waits for a slot among the organisation's running tool calls; held for the call.
pub async fn tool_call_permit(org: &str) -> Option<tokio::sync::OwnedSemaphorePermit> {
    let gate = {
        let mut m = CALLS_PER_ORG.lock().unwrap_or_else(|e| e.into_inner());
        if m.len() > 1024 {
            m.retain(|_, s| s.available_permits() < MAX_TOOL_CALLS_PER_ORG);
        }
        m.entry(org.to_string()).or_insert_with(|| Arc::new(Semaphore::new(MAX_TOOL_CALLS_PER_ORG))).clone()
    };
    gate.acquire_owned().await.ok()
}

/// Runs `f` on a blocking thread once the tenant's and the global gate let it.
pub async fn run_blocking<T: Send + 'static>(org: &str, f: impl FnOnce() -> T + Send + 'static) -> Result<T, String> {
    let mine = org_gate(org).acquire_owned().await.map_err(|e| e.to_string())?;
    let all = GLOBAL.clone().acquire_owned().await.map_err(|e| e.to_string())?;
    let r = tokio::task::spawn_blocking(move || {
        let out = f();
        drop((mine, all));
        out
    })
    .await;
    r.map_err(|e| e.to_string())
}
