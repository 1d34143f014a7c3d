//! A step's tool calls: through the gate, then the allowed ones run
//! concurrently with each result journaled as it arrives; delegations are
//! carried out from the journal; the run pauses when a person must answer.

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use agentd_core::{EventKind, Message, Run, Tenant, ToolCall, ToolStatus};
use agentd_tools::{ToolContext, ToolOutput};
use futures::stream::{FuturesUnordered, StreamExt};
use tokio_util::sync::CancellationToken;

use crate::gate::{Known, LoopState, Plan};
use crate::request::for_model;
use crate::writer::{Stop, Writer, failed, time_up};
use crate::{Runtime, ToolSet};

/// What every call of one step shares.
pub(crate) struct StepCtx<'a> {
    pub(crate) t: &'a Tenant,
    pub(crate) run: &'a Run,
    pub(crate) set: &'a ToolSet,
    pub(crate) cancel: &'a CancellationToken,
    pub(crate) deadline: Instant,
    pub(crate) wall_secs: u64,
}

/// How a step's calls ended.
pub(crate) enum Outcome {
    /// Results for the model.
    Continue(Vec<Message>),
    /// Waiting for a person; the task ends.
    Paused,
    /// The run must end with this event.
    Failed(Box<EventKind>),
}

impl Runtime {
    /// Passes a step's calls through the gate, then runs the allowed ones;
    /// pauses the run if a person must answer first.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn handle_calls(
        &self,
        ctx: &StepCtx<'_>,
        calls: &[ToolCall],
        known: &Known,
        (started, denials): (&HashSet<String>, &HashMap<String, u32>),
        loops: &mut LoopState,
        tree: &mut crate::delegation::Tree,
        w: &mut Writer<'_>,
        carry: &mut Vec<EventKind>,
    ) -> Result<Outcome, Stop> {
        let plans = self.gate(ctx.t, ctx.run, ctx.set, calls, known, loops, carry).await?;
        let (mut run, mut refused, mut asks, mut waiting) = (vec![], vec![], vec![], false);
        let mut delegations = vec![];
        for (c, plan) in calls.iter().zip(plans) {
            match plan {
                // Carried out by the loop itself, from the journal (never "interrupted").
                Plan::Run(call, _) if agentd_tools::delegation::DELEGATION_TOOLS.contains(&call.name.as_str()) => {
                    delegations.push(call)
                }
                Plan::Run(call, false)
                    if started.contains(&call.id)
                        && !self.catalog.tools().get(&call.name).is_some_and(|x| x.idempotent()) =>
                {
                    if ctx.set.agent.ask_on_interrupted {
                        asks.push(self.interrupted_approval(ctx.set, &call, carry));
                        continue;
                    }
                    let out = ToolOutput::error(format!(
                        "interrupted: the run stopped while `{}` was executing; its outcome is unknown and it was not \
                         run again because it is not idempotent",
                        call.name
                    ));
                    refused.push(tool_result(&call, &out, ToolStatus::Interrupted, 0));
                }
                Plan::Run(call, confirmed) => {
                    // A call a person approved after a crash starts again, on the record.
                    if !started.contains(&call.id) || confirmed {
                        carry.push(EventKind::ToolStarted { call_id: call.id.clone(), name: call.name.clone() });
                    }
                    run.push(call);
                }
                Plan::Refuse { out, status } => refused.push(tool_result(c, &out, status, 0)),
                Plan::Ask(ev) => asks.push(*ev),
                Plan::Waiting => waiting = true,
            }
        }
        w.write(&std::mem::take(carry)).await?;
        let mut messages: Vec<Message> = vec![];
        for ev in &refused {
            if let EventKind::ToolResult { call_id, content, .. } = ev {
                messages.push(Message::tool_result(call_id, content.clone()));
            }
        }
        w.write(&refused).await?;
        messages.extend(self.run_tools(ctx, &run, w, carry).await?);
        if waiting || !asks.is_empty() {
            // Nobody holds a waiting run: its task ends here and any node
            // picks it up again once the last approval is answered.
            carry.extend(asks);
            w.write(&std::mem::take(carry)).await?;
            return Ok(Outcome::Paused);
        }
        if !delegations.is_empty() {
            let p = crate::delegation::Parent { t: ctx.t, run: ctx.run, set: ctx.set };
            match self.delegation_calls(&p, &delegations, tree, w, carry).await? {
                crate::delegation::Delegated::Waiting => return Ok(Outcome::Paused),
                crate::delegation::Delegated::Done(m) => messages.extend(m),
            }
        }
        if let Some((key, n)) = calls
            .iter()
            .filter_map(|c| known.approvals.get(&c.id))
            .find_map(|a| denials.get(&a.approval_key).filter(|n| **n >= 2).map(|n| (a.approval_key.clone(), *n)))
        {
            let msg = format!("a person refused the same request {n} times (approval key {key}); the run stops");
            return Ok(Outcome::Failed(Box::new(failed("approval_denied", msg))));
        }
        Ok(Outcome::Continue(messages))
    }

    /// Runs tool calls concurrently and journals each result as it arrives;
    /// the last one goes into `carry`, to share the next transaction.
    #[allow(clippy::too_many_arguments)]
    async fn run_tools(
        &self,
        ctx: &StepCtx<'_>,
        calls: &[ToolCall],
        w: &mut Writer<'_>,
        carry: &mut Vec<EventKind>,
    ) -> Result<Vec<Message>, Stop> {
        let mut messages = vec![];
        let (t, run, set, cancel) = (ctx.t, ctx.run, ctx.set, ctx.cancel);
        let mut pending: FuturesUnordered<_> = calls.iter().map(|c| self.call_tool(t, run, set, c, cancel)).collect();
        while let Some((call, out, ms)) = tokio::select! {
            _ = cancel.cancelled() => return Err(Stop::Halted),
            _ = tokio::time::sleep_until(ctx.deadline.into()) => {
                // Dropping the futures cancels the calls; the budget ends the run.
                drop(pending);
                w.write_final(std::mem::take(carry), time_up(ctx.run, ctx.wall_secs)).await?;
                return Err(Stop::Halted);
            }
            r = pending.next() => r,
        } {
            let status = if out.is_error { ToolStatus::Error } else { ToolStatus::Ok };
            let mut evs = vec![tool_result(call, &out, status, ms)];
            if call.name == "load_skill" && !out.is_error {
                let name = call.arguments["name"].as_str().unwrap_or_default().to_string();
                evs.push(EventKind::SkillLoaded { name, call_id: call.id.clone() });
            }
            if pending.is_empty() {
                carry.extend(evs);
            } else {
                w.write(&evs).await?;
            }
            messages.push(Message::tool_result(&call.id, for_model(out.content)));
        }
        Ok(messages)
    }

    /// Runs one tool call in its own task, so a panicking tool becomes an error result.
    async fn call_tool<'a>(
        &self,
        t: &Tenant,
        run: &Run,
        set: &ToolSet,
        call: &'a ToolCall,
        cancel: &CancellationToken,
    ) -> (&'a ToolCall, ToolOutput, u64) {
        let started = Instant::now();
        let out = match self.lookup(set, &call.name, &call.arguments) {
            None => ToolOutput::error(format!("unknown tool {:?}", call.name)),
            Some(_) if !call.arguments.is_object() => ToolOutput::error(format!(
                "arguments for {} must be a JSON object, got: {}",
                call.name,
                agentd_core::text::truncate_chars(&call.arguments.to_string(), 200, "…")
            )),
            Some((_, Err(e))) => ToolOutput::error(e.to_string()),
            Some((tool, Ok(()))) => {
                let workspace = if tool.needs_workspace() {
                    match self.workspace(t, Some(&run.session_id)) {
                        Ok(w) => Some(w),
                        Err(e) => return (call, ToolOutput::error(format!("workspace unavailable: {e}")), 0),
                    }
                } else {
                    None
                };
                let ctx = ToolContext {
                    org: t.org.clone(),
                    run_id: run.id.clone(),
                    call_id: call.id.clone(),
                    idempotency_key: format!("{}:{}", run.id, call.id),
                    cancel: cancel.child_token(),
                    workspace,
                    sandbox: set.agent.sandbox.clone(),
                };
                let (args, org) = (call.arguments.clone(), t.org.clone());
                let fence = tool.fence();
                let running = async move {
                    let _slot = agentd_tools::pool::tool_call_permit(&org).await;
                    tool.call(args, ctx).await
                };
                match tokio::spawn(running).await {
                    Ok(out) if out.sandbox.is_none() => out.with_sandbox(fence),
                    Ok(out) => out,
                    Err(e) => ToolOutput::error(format!("tool {} crashed: {e}", call.name)),
                }
            }
        };
        (call, out, started.elapsed().as_millis() as u64)
    }
}

/// Gives every call of one answer its own id (a model may repeat or omit
/// one): approvals, results and the journal are keyed by it, so two calls
/// sharing an id could share one person's answer.
pub(crate) fn unique_call_ids(calls: &mut [ToolCall]) {
    let mut seen = HashSet::new();
    for (i, c) in calls.iter_mut().enumerate() {
        if c.id.is_empty() || !seen.insert(c.id.clone()) {
            let mut n = i;
            let base = if c.id.is_empty() { "call".to_string() } else { c.id.clone() };
            c.id = loop {
                let candidate = format!("{base}_{n}");
                if !seen.contains(&candidate) {
                    break candidate;
                }
                n += 1;
            };
            seen.insert(c.id.clone());
        }
    }
}

fn tool_result(call: &ToolCall, out: &ToolOutput, status: ToolStatus, ms: u64) -> EventKind {
    EventKind::ToolResult {
        call_id: call.id.clone(),
        name: call.name.clone(),
        content: out.content.clone(),
        is_error: out.is_error,
        status,
        duration_ms: ms,
        sandbox: out.sandbox.clone(),
        children: vec![],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_or_missing_call_ids_become_unique() {
        let call = |id: &str| ToolCall { id: id.into(), name: "t".into(), arguments: serde_json::json!({}) };
        let mut calls = vec![call("x"), call("x"), call(""), call("x_1"), call("")];
        unique_call_ids(&mut calls);
        let ids: Vec<&str> = calls.iter().map(|c| c.id.as_str()).collect();
        let set: HashSet<&str> = ids.iter().copied().collect();
        assert_eq!(set.len(), ids.len(), "{ids:?}");
        assert_eq!(ids[0], "x");
    }
}
