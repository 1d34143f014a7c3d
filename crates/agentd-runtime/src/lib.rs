//! The agent runtime: creates runs, schedules them under leases, drives the
//! LLM/tool loop over the journal (resuming from it after a crash), and fans
//! live events out to subscribers.

pub mod access;
mod agent;
pub mod agent_files;
mod approvals;
mod ask;
mod calls;
mod catalog;
mod compaction;
pub mod config;
pub mod context;
mod delegation;
pub mod documents;
mod error;
pub mod files;
mod fold;
mod gate;
pub mod hub;
pub mod images;
mod inherit;
pub mod logins;
pub mod mcp_servers;
pub mod models;
mod request;
mod run_loop;
mod scheduler;
pub mod secrets;
pub mod seen;
pub mod team;
pub mod template_worker;
pub mod templates;
pub mod tenant_models;
mod titles;
mod toolset;
pub mod usage;
mod writer;

use std::sync::Arc;
use std::time::Duration;

use agentd_core::{ErrorCode, EventKind, Run, StoredEvent, Tenant};
use agentd_store::{NewRun, Store, StoreError};
use agentd_tools::ToolRegistry;
use tokio::sync::broadcast;

pub(crate) use agent::deny_all;
pub use agent::{AgentSettings, policy_from};
pub use agentd_core::{AgentDef, AgentLimits, IfBusy};
pub use agentd_store::{ApprovalFilter, EventQuery, FeedEvent, Page, RunFilter, SecretMeta, now};
pub use catalog::SessionView;
pub use config::Config;
pub use error::RuntimeError;
pub use fold::Folded;
pub use hub::{Hub, Live, Partial};
pub use mcp_servers::SecretRefs;
pub use models::{ModelError, ModelRegistry, ResolvedModel};
pub use scheduler::SchedulerSettings;
pub use toolset::ToolSet;

/// Hard upper bound for `max_steps`.
pub const MAX_STEPS_LIMIT: u32 = 1000;

/// A request to start a run.
#[derive(Debug, Clone, Default)]
pub struct CreateRun {
    pub input: String,
    pub session_id: Option<String>,
    pub model: Option<String>,
    pub max_steps: Option<u32>,
    pub if_busy: IfBusy,
    /// The agent to run (`default` when absent).
    pub agent: Option<String>,
    /// Images for the input (checked with [`images::parse`]).
    pub images: Vec<agentd_core::ContentPart>,
    /// `tool_choice` for the first model call, in the provider's format.
    pub tool_choice: Option<serde_json::Value>,
    /// Variables for the agent's system template.
    pub arguments: Option<serde_json::Value>,
}

/// An RFC 3339 time (or a date, `2026-01-31`) in the stored form, for range filters.
pub fn normalize_time(s: &str) -> Option<String> {
    let t = chrono::DateTime::parse_from_rfc3339(s.trim())
        .map(|d| d.with_timezone(&chrono::Utc))
        .or_else(|_| {
            chrono::NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d")
                .map(|d| d.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc())
        })
        .ok()?;
    Some(t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
}

/// Whether a name fits an agent or a team: 1-64 characters of `[A-Za-z0-9_-]`.
pub(crate) fn valid_catalog_name(name: &str) -> bool {
    agentd_mcp::valid_server_name(name)
}

/// Up to eight words (and 60 characters) of `input`, for a session's title.
pub(crate) fn first_words(input: &str) -> String {
    let mut t = String::new();
    for w in input.split_whitespace().take(8) {
        if t.len() + w.len() > 60 {
            break;
        }
        if !t.is_empty() {
            t.push(' ');
        }
        t.push_str(w);
    }
    if t.is_empty() { input.chars().take(60).collect() } else { t }
}

/// The answer to [`Runtime::create_run`].
pub struct Created {
    pub run: Run,
    /// Live items of the run from `run.created` on (when asked for).
    pub live: Option<broadcast::Receiver<Live>>,
    /// The message went to this already active run (`if_busy: steer`).
    pub steered: bool,
}

/// The runtime of one node.
pub struct Runtime {
    store: Arc<dyn Store>,
    models: ModelRegistry,
    hub: Hub,
    /// The runs service's state (scheduler, leases, local tasks).
    sched: scheduler::Scheduling,
    /// The catalog service's state (tools, agents, skills, MCP servers, workspaces).
    catalog: toolset::Catalog,
    /// The access service's state (checked keys).
    access: access::Access,
    /// What tenants' secrets are sealed with (`None`: secrets cannot be stored).
    secret_key: Option<secrets::MasterKey>,
    /// The model titles a session after its first exchange (`[sessions] model_titles`).
    model_titles: bool,
    /// The tenant documents of the simple kinds.
    documents: documents::Documents,
}

/// Everything a runtime is built from.
pub struct RuntimeParts {
    pub store: Arc<dyn Store>,
    pub models: ModelRegistry,
    pub tools: ToolRegistry,
    /// Agents from the config (`default` is added when missing).
    pub agents: Vec<AgentSettings>,
    /// This node's name in leases and run events.
    pub node_id: String,
    pub scheduler: SchedulerSettings,
    /// Where session workspaces live (`<data-dir>/workspaces`).
    pub workspaces: std::path::PathBuf,
    /// Quotas per organisation.
    pub limits: config::LimitsConfig,
    /// The key tenants' secrets are sealed with.
    pub secret_key: Option<secrets::MasterKey>,
    /// `[sessions] model_titles`.
    pub model_titles: bool,
}

impl Runtime {
    /// Builds the runtime (nothing runs until [`Runtime::start`]).
    pub fn new(parts: RuntimeParts) -> Arc<Self> {
        let RuntimeParts {
            store,
            models,
            tools,
            agents,
            node_id,
            scheduler,
            workspaces,
            limits,
            secret_key,
            model_titles,
        } = parts;
        let documents = documents::Documents::new(store.clone());
        Arc::new(Self {
            store,
            documents,
            models,
            hub: Hub::default(),
            sched: scheduler::Scheduling::new(node_id, scheduler),
            catalog: toolset::Catalog::new(tools, agents, workspaces),
            access: access::Access::new(limits),
            secret_key,
            model_titles,
        })
    }

    /// The tenant documents of the simple kinds (saved prompts, …).
    pub fn documents(&self) -> &documents::Documents {
        &self.documents
    }

    /// The model providers and profiles.
    pub fn models(&self) -> &ModelRegistry {
        &self.models
    }

    /// Live events of runs executing on this node.
    pub fn hub(&self) -> &Hub {
        &self.hub
    }

    /// The builtin tools.
    pub fn tools(&self) -> &ToolRegistry {
        self.catalog.tools()
    }

    /// The MCP servers this node connects.
    pub fn mcp(&self) -> &agentd_mcp::McpManager {
        self.catalog.mcp()
    }

    /// Validates and stores a new run (status `queued`; the scheduler starts
    /// it). With `subscribe`, the returned receiver sees every live item from
    /// `run.created` on.
    pub async fn create_run(
        self: &Arc<Self>,
        t: &Tenant,
        mut req: CreateRun,
        subscribe: bool,
    ) -> Result<Created, RuntimeError> {
        // The input is stored (run row, session, journal): secrets are masked before.
        if let std::borrow::Cow::Owned(masked) = agentd_core::redact::redact_for(t, &req.input) {
            req.input = masked;
        }
        if req.input.trim().is_empty() {
            return Err(RuntimeError::bad(ErrorCode::InputRequired, "`input` must be a non-empty string"));
        }
        let agent_name = req.agent.clone().unwrap_or_else(|| "default".into());
        let (agent, agent_version) = self.agent_with_version(t, &agent_name).await?;
        let max_steps = req.max_steps.unwrap_or(agent.max_steps);
        if max_steps == 0 || max_steps > MAX_STEPS_LIMIT {
            return Err(RuntimeError::bad(
                ErrorCode::InvalidMaxSteps,
                format!("`max_steps` must be between 1 and {MAX_STEPS_LIMIT}"),
            ));
        }
        let model = match req.model.as_deref().or(agent.model.as_deref()).or(self.models.default_model()) {
            Some(m) => m.to_string(),
            None => return Err(RuntimeError::bad(ErrorCode::ModelRequired, models::ModelError::NoModel.to_string())),
        };
        let resolved = self.plan_model(t, &model).await?;
        if let Some(sid) = req.session_id.as_deref().filter(|_| req.input.contains("<file>")) {
            let (input, images) = self.expand_file_refs(t, sid, &req.input).await?;
            req.input = input;
            req.images.extend(images);
        }
        if !req.images.is_empty() && !resolved.accepts_images() {
            return Err(RuntimeError::bad(
                ErrorCode::ImagesNotSupported,
                format!(
                    "the model profile {model:?} is declared text-only (input = [\"text\"]); send text, or pick a profile that takes images"
                ),
            ));
        }
        // The agent's system template is rendered now: the run keeps the text it started with.
        let arguments = req.arguments.as_ref().unwrap_or(&serde_json::Value::Null);
        let system_prompt = match &agent.system_template {
            Some(name) => Some(self.render_template(t, name, arguments).await?),
            None if agent.render_prompt => {
                Some(template_worker::render(&t.org, &agent.name, &agent.system_prompt, arguments).await?)
            }
            None => None,
        };
        let session_id = match req.session_id {
            Some(id) => {
                if self.store.get_session(t, &id).await?.is_none() {
                    return Err(RuntimeError::SessionNotFound(id));
                }
                match req.if_busy {
                    IfBusy::Steer => {
                        if let Some(run) = self.steer(t, &id, &req.input).await? {
                            let live = if subscribe { self.hub.subscribe(&run.id) } else { None };
                            return Ok(Created { run, live, steered: true });
                        }
                    }
                    IfBusy::Interrupt => {
                        while let Some(active) = self.store.active_run(t, &id).await? {
                            match self.cancel(t, &active.id, Some("interrupted by a newer message".into())).await {
                                Ok(_) | Err(RuntimeError::RunAlreadyFinished { .. }) => {}
                                Err(e) => return Err(e),
                            }
                        }
                    }
                    IfBusy::Enqueue | IfBusy::Reject => {}
                }
                id
            }
            // A new session is titled by the first words of its first message.
            None => self.store.create_session(t, Some(first_words(&req.input)), serde_json::json!({})).await?.id,
        };
        let new = NewRun {
            id: agentd_core::new_id("run"),
            session_id,
            input: req.input,
            model,
            max_steps,
            reject_if_busy: req.if_busy == IfBusy::Reject,
            agent: agent_name,
            images: req.images,
            tool_choice: req.tool_choice,
            system: system_prompt,
            agent_version,
            child: None,
            ceiling: None,
            team: None,
        };
        // A channel only when someone listens (they cost memory); it exists
        // before the scheduler can start the run, so no live item is missed.
        let rx = subscribe.then(|| self.hub.open(&new.id));
        let (run, created) = match self.store.create_run(t, &new).await {
            Ok(r) => r,
            Err(e) => {
                self.hub.close(&new.id);
                return Err(match e {
                    StoreError::NotFound => RuntimeError::SessionNotFound(new.session_id.clone()),
                    other => other.into(),
                });
            }
        };
        self.hub.publish(&run.id, Live::Event(created));
        self.sched.wake();
        Ok(Created { run, live: rx, steered: false })
    }

    /// Queues `input` on the session's active run; `None` if there is none.
    async fn steer(&self, t: &Tenant, session_id: &str, input: &str) -> Result<Option<Run>, RuntimeError> {
        let Some(active) = self.store.active_run(t, session_id).await? else { return Ok(None) };
        match self.journal(t, &active.id, &[EventKind::InputQueued { input: input.to_string() }]).await {
            Ok(_) => Ok(Some(self.get_run(t, &active.id).await?)),
            // It finished in the meantime: the message starts a run of its own.
            Err(StoreError::RunFinished) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Appends events to the journal (no lease needed) and publishes them live.
    pub(crate) async fn journal(
        &self,
        t: &Tenant,
        run_id: &str,
        events: &[EventKind],
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let stored = self.store.append(t, run_id, events).await?;
        self.publish(run_id, &stored);
        Ok(stored)
    }

    pub(crate) fn publish(&self, run_id: &str, stored: &[StoredEvent]) {
        for ev in stored {
            self.hub.publish(run_id, Live::Event(ev.clone()));
        }
    }

    /// The tenant's run lifecycle events written at or after `since`, oldest first.
    pub async fn tenant_feed(
        &self,
        t: &Tenant,
        since: &str,
        limit: u32,
    ) -> Result<Vec<agentd_store::FeedEvent>, RuntimeError> {
        let types: Vec<String> = agentd_core::EventType::LIFECYCLE.iter().map(|t| t.name().to_string()).collect();
        Ok(self.store.tenant_feed(t, &types, since, limit).await?)
    }

    /// Where a feed read starts: `slack` before the timestamp `after` (late
    /// commits land there), or `slack` before now without one.
    pub fn feed_since(after: Option<&str>, slack: std::time::Duration) -> String {
        let at = after
            .and_then(|a| chrono::DateTime::parse_from_rfc3339(a).ok())
            .map(|d| d.with_timezone(&chrono::Utc))
            .unwrap_or_else(chrono::Utc::now);
        let back = chrono::Duration::from_std(slack).unwrap_or(chrono::Duration::zero());
        (at - back).to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    }

    /// Cancels a run: journals `run.cancelled` and stops its task if it runs
    /// here (a run on another node notices at its next heartbeat or write).
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
        self.sched.cancel_local(run_id);
        self.hub.close(run_id);
        self.stop_subtree(t, run_id).await;
        if let Some(parent) = &run.parent_run_id {
            self.hub.publish(parent, Live::Changed(i64::MAX));
        }
        // Its session lane may hold the next run; its parent may be queued again.
        self.sched.wake();
        self.get_run(t, run_id).await
    }

    pub async fn get_run(&self, t: &Tenant, run_id: &str) -> Result<Run, RuntimeError> {
        self.store.get_run(t, run_id).await?.ok_or_else(|| RuntimeError::RunNotFound(run_id.to_string()))
    }

    /// Number of runs executing in this process.
    pub fn active_runs(&self) -> usize {
        self.sched.active_count()
    }

    /// Runs waiting to be claimed, across the cluster.
    pub async fn queued_runs(&self) -> Result<u64, RuntimeError> {
        let all = self.store.unfinished_runs().await?;
        Ok(all.iter().filter(|(_, r)| r.status == agentd_core::RunStatus::Queued).count() as u64)
    }

    /// Where bubblewrap is, when shell tools can be sandboxed here.
    pub fn sandbox_path(&self) -> Option<std::path::PathBuf> {
        agentd_tools::find_bwrap()
    }

    /// This node's name in leases and run events.
    pub fn node_id(&self) -> &str {
        self.sched.node_id()
    }

    /// Stops claiming, lets runs reach their next step boundary within
    /// `grace`, stops the rest, and releases this node's leases so the runs
    /// resume at the next start (here or on another node).
    pub async fn shutdown(&self, grace: Duration) {
        self.sched.drain(grace).await;
        self.catalog.mcp().shutdown();
        if let Err(e) = self.store.release_leases(self.sched.node_id(), None).await {
            tracing::warn!(error = %e, "could not release leases; they expire on their own");
        }
    }
}

fn already_finished(run: &Run) -> RuntimeError {
    RuntimeError::RunAlreadyFinished { run_id: run.id.clone(), status: run.status }
}
