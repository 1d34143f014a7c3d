//! Child runs. A `delegate` or `spawn` call creates a child (once: the child
//! and the parent's `child.spawned` are one transaction) under the parent's
//! ceilings; a run that must wait writes `children.waiting` and its task
//! ends. The store queues it again exactly once, in the transaction that
//! ends the last child it waits for; the children's answers then become the
//! calls' tool results.

use std::collections::{HashMap, HashSet};

use agentd_core::{Ceiling, EventKind, Message, Run, RunStatus, ToolCall, ToolStatus};
use agentd_store::{ChildOf, NewRun};
use serde::Deserialize;

use crate::writer::{Stop, Writer};
use crate::{Runtime, ToolSet};

/// What the journal says about a run's children.
#[derive(Debug, Default, Clone)]
pub struct Tree {
    /// Call id → the child it created.
    pub spawned: HashMap<String, String>,
    /// Children created by `spawn`, in order.
    pub spawn_children: Vec<String>,
    /// Children whose answers were handed to the model.
    pub collected: HashSet<String>,
    /// Children created over `max_concurrent_children` (they start when a sibling ends).
    pub held: HashSet<String>,
    /// The limits the run got from its parent.
    pub ceiling: Option<Ceiling>,
    /// The budget reserved for each child at its spawn (tokens, USD).
    pub reserved: HashMap<String, (Option<u64>, Option<f64>)>,
}

impl Tree {
    /// Spawned children whose answers the model has not had yet.
    fn uncollected(&self) -> Vec<String> {
        self.spawn_children.iter().filter(|c| !self.collected.contains(*c)).cloned().collect()
    }
}

/// Arguments of `delegate` and `spawn`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ChildArgs {
    task: String,
    agent: Option<String>,
    model: Option<String>,
    tools: Option<Vec<String>>,
    context: Option<String>,
}

/// How a step's delegation calls ended.
pub(crate) enum Delegated {
    /// Results for the model (already journaled).
    Done(Vec<Message>),
    /// The run waits for children; its task ends.
    Waiting,
}

/// The parts of a step a delegation needs.
pub(crate) struct Parent<'a> {
    pub t: &'a agentd_core::Tenant,
    pub run: &'a Run,
    pub set: &'a ToolSet,
}

impl Runtime {
    /// Carries out a step's `delegate` / `spawn` / `wait_children` calls, in order.
    pub(crate) async fn delegation_calls(
        &self,
        p: &Parent<'_>,
        calls: &[ToolCall],
        tree: &mut Tree,
        w: &mut Writer<'_>,
        carry: &mut Vec<EventKind>,
    ) -> Result<Delegated, Stop> {
        let mut results: Vec<EventKind> = vec![];
        let mut waits: Vec<(&ToolCall, Vec<String>)> = vec![];
        // New children of this step share what is unreserved of a budget in
        // equal parts (see `reserve_budget`).
        let mut new_children = calls
            .iter()
            .filter(|c| matches!(c.name.as_str(), "delegate" | "spawn") && !tree.spawned.contains_key(&c.id))
            .count() as u32;
        for c in calls {
            match c.name.as_str() {
                "delegate" | "spawn" => {
                    let child = match tree.spawned.get(&c.id) {
                        Some(id) => id.clone(),
                        None => {
                            // A spawning parent goes on working and keeps a share; a
                            // delegating one waits, so its children share all.
                            let share_of = new_children + u32::from(c.name == "spawn");
                            new_children = new_children.saturating_sub(1);
                            match self.spawn_child(p, c, share_of, tree, w, carry).await? {
                                Ok(id) => id,
                                Err(why) => {
                                    results.push(result(c, why, true, ToolStatus::Denied, vec![]));
                                    continue;
                                }
                            }
                        }
                    };
                    if c.name == "spawn" {
                        let status = if tree.held.contains(&child) { "held until a sibling ends" } else { "started" };
                        let text = serde_json::json!({"child_run_id": child, "status": status}).to_string();
                        results.push(result(c, text, false, ToolStatus::Ok, vec![]));
                    } else {
                        waits.push((c, vec![child]));
                    }
                }
                "blackboard_read" | "blackboard_write" => results.push(self.blackboard_tool(p, c, tree).await?),
                _ => match wait_list(c, tree) {
                    Ok(ids) if ids.is_empty() => {
                        let text = "no spawned child runs are waiting to be collected".to_string();
                        results.push(result(c, text, false, ToolStatus::Ok, vec![]));
                    }
                    Ok(ids) => waits.push((c, ids)),
                    Err(why) => results.push(result(c, why, true, ToolStatus::Error, vec![])),
                },
            }
        }
        let mut pending: Vec<(&ToolCall, Vec<String>)> = vec![];
        if !waits.is_empty() {
            let children: HashMap<String, Run> =
                self.store.list_children(p.t, &p.run.id).await?.into_iter().map(|r| (r.id.clone(), r)).collect();
            for (c, ids) in waits {
                let done = ids.iter().all(|id| children.get(id).is_none_or(|r| r.status.is_terminal()));
                if done {
                    let (text, is_error) = answers(&ids, &children);
                    let status = if is_error { ToolStatus::Error } else { ToolStatus::Ok };
                    tree.collected.extend(ids.iter().cloned());
                    results.push(result(c, text, is_error, status, ids));
                } else {
                    pending.push((c, ids));
                }
            }
        }
        let messages = results
            .iter()
            .filter_map(|ev| match ev {
                EventKind::ToolResult { call_id, content, .. } => Some(Message::tool_result(call_id, content.clone())),
                _ => None,
            })
            .collect();
        if pending.is_empty() {
            carry.extend(results);
            return Ok(Delegated::Done(messages));
        }
        let mut child_run_ids: Vec<String> = vec![];
        for (_, ids) in &pending {
            for id in ids {
                if !child_run_ids.contains(id) {
                    child_run_ids.push(id.clone());
                }
            }
        }
        let call_ids = pending.iter().map(|(c, _)| c.id.clone()).collect();
        carry.extend(results);
        carry.push(EventKind::ChildrenWaiting { call_ids, child_run_ids });
        w.write(&std::mem::take(carry)).await?;
        Ok(Delegated::Waiting)
    }

    /// Creates the child of one call, or says why it may not exist.
    async fn spawn_child(
        &self,
        p: &Parent<'_>,
        c: &ToolCall,
        share_of: u32,
        tree: &mut Tree,
        w: &mut Writer<'_>,
        carry: &mut Vec<EventKind>,
    ) -> Result<Result<String, String>, Stop> {
        let limits = self.capped(p.set.agent.limits);
        if p.run.depth >= limits.max_depth {
            return Ok(Err(format!(
                "refused: this run is at depth {} and may not delegate (max_depth {})",
                p.run.depth, limits.max_depth
            )));
        }
        if tree.spawned.len() as u32 >= limits.max_children {
            return Ok(Err(format!(
                "refused: this run already created {} child runs (max_children)",
                limits.max_children
            )));
        }
        let args: ChildArgs = match serde_json::from_value(c.arguments.clone()) {
            Ok(a) => a,
            Err(e) => return Ok(Err(format!("invalid arguments for {}: {e}", c.name))),
        };
        if args.task.trim().is_empty() {
            return Ok(Err("`task` must not be empty".into()));
        }
        let agent_name = args.agent.clone().unwrap_or_else(|| p.run.agent.clone());
        let (agent, version) = match self.agent_with_version(p.t, &agent_name).await {
            Ok(a) => a,
            Err(crate::RuntimeError::Store(e)) => return Err(e.into()),
            Err(e) => return Ok(Err(e.to_string())),
        };
        // What the parent may use bounds the child: it asks for a subset.
        let mine: Vec<String> = p.set.specs.iter().map(|s| s.name.clone()).collect();
        if let Some(asked) = &args.tools
            && let Some(missing) = asked.iter().find(|n| !mine.contains(n))
        {
            return Ok(Err(format!(
                "refused: the tool {missing:?} is not available to this run, so its child cannot have it"
            )));
        }
        let tools: Vec<String> =
            mine.into_iter().filter(|n| agent.allows(n) && args.tools.as_ref().is_none_or(|a| a.contains(n))).collect();
        // The budget a child gets is reserved: its siblings cannot spend it too.
        let reserved = match self.reserve_budget(p, tree, share_of).await? {
            Ok(r) => r,
            Err(why) => return Ok(Err(why)),
        };
        let model = match args.model.as_deref().or(agent.model.as_deref()) {
            Some(m) => m.to_string(),
            None => p.run.model.clone(),
        };
        if let Err(e) = self.plan_model(p.t, &model).await {
            return Ok(Err(format!("the child's model: {e}")));
        }
        let system = match &agent.system_template {
            Some(name) => match self.render_template(p.t, name, &serde_json::Value::Null).await {
                Ok(s) => Some(s),
                Err(e) => return Ok(Err(format!("the child's system template: {e}"))),
            },
            None => None,
        };
        let mut input = agentd_core::redact::redact_for(p.t, &args.task).into_owned();
        if let Some(ctx) = args.context.as_deref().filter(|c| !c.trim().is_empty()) {
            input.push_str("\n\nContext:\n");
            input.push_str(&agentd_core::redact::redact_for(p.t, ctx));
        }
        let new = NewRun {
            agent: agent_name.clone(),
            agent_version: version,
            system,
            child: Some(ChildOf::of(
                p.run,
                limits.max_concurrent_children,
                crate::first_words(&args.task),
                self.tree_caps(),
            )),
            ceiling: Some(crate::inherit::child_ceiling(
                &p.set.agent,
                tree.ceiling.as_ref(),
                crate::inherit::Grant {
                    tools: Some(tools),
                    reserved,
                    max_wall_secs: limits.child_max_wall_secs.min(agent.max_wall_secs),
                    team: None,
                },
            )),
            ..NewRun::new(agentd_core::new_id("ses"), input, model, agent.max_steps)
        };
        let spawned = EventKind::ChildSpawned {
            call_id: c.id.clone(),
            child_run_id: new.id.clone(),
            agent: agent_name,
            task: crate::first_words(&args.task),
            held: false,
            reserved_tokens: reserved.0,
            reserved_usd: reserved.1,
        };
        w.write(&std::mem::take(carry)).await?;
        let (child, held) = match w.spawn(&new, spawned).await {
            Ok(x) => x,
            Err(Stop::Store(agentd_store::StoreError::TreeFull(why))) => return Ok(Err(why)),
            Err(e) => return Err(e),
        };
        if held {
            tree.held.insert(child.id.clone());
        }
        tree.spawned.insert(c.id.clone(), child.id.clone());
        tree.reserved.insert(child.id.clone(), reserved);
        if c.name == "spawn" {
            tree.spawn_children.push(child.id.clone());
        }
        self.sched.wake();
        Ok(Ok(child.id))
    }

    /// Tokens and USD the run's tree may still spend (`None`: no such budget):
    /// the tighter of its agent's limits and what its parent left it.
    pub(crate) async fn budget_left(
        &self,
        p: &Parent<'_>,
        ceiling: Option<&Ceiling>,
    ) -> Result<(Option<u64>, Option<f64>), Stop> {
        self.tree_budget_left(p.t, &p.run.id, p.set.agent.limits, ceiling).await
    }

    /// [`Runtime::budget_left`] from a run's id and its agent's limits.
    pub(crate) async fn tree_budget_left(
        &self,
        t: &agentd_core::Tenant,
        run_id: &str,
        limits: agentd_core::AgentLimits,
        ceiling: Option<&Ceiling>,
    ) -> Result<(Option<u64>, Option<f64>), Stop> {
        let tokens = tighter(limits.max_tokens, ceiling.and_then(|c| c.max_tokens), u64::min);
        let cost = tighter(limits.max_cost_usd, ceiling.and_then(|c| c.max_cost_usd), f64::min);
        if tokens.is_none() && cost.is_none() {
            return Ok((None, None));
        }
        let run = self.store.get_run(t, run_id).await?;
        let used = run.as_ref().map_or(0, |r| r.tree_usage.total_tokens);
        let spent = run.as_ref().and_then(|r| r.tree_cost_usd).unwrap_or(0.0);
        Ok((tokens.map(|b| b.saturating_sub(used)), cost.map(|b| (b - spent).max(0.0))))
    }
}

impl Runtime {
    /// The budget a new child gets: an equal `1/share_of` of what the tree
    /// has left and no running child holds (`None`: no such budget); a
    /// refusal when nothing is left to give.
    async fn reserve_budget(
        &self,
        p: &Parent<'_>,
        tree: &Tree,
        share_of: u32,
    ) -> Result<Result<(Option<u64>, Option<f64>), String>, Stop> {
        self.reserve_share(p.t, p.run, p.set.agent.limits, tree, share_of).await
    }

    /// [`Runtime::reserve_budget`] from the run and its agent's limits (team runs have no tool set).
    pub(crate) async fn reserve_share(
        &self,
        t: &agentd_core::Tenant,
        run: &Run,
        limits: agentd_core::AgentLimits,
        tree: &Tree,
        share_of: u32,
    ) -> Result<Result<(Option<u64>, Option<f64>), String>, Stop> {
        let (tokens, usd) = self.tree_budget_left(t, &run.id, limits, tree.ceiling.as_ref()).await?;
        if tokens.is_none() && usd.is_none() {
            return Ok(Ok((None, None)));
        }
        // Children still running hold their reservation; ended ones count by what they used.
        let open: Vec<String> = self
            .store
            .list_children(t, &run.id)
            .await?
            .into_iter()
            .filter(|r| !r.status.is_terminal())
            .map(|r| r.id)
            .collect();
        let held = |i: usize| -> f64 {
            open.iter()
                .filter_map(|id| tree.reserved.get(id))
                .map(|r| if i == 0 { r.0.unwrap_or(0) as f64 } else { r.1.unwrap_or(0.0) })
                .sum()
        };
        let share = f64::from(share_of.max(1));
        let tokens = tokens.map(|t| ((t as f64 - held(0)).max(0.0) / share).floor() as u64);
        let usd = usd.map(|u| (u - held(1)).max(0.0) / share);
        if tokens == Some(0) || usd.is_some_and(|u| u <= 0.0) {
            return Ok(Err("refused: the tree's budget is used up or reserved by its running child runs".into()));
        }
        Ok(Ok((tokens, usd)))
    }
}

/// The tighter of two optional budgets.
fn tighter<T>(a: Option<T>, b: Option<T>, min: fn(T, T) -> T) -> Option<T> {
    match (a, b) {
        (Some(a), Some(b)) => Some(min(a, b)),
        (a, b) => a.or(b),
    }
}

/// The children a `wait_children` call collects.
fn wait_list(c: &ToolCall, tree: &Tree) -> Result<Vec<String>, String> {
    match c.arguments.get("run_ids").and_then(|v| v.as_array()) {
        Some(ids) => {
            let mine: HashSet<&String> = tree.spawned.values().collect();
            let mut out = vec![];
            for id in ids {
                let id = id.as_str().unwrap_or_default().to_string();
                if !mine.contains(&id) {
                    return Err(format!("{id:?} is not a child run of this run"));
                }
                out.push(id);
            }
            Ok(out)
        }
        None => Ok(tree.uncollected()),
    }
}

/// The children's answers as one tool result; an error when every child failed.
fn answers(ids: &[String], children: &HashMap<String, Run>) -> (String, bool) {
    let one = |id: &String| -> (String, bool) {
        match children.get(id) {
            Some(r) if r.status == RunStatus::Completed => (r.output.clone().unwrap_or_default(), false),
            Some(r) => {
                let e = r.error.clone().unwrap_or_else(|| agentd_core::RunError::new(r.status.as_str(), ""));
                (format!("the child run {id} ended {}: {} ({})", r.status.as_str(), e.message, e.code), true)
            }
            None => (format!("the child run {id} no longer exists"), true),
        }
    };
    if let [id] = ids {
        return one(id);
    }
    let mut text = format!("Answers of {} child runs:\n", ids.len());
    let mut failed = 0;
    for id in ids {
        let (t, bad) = one(id);
        failed += usize::from(bad);
        let agent = children.get(id).map_or("?", |r| r.agent.as_str());
        let status = children.get(id).map_or("missing", |r| r.status.as_str());
        text.push_str(&format!("\n## {id} (agent {agent}, {status})\n{t}\n"));
    }
    (text, failed == ids.len())
}

pub(crate) fn result(
    c: &ToolCall,
    text: String,
    is_error: bool,
    status: ToolStatus,
    children: Vec<String>,
) -> EventKind {
    EventKind::ToolResult {
        call_id: c.id.clone(),
        name: c.name.clone(),
        content: vec![agentd_core::ContentPart::text(text)],
        is_error,
        status,
        duration_ms: 0,
        sandbox: None,
        children,
    }
}

impl Runtime {
    /// The runs this run delegated to, oldest first.
    pub async fn run_children(&self, t: &agentd_core::Tenant, run_id: &str) -> Result<Vec<Run>, crate::RuntimeError> {
        self.get_run(t, run_id).await?;
        Ok(self.store.list_children(t, run_id).await?)
    }

    /// Adds a user message to a run that has not ended: it joins the
    /// conversation at the run's next step (`input.queued`, then `run.steered`).
    pub async fn inject(
        &self,
        t: &agentd_core::Tenant,
        run_id: &str,
        input: &str,
    ) -> Result<(Run, i64), crate::RuntimeError> {
        if input.trim().is_empty() {
            return Err(crate::RuntimeError::bad(
                agentd_core::ErrorCode::InputRequired,
                "`input` must be a non-empty string",
            ));
        }
        let run = self.get_run(t, run_id).await?;
        if run.status.is_terminal() {
            return Err(crate::RuntimeError::RunAlreadyFinished { run_id: run.id, status: run.status });
        }
        let input = agentd_core::redact::redact_for(t, input).into_owned();
        let stored = match self.journal(t, run_id, &[EventKind::InputQueued { input }]).await {
            Ok(s) => s,
            Err(agentd_store::StoreError::RunFinished) => {
                let run = self.get_run(t, run_id).await?;
                return Err(crate::RuntimeError::RunAlreadyFinished { run_id: run.id, status: run.status });
            }
            Err(e) => return Err(e.into()),
        };
        let seq = stored.last().map_or(0, |e| e.seq);
        Ok((self.get_run(t, run_id).await?, seq))
    }

    /// Stops the tasks of a cancelled run's descendants on this node, and
    /// cancels any the store's cascade skipped (a child that was ending at
    /// that moment); other nodes notice at their heartbeat.
    pub(crate) async fn stop_subtree(&self, t: &agentd_core::Tenant, run_id: &str) {
        // One query for the whole tree below (thousands of runs cost one read).
        let all = match self.store.descendants(t, run_id).await {
            Ok(all) => all,
            Err(e) => {
                tracing::warn!(error = %e, run_id = %run_id, "could not list a run's descendants to stop them");
                return;
            }
        };
        for (id, status) in all {
            if !status.is_terminal() {
                let why = EventKind::RunCancelled { reason: Some("its parent run ended".into()) };
                match self.journal(t, &id, &[why]).await {
                    Ok(_) | Err(agentd_store::StoreError::RunFinished) => {}
                    Err(e) => tracing::warn!(error = %e, run_id = %id, "could not cancel a child run"),
                }
            }
            self.sched.cancel_local(&id);
            self.hub.close(&id);
        }
    }
}
