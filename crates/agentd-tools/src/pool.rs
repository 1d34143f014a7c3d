//! The pool blocking tool work runs on: bounded overall and per tenant, so
//! one tenant's slow or stuck file calls can neither exhaust the threads
//! the rest of the process needs (the store has its own) nor starve
//! another tenant's calls. Also the cap on one tenant's running tool calls.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Blocking tool calls running at once, across all tenants.
pub const MAX_BLOCKING_TOOLS: usize = 64;
/// Blocking tool calls one organisation may run at once.
pub const MAX_BLOCKING_TOOLS_PER_ORG: usize = 16;
/// Tool calls (of any kind) one organisation may have running at once.
pub const MAX_TOOL_CALLS_PER_ORG: usize = 64;

/// One semaphore per organisation, each with the same number of permits.
struct PerOrg {
    permits: usize,
    gates: Mutex<HashMap<String, Arc<Semaphore>>>,
}

impl PerOrg {
    fn new(permits: usize) -> Self {
        Self { permits, gates: Mutex::new(HashMap::new()) }
    }

    async fn acquire(&self, org: &str) -> Option<OwnedSemaphorePermit> {
        let gate = {
            let mut m = self.gates.lock().unwrap_or_else(|e| e.into_inner());
            // Forget idle organisations now and then so the map stays small.
            if m.len() > 1024 {
                m.retain(|_, s| s.available_permits() < self.permits);
            }
            m.entry(org.to_string()).or_insert_with(|| Arc::new(Semaphore::new(self.permits))).clone()
        };
        gate.acquire_owned().await.ok()
    }
}

static GLOBAL: LazyLock<Arc<Semaphore>> = LazyLock::new(|| Arc::new(Semaphore::new(MAX_BLOCKING_TOOLS)));
static BLOCKING: LazyLock<PerOrg> = LazyLock::new(|| PerOrg::new(MAX_BLOCKING_TOOLS_PER_ORG));
static CALLS: LazyLock<PerOrg> = LazyLock::new(|| PerOrg::new(MAX_TOOL_CALLS_PER_ORG));

/// Waits for a slot among the organisation's running tool calls; held for the call.
pub async fn tool_call_permit(org: &str) -> Option<OwnedSemaphorePermit> {
    CALLS.acquire(org).await
}

/// Runs `f` on a blocking thread once the tenant's and the global gate let it.
pub async fn run_blocking<T: Send + 'static>(org: &str, f: impl FnOnce() -> T + Send + 'static) -> Result<T, String> {
    let mine = BLOCKING.acquire(org).await.ok_or("the tool pool is closed")?;
    let all = GLOBAL.clone().acquire_owned().await.map_err(|e| e.to_string())?;
    let r = tokio::task::spawn_blocking(move || {
        let out = f();
        drop((mine, all));
        out
    })
    .await;
    r.map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn one_organisation_cannot_take_every_slot() {
        // Fill one organisation's blocking slots with work that waits.
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let rx = Arc::new(Mutex::new(rx));
        let mut held = vec![];
        for _ in 0..MAX_BLOCKING_TOOLS + 4 {
            let rx = rx.clone();
            held.push(tokio::spawn(run_blocking("greedy", move || {
                let _ = rx.lock().map(|r| r.recv());
            })));
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        // Another organisation still gets a thread at once.
        let other = tokio::time::timeout(std::time::Duration::from_secs(30), run_blocking("other", || 7)).await;
        for _ in 0..held.len() {
            let _ = tx.send(());
        }
        assert_eq!(other.expect("the other organisation waited for the greedy one").unwrap(), 7);
        for h in held {
            let _ = h.await;
        }
    }
}
