//! What a run (or a direct call) may call: builtin tools, the tenant's HTTP
//! tools, MCP tools and skills, filtered by the agent's lists; and calling a
//! tool without a model.

use std::collections::HashMap;
use std::sync::Arc;

use agentd_core::Tenant;
use agentd_store::StoreError;
use agentd_tools::skills::Skill;
use tokio_util::sync::CancellationToken;

use crate::{Runtime, RuntimeError};

/// The tools one run may use.
pub struct ToolSet {
    /// What the model is offered.
    pub specs: Arc<Vec<agentd_core::ToolSpec>>,
    http: HashMap<String, Arc<agentd_tools::HttpTool>>,
    mcp: HashMap<String, (Arc<agentd_mcp::McpTool>, agentd_core::ToolSpec)>,
    skill: Option<(Arc<agentd_tools::skills::LoadSkill>, agentd_core::ToolSpec)>,
    /// The system-prompt section listing the skills (empty without skills).
    pub skills_prompt: String,
}

impl ToolSet {
    /// The skills this set offers.
    pub fn skills(&self) -> &[Skill] {
        self.skill.as_ref().map(|(t, _)| t.skills.as_slice()).unwrap_or(&[])
    }

    /// Where a tool of this set comes from.
    pub fn source(&self, rt: &Runtime, name: &str) -> &'static str {
        if self.http.contains_key(name) {
            "http"
        } else if self.mcp.contains_key(name) {
            "mcp"
        } else if name == "load_skill" && self.skill.is_some() {
            "skill"
        } else {
            rt.tools.source(name).unwrap_or("builtin")
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
        *self.config_skills.write().unwrap_or_else(|e| e.into_inner()) = (ok, bad);
    }

    /// Skills from configured directories that failed to load, with reasons.
    pub fn skill_errors(&self) -> Vec<agentd_tools::skills::SkillError> {
        self.config_skills.read().unwrap_or_else(|e| e.into_inner()).1.clone()
    }

    /// Every skill the tenant's agent may use: configured ones and uploaded ones.
    pub async fn skills_for(&self, t: &Tenant) -> Result<Vec<Skill>, StoreError> {
        let mut out: Vec<Skill> = self.config_skills.read().unwrap_or_else(|e| e.into_inner()).0.clone();
        for d in self.store.list_docs(t, "skill").await? {
            match serde_json::from_value::<Skill>(d) {
                Ok(s) if !out.iter().any(|c| c.name == s.name) => out.push(s),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "stored skill is unreadable"),
            }
        }
        out.retain(|s| self.agent.allows_skill(&s.name));
        Ok(out)
    }

    /// The tool specs offered to the model, computed once and shared by every run.
    pub fn agent_tools(&self) -> Arc<Vec<agentd_core::ToolSpec>> {
        self.tool_specs
            .get_or_init(|| Arc::new(self.tools.specs().into_iter().filter(|s| self.agent.allows(&s.name)).collect()))
            .clone()
    }

    /// The tools a run of this tenant may use: the agent's builtin tools plus
    /// the tenant's registered HTTP tools.
    pub async fn toolset(&self, t: &Tenant) -> Result<ToolSet, StoreError> {
        self.toolset_with(t, true).await
    }

    /// The tool set; `with_http` false skips the store read for HTTP tools.
    async fn toolset_with(&self, t: &Tenant, with_http: bool) -> Result<ToolSet, StoreError> {
        let base = self.agent_tools();
        let mut http = HashMap::new();
        let defs = if with_http { self.store.list_http_tools(t).await? } else { vec![] };
        for def in defs {
            if self.agent.allows(&def.name) && self.tools.get(&def.name).is_none() {
                http.insert(def.name.clone(), Arc::new(agentd_tools::HttpTool::new(def)));
            }
        }
        let mut mcp = HashMap::new();
        for tool in self.mcp.tools_for(t) {
            let spec = agentd_tools::Tool::spec(tool.as_ref());
            if self.agent.allows(&spec.name) {
                mcp.insert(spec.name.clone(), (tool, spec));
            }
        }
        let skills = if with_http { self.skills_for(t).await? } else { vec![] };
        let prompt = agentd_tools::skills::skills_prompt(&skills, 8_000);
        let skill = (!skills.is_empty() && self.agent.allows("load_skill")).then(|| {
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
        Ok(ToolSet { specs, http, mcp, skill, skills_prompt: prompt })
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
        let tool = self.tools.get(name).filter(|_| self.agent.allows(name))?;
        Some((tool, self.tools.validate(name, args)))
    }

    /// The workspace of a session, or the tenant's scratch workspace.
    pub fn workspace(&self, t: &Tenant, session_id: Option<&str>) -> std::io::Result<agentd_tools::Workspace> {
        let dir = self.workspaces.join(&t.org).join(&t.user).join(&t.project).join(session_id.unwrap_or("_scratch"));
        agentd_tools::Workspace::open(&dir)
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
        let with_http = (self.tools.get(name).is_none() && !name.starts_with("mcp__")) || name == "load_skill";
        let set = self.toolset_with(t, with_http).await?;
        let (tool, verdict) = self.lookup(&set, name, &args).ok_or_else(|| RuntimeError::NotFound {
            code: "tool_not_found",
            message: format!("no tool named {name:?}"),
        })?;
        if !args.is_object() {
            return Err(RuntimeError::bad("invalid_arguments", "`arguments` must be a JSON object"));
        }
        verdict.map_err(RuntimeError::InvalidArguments)?;
        if let Some(id) = session_id
            && self.store.get_session(t, id).await?.is_none()
        {
            return Err(RuntimeError::NotFound {
                code: "session_not_found",
                message: format!("session {id} not found"),
            });
        }
        let ws = match tool.needs_workspace() {
            true => Some(
                self.workspace(t, session_id).map_err(|e| RuntimeError::bad("workspace_unavailable", e.to_string()))?,
            ),
            false => None,
        };
        let call_id = agentd_core::new_id("call");
        let ctx = agentd_tools::ToolContext {
            run_id: "direct".into(),
            idempotency_key: format!("direct:{call_id}"),
            call_id,
            cancel: CancellationToken::new(),
            workspace: ws,
        };
        let (call_id, started) = (ctx.call_id.clone(), std::time::Instant::now());
        let out = tool.call(args.clone(), ctx).await;
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
