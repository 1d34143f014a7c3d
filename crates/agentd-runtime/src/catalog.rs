//! The runtime's doors for what the API reads and writes besides runs:
//! sessions, journal pages, the tenant's catalog (HTTP tools, skills,
//! agents) and direct-call history. Handlers call these, never the store.

use agentd_core::ErrorCode;
use agentd_core::{HttpToolDef, RunStatus, Session, StoredEvent, Tenant};
use agentd_store::{DirectCall, EventQuery, Page, RunFilter, SessionMessage, StoreError};
use serde_json::{Value, json};

use agentd_core::{
    AGENT_EXPORT_FORMAT, AgentDef, AgentExport, AgentImported, AgentListing, AgentSource, AgentVersion, Template,
};

use crate::{Runtime, RuntimeError};

/// An agent as stored and answered: the tenant's secrets masked.
fn masked_agent(t: &Tenant, def: &AgentDef) -> AgentDef {
    let masked = agentd_store::masked_doc(t, agentd_store::DocKind::AGENT, &json!(def));
    serde_json::from_value(masked).unwrap_or_else(|_| def.clone())
}

/// A session with its messages and the usage and cost of all its runs.
#[derive(Debug, Clone)]
pub struct SessionView {
    pub session: Session,
    pub messages: Vec<SessionMessage>,
    pub usage: agentd_core::Usage,
    pub cost_usd: Option<f64>,
}

impl Runtime {
    /// Checks the database answers (reader and writer).
    pub async fn ping(&self) -> Result<(), RuntimeError> {
        Ok(self.store.ping().await?)
    }

    pub async fn create_session(
        &self,
        t: &Tenant,
        title: Option<String>,
        metadata: Option<Value>,
    ) -> Result<Session, RuntimeError> {
        let metadata = metadata.unwrap_or_else(|| json!({}));
        if !metadata.is_object() {
            return Err(RuntimeError::bad(ErrorCode::InvalidRequest, "`metadata` must be a JSON object"));
        }
        Ok(self.store.create_session(t, title, metadata).await?)
    }

    pub async fn list_sessions(&self, t: &Tenant, page: &Page) -> Result<Vec<Session>, RuntimeError> {
        Ok(self.store.list_sessions(t, page).await?)
    }

    /// The session, or `SessionNotFound`.
    pub async fn get_session(&self, t: &Tenant, id: &str) -> Result<Session, RuntimeError> {
        self.store.get_session(t, id).await?.ok_or_else(|| RuntimeError::SessionNotFound(id.to_string()))
    }

    /// The session with its messages, usage and cost summed over its runs.
    pub async fn session_view(&self, t: &Tenant, id: &str) -> Result<SessionView, RuntimeError> {
        let session = self.get_session(t, id).await?;
        let messages = self.store.session_messages(t, id).await?;
        let (mut usage, mut cost_usd, mut after) = (agentd_core::Usage::default(), None::<f64>, None);
        loop {
            let filter = RunFilter { session_id: Some(id.to_string()), status: None, ..Default::default() };
            let runs = self.store.list_runs(t, &filter, &Page { after: after.clone(), limit: 1_000 }).await?;
            for r in &runs {
                usage.add(&r.usage);
                if let Some(c) = r.cost_usd {
                    cost_usd = Some(cost_usd.unwrap_or(0.0) + c);
                }
            }
            match runs.last() {
                Some(last) if runs.len() == 1_000 => after = Some(last.id.clone()),
                _ => break,
            }
        }
        Ok(SessionView { session, messages, usage, cost_usd })
    }

    /// Deletes a session with its runs and journal; active runs are cancelled first.
    pub async fn delete_session(&self, t: &Tenant, id: &str) -> Result<(), RuntimeError> {
        self.get_session(t, id).await?;
        for status in [RunStatus::Queued, RunStatus::Running] {
            let filter = RunFilter { session_id: Some(id.to_string()), status: Some(status), ..Default::default() };
            for run in self.store.list_runs(t, &filter, &Page { after: None, limit: 10_000 }).await? {
                // Already finished in between is fine.
                let _ = self.cancel(t, &run.id, Some("session deleted".into())).await;
            }
        }
        if !self.store.delete_session(t, id).await? {
            return Err(RuntimeError::SessionNotFound(id.to_string()));
        }
        Ok(())
    }

    pub async fn list_runs(
        &self,
        t: &Tenant,
        filter: &RunFilter,
        page: &Page,
    ) -> Result<Vec<agentd_core::Run>, RuntimeError> {
        Ok(self.store.list_runs(t, filter, page).await?)
    }

    /// A page of a run's journal (the caller checked the run exists).
    pub async fn run_events(&self, t: &Tenant, id: &str, q: &EventQuery) -> Result<Vec<StoredEvent>, RuntimeError> {
        Ok(self.store.events(t, id, q).await?)
    }

    /// Registers an HTTP tool (checked first); builtin names are taken.
    pub async fn create_http_tool(&self, t: &Tenant, def: &HttpToolDef) -> Result<HttpToolDef, RuntimeError> {
        let mut def = HttpToolDef { created_at: agentd_store::now(), ..def.clone() };
        agentd_tools::validate_http_tool(&def).map_err(|m| RuntimeError::bad(ErrorCode::InvalidRequest, m))?;
        // Credentials given inline are sealed as secrets; the stored tool references them.
        def.headers = self.sealed_headers(t, ("http", &def.name), def.headers).await?;
        let def = &def;
        if self.catalog.tools().get(&def.name).is_some() {
            return Err(RuntimeError::exists(ErrorCode::ToolExists, format!("{} is a builtin tool", def.name)));
        }
        match self.store.create_http_tool(t, def).await {
            Err(StoreError::AlreadyExists) => {
                Err(RuntimeError::exists(ErrorCode::ToolExists, format!("an HTTP tool named {} exists", def.name)))
            }
            r => Ok(r.map(|()| def.clone())?),
        }
    }

    pub async fn list_http_tools(&self, t: &Tenant) -> Result<Vec<HttpToolDef>, RuntimeError> {
        Ok(self.store.list_http_tools(t).await?)
    }

    pub async fn delete_http_tool(&self, t: &Tenant, name: &str) -> Result<(), RuntimeError> {
        if self.store.delete_http_tool(t, name).await? {
            Ok(())
        } else {
            Err(RuntimeError::not_found(ErrorCode::ToolNotFound, format!("no HTTP tool named {name:?}")))
        }
    }

    /// Stores an uploaded skill; a name any skill of the tenant has is taken.
    pub async fn create_skill(&self, t: &Tenant, skill: &agentd_tools::skills::Skill) -> Result<(), RuntimeError> {
        let taken = || RuntimeError::exists(ErrorCode::SkillExists, format!("a skill named {} exists", skill.name));
        if self.skills_for(t).await?.iter().any(|k| k.name == skill.name) {
            return Err(taken());
        }
        match self.store.create_doc(t, agentd_store::DocKind::SKILL, &skill.name, &json!(skill)).await {
            Err(StoreError::AlreadyExists) => Err(taken()),
            r => Ok(r?),
        }
    }

    /// Replaces an uploaded skill in one statement: readers see the old or the new one.
    pub async fn replace_skill(&self, t: &Tenant, skill: &agentd_tools::skills::Skill) -> Result<(), RuntimeError> {
        if self.store.replace_doc(t, agentd_store::DocKind::SKILL, &skill.name, &json!(skill)).await? {
            Ok(())
        } else {
            Err(RuntimeError::not_found(ErrorCode::SkillNotFound, format!("no uploaded skill named {:?}", skill.name)))
        }
    }

    pub async fn delete_skill(&self, t: &Tenant, name: &str) -> Result<(), RuntimeError> {
        if self.store.delete_doc(t, agentd_store::DocKind::SKILL, name).await? {
            Ok(())
        } else {
            Err(RuntimeError::not_found(ErrorCode::SkillNotFound, format!("no uploaded skill named {name:?}")))
        }
    }

    /// Direct tool calls, newest first.
    pub async fn list_tool_calls(
        &self,
        t: &Tenant,
        session_id: Option<&str>,
        page: &Page,
    ) -> Result<Vec<DirectCall>, RuntimeError> {
        Ok(self.store.list_tool_calls(t, session_id, page).await?)
    }

    /// Defines an agent for the tenant (checked: name, steps, model, policy);
    /// answers it as stored, secrets masked.
    pub async fn create_agent(&self, t: &Tenant, def: &AgentDef) -> Result<AgentDef, RuntimeError> {
        self.check_agent(t, def).await?;
        match self.store.create_doc(t, agentd_store::DocKind::AGENT, &def.name, &json!(def)).await {
            Ok(()) => Ok(masked_agent(t, def)),
            Err(StoreError::AlreadyExists) => {
                Err(RuntimeError::exists(ErrorCode::AgentExists, format!("an agent named {} exists", def.name)))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Replaces a tenant agent's definition (checked as on creation).
    pub async fn replace_agent(&self, t: &Tenant, def: &AgentDef) -> Result<AgentDef, RuntimeError> {
        self.check_agent(t, def).await?;
        if self.store.replace_doc(t, agentd_store::DocKind::AGENT, &def.name, &json!(def)).await? {
            Ok(masked_agent(t, def))
        } else {
            Err(RuntimeError::not_found(
                ErrorCode::AgentNotFound,
                format!("no agent named {:?} defined over the API", def.name),
            ))
        }
    }

    /// What creating or replacing an agent checks: name, steps, model, policy,
    /// and that the config does not define it.
    async fn check_agent(&self, t: &Tenant, def: &AgentDef) -> Result<(), RuntimeError> {
        if !crate::valid_catalog_name(&def.name) {
            return Err(RuntimeError::bad(
                ErrorCode::InvalidRequest,
                "`name` must be 1-64 characters of [A-Za-z0-9_-]",
            ));
        }
        // Every version is kept a while: one is bounded in size.
        if serde_json::to_vec(def).map_or(usize::MAX, |v| v.len()) > 128 * 1024 {
            return Err(RuntimeError::bad(ErrorCode::InvalidRequest, "an agent's definition is at most 128 KiB"));
        }
        if def.max_steps.is_some_and(|n| n == 0 || n > crate::MAX_STEPS_LIMIT) {
            return Err(RuntimeError::bad(ErrorCode::InvalidRequest, "`max_steps` is out of range"));
        }
        if let Some(m) = &def.model {
            self.plan_model(t, m).await?;
        }
        crate::toolset::check_agent_policy(def).map_err(|m| RuntimeError::bad(ErrorCode::InvalidPolicy, m))?;
        if self.config_agent_names().contains(&def.name) {
            return Err(RuntimeError::exists(ErrorCode::AgentExists, format!("{} is defined in the config", def.name)));
        }
        Ok(())
    }

    /// Configured agents (by name) and the tenant's own (whole).
    pub async fn list_agents(&self, t: &Tenant) -> Result<Vec<AgentListing>, RuntimeError> {
        let mut data: Vec<AgentListing> = self
            .config_agents()
            .into_iter()
            .map(|a| AgentListing {
                source: if a.file.is_some() { AgentSource::File } else { AgentSource::Config },
                agent: AgentDef { name: a.name, description: a.description, ..Default::default() },
            })
            .collect();
        for d in self.tenant_agents(t).await? {
            data.push(AgentListing { agent: d, source: AgentSource::Tenant });
        }
        Ok(data)
    }

    /// The tenant's agents (one that no longer reads as an agent is left out).
    async fn tenant_agents(&self, t: &Tenant) -> Result<Vec<AgentDef>, RuntimeError> {
        let docs = self.store.list_docs(t, agentd_store::DocKind::AGENT).await?;
        Ok(docs.into_iter().filter_map(|d| serde_json::from_value(d).ok()).collect())
    }

    pub async fn delete_agent(&self, t: &Tenant, name: &str) -> Result<(), RuntimeError> {
        if self.store.delete_doc(t, agentd_store::DocKind::AGENT, name).await? {
            Ok(())
        } else {
            Err(RuntimeError::not_found(
                ErrorCode::AgentNotFound,
                format!("no agent named {name:?} defined over the API"),
            ))
        }
    }
}

impl Runtime {
    /// Every version of a tenant agent, oldest first (404 for an agent the tenant does not have).
    pub async fn agent_versions(&self, t: &Tenant, name: &str) -> Result<Vec<AgentVersion>, RuntimeError> {
        let versions: Vec<AgentVersion> = self
            .store
            .doc_versions(t, agentd_store::DocKind::AGENT, name)
            .await?
            .into_iter()
            .filter_map(|v| {
                let agent = serde_json::from_value(v.doc).ok()?;
                Some(AgentVersion { version: v.version, agent, created_at: v.created_at })
            })
            .collect();
        if versions.is_empty() {
            return Err(RuntimeError::not_found(
                ErrorCode::AgentNotFound,
                format!("no agent named {name:?} defined over the API"),
            ));
        }
        Ok(versions)
    }

    /// One portable file with a tenant agent, the tenant skills it may use and its template.
    pub async fn export_agent(&self, t: &Tenant, name: &str) -> Result<AgentExport, RuntimeError> {
        let def = self.tenant_agents(t).await?.into_iter().find(|d| d.name == name).ok_or_else(|| {
            RuntimeError::not_found(ErrorCode::AgentNotFound, format!("no agent named {name:?} defined over the API"))
        })?;
        let settings = crate::toolset::agent_settings(&def, &crate::AgentSettings::default());
        let skills: Vec<Value> = self
            .store
            .list_docs(t, agentd_store::DocKind::SKILL)
            .await?
            .into_iter()
            .filter(|s| s["name"].as_str().is_some_and(|n| settings.allows_skill(n)))
            .collect();
        let mut templates = vec![];
        if let Some(tpl) = &def.system_template {
            let p = self.documents().get::<Template>(t, tpl).await?;
            templates.push(json!({"name": p.name, "content": p.body.content}));
        }
        let version = self.store.doc_versions(t, agentd_store::DocKind::AGENT, name).await?.last().map(|v| v.version);
        Ok(AgentExport {
            format: AGENT_EXPORT_FORMAT.into(),
            exported_at: Some(agentd_store::now()),
            version,
            agent: def,
            skills,
            templates,
        })
    }

    /// Takes an exported agent back (its templates and skills first). A name
    /// that exists is refused (409) before anything is written, unless
    /// `replace`, which makes a new version of the agent.
    pub async fn import_agent(
        &self,
        t: &Tenant,
        bundle: &AgentExport,
        replace: bool,
    ) -> Result<AgentImported, RuntimeError> {
        let bad = |m: String| RuntimeError::bad(ErrorCode::InvalidRequest, m);
        if bundle.format != AGENT_EXPORT_FORMAT {
            return Err(bad(format!("`format` must be {AGENT_EXPORT_FORMAT:?}")));
        }
        let def = bundle.agent.clone();
        let mut skills = vec![];
        for s in bundle.skills.iter().cloned() {
            let skill: agentd_tools::skills::Skill =
                serde_json::from_value(s).map_err(|e| bad(format!("`skills`: {e}")))?;
            // Checked as an upload is: a bundle is tenant input like any other.
            let skill = agentd_tools::skills::check_tenant_skill(skill)
                .map_err(|m| RuntimeError::bad(ErrorCode::InvalidSkill, format!("`skills`: {m}")))?;
            skills.push(skill);
        }
        let mut templates = vec![];
        for p in &bundle.templates {
            match (p["name"].as_str(), p["content"].as_str()) {
                (Some(n), Some(c)) => templates.push((n.to_string(), c.to_string())),
                _ => return Err(bad("`templates` entries need `name` and `content`".into())),
            }
        }
        // Everything is checked before anything is written.
        for (i, (name, content)) in templates.iter().enumerate() {
            if templates[..i].iter().any(|(n, _)| n == name) {
                return Err(bad(format!("`templates` names {name:?} twice")));
            }
            crate::documents::check_name(name)?;
            crate::templates::variables(content)?;
        }
        self.check_agent(t, &def).await?;
        let have_agent =
            self.store.list_docs(t, agentd_store::DocKind::AGENT).await?.iter().any(|d| d["name"] == def.name);
        let have_skills: Vec<String> = self
            .store
            .list_docs(t, agentd_store::DocKind::SKILL)
            .await?
            .iter()
            .filter_map(|d| d["name"].as_str().map(str::to_string))
            .collect();
        let have_templates: Vec<String> =
            self.documents().list::<Template>(t).await?.into_iter().map(|p| p.name).collect();
        if !replace {
            let clash = have_agent.then(|| format!("agent {:?}", def.name)).into_iter().chain(
                skills.iter().filter(|s| have_skills.contains(&s.name)).map(|s| format!("skill {:?}", s.name)).chain(
                    templates.iter().filter(|p| have_templates.contains(&p.0)).map(|p| format!("template {:?}", p.0)),
                ),
            );
            let clash: Vec<String> = clash.collect();
            if !clash.is_empty() {
                return Err(RuntimeError::exists(
                    ErrorCode::AgentExists,
                    format!("{} exist already; import with ?replace=true to overwrite", clash.join(", ")),
                ));
            }
        }
        for (name, content) in &templates {
            let tpl = Template { content: content.clone(), variables: vec![] };
            if have_templates.contains(name) {
                self.documents().replace(t, name, tpl).await?;
            } else {
                self.documents().create(t, name, tpl).await?;
            }
        }
        for s in &skills {
            if have_skills.contains(&s.name) {
                self.replace_skill(t, s).await?;
            } else {
                self.create_skill(t, s).await?;
            }
        }
        let agent = if have_agent { self.replace_agent(t, &def).await? } else { self.create_agent(t, &def).await? };
        let version =
            self.store.doc_versions(t, agentd_store::DocKind::AGENT, &def.name).await?.last().map(|v| v.version);
        Ok(AgentImported { agent, version, skills: skills.len(), templates: templates.len() })
    }
}

impl Runtime {
    /// Headers with every inline value sealed as the tenant's secret and
    /// replaced by a reference to it.
    pub(crate) async fn sealed_headers(
        &self,
        t: &Tenant,
        (kind, owner): (&str, &str),
        headers: std::collections::BTreeMap<String, agentd_core::HeaderSpec>,
    ) -> Result<std::collections::BTreeMap<String, agentd_core::HeaderSpec>, RuntimeError> {
        let mut out = std::collections::BTreeMap::new();
        for (k, v) in headers {
            let v = match v {
                agentd_core::HeaderSpec::Value(s) => {
                    agentd_core::HeaderSpec::Secret { secret: self.seal_inline(t, (kind, owner, &k), &s).await? }
                }
                other => other,
            };
            out.insert(k, v);
        }
        Ok(out)
    }
}
