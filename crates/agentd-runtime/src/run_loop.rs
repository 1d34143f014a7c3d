//! The loop of one run: LLM call → tool calls (concurrently) → results → …
//! until a final answer, `max_steps`, cancellation or an error. Every state
//! change goes through the journal first.

use std::time::Instant;

use agentd_core::{EventKind, Message, Role, Run, RunError, Tenant, ToolCall, Usage};
use agentd_providers::{ChatRequest, Delta};
use agentd_store::StoreError;
use agentd_tools::{ToolContext, ToolOutput};
use futures::stream::{FuturesUnordered, StreamExt};
use tokio_util::sync::CancellationToken;

use crate::{Live, Runtime};

/// Why the loop stopped early.
enum Stop {
    /// The run was finished by someone else (cancelled) or this process is shutting down.
    Halted,
    Store(StoreError),
}

impl From<StoreError> for Stop {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::RunFinished => Stop::Halted,
            other => Stop::Store(other),
        }
    }
}

impl Runtime {
    /// Executes a run to its end. Store errors other than "already finished" are returned.
    pub(crate) async fn drive(&self, t: &Tenant, run: Run, cancel: &CancellationToken) -> Result<(), StoreError> {
        match self.drive_inner(t, &run, cancel).await {
            Ok(()) | Err(Stop::Halted) => Ok(()),
            Err(Stop::Store(e)) => Err(e),
        }
    }

    async fn drive_inner(&self, t: &Tenant, run: &Run, cancel: &CancellationToken) -> Result<(), Stop> {
        // Events that must precede the next model call are carried and written
        // with the next `step.started` in one transaction: `run.started`, the
        // previous `step.completed`, the last tool result of a step.
        let mut carry = vec![EventKind::RunStarted { node: self.node_id.clone() }];
        let model = match self.models.resolve(&run.model) {
            Ok(m) => m,
            Err(e) => return self.finish(t, run, carry, failed(e.code(), e.to_string())).await,
        };
        let allowed = |name: &str| self.agent.tools.as_ref().is_none_or(|a| a.iter().any(|x| x == name));
        let tools: Vec<_> = self.tools.specs().into_iter().filter(|s| allowed(&s.name)).collect();
        let mut messages = vec![Message::text(Role::System, self.agent.system_prompt.clone())];
        let history = self.store.session_messages(t, &run.session_id).await?;
        messages.extend(history.into_iter().map(|m| m.message));
        let mut total = Usage::default();

        for step in 1..=run.max_steps {
            carry.push(EventKind::StepStarted { step });
            self.journal(t, &run.id, &std::mem::take(&mut carry)).await?;
            let run_id = run.id.as_str();
            let sink = |d: Delta| self.hub.publish(run_id, Live::Delta(d));
            let req =
                ChatRequest { model: &model.model, messages: &messages, tools: &tools, max_tokens: model.max_tokens };
            let resp = tokio::select! {
                _ = cancel.cancelled() => return Err(Stop::Halted),
                r = model.provider.chat(req, &sink) => r,
            };
            let resp = match resp {
                Ok(r) => r,
                Err(e) => return self.finish(t, run, carry, failed(e.code(), e.to_string())).await,
            };
            total.add(&resp.usage);
            let calls = resp.message.tool_calls.clone();
            carry.push(EventKind::LlmCompleted {
                step,
                message: resp.message.clone(),
                usage: resp.usage,
                finish_reason: resp.finish_reason.clone(),
                provider: model.provider_name.clone(),
                model: model.model.clone(),
            });
            if calls.is_empty() {
                carry.push(EventKind::StepCompleted { step });
                let done = EventKind::RunCompleted { output: resp.message.text_content(), usage: total };
                return self.finish(t, run, carry, done).await;
            }
            for c in &calls {
                let (call_id, name) = (c.id.clone(), c.name.clone());
                carry.push(EventKind::ToolCalled { call_id, name, arguments: c.arguments.clone() });
            }
            for c in &calls {
                carry.push(EventKind::ToolStarted { call_id: c.id.clone(), name: c.name.clone() });
            }
            self.journal(t, &run.id, &std::mem::take(&mut carry)).await?;
            messages.push(resp.message);

            let mut pending: FuturesUnordered<_> = calls.iter().map(|c| self.call_tool(run, c, cancel)).collect();
            while let Some((call, out, ms)) = tokio::select! {
                _ = cancel.cancelled() => return Err(Stop::Halted),
                r = pending.next() => r,
            } {
                let status = if out.is_error { "error" } else { "ok" };
                let result = EventKind::ToolResult {
                    call_id: call.id.clone(),
                    name: call.name.clone(),
                    content: out.content.clone(),
                    is_error: out.is_error,
                    status: status.into(),
                    duration_ms: ms,
                };
                // Results are journaled as they arrive; the last one of the
                // step rides with the next step's first transaction.
                if pending.is_empty() {
                    carry.push(result);
                } else {
                    self.journal(t, &run.id, &[result]).await?;
                }
                messages.push(Message::tool_result(&call.id, out.content));
            }
            carry.push(EventKind::StepCompleted { step });
        }
        let msg = format!("the run reached max_steps ({}) without a final answer", run.max_steps);
        self.finish(t, run, carry, failed("max_steps_exceeded", msg)).await
    }

    /// Journals the carried events followed by the terminal one.
    async fn finish(&self, t: &Tenant, run: &Run, mut carry: Vec<EventKind>, last: EventKind) -> Result<(), Stop> {
        carry.push(last);
        self.journal(t, &run.id, &carry).await?;
        Ok(())
    }

    /// Runs one tool call in its own task, so a panicking tool becomes an error result.
    async fn call_tool<'a>(
        &self,
        run: &Run,
        call: &'a ToolCall,
        cancel: &CancellationToken,
    ) -> (&'a ToolCall, ToolOutput, u64) {
        let started = Instant::now();
        let allowed = self.agent.tools.as_ref().is_none_or(|a| a.iter().any(|x| x == &call.name));
        let out = match self.tools.get(&call.name).filter(|_| allowed) {
            None => ToolOutput::error(format!("unknown tool {:?}", call.name)),
            Some(_) if !call.arguments.is_object() => ToolOutput::error(format!(
                "arguments for {} must be a JSON object, got: {}",
                call.name,
                truncate(&call.arguments.to_string(), 200)
            )),
            Some(tool) => {
                let ctx = ToolContext {
                    run_id: run.id.clone(),
                    call_id: call.id.clone(),
                    idempotency_key: format!("{}:{}", run.id, call.id),
                    cancel: cancel.child_token(),
                };
                let args = call.arguments.clone();
                match tokio::spawn(async move { tool.call(args, ctx).await }).await {
                    Ok(out) => out,
                    Err(e) => ToolOutput::error(format!("tool {} crashed: {e}", call.name)),
                }
            }
        };
        (call, out, started.elapsed().as_millis() as u64)
    }
}

fn truncate(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

fn failed(code: &str, message: String) -> EventKind {
    EventKind::RunFailed { error: RunError::new(code, message) }
}
