//! What a run (or a direct call) may call: builtin tools, the tenant's HTTP
//! tools, MCP tools and skills, filtered by the agent's lists; and calling a
//! tool without a model.

use agentd_core::ErrorCode;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, OnceLock, RwLock};

use agentd_core::{AgentDef, Tenant};
use agentd_store::StoreError;
use agentd_tools::ToolRegistry;
use agentd_tools::skills::Skill;
use tokio_util::sync::CancellationToken;

use crate::{AgentSettings, Runtime, RuntimeError};

/// The catalog service's own state: the tools, agents, skills and MCP
/// servers runs can use, and where their workspaces live. Other modules
/// reach it through the accessors below.
pub(crate) struct Catalog {
    tools: ToolRegistry,
    /// The default agent.
    agent: AgentSettings,
    /// Agents from `[agents.<name>]`, `default` included.
    config_agents: BTreeMap<String, AgentSettings>,
    /// Skills from the configured directories, and the ones that failed to load.
    config_skills: RwLock<(Vec<Skill>, Vec<agentd_tools::skills::SkillError>)>,
    tool_specs: OnceLock<Arc<Vec<agentd_core::ToolSpec>>>,
    /// Per-session workspaces live under `<root>/<org>/<user>/<project>/`.
    workspaces: PathBuf,
    /// MCP servers (shared from config, or per tenant from the API).
    mcp: agentd_mcp::McpManager,
}

impl Catalog {
    pub(crate) fn new(tools: ToolRegistry, agents: Vec<AgentSettings>, workspaces: PathBuf) -> Self {
        let mut config_agents: BTreeMap<String, AgentSettings> =
            agents.into_iter().map(|a| (a.name.clone(), a)).collect();
        let agent = config_agents.get("default").cloned().unwrap_or_default();
        config_agents.insert("default".into(), agent.clone());
        let mcp = agentd_mcp::McpManager::default();
        // Sandboxed MCP servers never see agentd's data (database, workspaces).
        let data = workspaces.parent().and_then(|p| std::fs::canonicalize(p).ok());
        mcp.hide_from_sandbox(data.into_iter().collect());
        Self {
            tools,
            agent,
            config_agents,
            config_skills: Default::default(),
            tool_specs: OnceLock::new(),
            workspaces,
            mcp,
        }
    }

    pub(crate) fn tools(&self) -> &ToolRegistry {
        &self.tools
    }

    pub(crate) fn mcp(&self) -> &agentd_mcp::McpManager {
        &self.mcp
    }
}

/// The tools one run may use.
pub struct ToolSet {
    /// What the model is offered.
    pub specs: Arc<Vec<agentd_core::ToolSpec>>,
    http: HashMap<String, Arc<agentd_tools::HttpTool>>,
    mcp: HashMap<String, (Arc<agentd_mcp::McpTool>, agentd_core::ToolSpec)>,
    skill: Option<(Arc<agentd_tools::skills::LoadSkill>, agentd_core::ToolSpec)>,
    /// The system-prompt section listing the skills (empty without skills).
    pub skills_prompt: String,
    /// The agent the set was made for.
    pub agent: AgentSettings,
}

impl ToolSet {
    /// The skills this set offers.
    pub fn skills(&self) -> &[Skill] {
        self.skill.as_ref().map(|(t, _)| t.skills.as_slice()).unwrap_or(&[])
    }

    /// Where a tool of this set comes from.
    pub fn source(&self, rt: &Runtime, name: &str) -> agentd_core::ToolSource {
        use agentd_core::ToolSource;
        if self.http.contains_key(name) {
            ToolSource::Http
        } else if self.mcp.contains_key(name) {
            ToolSource::Mcp
        } else if name == "load_skill" && self.skill.is_some() {
            ToolSource::Skill
        } else {
            rt.catalog.tools.source(name).unwrap_or(ToolSource::Builtin)
        }
    }
}

impl Runtime {
    /// Loads the skills of these directories (replacing earlier ones);
    /// broken skills are kept as errors, never stop the others.
    pub fn load_skill_dirs(&self, dirs: &[std::path::PathBuf]) {
        let (mut ok, mut bad) = (vec![], vec![]);
        for d in dirs {
            let (o, b) = agentd_tools::skills::load_dir(d);
            ok.extend(o);
            bad.extend(b);
        }
        for e in &bad {
            tracing::warn!(path = %e.path, reason = %e.reason, "skill not loaded");
        }
        *self.catalog.config_skills.write().unwrap_or_else(|e| e.into_inner()) = (ok, bad);
    }

    /// Skills from configured directories that failed to load, with reasons.
    pub fn skill_errors(&self) -> Vec<agentd_tools::skills::SkillError> {
        self.catalog.config_skills.read().unwrap_or_else(|e| e.into_inner()).1.clone()
    }

    /// Every skill the tenant's default agent may use: configured ones and uploaded ones.
    pub async fn skills_for(&self, t: &Tenant) -> Result<Vec<Skill>, RuntimeError> {
        Ok(self.skills_for_agent(t, &self.catalog.agent).await?)
    }

    /// Every skill this agent may use.
    pub async fn skills_for_agent(&self, t: &Tenant, agent: &AgentSettings) -> Result<Vec<Skill>, StoreError> {
        let mut out: Vec<Skill> = self.catalog.config_skills.read().unwrap_or_else(|e| e.into_inner()).0.clone();
        for d in self.store.list_docs(t, agentd_store::DocKind::SKILL).await? {
            match serde_json::from_value::<Skill>(d) {
                Ok(s) if !out.iter().any(|c| c.name == s.name) => out.push(s),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "stored skill is unreadable"),
            }
        }
        out.retain(|s| agent.allows_skill(&s.name));
        Ok(out)
    }

    /// The tool specs offered to the model, computed once and shared by every run.
    pub fn agent_tools(&self) -> Arc<Vec<agentd_core::ToolSpec>> {
        self.catalog
            .tool_specs
            .get_or_init(|| {
                Arc::new(
                    self.catalog.tools.specs().into_iter().filter(|s| self.catalog.agent.allows(&s.name)).collect(),
                )
            })
            .clone()
    }

    /// The tools a run of this tenant may use: the agent's builtin tools plus
    /// the tenant's registered HTTP tools.
    pub async fn toolset(&self, t: &Tenant) -> Result<ToolSet, RuntimeError> {
        Ok(self.toolset_with(t, &self.catalog.agent, true).await?)
    }

    /// The tool set of one agent; `with_http` false skips the store reads
    /// for HTTP tools and skills.
    pub(crate) async fn toolset_with(
        &self,
        t: &Tenant,
        agent: &AgentSettings,
        with_http: bool,
    ) -> Result<ToolSet, StoreError> {
        let base = if agent.name == self.catalog.agent.name {
            self.agent_tools()
        } else {
            Arc::new(self.catalog.tools.specs().into_iter().filter(|s| agent.allows(&s.name)).collect())
        };
        let mut http = HashMap::new();
        let defs = if with_http { self.store.list_http_tools(t).await? } else { vec![] };
        for def in defs {
            if agent.allows(&def.name) && self.catalog.tools.get(&def.name).is_none() {
                // Secrets its headers name are opened now, for this step's calls only.
                let mut secrets = std::collections::BTreeMap::new();
                for (header, name) in agentd_tools::HttpTool::secret_refs(&def) {
                    secrets.insert(header, self.secret_value(t, &name).await.map_err(|e| e.to_string()));
                }
                http.insert(def.name.clone(), Arc::new(agentd_tools::HttpTool::with_secrets(def, secrets)));
            }
        }
        let mut mcp = HashMap::new();
        self.sync_mcp(t, false).await?;
        for tool in self.catalog.mcp.tools_for(t) {
            let spec = agentd_tools::Tool::spec(tool.as_ref());
            if agent.allows(&spec.name) {
                mcp.insert(spec.name.clone(), (tool, spec));
            }
        }
        let skills = if with_http { self.skills_for_agent(t, agent).await? } else { vec![] };
        let prompt = agentd_tools::skills::skills_prompt(&skills, 8_000);
        let skill = (!skills.is_empty() && agent.allows("load_skill")).then(|| {
            let tool = Arc::new(agentd_tools::skills::LoadSkill { skills: Arc::new(skills) });
            let spec = agentd_tools::Tool::spec(tool.as_ref());
            (tool, spec)
        });
        let specs = if http.is_empty() && mcp.is_empty() && skill.is_none() {
            base
        } else {
            let mut v = (*base).clone();
            v.extend(http.values().map(|h| agentd_tools::Tool::spec(h.as_ref())));
            v.extend(mcp.values().map(|(_, s)| s.clone()));
            v.extend(skill.iter().map(|(_, s)| s.clone()));
            Arc::new(v)
        };
        Ok(ToolSet { specs, http, mcp, skill, skills_prompt: prompt, agent: agent.clone() })
    }

    /// Finds a tool by name, with the verdict on its arguments.
    pub(crate) fn lookup(
        &self,
        set: &ToolSet,
        name: &str,
        args: &serde_json::Value,
    ) -> Option<(Arc<dyn agentd_tools::Tool>, Result<(), agentd_tools::InvalidArguments>)> {
        if let Some(h) = set.http.get(name) {
            return Some((h.clone(), h.check(args)));
        }
        if let Some((tool, spec)) = set.mcp.get(name) {
            return Some((tool.clone(), agentd_tools::check_args(name, &spec.input_schema, args)));
        }
        if let Some((tool, spec)) = set.skill.as_ref().filter(|_| name == "load_skill") {
            return Some((tool.clone(), agentd_tools::check_args(name, &spec.input_schema, args)));
        }
        let tool = self.catalog.tools.get(name).filter(|_| set.agent.allows(name))?;
        Some((tool, self.catalog.tools.validate(name, args)))
    }

    /// The workspace of a session, or the tenant's scratch workspace.
    pub fn workspace(&self, t: &Tenant, session_id: Option<&str>) -> std::io::Result<agentd_tools::Workspace> {
        let org_root = self.catalog.workspaces.join(&t.org);
        let dir = org_root.join(&t.user).join(&t.project).join(session_id.unwrap_or("_scratch"));
        let l = self.server_limits();
        let quota = agentd_tools::quota::Quota {
            workspace_bytes: l.workspace_bytes,
            org_root,
            org_bytes: l.org_workspace_bytes,
        };
        Ok(agentd_tools::Workspace::open(&dir)?.with_quota(quota))
    }

    /// Calls a tool directly, without a model: arguments are checked against
    /// its schema; the session's workspace (or the tenant's scratch one) is used.
    pub async fn call_tool_direct(
        &self,
        t: &Tenant,
        name: &str,
        args: serde_json::Value,
        session_id: Option<&str>,
    ) -> Result<agentd_tools::ToolOutput, RuntimeError> {
        // Builtin and MCP tools need no look at the tenant's HTTP tools.
        let with_http = (self.catalog.tools.get(name).is_none() && !name.starts_with("mcp__")) || name == "load_skill";
        let set = self.toolset_with(t, &self.catalog.agent, with_http).await?;
        let (tool, verdict) = self
            .lookup(&set, name, &args)
            .ok_or_else(|| RuntimeError::not_found(ErrorCode::ToolNotFound, format!("no tool named {name:?}")))?;
        if !args.is_object() {
            return Err(RuntimeError::bad(ErrorCode::InvalidArguments, "`arguments` must be a JSON object"));
        }
        verdict.map_err(RuntimeError::InvalidArguments)?;
        // A direct call has nobody to pause for: `ask` is answered with 403.
        let annotations = tool.annotations();
        let facts =
            agentd_safety::ToolFacts { name, source: set.source(self, name), annotations: annotations.as_ref() };
        let d = set.agent.policy.evaluate(facts, &args);
        let details = serde_json::json!({"rule": d.rule, "risk": d.risk, "reasons": d.reasons});
        match d.decision {
            agentd_safety::Verdict::Allow => {}
            agentd_safety::Verdict::Deny => {
                let message = format!("permission denied: {}", d.rule);
                return Err(RuntimeError::PermissionDenied { message, details });
            }
            agentd_safety::Verdict::Ask => {
                let message = format!(
                    "the policy asks a person to approve this call ({}); direct calls cannot wait for approval — \
                     run it through an agent run, or add an allow rule",
                    d.rule
                );
                return Err(RuntimeError::ApprovalRequired { message, details });
            }
        }
        if let Some(id) = session_id
            && self.store.get_session(t, id).await?.is_none()
        {
            return Err(RuntimeError::SessionNotFound(id.to_string()));
        }
        let ws = match tool.needs_workspace() {
            true => Some(
                self.workspace(t, session_id)
                    .map_err(|e| RuntimeError::bad(ErrorCode::WorkspaceUnavailable, e.to_string()))?,
            ),
            false => None,
        };
        let call_id = agentd_core::new_id("call");
        let ctx = agentd_tools::ToolContext {
            org: t.org.clone(),
            run_id: "direct".into(),
            idempotency_key: format!("direct:{call_id}"),
            call_id,
            cancel: CancellationToken::new(),
            workspace: ws,
            sandbox: set.agent.sandbox.clone(),
        };
        let (call_id, started) = (ctx.call_id.clone(), std::time::Instant::now());
        let fence = tool.fence();
        let slot = agentd_tools::pool::tool_call_permit(&t.org).await;
        let mut out = tool.call(args.clone(), ctx).await;
        drop(slot);
        if out.sandbox.is_none() {
            out.sandbox = Some(fence);
        }
        // What leaves the server carries no secrets, as in the journal.
        let mut args = args;
        agentd_core::redact::redact_value_for(Some(t), &mut args);
        for part in &mut out.content {
            if let agentd_core::ContentPart::Text { text } = part
                && let std::borrow::Cow::Owned(masked) = agentd_core::redact::redact_for(t, text)
            {
                *text = masked;
            }
        }
        let record = agentd_store::DirectCall {
            id: call_id,
            session_id: session_id.map(str::to_string),
            tool: name.to_string(),
            arguments: args,
            content: out.content.clone(),
            is_error: out.is_error,
            duration_ms: started.elapsed().as_millis() as u64,
            created_at: agentd_store::now(),
        };
        // The journal keeps direct calls too; a failed write is logged, the answer still returned.
        if let Err(e) = self.store.record_tool_call(t, &record).await {
            tracing::warn!(error = %e, "could not journal a direct tool call");
        }
        Ok(out)
    }
}

/// The settings a run of a tenant agent uses; unset fields come from `base`.
pub(crate) fn agent_settings(def: &AgentDef, base: &AgentSettings) -> AgentSettings {
    AgentSettings {
        name: def.name.clone(),
        system_prompt: def.system_prompt.clone().unwrap_or_else(|| base.system_prompt.clone()),
        system_template: def.system_template.clone(),
        max_steps: def.max_steps.unwrap_or(base.max_steps).clamp(1, crate::MAX_STEPS_LIMIT),
        tools: def.tools.clone(),
        skills: def.skills.clone(),
        model: def.model.clone(),
        policy: match &def.policy {
            Some(p) => base.policy.layered(p).map(Arc::new).unwrap_or_else(|e| {
                tracing::error!(error = %e, "invalid tenant policy; denying every tool call");
                Arc::new(crate::deny_all())
            }),
            None => base.policy.clone(),
        },
        sandbox: base.sandbox.clone(),
        max_repeated_calls: base.max_repeated_calls,
        max_wall_secs: base.max_wall_secs,
        ask_on_interrupted: base.ask_on_interrupted,
        description: def.description.clone(),
        limits: def.limits.unwrap_or(base.limits),
        render_prompt: false,
        file: None,
    }
}

/// Checks a tenant agent's policy rules parse.
pub(crate) fn check_agent_policy(def: &AgentDef) -> Result<(), String> {
    match &def.policy {
        Some(p) => agentd_safety::Policy::new(p.clone()).map(|_| ()).map_err(|e| e.to_string()),
        None => Ok(()),
    }
}

impl Runtime {
    /// An agent by name: the configured ones, then the tenant's own.
    pub async fn agent_for(&self, t: &Tenant, name: &str) -> Result<AgentSettings, RuntimeError> {
        if let Some(a) = self.catalog.config_agents.get(name) {
            return Ok(a.clone());
        }
        for d in self.store.list_docs(t, agentd_store::DocKind::AGENT).await? {
            if let Ok(def) = serde_json::from_value::<AgentDef>(d)
                && def.name == name
            {
                return Ok(agent_settings(&def, &self.catalog.agent));
            }
        }
        Err(RuntimeError::not_found(ErrorCode::AgentNotFound, format!("no agent named {name:?}")))
    }

    /// An agent by name with the version a new run records (`None` for
    /// configured agents): a tenant agent's latest version.
    pub async fn agent_with_version(
        &self,
        t: &Tenant,
        name: &str,
    ) -> Result<(AgentSettings, Option<i64>), RuntimeError> {
        if self.catalog.config_agents.contains_key(name) {
            return Ok((self.agent_for(t, name).await?, None));
        }
        // The current definition decides whether the agent exists: versions
        // outlive a deleted agent, for the runs pinned to them.
        let current = self.agent_for(t, name).await?;
        let versions = self.store.doc_versions(t, agentd_store::DocKind::AGENT, name).await?;
        Ok((current, versions.last().map(|v| v.version)))
    }

    /// The settings a run executes with: the agent version it recorded (a
    /// later edit never changes a run), narrowed by its parent's ceiling.
    pub(crate) async fn agent_of_run(
        &self,
        t: &Tenant,
        run: &agentd_core::Run,
        ceiling: Option<&agentd_core::Ceiling>,
    ) -> Result<AgentSettings, RuntimeError> {
        let stored = match run.agent_version {
            Some(v) => self.store.doc_version(t, agentd_store::DocKind::AGENT, &run.agent, v).await?,
            None => None,
        };
        let mut agent = match stored.and_then(|v| serde_json::from_value::<AgentDef>(v.doc).ok()) {
            Some(def) => agent_settings(&def, &self.catalog.agent),
            None => self.agent_for(t, &run.agent).await?,
        };
        if let Some(c) = ceiling {
            if let Some(tools) = &c.tools {
                agent.tools = Some(tools.clone());
            }
            if !c.deny.is_empty() || !c.ask.is_empty() || c.mode.is_some() || !c.policies.is_empty() {
                agent.policy = match crate::inherit::bounded_policy(&agent.policy.config, c) {
                    Ok(p) => Arc::new(p),
                    Err(e) => {
                        tracing::error!(error = %e, run_id = %run.id, "unreadable inherited policy; denying every tool call");
                        Arc::new(crate::deny_all())
                    }
                };
            }
        }
        Ok(agent)
    }

    /// The tools a run offers its model: its agent's, without the blackboard
    /// tools unless it is a member (or the lead) of a team run.
    pub(crate) async fn run_toolset(
        &self,
        t: &Tenant,
        agent: &AgentSettings,
        ceiling: Option<&agentd_core::Ceiling>,
    ) -> Result<ToolSet, StoreError> {
        let mut set = self.toolset_with(t, agent, true).await?;
        let bb = agentd_tools::delegation::BLACKBOARD_TOOLS;
        if ceiling.is_none_or(|c| c.team.is_none()) && set.specs.iter().any(|s| bb.contains(&s.name.as_str())) {
            set.specs = Arc::new(set.specs.iter().filter(|s| !bb.contains(&s.name.as_str())).cloned().collect());
        }
        Ok(set)
    }

    /// The tool set of a named agent.
    pub async fn toolset_for_agent(&self, t: &Tenant, name: &str) -> Result<ToolSet, RuntimeError> {
        let agent = self.agent_for(t, name).await?;
        Ok(self.toolset_with(t, &agent, true).await?)
    }

    /// The configured agents (config and AGENT.md files).
    pub fn config_agents(&self) -> Vec<AgentSettings> {
        self.catalog.config_agents.values().cloned().collect()
    }

    /// Names of the configured agents.
    pub fn config_agent_names(&self) -> Vec<String> {
        self.catalog.config_agents.keys().cloned().collect()
    }
}
