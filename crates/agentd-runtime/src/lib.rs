//! The agent runtime: creates runs, drives the LLM/tool loop over the
//! journal, and fans live events out to subscribers.

pub mod config;
pub mod hub;
pub mod models;
mod run_loop;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use agentd_core::{EventKind, Run, StoredEvent, Tenant};
use agentd_store::{NewRun, Store, StoreError};
use agentd_tools::ToolRegistry;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use config::Config;
pub use hub::{Hub, Live};
pub use models::{ModelError, ModelRegistry, ResolvedModel};

/// Hard upper bound for `max_steps`.
pub const MAX_STEPS_LIMIT: u32 = 1000;

/// Settings of the agent that runs execute.
#[derive(Debug, Clone)]
pub struct AgentSettings {
    pub system_prompt: String,
    pub max_steps: u32,
    /// Tool names the agent may use; `None` means all registered tools.
    pub tools: Option<Vec<String>>,
}

impl Default for AgentSettings {
    fn default() -> Self {
        Self {
            system_prompt: "You are a helpful assistant. Use the tools you have when they help.".into(),
            max_steps: 20,
            tools: None,
        }
    }
}

impl AgentSettings {
    pub fn from_config(cfg: &Config) -> Self {
        let a = cfg.default_agent();
        let d = Self::default();
        Self {
            system_prompt: a.system_prompt.unwrap_or(d.system_prompt),
            max_steps: a.max_steps.unwrap_or(d.max_steps).clamp(1, MAX_STEPS_LIMIT),
            tools: a.tools,
        }
    }
}

/// Errors the runtime reports to callers; each maps to an API status.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("{message}")]
    BadRequest { code: &'static str, message: String },
    #[error("{message}")]
    NotFound { code: &'static str, message: String },
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl RuntimeError {
    fn bad(code: &'static str, message: impl Into<String>) -> Self {
        Self::BadRequest { code, message: message.into() }
    }
}

/// A request to start a run.
#[derive(Debug, Clone, Default)]
pub struct CreateRun {
    pub input: String,
    pub session_id: Option<String>,
    pub model: Option<String>,
    pub max_steps: Option<u32>,
}

/// The runtime of one node.
pub struct Runtime {
    pub store: Arc<dyn Store>,
    pub models: ModelRegistry,
    pub tools: ToolRegistry,
    pub agent: AgentSettings,
    pub hub: Hub,
    pub node_id: String,
    active: Mutex<HashMap<String, CancellationToken>>,
    tasks: TaskTracker,
}

impl Runtime {
    pub fn new(store: Arc<dyn Store>, models: ModelRegistry, tools: ToolRegistry, agent: AgentSettings) -> Arc<Self> {
        Arc::new(Self {
            store,
            models,
            tools,
            agent,
            hub: Hub::default(),
            node_id: format!("node-{}", std::process::id()),
            active: Mutex::new(HashMap::new()),
            tasks: TaskTracker::new(),
        })
    }

    fn active(&self) -> std::sync::MutexGuard<'_, HashMap<String, CancellationToken>> {
        self.active.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Appends events to the journal and publishes them live.
    pub(crate) async fn journal(
        &self,
        t: &Tenant,
        run_id: &str,
        events: &[EventKind],
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let stored = self.store.append(t, run_id, events).await?;
        for ev in &stored {
            self.hub.publish(run_id, Live::Event(ev.clone()));
        }
        Ok(stored)
    }

    /// Validates and stores a new run, then starts it. With `subscribe`, the
    /// returned receiver sees every live item from `run.created` on.
    pub async fn create_run(
        self: &Arc<Self>,
        t: &Tenant,
        req: CreateRun,
        subscribe: bool,
    ) -> Result<(Run, Option<broadcast::Receiver<Live>>), RuntimeError> {
        if req.input.trim().is_empty() {
            return Err(RuntimeError::bad("input_required", "`input` must be a non-empty string"));
        }
        let max_steps = req.max_steps.unwrap_or(self.agent.max_steps);
        if max_steps == 0 || max_steps > MAX_STEPS_LIMIT {
            return Err(RuntimeError::bad(
                "invalid_max_steps",
                format!("`max_steps` must be between 1 and {MAX_STEPS_LIMIT}"),
            ));
        }
        let model = match req.model.as_deref().or(self.models.default_model()) {
            Some(m) => m.to_string(),
            None => {
                return Err(RuntimeError::bad("model_required", models::ModelError::NoModel.to_string()));
            }
        };
        self.models.resolve(&model).map_err(|e| RuntimeError::BadRequest { code: e.code(), message: e.to_string() })?;
        let session_id = match req.session_id {
            Some(id) => {
                if self.store.get_session(t, &id).await?.is_none() {
                    return Err(RuntimeError::NotFound {
                        code: "session_not_found",
                        message: format!("session {id} not found"),
                    });
                }
                id
            }
            None => self.store.create_session(t, None, serde_json::json!({})).await?.id,
        };
        let new = NewRun { id: agentd_core::new_id("run"), session_id, input: req.input, model, max_steps };
        // The channel exists before the task starts so no live item is missed.
        let rx = self.hub.open(&new.id);
        let (run, created) = match self.store.create_run(t, &new).await {
            Ok(r) => r,
            Err(e) => {
                self.hub.close(&new.id);
                return Err(match e {
                    StoreError::NotFound => {
                        RuntimeError::NotFound { code: "session_not_found", message: "session not found".into() }
                    }
                    other => other.into(),
                });
            }
        };
        self.hub.publish(&run.id, Live::Event(created));
        self.spawn(t.clone(), run.clone());
        Ok((run, subscribe.then_some(rx)))
    }

    fn spawn(self: &Arc<Self>, t: Tenant, run: Run) {
        let token = CancellationToken::new();
        self.active().insert(run.id.clone(), token.clone());
        let rt = self.clone();
        self.tasks.spawn(async move {
            rt.hub.open(&run.id);
            let run_id = run.id.clone();
            if let Err(e) = rt.drive(&t, run, &token).await {
                tracing::error!(run_id = %run_id, error = %e, "run stopped on a store error");
                let fail = EventKind::RunFailed { error: agentd_core::RunError::new("internal_error", e.to_string()) };
                let _ = rt.journal(&t, &run_id, &[fail]).await;
            }
            rt.active().remove(&run_id);
            rt.hub.close(&run_id);
        });
    }

    /// Cancels a run: journals `run.cancelled` and stops its task if it runs here.
    pub async fn cancel(&self, t: &Tenant, run_id: &str, reason: Option<String>) -> Result<Run, RuntimeError> {
        let run = self.get_run(t, run_id).await?;
        if run.status.is_terminal() {
            return Err(already_finished(&run));
        }
        match self.journal(t, run_id, &[EventKind::RunCancelled { reason }]).await {
            Ok(_) => {}
            Err(StoreError::RunFinished) => {
                let run = self.get_run(t, run_id).await?;
                return Err(already_finished(&run));
            }
            Err(e) => return Err(e.into()),
        }
        if let Some(tok) = self.active().get(run_id) {
            tok.cancel();
        }
        self.hub.close(run_id);
        self.get_run(t, run_id).await
    }

    pub async fn get_run(&self, t: &Tenant, run_id: &str) -> Result<Run, RuntimeError> {
        self.store
            .get_run(t, run_id)
            .await?
            .ok_or_else(|| RuntimeError::NotFound { code: "run_not_found", message: format!("run {run_id} not found") })
    }

    /// Deals with runs a previous process left unfinished. Until journal
    /// replay lands they are failed with `interrupted`, never left hanging.
    pub async fn recover(&self) -> Result<usize, StoreError> {
        let runs = self.store.unfinished_runs().await?;
        let n = runs.len();
        for (t, run) in runs {
            let ev = EventKind::RunFailed {
                error: agentd_core::RunError::new("interrupted", "the server stopped while this run was in progress"),
            };
            match self.store.append(&t, &run.id, &[ev]).await {
                Ok(_) | Err(StoreError::RunFinished) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(n)
    }

    /// Stops every running run (journaling nothing) and waits for the tasks.
    pub async fn shutdown(&self) {
        for tok in self.active().values() {
            tok.cancel();
        }
        self.tasks.close();
        self.tasks.wait().await;
    }

    /// Number of runs executing in this process.
    pub fn active_runs(&self) -> usize {
        self.active().len()
    }
}

fn already_finished(run: &Run) -> RuntimeError {
    RuntimeError::Conflict {
        code: "run_already_finished",
        message: format!("run {} already finished with status {}", run.id, run.status.as_str()),
    }
}
