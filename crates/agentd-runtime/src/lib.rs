//! The agent runtime: creates runs, schedules them under leases, drives the
//! LLM/tool loop over the journal (resuming from it after a crash), and fans
//! live events out to subscribers.

pub mod access;
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

use agentd_core::{ErrorCode, EventKind, Run, RunStatus, StoredEvent, Tenant};
use agentd_store::{NewRun, Store, StoreError};
use agentd_tools::ToolRegistry;
use tokio::sync::broadcast;

pub use agentd_core::{AgentDef, AgentLimits};
pub use agentd_store::{ApprovalFilter, EventQuery, FeedEvent, Page, RunFilter, SecretMeta, now};
pub use catalog::SessionView;
pub use config::Config;
pub use fold::Folded;
pub use hub::{Hub, Live, Partial};
pub use mcp_servers::SecretRefs;
pub use models::{ModelError, ModelRegistry, ResolvedModel};
pub use scheduler::SchedulerSettings;
pub use toolset::ToolSet;

/// Hard upper bound for `max_steps`.
pub const MAX_STEPS_LIMIT: u32 = 1000;

/// Settings of the agent that runs execute.
#[derive(Debug, Clone)]
pub struct AgentSettings {
    /// `default` for `[agents.default]`.
    pub name: String,
    /// The model a run uses when it names none.
    pub model: Option<String>,
    pub system_prompt: String,
    /// A tenant's prompt template rendered as the system prompt (with the run's `arguments`).
    pub system_template: Option<String>,
    pub max_steps: u32,
    /// Tool names the agent may use; `None` means all registered tools.
    pub tools: Option<Vec<String>>,
    /// Skill names or globs the agent may use; `None` means all skills.
    pub skills: Option<Vec<String>>,
    /// The tool policy (allow / ask / deny).
    pub policy: Arc<agentd_safety::Policy>,
    /// The fence around shell commands.
    pub sandbox: agentd_tools::SandboxSettings,
    /// Identical calls in a row before the loop guard refuses one (0: off).
    pub max_repeated_calls: u32,
    /// Wall-time budget of a run, waiting for people excluded.
    pub max_wall_secs: u64,
    /// A non-idempotent call a crash interrupted asks a person whether to run
    /// it again (instead of telling the model its outcome is unknown).
    pub ask_on_interrupted: bool,
    /// What the agent does (shown to people and to agents that delegate).
    pub description: Option<String>,
    /// Delegation limits and the token budget.
    pub limits: AgentLimits,
    /// `system_prompt` is a template rendered with each run's `arguments` (AGENT.md bodies).
    pub render_prompt: bool,
    /// The AGENT.md the agent was loaded from.
    pub file: Option<std::path::PathBuf>,
}

/// A policy that denies everything: what a broken policy falls back to.
pub(crate) fn deny_all() -> agentd_safety::Policy {
    let c = agentd_safety::PolicyConfig { mode: agentd_safety::Verdict::Deny, ..Default::default() };
    agentd_safety::Policy::new(c).unwrap_or_else(|_| unreachable!("a policy without rules always parses"))
}

/// A policy from config; rules are checked when the config loads, so a
/// failure here means a bug, and the agent fails closed.
pub fn policy_from(c: &agentd_safety::PolicyConfig) -> Arc<agentd_safety::Policy> {
    Arc::new(agentd_safety::Policy::new(c.clone()).unwrap_or_else(|e| {
        tracing::error!(error = %e, "invalid policy; denying every tool call");
        deny_all()
    }))
}

impl Default for AgentSettings {
    fn default() -> Self {
        Self {
            name: "default".into(),
            model: None,
            system_prompt: "You are a helpful assistant. Use the tools you have when they help.".into(),
            system_template: None,
            max_steps: 20,
            tools: None,
            skills: None,
            policy: policy_from(&agentd_safety::PolicyConfig::default()),
            sandbox: agentd_tools::SandboxSettings::default(),
            max_repeated_calls: 3,
            max_wall_secs: 3600,
            ask_on_interrupted: false,
            description: None,
            limits: AgentLimits::default(),
            render_prompt: false,
            file: None,
        }
    }
}

impl AgentSettings {
    pub fn from_config(cfg: &Config) -> Self {
        Self::from_agent_config("default", &cfg.default_agent(), &Self::default())
    }

    /// Every `[agents.<name>]` of the config; fields a named agent leaves
    /// unset come from `[agents.default]`.
    pub fn all_from_config(cfg: &Config) -> Vec<Self> {
        let default = Self::from_config(cfg);
        let mut out = vec![default.clone()];
        for (name, a) in &cfg.agents {
            if name != "default" {
                out.push(Self::from_agent_config(name, a, &default));
            }
        }
        out
    }

    /// Settings of `[agents.<name>]`; unset fields come from `base`.
    pub fn from_agent_config(name: &str, a: &config::AgentConfig, base: &Self) -> Self {
        let a = a.clone();
        let d = base.clone();
        Self {
            name: name.into(),
            model: a.model,
            system_prompt: a.system_prompt.unwrap_or(d.system_prompt),
            system_template: a.system_template.or(d.system_template),
            max_steps: a.max_steps.unwrap_or(d.max_steps).clamp(1, MAX_STEPS_LIMIT),
            tools: a.tools,
            skills: a.skills,
            policy: a.policy.as_ref().map(policy_from).unwrap_or(d.policy),
            sandbox: a.sandbox.unwrap_or(d.sandbox),
            max_repeated_calls: a.max_repeated_calls.unwrap_or(d.max_repeated_calls),
            max_wall_secs: a.max_wall_secs.unwrap_or(d.max_wall_secs).max(1),
            ask_on_interrupted: a.on_interrupted.map_or(d.ask_on_interrupted, |o| o == config::OnInterrupted::Ask),
            description: a.description,
            limits: a.limits.unwrap_or(d.limits),
            render_prompt: false,
            file: None,
        }
    }

    /// Whether the agent may use this tool: its list names it exactly or by
    /// a glob (`mcp__github__*`); no list means every tool.
    pub fn allows(&self, name: &str) -> bool {
        matches_any(self.tools.as_deref(), name)
    }

    /// Whether the agent may use this skill (exact name or glob).
    pub fn allows_skill(&self, name: &str) -> bool {
        matches_any(self.skills.as_deref(), name)
    }
}

/// No list allows everything; otherwise an exact name or a glob must match.
fn matches_any(list: Option<&[String]>, name: &str) -> bool {
    list.is_none_or(|a| {
        a.iter()
            .any(|p| p == name || globset::Glob::new(p).map(|g| g.compile_matcher().is_match(name)).unwrap_or(false))
    })
}

/// What a runtime call refused or failed with. Each error has an
/// [`ErrorCode`]; which HTTP status it becomes is the server's business.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The request is not valid: a field, a value, a template.
    #[error("{message}")]
    Invalid { code: ErrorCode, message: String },
    #[error("session {0} not found")]
    SessionNotFound(String),
    #[error("run {0} not found")]
    RunNotFound(String),
    #[error("approval {0} not found")]
    ApprovalNotFound(String),
    /// A named catalog entry (template, tool, skill, agent, MCP server) the tenant does not have.
    #[error("{message}")]
    NotFound { code: ErrorCode, message: String },
    /// The name is taken.
    #[error("{message}")]
    AlreadyExists { code: ErrorCode, message: String },
    /// The run reached a terminal state; it takes nothing more.
    #[error("run {run_id} already finished with status {}", status.as_str())]
    RunAlreadyFinished { run_id: String, status: RunStatus },
    /// The approval was answered already, or its run ended.
    #[error("the approval is {status}, not pending")]
    ApprovalNotPending { status: String },
    /// The session has an unfinished run and the caller asked to reject.
    #[error("session is busy with run {active_run_id}")]
    SessionBusy { active_run_id: String },
    /// The tool an approval was for is gone from the run's tool set.
    #[error("the tool {tool} is no longer available to this run")]
    ToolUnavailable { tool: String },
    /// A template variable the caller did not give.
    #[error("template {template} needs the variable {variable:?}")]
    MissingVariable { template: String, variable: String },
    /// Tool arguments that violate the tool's schema.
    #[error("{0}")]
    InvalidArguments(agentd_tools::InvalidArguments),
    /// The policy refuses a direct call.
    #[error("{message}")]
    PermissionDenied { message: String, details: serde_json::Value },
    /// The policy wants a person to approve a direct call, which cannot wait.
    #[error("{message}")]
    ApprovalRequired { message: String, details: serde_json::Value },
    /// No key, or one that is unknown, revoked or expired.
    #[error("{0}")]
    Unauthorized(String),
    /// The caller's role may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// Over an operator's cap on things in flight at once (downloads); try again soon.
    #[error("{0}")]
    Busy(String),
    /// Over the organisation's request rate; try again after this long.
    #[error("over the request limit of {per_minute} a minute for this key; retry in {} s", retry_after.as_secs().max(1))]
    RateLimited { per_minute: u32, retry_after: std::time::Duration },
    /// The database failed (the cause is for the log, not the caller).
    #[error("the database reported an error: {0}")]
    Store(StoreError),
}

impl RuntimeError {
    pub fn bad(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::Invalid { code, message: message.into() }
    }

    pub(crate) fn not_found(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::NotFound { code, message: message.into() }
    }

    pub(crate) fn exists(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::AlreadyExists { code, message: message.into() }
    }

    /// The error's code in the API.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Invalid { code, .. } | Self::NotFound { code, .. } | Self::AlreadyExists { code, .. } => *code,
            Self::SessionNotFound(_) => ErrorCode::SessionNotFound,
            Self::RunNotFound(_) => ErrorCode::RunNotFound,
            Self::ApprovalNotFound(_) => ErrorCode::ApprovalNotFound,
            Self::RunAlreadyFinished { .. } => ErrorCode::RunAlreadyFinished,
            Self::ApprovalNotPending { .. } => ErrorCode::ApprovalNotPending,
            Self::SessionBusy { .. } => ErrorCode::SessionBusy,
            Self::ToolUnavailable { .. } => ErrorCode::ToolUnavailable,
            Self::MissingVariable { .. } => ErrorCode::MissingVariable,
            Self::InvalidArguments(_) => ErrorCode::InvalidArguments,
            Self::PermissionDenied { .. } => ErrorCode::PermissionDenied,
            Self::ApprovalRequired { .. } => ErrorCode::ApprovalRequired,
            Self::Unauthorized(_) => ErrorCode::Unauthorized,
            Self::Forbidden(_) => ErrorCode::Forbidden,
            Self::RateLimited { .. } => ErrorCode::RateLimited,
            Self::Busy(_) => ErrorCode::LimitExceeded,
            Self::Store(StoreError::NotFound) => ErrorCode::NotFound,
            Self::Store(_) => ErrorCode::InternalError,
        }
    }
}

impl From<StoreError> for RuntimeError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotPending(status) => Self::ApprovalNotPending { status },
            StoreError::SessionBusy(active_run_id) => Self::SessionBusy { active_run_id },
            other => Self::Store(other),
        }
    }
}

/// What to do when a message arrives for a session that has an unfinished run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum IfBusy {
    /// Queue a new run behind the active one (FIFO per session).
    #[default]
    Enqueue,
    /// Refuse with the active run's id.
    Reject,
    /// Cancel the active run(s), then start.
    Interrupt,
    /// Hand the message to the active run at its next step.
    Steer,
}

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
