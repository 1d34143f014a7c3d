//! The loop of one run: LLM call → tool calls (concurrently) → results → …
//! until a final answer, `max_steps`, cancellation or an error. Every state
//! change goes through the journal first, so a run can be resumed from it:
//! an unanswered LLM call is asked again, a finished tool call is never
//! repeated, an interrupted one is re-run only if the tool is idempotent.
//! Asking the model is `ask.rs`, a step's calls `calls.rs`, what the model
//! is sent `request.rs`, the journal's writer `writer.rs`.

use std::collections::{HashMap, HashSet};
use std::mem::take;
use std::time::{Duration, Instant};

use agentd_core::{EventKind, Message, Role, Run, StoredEvent, Tenant, ToolSpec, Usage};
use agentd_providers::ChatResponse;
use agentd_store::{AppendGuard, EventQuery, StoreError};
use tokio_util::sync::CancellationToken;

use crate::ask::{Asked, Request};
use crate::calls::{Outcome, StepCtx, unique_call_ids};
use crate::compaction::Fit;
use crate::delegation::Tree;
use crate::fold::Folded;
use crate::gate::{Known, LoopState};
use crate::request::{mentioned_skill, request_messages, system_text};
use crate::writer::{Stop, Writer, failed, time_up};
use crate::{ResolvedModel, Runtime, ToolSet};

impl Runtime {
    /// Executes (or resumes) a run to its end. Store errors other than
    /// "finished" / "lease lost" are returned.
    pub(crate) async fn drive(&self, t: &Tenant, run: Run, cancel: &CancellationToken) -> Result<(), StoreError> {
        match self.drive_inner(t, &run, cancel).await {
            Ok(()) | Err(Stop::Halted) => Ok(()),
            Err(Stop::Store(e)) => Err(e),
        }
    }

    pub(crate) async fn all_events(&self, t: &Tenant, run_id: &str) -> Result<Vec<StoredEvent>, StoreError> {
        let mut out: Vec<StoredEvent> = vec![];
        loop {
            let after = out.last().map_or(0, |e| e.seq);
            let page = self.store.events(t, run_id, &EventQuery { after, limit: 5_000, types: None }).await?;
            let n = page.len();
            out.extend(page);
            if n < 5_000 {
                return Ok(out);
            }
        }
    }

    async fn drive_inner(&self, t: &Tenant, run: &Run, cancel: &CancellationToken) -> Result<(), Stop> {
        // Only the fold is kept: thousands of runs may wait at once.
        let f = Folded::from_events(&self.all_events(t, &run.id).await?);
        let mut w = Writer {
            rt: self,
            t,
            run_id: &run.id,
            guard: AppendGuard { lease_node: Some(self.sched.node_id().to_string()), expected_seq: Some(f.last_seq) },
            inputs: f.pending_inputs.clone(),
            parent: run.parent_run_id.as_deref(),
        };
        let mut tree = f.tree.clone();
        // Events that must precede the next model call are carried and written
        // with the next `step.started` in one transaction.
        let node = self.sched.node_id().to_string();
        let carry = if f.started {
            vec![EventKind::RunResumed { node, from_seq: f.last_seq }]
        } else {
            vec![EventKind::RunStarted { node }]
        };
        if let Some(team) = &f.team {
            return self.drive_team(t, run, team, &mut tree, &mut w, carry).await;
        }
        let Some((d, mut p)) = self.prepare((t, run, cancel), &f, tree, carry, &mut w).await? else {
            return Ok(());
        };
        // Where the journal stops decides where to go on.
        let Some(first_step) = self.resume(&d, &f, &mut p, &mut w).await? else {
            return Ok(());
        };
        for step in first_step..=run.max_steps {
            if let Flow::Done = self.step(&d, &mut p, &mut w, step).await? {
                return Ok(());
            }
        }
        let msg = format!("the run reached max_steps ({}) without a final answer", run.max_steps);
        w.write_final(p.carry, failed("max_steps_exceeded", msg)).await?;
        Ok(())
    }

    /// What the run is driven with: its models, agent, tools, the request so
    /// far and its wall-time deadline; `None` when the run ended here (no
    /// model or agent to run it with).
    async fn prepare<'a>(
        &self,
        (t, run, cancel): (&'a Tenant, &'a Run, &'a CancellationToken),
        f: &Folded,
        tree: Tree,
        mut carry: Vec<EventKind>,
        w: &mut Writer<'_>,
    ) -> Result<Option<(Driving<'a>, Progress)>, Stop> {
        let chain = match self.model_chain(t, &run.model).await {
            Ok(m) => m,
            Err(crate::RuntimeError::Store(e)) => return Err(e.into()),
            Err(e) => {
                w.write_final(carry, failed(e.code().as_str(), e.to_string())).await?;
                return Ok(None);
            }
        };
        let agent = match self.agent_of_run(t, run, tree.ceiling.as_ref()).await {
            Ok(a) => a,
            Err(e) => {
                w.write_final(carry, failed("agent_not_found", e.to_string())).await?;
                return Ok(None);
            }
        };
        let toolset = self.run_toolset(t, &agent, tree.ceiling.as_ref()).await?;
        let base = f.system.as_deref().unwrap_or(&agent.system_prompt);
        let history = self.store.session_messages(t, &run.session_id).await?;
        let wants_title = self.wants_title(t, run, &history).await?;
        let mut messages = request_messages(system_text(base, &toolset.skills_prompt), history);
        if !f.started {
            // `run.started` (carried) puts the input into the session.
            let mut input = Message::text(Role::User, run.input.clone());
            input.content.extend(f.input_images.iter().cloned());
            messages.push(input);
            // A skill named explicitly (`/name` or `$name`) is loaded right away.
            for skill in agentd_tools::skills::mentioned(toolset.skills(), &run.input) {
                messages.push(mentioned_skill(skill));
                carry.push(EventKind::SkillLoaded { name: skill.name.clone(), call_id: "mentioned".into() });
            }
        }
        let wall_secs = tree
            .ceiling
            .as_ref()
            .and_then(|c| c.max_wall_secs)
            .map_or(agent.max_wall_secs, |c| c.min(agent.max_wall_secs));
        let budget_ms = (wall_secs as i64).saturating_mul(1000) - f.active_ms;
        let deadline = Instant::now() + Duration::from_millis(budget_ms.max(0) as u64);
        let loops = LoopState { last: f.last_call.clone(), max: agent.max_repeated_calls };
        let tools = toolset.specs.clone();
        let first_tool_choice = f.first_tool_choice.clone();
        let d = Driving { t, run, cancel, chain, toolset, tools, deadline, wall_secs, first_tool_choice };
        Ok(Some((d, Progress { messages, carry, total: run.usage, loops, tree, wants_title })))
    }

    /// The step a run goes on from: after the last completed one, once the
    /// calls of a step a crash cut short are finished. `None`: it ended here.
    async fn resume(
        &self,
        d: &Driving<'_>,
        f: &Folded,
        p: &mut Progress,
        w: &mut Writer<'_>,
    ) -> Result<Option<u32>, Stop> {
        let answer_stands = || EventKind::RunCompleted { output: f.last_text.clone(), usage: d.run.usage };
        if f.started && f.step > 0 && !f.step_completed && f.answered {
            if f.calls.is_empty() {
                // Answered without tools but not completed: the answer stands.
                p.carry.push(EventKind::StepCompleted { step: f.step });
                w.write_final(take(&mut p.carry), answer_stands()).await?;
                return Ok(None);
            }
            let (pending, known) = (f.unfinished_calls(), Known::from_fold(f));
            let prior = (&f.tool_started, &f.denials);
            let ctx = d.step_ctx();
            let tree = &mut p.tree;
            match self.handle_calls(&ctx, &pending, &known, prior, &mut p.loops, tree, w, &mut p.carry).await? {
                Outcome::Continue(_) => {}
                Outcome::Paused => return Ok(None),
                Outcome::Failed(ev) => {
                    w.write_final(take(&mut p.carry), *ev).await?;
                    return Ok(None);
                }
            }
            // Every result goes to the session before it is read back (the
            // last one was carried for the next transaction).
            w.write(&take(&mut p.carry)).await?;
            let history = self.store.session_messages(d.t, &d.run.session_id).await?;
            let system = p.messages.swap_remove(0);
            p.messages = request_messages(system.text_content(), history);
            p.carry.push(EventKind::StepCompleted { step: f.step });
            return Ok(Some(f.step + 1));
        }
        if f.started && f.step_completed {
            if f.answered && f.calls.is_empty() && f.pending_inputs.is_empty() {
                // A final answer journaled before a crash stopped its `run.completed`
                // (the session title is asked for in between): the answer stands.
                w.write_final(take(&mut p.carry), answer_stands()).await?;
                return Ok(None);
            }
            return Ok(Some(f.step + 1));
        }
        Ok(Some(f.step.max(1)))
    }

    /// One step: the checks, the model's answer, then its calls.
    async fn step(&self, d: &Driving<'_>, p: &mut Progress, w: &mut Writer<'_>, step: u32) -> Result<Flow, Stop> {
        let tokens = match self.may_step(d, p, w).await? {
            Ok(tokens) => tokens,
            Err(end) => {
                w.write_final(take(&mut p.carry), end).await?;
                return Ok(Flow::Done);
            }
        };
        w.take_inputs(&mut p.carry, &mut p.messages);
        p.carry.push(EventKind::StepStarted { step });
        w.write(&take(&mut p.carry)).await?;
        if !w.inputs.is_empty() {
            // Messages that arrived while the last step ran join before the model is asked.
            w.take_inputs(&mut p.carry, &mut p.messages);
            w.write(&take(&mut p.carry)).await?;
        }
        let Some((mut resp, model)) = self.answer(d, p, w, step, tokens).await? else {
            return Ok(Flow::Done);
        };
        p.carry.push(answered(step, &mut resp, model, &p.messages, &d.tools));
        p.total.add(&resp.usage);
        let calls = resp.message.tool_calls.clone();
        if calls.is_empty() {
            return self.finish(d, p, w, step, resp.message, model).await;
        }
        for c in &calls {
            let (call_id, name) = (c.id.clone(), c.name.clone());
            p.carry.push(EventKind::ToolCalled { call_id, name, arguments: c.arguments.clone() });
        }
        p.messages.push(resp.message);
        let (none, denials) = (HashSet::new(), HashMap::new());
        let (ctx, tree) = (d.step_ctx(), &mut p.tree);
        let known = Known::default();
        match self.handle_calls(&ctx, &calls, &known, (&none, &denials), &mut p.loops, tree, w, &mut p.carry).await? {
            Outcome::Continue(results) => p.messages.extend(results),
            Outcome::Paused => return Ok(Flow::Done),
            Outcome::Failed(ev) => {
                w.write_final(take(&mut p.carry), *ev).await?;
                return Ok(Flow::Done);
            }
        }
        p.carry.push(EventKind::StepCompleted { step });
        Ok(Flow::Next)
    }

    /// Whether another step may start: not while this node drains, nor past
    /// the wall time, the org's daily budget or the run tree's own budget.
    /// `Ok(Err(end))`: the event that ends the run; else the tokens left.
    async fn may_step(
        &self,
        d: &Driving<'_>,
        p: &Progress,
        w: &mut Writer<'_>,
    ) -> Result<Result<Option<u64>, EventKind>, Stop> {
        if self.sched.is_draining() {
            // Leave at a journal boundary; the next node takes it from here.
            w.write(&p.carry).await?;
            return Err(Stop::Halted);
        }
        if Instant::now() >= d.deadline {
            return Ok(Err(time_up(d.run, d.wall_secs)));
        }
        if let Some(why) = self.over_budget(d.t).await? {
            return Ok(Err(failed("budget_exceeded", why)));
        }
        // Its children's usage counts against the run's own token budget.
        let parent = crate::delegation::Parent { t: d.t, run: d.run, set: &d.toolset };
        let (tokens, usd) = self.budget_left(&parent, p.tree.ceiling.as_ref()).await?;
        if tokens == Some(0) || usd.is_some_and(|u| u <= 0.0) {
            let what = if tokens == Some(0) { "token budget (max_tokens)" } else { "cost budget (max_cost_usd)" };
            let why = format!("the run and its child runs used up their {what}");
            return Ok(Err(failed("budget_exceeded", why)));
        }
        Ok(Ok(tokens))
    }

    /// The model's answer to the step's request (compacted first when it is
    /// long; once more, harder, when the provider still finds it too long).
    /// `None`: the run ended here.
    async fn answer<'d>(
        &self,
        d: &'d Driving<'_>,
        p: &mut Progress,
        w: &mut Writer<'_>,
        step: u32,
        tokens: Option<u64>,
    ) -> Result<Option<(ChatResponse, &'d ResolvedModel)>, Stop> {
        let primary = &d.chain[0];
        let at = (d.t, d.run);
        if let Some(window) = primary.context_window {
            self.fit(primary, window, step, &mut p.messages, &d.tools, at, Fit::IfOver, w).await?;
        }
        let mut asked = self.ask(&d.chain, &d.request(step, &p.messages, tokens), w).await?;
        if let Asked::Overflow(evs) = &asked
            && let Some(window) = primary.context_window
        {
            // The provider disagrees with our count: compact harder and try once more.
            if let Some(EventKind::LlmFailed { step, profile, provider, status, error }) = evs.first() {
                w.write(&[EventKind::LlmRetry {
                    step: *step,
                    profile: profile.clone(),
                    provider: provider.clone(),
                    attempt: 1,
                    status: *status,
                    error: format!("{error} (compacting the context and asking again)"),
                    wait_ms: 0,
                    partial_discarded: false,
                }])
                .await?;
            }
            self.fit(primary, window, step, &mut p.messages, &d.tools, at, Fit::Harder, w).await?;
            asked = self.ask(&d.chain, &d.request(step, &p.messages, tokens), w).await?;
        }
        let (events, last) = match asked {
            Asked::Answer(resp, i) => return Ok(Some((resp, &d.chain[i]))),
            Asked::Failed(mut evs) => {
                let last = evs.pop().unwrap_or_else(|| failed("provider_error", "the model call failed".into()));
                (evs, last)
            }
            Asked::OutOfTime => (vec![], time_up(d.run, d.wall_secs)),
            Asked::Overflow(mut evs) => {
                let last = evs.pop().unwrap_or_else(|| failed("context_overflow", "the request does not fit".into()));
                (evs, last)
            }
        };
        p.carry.extend(events);
        w.write_final(take(&mut p.carry), last).await?;
        Ok(None)
    }

    /// A final answer: journaled (and shown) before a session title is asked
    /// for, then `run.completed`, unless a message arrived meanwhile, which
    /// the next step answers.
    async fn finish(
        &self,
        d: &Driving<'_>,
        p: &mut Progress,
        w: &mut Writer<'_>,
        step: u32,
        answer: Message,
        model: &ResolvedModel,
    ) -> Result<Flow, Stop> {
        p.carry.push(EventKind::StepCompleted { step });
        if take(&mut p.wants_title) {
            w.write(&take(&mut p.carry)).await?;
            if let Some((title, usage)) = self.title_for(model, &d.run.input, &answer.text_content(), d.cancel).await {
                p.total.add(&usage);
                p.carry.push(EventKind::SessionTitled { title, usage });
            }
        }
        let done = EventKind::RunCompleted { output: answer.text_content(), usage: p.total };
        if w.write_final(take(&mut p.carry), done).await? {
            return Ok(Flow::Done);
        }
        p.messages.push(answer);
        Ok(Flow::Next)
    }
}

/// What a run is driven with, fixed when it starts (or resumes).
struct Driving<'a> {
    t: &'a Tenant,
    run: &'a Run,
    cancel: &'a CancellationToken,
    /// The profile asked first, then its fallbacks.
    chain: Vec<ResolvedModel>,
    toolset: ToolSet,
    tools: std::sync::Arc<Vec<ToolSpec>>,
    deadline: Instant,
    wall_secs: u64,
    /// The `tool_choice` the run forces on its first step.
    first_tool_choice: Option<serde_json::Value>,
}

impl Driving<'_> {
    fn step_ctx(&self) -> StepCtx<'_> {
        StepCtx {
            t: self.t,
            run: self.run,
            set: &self.toolset,
            cancel: self.cancel,
            deadline: self.deadline,
            wall_secs: self.wall_secs,
        }
    }

    fn request<'r>(&'r self, step: u32, messages: &'r [Message], tokens_left: Option<u64>) -> Request<'r> {
        Request {
            step,
            messages,
            tools: &self.tools,
            tool_choice: (step == 1).then_some(self.first_tool_choice.as_ref()).flatten(),
            tokens_left,
            cancel: self.cancel,
            deadline: self.deadline,
        }
    }
}

/// Where a run stands between steps.
struct Progress {
    /// The request so far.
    messages: Vec<Message>,
    /// Events written with the next transaction.
    carry: Vec<EventKind>,
    total: Usage,
    loops: LoopState,
    tree: Tree,
    /// The session is titled after this run's answer.
    wants_title: bool,
}

/// Whether the run goes on after a step.
enum Flow {
    Next,
    Done,
}

/// The `llm.completed` of an answer, with call ids made unique and usage
/// counted here when the server streamed none.
fn answered(
    step: u32,
    resp: &mut ChatResponse,
    model: &ResolvedModel,
    messages: &[Message],
    tools: &[ToolSpec],
) -> EventKind {
    let usage_estimated = resp.usage.total_tokens == 0;
    if usage_estimated {
        let counter = crate::context::Counter::for_model(&model.model);
        let (input, output) = (counter.request(messages, tools), counter.message(&resp.message));
        resp.usage = Usage { input_tokens: input, output_tokens: output, total_tokens: input + output };
    }
    unique_call_ids(&mut resp.message.tool_calls);
    let cost_usd = model.price.map(|p| {
        (resp.usage.input_tokens as f64 * p.input_per_mtok + resp.usage.output_tokens as f64 * p.output_per_mtok) / 1e6
    });
    EventKind::LlmCompleted {
        step,
        message: resp.message.clone(),
        usage: resp.usage,
        finish_reason: resp.finish_reason.clone(),
        provider: model.provider_name.clone(),
        model: model.model.clone(),
        profile: Some(model.profile.clone()),
        cost_usd,
        usage_estimated,
    }
}
