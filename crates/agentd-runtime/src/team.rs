//! Teams: named groups of agents in roles with a lead, and their runs. A
//! team run is a parent whose children are its members and its lead,
//! created and awaited from its journal like any delegation (so it resumes
//! after a crash the same way). Members and the lead share the team's
//! blackboard; the lead's answer is posted as the `decision` and is the
//! team run's output.

pub use agentd_core::{TeamDef, TeamStrategy};
use std::collections::HashMap;

use agentd_core::{Ceiling, ErrorCode, EventKind, Run, TeamMember, TeamSpec, Tenant, ToolCall, ToolStatus};
use agentd_store::{BlackboardEntry, ChildOf, DocKind, NewRun};
use serde_json::json;

use crate::delegation::{Parent, Tree, result};
use crate::writer::{Stop, Writer};
use crate::{Runtime, RuntimeError};

/// Entry kinds of a blackboard.
pub const ENTRY_KINDS: [&str; 5] = ["task", "proposal", "evidence", "decision", "note"];

/// Most members a team may have.
const MAX_MEMBERS: usize = 32;

impl Runtime {
    async fn check_team(&self, t: &Tenant, def: &TeamDef) -> Result<(), RuntimeError> {
        let bad = |m: String| RuntimeError::bad(ErrorCode::InvalidRequest, m);
        if !crate::valid_catalog_name(&def.name) {
            return Err(bad("`name` must be 1-64 characters of [A-Za-z0-9_-]".into()));
        }
        if def.members.len() > MAX_MEMBERS {
            return Err(bad(format!("a team has at most {MAX_MEMBERS} members")));
        }
        for m in def.members.iter().chain([&def.lead]) {
            if m.role.trim().is_empty() || m.role.len() > 64 {
                return Err(bad("every member needs a `role` of 1-64 characters".into()));
            }
            self.agent_for(t, &m.agent).await?;
        }
        Ok(())
    }

    /// Defines a team for the tenant (its agents must exist).
    pub async fn create_team(&self, t: &Tenant, def: &TeamDef) -> Result<TeamDef, RuntimeError> {
        self.check_team(t, def).await?;
        match self.store.create_doc(t, DocKind::TEAM, &def.name, &json!(def)).await {
            Ok(()) => Ok(def.clone()),
            Err(agentd_store::StoreError::AlreadyExists) => {
                Err(RuntimeError::exists(ErrorCode::TeamExists, format!("a team named {} exists", def.name)))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Replaces a team (runs already started keep the team they started with).
    pub async fn replace_team(&self, t: &Tenant, def: &TeamDef) -> Result<TeamDef, RuntimeError> {
        self.check_team(t, def).await?;
        if self.store.replace_doc(t, DocKind::TEAM, &def.name, &json!(def)).await? {
            Ok(def.clone())
        } else {
            Err(team_not_found(&def.name))
        }
    }

    /// The tenant's teams, by name (a stored one that no longer reads as a team is left out).
    pub async fn list_teams(&self, t: &Tenant) -> Result<Vec<TeamDef>, RuntimeError> {
        let docs = self.store.list_docs(t, DocKind::TEAM).await?;
        Ok(docs.into_iter().filter_map(|d| serde_json::from_value(d).ok()).collect())
    }

    pub async fn get_team(&self, t: &Tenant, name: &str) -> Result<TeamDef, RuntimeError> {
        self.store
            .list_docs(t, DocKind::TEAM)
            .await?
            .into_iter()
            .filter_map(|d| serde_json::from_value::<TeamDef>(d).ok())
            .find(|d| d.name == name)
            .ok_or_else(|| team_not_found(name))
    }

    pub async fn delete_team(&self, t: &Tenant, name: &str) -> Result<(), RuntimeError> {
        if self.store.delete_doc(t, DocKind::TEAM, name).await? { Ok(()) } else { Err(team_not_found(name)) }
    }

    /// Starts a team run on `input`.
    pub async fn create_team_run(&self, t: &Tenant, name: &str, input: &str) -> Result<Run, RuntimeError> {
        let team = self.get_team(t, name).await?;
        let input = agentd_core::redact::redact_for(t, input).into_owned();
        if input.trim().is_empty() {
            return Err(RuntimeError::bad(ErrorCode::InputRequired, "`input` must be a non-empty string"));
        }
        let lead = self.agent_for(t, &team.lead.agent).await?;
        let model = match lead.model.as_deref().or(self.models.default_model()) {
            Some(m) => m.to_string(),
            None => return Err(RuntimeError::bad(ErrorCode::ModelRequired, crate::ModelError::NoModel.to_string())),
        };
        let title = format!("{}: {}", team.name, crate::first_words(&input));
        let session = self.store.create_session(t, Some(title), json!({"team": team.name})).await?;
        let spec = TeamSpec { name: team.name, strategy: team.strategy, members: team.members, lead: team.lead };
        let new =
            NewRun { agent: spec.lead.agent.clone(), team: Some(spec), ..NewRun::new(session.id, input, model, 1) };
        let (run, created) = self.store.create_run(t, &new).await?;
        self.hub.publish(&run.id, crate::Live::Event(created));
        self.sched.wake();
        Ok(run)
    }

    /// The team's blackboard, oldest first.
    pub async fn blackboard(&self, t: &Tenant, team: &str) -> Result<Vec<BlackboardEntry>, RuntimeError> {
        self.get_team(t, team).await?;
        Ok(self.store.blackboard(t, team).await?)
    }

    /// A person's entry on a team's blackboard.
    pub async fn post_blackboard(
        &self,
        t: &Tenant,
        team: &str,
        author: &str,
        kind: &str,
        content: &str,
        run_id: Option<String>,
    ) -> Result<BlackboardEntry, RuntimeError> {
        self.get_team(t, team).await?;
        check_entry(kind, content)?;
        if let Some(r) = &run_id {
            self.get_run(t, r).await?;
        }
        let e = entry(agentd_core::new_id("bb"), team, author, kind, content, run_id);
        self.store.post_blackboard(t, &e).await?;
        Ok(e)
    }

    /// `blackboard_read` / `blackboard_write` of a team member's run.
    pub(crate) async fn blackboard_tool(&self, p: &Parent<'_>, c: &ToolCall, tree: &Tree) -> Result<EventKind, Stop> {
        let Some((team, role)) = tree.ceiling.as_ref().and_then(|c| Some((c.team.clone()?, c.role.clone()))) else {
            let msg = "this run is not part of a team run, so it has no blackboard".to_string();
            return Ok(result(c, msg, true, ToolStatus::Error, vec![]));
        };
        if c.name == "blackboard_read" {
            let text = board_text(&self.store.blackboard(p.t, &team).await?);
            return Ok(result(c, text, false, ToolStatus::Ok, vec![]));
        }
        let kind = c.arguments["kind"].as_str().unwrap_or_default();
        let content = c.arguments["content"].as_str().unwrap_or_default();
        if let Err(e) = check_entry(kind, content) {
            return Ok(result(c, e.to_string(), true, ToolStatus::Error, vec![]));
        }
        let author = role.unwrap_or_else(|| p.run.agent.clone());
        // Keyed by run and call: a call repeated after a crash posts once.
        let id = format!("{}:{}", p.run.id, c.id);
        let e = entry(id, &team, &author, kind, content, Some(p.run.id.clone()));
        self.store.post_blackboard(p.t, &e).await?;
        Ok(result(c, format!("posted a {kind} entry to the {team} blackboard"), false, ToolStatus::Ok, vec![]))
    }

    /// Drives a team run from its journal: members (in order, or at once),
    /// then the lead; waits between them like any parent.
    pub(crate) async fn drive_team(
        &self,
        t: &Tenant,
        run: &Run,
        team: &TeamSpec,
        tree: &mut Tree,
        w: &mut Writer<'_>,
        mut carry: Vec<EventKind>,
    ) -> Result<(), Stop> {
        let task_id = format!("{}:task", run.id);
        self.store
            .post_blackboard(t, &entry(task_id, &team.name, "user", "task", &run.input, Some(run.id.clone())))
            .await?;
        let kids: HashMap<String, Run> =
            self.store.list_children(t, &run.id).await?.into_iter().map(|r| (r.id.clone(), r)).collect();
        let members: Vec<(String, &TeamMember)> =
            team.members.iter().enumerate().map(|(i, m)| (format!("member-{i:03}"), m)).collect();
        // The stage: the members still to run (one at a time when serial), then the lead.
        let mut stage: Vec<(String, &TeamMember)> = vec![];
        for (cid, m) in &members {
            let done = tree.spawned.get(cid).and_then(|id| kids.get(id)).is_some_and(|r| r.status.is_terminal());
            if !done {
                stage.push((cid.clone(), m));
                if team.strategy == TeamStrategy::Serial {
                    break;
                }
            }
        }
        // Members that ended post their answers (once each: keyed by run and member).
        for (cid, m) in &members {
            if let Some(r) = tree.spawned.get(cid).and_then(|id| kids.get(id)).filter(|r| r.status.is_terminal()) {
                let (kind, text) = match (&r.output, &r.error) {
                    (Some(o), _) if r.status == agentd_core::RunStatus::Completed => ("proposal", o.clone()),
                    (_, e) => (
                        "note",
                        format!("{} ended {}: {}", m.role, r.status.as_str(), e.as_ref().map_or("", |e| &e.message)),
                    ),
                };
                let e = entry(format!("{}:{cid}", run.id), &team.name, &m.role, kind, &text, Some(r.id.clone()));
                self.store.post_blackboard(t, &e).await?;
            }
        }
        if stage.is_empty() {
            let lead = tree.spawned.get("lead").and_then(|id| kids.get(id));
            match lead {
                Some(r) if r.status.is_terminal() => {
                    let ev = match (&r.output, r.status) {
                        (Some(out), agentd_core::RunStatus::Completed) => {
                            let e = entry(
                                format!("{}:decision", run.id),
                                &team.name,
                                &team.lead.role,
                                "decision",
                                out,
                                Some(r.id.clone()),
                            );
                            self.store.post_blackboard(t, &e).await?;
                            let usage = self.store.get_run(t, &run.id).await?.map(|r| r.usage).unwrap_or_default();
                            EventKind::RunCompleted { output: out.clone(), usage }
                        }
                        _ => {
                            let why = r.error.as_ref().map_or("no answer".to_string(), |e| e.message.clone());
                            EventKind::RunFailed {
                                error: agentd_core::RunError::new(
                                    "lead_failed",
                                    format!("the team's lead ended {}: {why}", r.status.as_str()),
                                ),
                            }
                        }
                    };
                    carry.push(ev);
                    w.write(&carry).await?;
                    return Ok(());
                }
                _ => stage.push(("lead".into(), &team.lead)),
            }
        }
        let board = board_text(&self.store.blackboard(t, &team.name).await?);
        let mut waiting = vec![];
        // The stage's new members share what the team run's budget has left.
        let mut new_members = stage.iter().filter(|(cid, _)| !tree.spawned.contains_key(cid)).count() as u32;
        for (cid, m) in &stage {
            let id = match tree.spawned.get(cid) {
                Some(id) => id.clone(),
                None => {
                    let is_lead = cid == "lead";
                    let task = member_task(team, m, &run.input, &board, is_lead);
                    let share = match self.team_share(t, run, tree, new_members).await? {
                        Ok(r) => r,
                        Err(why) => {
                            let err = agentd_core::RunError::new("budget_exceeded", why);
                            carry.push(EventKind::RunFailed { error: err });
                            w.write(&carry).await?;
                            return Ok(());
                        }
                    };
                    new_members = new_members.saturating_sub(1);
                    let new = self.member_run(t, run, tree.ceiling.as_ref(), team, m, task, share).await;
                    let new = match new {
                        Ok(n) => n,
                        Err(e) => {
                            let err = agentd_core::RunError::new(
                                "team_member_unavailable",
                                format!("{} ({}): {e}", m.role, m.agent),
                            );
                            carry.push(EventKind::RunFailed { error: err });
                            w.write(&carry).await?;
                            return Ok(());
                        }
                    };
                    let spawned = EventKind::ChildSpawned {
                        call_id: cid.clone(),
                        child_run_id: new.id.clone(),
                        agent: m.agent.clone(),
                        task: format!("{} of {}", m.role, team.name),
                        held: false,
                        reserved_tokens: share.0,
                        reserved_usd: share.1,
                    };
                    w.write(&std::mem::take(&mut carry)).await?;
                    let (child, _) = match w.spawn(&new, spawned).await {
                        Ok(x) => x,
                        Err(Stop::Store(agentd_store::StoreError::TreeFull(why))) => {
                            let err =
                                agentd_core::RunError::new("team_member_unavailable", format!("{}: {why}", m.role));
                            carry.push(EventKind::RunFailed { error: err });
                            w.write(&carry).await?;
                            return Ok(());
                        }
                        Err(e) => return Err(e),
                    };
                    tree.spawned.insert(cid.clone(), child.id.clone());
                    tree.reserved.insert(child.id.clone(), share);
                    self.sched.wake();
                    child.id
                }
            };
            waiting.push((cid.clone(), id));
        }
        carry.push(EventKind::ChildrenWaiting {
            call_ids: waiting.iter().map(|(c, _)| c.clone()).collect(),
            child_run_ids: waiting.into_iter().map(|(_, id)| id).collect(),
        });
        w.write(&carry).await?;
        Ok(())
    }

    /// The child run of one member (or the lead).
    /// Members inherit as delegated children do (`inherit::child_ceiling`):
    /// the team run's whole policy binds them.
    #[allow(clippy::too_many_arguments)]
    async fn member_run(
        &self,
        t: &Tenant,
        run: &Run,
        run_ceiling: Option<&Ceiling>,
        team: &TeamSpec,
        m: &TeamMember,
        task: String,
        budget: (Option<u64>, Option<f64>),
    ) -> Result<NewRun, RuntimeError> {
        let (agent, version) = self.agent_with_version(t, &m.agent).await?;
        let parent = self.agent_of_run(t, run, run_ceiling).await?;
        let model = agent.model.clone().unwrap_or_else(|| run.model.clone());
        let limits = self.capped(agent.limits);
        Ok(NewRun {
            agent: m.agent.clone(),
            agent_version: version,
            child: Some(ChildOf::of(
                run,
                limits.max_concurrent_children.max(team.members.len() as u32),
                format!("{} · {}", team.name, m.role),
                self.tree_caps(),
            )),
            ceiling: Some(crate::inherit::child_ceiling(
                &parent,
                run_ceiling,
                crate::inherit::Grant {
                    tools: None,
                    reserved: budget,
                    max_wall_secs: limits.child_max_wall_secs.min(agent.max_wall_secs),
                    team: Some((team.name.clone(), m.role.clone())),
                },
            )),
            ..NewRun::new(agentd_core::new_id("ses"), task, model, agent.max_steps)
        })
    }
}

impl Runtime {
    /// A new member's share of the team run's budget (its lead agent's
    /// limits, or what a parent left it), as a delegated child's is.
    async fn team_share(
        &self,
        t: &Tenant,
        run: &Run,
        tree: &Tree,
        new_members: u32,
    ) -> Result<Result<(Option<u64>, Option<f64>), String>, Stop> {
        let limits = match self.agent_of_run(t, run, tree.ceiling.as_ref()).await {
            Ok(a) => a.limits,
            Err(_) => agentd_core::AgentLimits::default(),
        };
        self.reserve_share(t, run, limits, tree, new_members.max(1)).await
    }
}

fn member_task(team: &TeamSpec, m: &TeamMember, input: &str, board: &str, lead: bool) -> String {
    let duty = if lead {
        "You lead the team. Read the blackboard and answer with the team's decision: your final answer is \
         posted as the decision."
    } else {
        "Do your part of the task. Your final answer is posted to the blackboard; use blackboard_write for \
         evidence or notes along the way and blackboard_read for what others wrote."
    };
    format!(
        "You are the {} of the team {}. {duty}\n\nTeam task:\n{input}\n\nBlackboard so far:\n{board}",
        m.role, team.name
    )
}

fn board_text(entries: &[BlackboardEntry]) -> String {
    if entries.is_empty() {
        return "(empty)".into();
    }
    entries.iter().map(|e| format!("[{}] {}: {}", e.kind, e.author, e.content)).collect::<Vec<_>>().join("\n")
}

fn check_entry(kind: &str, content: &str) -> Result<(), RuntimeError> {
    if !ENTRY_KINDS.contains(&kind) {
        return Err(RuntimeError::bad(
            ErrorCode::InvalidRequest,
            "`kind` must be task, proposal, evidence, decision or note",
        ));
    }
    if content.trim().is_empty() || content.len() > 100_000 {
        return Err(RuntimeError::bad(ErrorCode::InvalidRequest, "`content` must be 1 to 100000 bytes"));
    }
    Ok(())
}

fn entry(id: String, team: &str, author: &str, kind: &str, content: &str, run_id: Option<String>) -> BlackboardEntry {
    BlackboardEntry {
        id,
        team: team.to_string(),
        author: author.to_string(),
        kind: kind.to_string(),
        content: content.to_string(),
        run_id,
        created_at: agentd_store::now(),
    }
}

fn team_not_found(name: &str) -> RuntimeError {
    RuntimeError::not_found(ErrorCode::TeamNotFound, format!("no team named {name:?}"))
}
