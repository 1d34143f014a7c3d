//! The loop of one run: LLM call → tool calls (concurrently) → results → …
//! until a final answer, `max_steps`, cancellation or an error. Every state
//! change goes through the journal first, so a run can be resumed from it:
//! an unanswered LLM call is asked again, a finished tool call is never
//! repeated, an interrupted one is re-run only if the tool is idempotent.

use std::collections::{HashMap, HashSet};

use agentd_core::ToolStatus;
use std::time::{Duration, Instant};

use agentd_core::{EventKind, Message, Role, Run, RunError, StoredEvent, Tenant, ToolCall};
use agentd_providers::{ChatRequest, Delta};
use agentd_store::{AppendGuard, EventQuery, StoreError};
use agentd_tools::{ToolContext, ToolOutput};
use futures::stream::{FuturesUnordered, StreamExt};
use tokio_util::sync::CancellationToken;

use crate::fold::Folded;
use crate::gate::{Known, LoopState, Plan};
use crate::{Live, Runtime, ToolSet};

/// Why the loop stopped early.
pub(crate) enum Stop {
    /// Finished elsewhere (cancelled), lease lost, or this process is stopping.
    Halted,
    Store(StoreError),
}

impl From<StoreError> for Stop {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::RunFinished | StoreError::LeaseLost => Stop::Halted,
            other => Stop::Store(other),
        }
    }
}

/// Output tokens any model accepts as `max_tokens`.
const SMALL_BUDGET: u32 = 4096;

/// Writes a run's journal as its lease holder, expecting to be the only
/// writer; messages queued by others (`input.queued`) are picked up on the way.
pub(crate) struct Writer<'a> {
    rt: &'a Runtime,
    t: &'a Tenant,
    run_id: &'a str,
    guard: AppendGuard,
    /// `input.queued` messages not yet taken in: (seq, input).
    inputs: Vec<(i64, String)>,
    /// The run's parent, told when the run ends.
    parent: Option<&'a str>,
}

impl Writer<'_> {
    pub(crate) async fn write(&mut self, events: &[EventKind]) -> Result<(), Stop> {
        if events.is_empty() {
            return Ok(());
        }
        loop {
            match self.rt.store.append_guarded(self.t, self.run_id, &self.guard, events).await {
                Ok(stored) => {
                    self.written(&stored);
                    return Ok(());
                }
                Err(StoreError::SeqConflict { .. }) => self.catch_up().await?,
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Publishes what was written; an ending wakes the scheduler (a parent
    /// may be queued again, a held sibling freed) and the parent's streams.
    fn written(&mut self, stored: &[StoredEvent]) {
        self.guard.expected_seq = stored.last().map(|e| e.seq);
        self.rt.publish(self.run_id, stored);
        if stored.last().is_some_and(StoredEvent::is_terminal) {
            self.rt.sched.wake();
            if let Some(parent) = self.parent {
                self.rt.hub.publish(parent, Live::Changed(i64::MAX));
            }
        }
    }

    /// Creates a child run and journals `child.spawned`, in one transaction;
    /// true when the child was held back (over `max_concurrent_children`).
    pub(crate) async fn spawn(&mut self, new: &agentd_store::NewRun, spawned: EventKind) -> Result<(Run, bool), Stop> {
        loop {
            match self.rt.store.create_child_run(self.t, self.run_id, &self.guard, new, &spawned).await {
                Ok((child, stored)) => {
                    self.written(&stored);
                    let held = stored.iter().any(|e| e.data["held"] == serde_json::Value::Bool(true));
                    return Ok((child, held));
                }
                Err(StoreError::SeqConflict { .. }) => self.catch_up().await?,
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Reads what others appended since our last write.
    async fn catch_up(&mut self) -> Result<(), Stop> {
        let after = self.guard.expected_seq.unwrap_or(0);
        let q = EventQuery { after, limit: 10_000, types: None };
        let foreign = self.rt.store.events(self.t, self.run_id, &q).await?;
        for ev in &foreign {
            if ev.event_type() == Some(agentd_core::EventType::InputQueued)
                && let Some(input) = ev.data["input"].as_str()
            {
                self.inputs.push((ev.seq, input.to_string()));
            }
        }
        if let Some(last) = foreign.last() {
            self.guard.expected_seq = Some(last.seq);
        }
        Ok(())
    }

    /// Writes `events` + `last` unless messages arrived that the run must
    /// still answer; then writes only `events` and returns false.
    async fn write_final(&mut self, mut events: Vec<EventKind>, last: EventKind) -> Result<bool, Stop> {
        // A failure ends the run even if messages are waiting.
        let must_end = matches!(last, EventKind::RunFailed { .. });
        if self.inputs.is_empty() || must_end {
            events.push(last);
            match self.rt.store.append_guarded(self.t, self.run_id, &self.guard, &events).await {
                Ok(stored) => {
                    self.written(&stored);
                    return Ok(true);
                }
                Err(StoreError::SeqConflict { .. }) => {
                    self.catch_up().await?;
                    if self.inputs.is_empty() || must_end {
                        self.write(&events).await?;
                        return Ok(true);
                    }
                    events.pop();
                }
                Err(e) => return Err(e.into()),
            }
        }
        self.write(&events).await?;
        Ok(false)
    }

    /// Turns queued inputs into `run.steered` events and conversation messages.
    fn take_inputs(&mut self, carry: &mut Vec<EventKind>, messages: &mut Vec<Message>) {
        for (queued_seq, input) in self.inputs.drain(..) {
            messages.push(Message::text(Role::User, input.clone()));
            carry.push(EventKind::RunSteered { input, queued_seq });
        }
    }
}

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
        let mut carry = if f.started {
            vec![EventKind::RunResumed { node: self.sched.node_id().to_string(), from_seq: f.last_seq }]
        } else {
            vec![EventKind::RunStarted { node: self.sched.node_id().to_string() }]
        };
        if let Some(team) = &f.team {
            return self.drive_team(t, run, team, &mut tree, &mut w, carry).await;
        }
        let chain = match self.model_chain(t, &run.model).await {
            Ok(m) => m,
            Err(crate::RuntimeError::Store(e)) => return Err(e.into()),
            Err(e) => {
                w.write_final(carry, failed(e.code().as_str(), e.to_string())).await?;
                return Ok(());
            }
        };
        let agent = match self.agent_of_run(t, run, tree.ceiling.as_ref()).await {
            Ok(a) => a,
            Err(e) => {
                w.write_final(carry, failed("agent_not_found", e.to_string())).await?;
                return Ok(());
            }
        };
        let toolset = self.run_toolset(t, &agent, tree.ceiling.as_ref()).await?;
        let tools = toolset.specs.clone();
        let base = f.system.as_deref().unwrap_or(&agent.system_prompt);
        let history = self.store.session_messages(t, &run.session_id).await?;
        let mut wants_title = self.wants_title(t, run, &history).await?;
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
        let mut total = run.usage;

        // Where the journal stops decides where to go on.
        let mut first_step = f.step.max(1);
        let mut loops = LoopState { last: f.last_call.clone(), max: agent.max_repeated_calls };
        let wall_secs = tree
            .ceiling
            .as_ref()
            .and_then(|c| c.max_wall_secs)
            .map_or(agent.max_wall_secs, |c| c.min(agent.max_wall_secs));
        let out_of_time = || time_up(run, wall_secs);
        let budget_ms = (wall_secs as i64).saturating_mul(1000) - f.active_ms;
        let deadline = Instant::now() + Duration::from_millis(budget_ms.max(0) as u64);
        if f.started && f.step > 0 && !f.step_completed && f.answered {
            if f.calls.is_empty() {
                // Answered without tools but not completed: the answer stands.
                carry.push(EventKind::StepCompleted { step: f.step });
                w.write_final(carry, EventKind::RunCompleted { output: f.last_text.clone(), usage: total }).await?;
                return Ok(());
            }
            let pending = f.unfinished_calls();
            let known = Known::from_fold(&f);
            let ctx = StepCtx { t, run, set: &toolset, cancel, deadline, wall_secs };
            match self
                .handle_calls(
                    &ctx,
                    &pending,
                    &known,
                    (&f.tool_started, &f.denials),
                    &mut loops,
                    &mut tree,
                    &mut w,
                    &mut carry,
                )
                .await?
            {
                Outcome::Continue(_) => {}
                Outcome::Paused => return Ok(()),
                Outcome::Failed(ev) => {
                    w.write_final(carry, *ev).await?;
                    return Ok(());
                }
            }
            // Every result goes to the session before it is read back (the
            // last one was carried for the next transaction).
            w.write(&std::mem::take(&mut carry)).await?;
            let history = self.store.session_messages(t, &run.session_id).await?;
            let system = messages.swap_remove(0);
            messages = request_messages(system.text_content(), history);
            carry.push(EventKind::StepCompleted { step: f.step });
            first_step = f.step + 1;
        } else if f.started && f.step_completed {
            if f.answered && f.calls.is_empty() && f.pending_inputs.is_empty() {
                // A final answer journaled before a crash stopped its `run.completed`
                // (the session title is asked for in between): the answer stands.
                w.write_final(carry, EventKind::RunCompleted { output: f.last_text.clone(), usage: total }).await?;
                return Ok(());
            }
            first_step = f.step + 1;
        }

        for step in first_step..=run.max_steps {
            if self.sched.is_draining() {
                // Leave at a journal boundary; the next node takes it from here.
                w.write(&carry).await?;
                return Err(Stop::Halted);
            }
            if Instant::now() >= deadline {
                w.write_final(carry, out_of_time()).await?;
                return Ok(());
            }
            // A run does not start, or go on to another step, over its org's daily budget.
            if let Some(why) = self.over_budget(t).await? {
                w.write_final(carry, failed("budget_exceeded", why)).await?;
                return Ok(());
            }
            // Nor over its own token budget, which its children's usage counts against.
            let p = crate::delegation::Parent { t, run, set: &toolset };
            let (tokens, usd) = self.budget_left(&p, tree.ceiling.as_ref()).await?;
            if tokens == Some(0) || usd.is_some_and(|u| u <= 0.0) {
                let what = if tokens == Some(0) { "token budget (max_tokens)" } else { "cost budget (max_cost_usd)" };
                let why = format!("the run and its child runs used up their {what}");
                w.write_final(carry, failed("budget_exceeded", why)).await?;
                return Ok(());
            }
            w.take_inputs(&mut carry, &mut messages);
            carry.push(EventKind::StepStarted { step });
            w.write(&std::mem::take(&mut carry)).await?;
            if !w.inputs.is_empty() {
                // Messages that arrived while the last step ran join before the model is asked.
                w.take_inputs(&mut carry, &mut messages);
                w.write(&std::mem::take(&mut carry)).await?;
            }
            let primary = &chain[0];
            if let Some(window) = primary.context_window {
                self.fit(primary, window, step, &mut messages, &tools, (t, run), false, &mut w).await?;
            }
            let forced = (step == 1).then_some(f.first_tool_choice.as_ref()).flatten();
            let mut asked =
                self.ask(&chain, step, &messages, &tools, (forced, tokens), run, cancel, deadline, &mut w).await?;
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
                self.fit(primary, window, step, &mut messages, &tools, (t, run), true, &mut w).await?;
                asked =
                    self.ask(&chain, step, &messages, &tools, (forced, tokens), run, cancel, deadline, &mut w).await?;
            }
            let (resp, model) = match asked {
                Asked::Answer(resp, i) => (resp, &chain[i]),
                Asked::Failed(mut evs) => {
                    let last = evs.pop().unwrap_or_else(|| failed("provider_error", "the model call failed".into()));
                    carry.extend(evs);
                    w.write_final(carry, last).await?;
                    return Ok(());
                }
                Asked::OutOfTime => {
                    w.write_final(carry, out_of_time()).await?;
                    return Ok(());
                }
                Asked::Overflow(mut evs) => {
                    let last =
                        evs.pop().unwrap_or_else(|| failed("context_overflow", "the request does not fit".into()));
                    carry.extend(evs);
                    w.write_final(carry, last).await?;
                    return Ok(());
                }
            };
            let mut resp = resp;
            // Some servers stream no usage at all: count it ourselves, and say so.
            let usage_estimated = resp.usage.total_tokens == 0;
            if usage_estimated {
                let counter = crate::context::Counter::for_model(&model.model);
                let input = counter.request(&messages, &tools);
                let output = counter.message(&resp.message);
                resp.usage =
                    agentd_core::Usage { input_tokens: input, output_tokens: output, total_tokens: input + output };
            }
            total.add(&resp.usage);
            unique_call_ids(&mut resp.message.tool_calls);
            let calls = resp.message.tool_calls.clone();
            carry.push(EventKind::LlmCompleted {
                step,
                message: resp.message.clone(),
                usage: resp.usage,
                finish_reason: resp.finish_reason.clone(),
                provider: model.provider_name.clone(),
                model: model.model.clone(),
                profile: Some(model.profile.clone()),
                cost_usd: model.price.map(|p| {
                    (resp.usage.input_tokens as f64 * p.input_per_mtok
                        + resp.usage.output_tokens as f64 * p.output_per_mtok)
                        / 1e6
                }),
                usage_estimated,
            });
            if calls.is_empty() {
                carry.push(EventKind::StepCompleted { step });
                if std::mem::take(&mut wants_title) {
                    // The answer is journaled (and shown) before the title is asked for.
                    w.write(&std::mem::take(&mut carry)).await?;
                    let answer = resp.message.text_content();
                    if let Some((title, usage)) = self.title_for(model, &run.input, &answer, cancel).await {
                        total.add(&usage);
                        carry.push(EventKind::SessionTitled { title, usage });
                    }
                }
                let done = EventKind::RunCompleted { output: resp.message.text_content(), usage: total };
                if w.write_final(std::mem::take(&mut carry), done).await? {
                    return Ok(());
                }
                // A message arrived meanwhile: answer it in another step.
                messages.push(resp.message);
                continue;
            }
            for c in &calls {
                let (call_id, name) = (c.id.clone(), c.name.clone());
                carry.push(EventKind::ToolCalled { call_id, name, arguments: c.arguments.clone() });
            }
            messages.push(resp.message);
            let ctx = StepCtx { t, run, set: &toolset, cancel, deadline, wall_secs };
            let none = HashSet::new();
            let denials = HashMap::new();
            match self
                .handle_calls(
                    &ctx,
                    &calls,
                    &Known::default(),
                    (&none, &denials),
                    &mut loops,
                    &mut tree,
                    &mut w,
                    &mut carry,
                )
                .await?
            {
                Outcome::Continue(results) => messages.extend(results),
                Outcome::Paused => return Ok(()),
                Outcome::Failed(ev) => {
                    w.write_final(carry, *ev).await?;
                    return Ok(());
                }
            }
            carry.push(EventKind::StepCompleted { step });
        }
        let msg = format!("the run reached max_steps ({}) without a final answer", run.max_steps);
        w.write_final(carry, failed("max_steps_exceeded", msg)).await?;
        Ok(())
    }

    /// Asks the model: retries one profile on transient errors (backoff with
    /// jitter, `Retry-After` honoured), then fails over along its `fallback`
    /// list; every attempt is journaled (`llm.retry`, `llm.failover`, `llm.failed`).
    #[allow(clippy::too_many_arguments)]
    async fn ask(
        &self,
        chain: &[crate::ResolvedModel],
        step: u32,
        messages: &[Message],
        tools: &[agentd_core::ToolSpec],
        (tool_choice, tokens_left): (Option<&serde_json::Value>, Option<u64>),
        run: &Run,
        cancel: &CancellationToken,
        deadline: Instant,
        w: &mut Writer<'_>,
    ) -> Result<Asked, Stop> {
        // A model may not answer with more tokens than the run's tree has left.
        let left = tokens_left.map(|t| u32::try_from(t).unwrap_or(u32::MAX).max(1));
        let (run_id, tenant) = (run.id.as_str(), w.t);
        for (i, model) in chain.iter().enumerate() {
            let params = match tool_choice {
                Some(tc) => {
                    let mut p = (*model.params).clone();
                    p.insert("tool_choice".into(), tc.clone());
                    std::borrow::Cow::Owned(p)
                }
                None => std::borrow::Cow::Borrowed(&*model.params),
            };
            let mut attempt = 0;
            loop {
                let streamed = std::sync::atomic::AtomicBool::new(false);
                // Text and thinking each held back while they end in what may be a secret's start.
                let masks = std::sync::Mutex::new((
                    agentd_core::redact::StreamMask::new(tenant),
                    agentd_core::redact::StreamMask::new(tenant),
                ));
                let sink = |d: Delta| {
                    streamed.store(true, std::sync::atomic::Ordering::Relaxed);
                    let mut m = masks.lock().unwrap_or_else(|e| e.into_inner());
                    let shown = match d {
                        Delta::Text(t) => Delta::Text(m.0.push(&t)),
                        Delta::Thinking(t) => Delta::Thinking(m.1.push(&t)),
                    };
                    if !matches!(&shown, Delta::Text(t) | Delta::Thinking(t) if t.is_empty()) {
                        self.hub.publish(run_id, Live::Delta(shown));
                    }
                };
                let req = ChatRequest {
                    model: &model.model,
                    messages,
                    tools,
                    max_tokens: match (model.max_tokens, left) {
                        (Some(m), Some(l)) => Some(m.min(l)),
                        // Without a profile's own cap, only a small budget is sent
                        // (one every model takes; a big one could exceed its limit).
                        (None, Some(l)) if l <= SMALL_BUDGET => Some(l),
                        (m, _) => m,
                    },
                    params: Some(&params),
                };
                let r = tokio::select! {
                    _ = cancel.cancelled() => return Err(Stop::Halted),
                    _ = tokio::time::sleep_until(deadline.into()) => return Ok(Asked::OutOfTime),
                    r = model.provider.chat(req, &sink) => r,
                };
                {
                    let mut m = masks.lock().unwrap_or_else(|e| e.into_inner());
                    for rest in [Delta::Thinking(m.1.finish()), Delta::Text(m.0.finish())] {
                        if !matches!(&rest, Delta::Text(t) | Delta::Thinking(t) if t.is_empty()) {
                            self.hub.publish(run_id, Live::Delta(rest));
                        }
                    }
                }
                let e = match r {
                    Ok(resp) => return Ok(Asked::Answer(resp, i)),
                    Err(e) => e,
                };
                let (status, error) = (e.status(), e.to_string());
                let failed_ev = || EventKind::LlmFailed {
                    step,
                    profile: model.profile.clone(),
                    provider: model.provider_name.clone(),
                    status,
                    error: error.clone(),
                };
                if crate::context::is_context_overflow(&e) {
                    return Ok(Asked::Overflow(vec![failed_ev(), failed("context_overflow", error.clone())]));
                }
                if e.retryable() && attempt < model.retry.max_retries {
                    let retry_after = match &e {
                        agentd_providers::ProviderError::Http { retry_after, .. } => *retry_after,
                        _ => None,
                    };
                    let wait = model.retry.wait(attempt, retry_after);
                    attempt += 1;
                    w.write(&[EventKind::LlmRetry {
                        step,
                        profile: model.profile.clone(),
                        provider: model.provider_name.clone(),
                        attempt,
                        status,
                        error,
                        wait_ms: wait.as_millis() as u64,
                        partial_discarded: streamed.load(std::sync::atomic::Ordering::Relaxed),
                    }])
                    .await?;
                    tokio::select! {
                        _ = cancel.cancelled() => return Err(Stop::Halted),
                        _ = tokio::time::sleep_until(deadline.into()) => return Ok(Asked::OutOfTime),
                        _ = tokio::time::sleep(wait) => {}
                    }
                    continue;
                }
                if let Some(next) = chain.get(i + 1).filter(|_| e.may_fail_over()) {
                    w.write(&[EventKind::LlmFailover {
                        step,
                        from_profile: model.profile.clone(),
                        to_profile: next.profile.clone(),
                        provider: model.provider_name.clone(),
                        status,
                        error,
                    }])
                    .await?;
                    break;
                }
                return Ok(Asked::Failed(vec![failed_ev(), failed(e.code(), error.clone())]));
            }
        }
        Ok(Asked::Failed(vec![failed("provider_error", "no model profile answered".into())]))
    }

    /// Passes a step's calls through the gate, then runs the allowed ones;
    /// pauses the run if a person must answer first.
    #[allow(clippy::too_many_arguments)]
    async fn handle_calls(
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
fn unique_call_ids(calls: &mut [ToolCall]) {
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

/// How a run over its wall time ends: a child `timed_out` (its parent's model is told).
fn time_up(run: &Run, secs: u64) -> EventKind {
    match run.parent_run_id {
        Some(_) => failed("timed_out", format!("the child run used up its wall time ({secs} s)")),
        None => wall_time_exceeded(secs),
    }
}

fn wall_time_exceeded(secs: u64) -> EventKind {
    failed("wall_time_exceeded", format!("the run used up its wall-time budget ({secs} s)"))
}

/// What every call of one step shares.
struct StepCtx<'a> {
    t: &'a Tenant,
    run: &'a Run,
    set: &'a ToolSet,
    cancel: &'a CancellationToken,
    deadline: Instant,
    wall_secs: u64,
}

/// How asking the model ended.
enum Asked {
    /// An answer, from `chain[i]`.
    Answer(agentd_providers::ChatResponse, usize),
    /// Nothing answered: events to write, the last one ending the run.
    Failed(Vec<EventKind>),
    /// The run's wall-time budget ran out while waiting.
    OutOfTime,
    /// The provider said the request is longer than the context window
    /// (events that end the run, should compacting not help).
    Overflow(Vec<EventKind>),
}

/// How a step's calls ended.
enum Outcome {
    /// Results for the model.
    Continue(Vec<Message>),
    /// Waiting for a person; the task ends.
    Paused,
    /// The run must end with this event.
    Failed(Box<EventKind>),
}

/// Most text of one tool result the model is handed; the journal keeps more.
const MODEL_TEXT: usize = 100 * 1024;

/// A stored message as the model sees it (tool results cut).
/// The system prompt a run's requests start with: the agent's (or the run's
/// rendered template) and the skills section.
pub(crate) fn system_text(base: &str, skills_prompt: &str) -> String {
    format!("{base}{skills_prompt}")
}

/// What a request's messages are: the system prompt, then the session's
/// messages as the model sees them (compacted, long tool results cut).
/// `GET /v1/runs/{id}/context` rebuilds past requests with it too.
pub(crate) fn request_messages(system: String, history: Vec<agentd_store::SessionMessage>) -> Vec<Message> {
    let mut messages = vec![Message::text(Role::System, system)];
    messages.extend(crate::context::view(history).into_iter().map(|(_, m)| model_view(m)));
    messages
}

/// The message that loads a skill the user named in the input.
pub(crate) fn mentioned_skill(skill: &agentd_tools::skills::Skill) -> Message {
    let text = format!("Instructions of the skill {} (the user asked for it):\n{}", skill.name, skill.body);
    Message::text(Role::System, text)
}

pub(crate) fn model_view(mut m: Message) -> Message {
    if m.role == Role::Tool {
        m.content = for_model(m.content);
    }
    m
}

/// A tool result as the model sees it: long text cut with a marker.
fn for_model(mut content: Vec<agentd_core::ContentPart>) -> Vec<agentd_core::ContentPart> {
    let mut budget = MODEL_TEXT;
    for part in &mut content {
        if let agentd_core::ContentPart::Text { text } = part {
            if text.len() > budget {
                let cut = text.len() - agentd_core::text::prefix(text, budget).len();
                let marker =
                    format!("\n[… {cut} more bytes cut for the model; the whole result is in the run journal]");
                *text = agentd_core::text::truncate(text, budget, &marker);
            }
            budget = budget.saturating_sub(text.len());
        }
    }
    content
}

fn failed(code: &str, message: String) -> EventKind {
    EventKind::RunFailed { error: RunError::new(code, message) }
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
