//! Asking the model for one step: one profile retried on transient errors
//! (backoff with jitter, `Retry-After` honoured), then the next along its
//! `fallback` list; every attempt is journaled (`llm.retry`, `llm.failover`,
//! `llm.failed`), and live deltas are masked as they stream.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use agentd_core::redact::StreamMask;
use agentd_core::{EventKind, Message, ToolSpec};
use agentd_providers::{ChatRequest, ChatResponse, Delta, ProviderError};
use tokio_util::sync::CancellationToken;

use crate::writer::{Stop, Writer, failed};
use crate::{Live, ResolvedModel, Runtime};

/// Output tokens any model accepts as `max_tokens`.
const SMALL_BUDGET: u32 = 4096;

/// How asking the model ended.
pub(crate) enum Asked {
    /// An answer, from `chain[i]`.
    Answer(ChatResponse, usize),
    /// Nothing answered: events to write, the last one ending the run.
    Failed(Vec<EventKind>),
    /// The run's wall-time budget ran out while waiting.
    OutOfTime,
    /// The provider said the request is longer than the context window
    /// (events that end the run, should compacting not help).
    Overflow(Vec<EventKind>),
}

/// One request of a step, as every attempt sends it.
pub(crate) struct Request<'a> {
    pub(crate) step: u32,
    pub(crate) messages: &'a [Message],
    pub(crate) tools: &'a [ToolSpec],
    /// The first step's forced `tool_choice`, if the run asked for one.
    pub(crate) tool_choice: Option<&'a serde_json::Value>,
    /// Tokens the run's tree has left (a model may not answer with more).
    pub(crate) tokens_left: Option<u64>,
    pub(crate) cancel: &'a CancellationToken,
    pub(crate) deadline: Instant,
}

/// What one attempt came to.
enum Attempt {
    Answer(ChatResponse),
    /// The provider failed; whether some of an answer had streamed.
    Error(ProviderError, bool),
    OutOfTime,
}

/// What to do after a failed attempt.
enum Next {
    Retry,
    FailOver,
    End(Asked),
}

impl Runtime {
    /// Asks the chain of profiles in order until one answers.
    pub(crate) async fn ask(
        &self,
        chain: &[ResolvedModel],
        req: &Request<'_>,
        w: &mut Writer<'_>,
    ) -> Result<Asked, Stop> {
        for (i, model) in chain.iter().enumerate() {
            let mut attempt = 0;
            loop {
                let (e, streamed) = match self.attempt(model, req, w).await? {
                    Attempt::Answer(resp) => return Ok(Asked::Answer(resp, i)),
                    Attempt::OutOfTime => return Ok(Asked::OutOfTime),
                    Attempt::Error(e, streamed) => (e, streamed),
                };
                match self.after_error(chain, i, &mut attempt, (&e, streamed), req, w).await? {
                    Next::Retry => continue,
                    Next::FailOver => break,
                    Next::End(asked) => return Ok(asked),
                }
            }
        }
        Ok(Asked::Failed(vec![failed("provider_error", "no model profile answered".into())]))
    }

    /// One streamed call to one profile; deltas go to live subscribers,
    /// held back while they end in what may be the start of a secret.
    async fn attempt(&self, model: &ResolvedModel, req: &Request<'_>, w: &Writer<'_>) -> Result<Attempt, Stop> {
        let params = match req.tool_choice {
            Some(tc) => {
                let mut p = (*model.params).clone();
                p.insert("tool_choice".into(), tc.clone());
                std::borrow::Cow::Owned(p)
            }
            None => std::borrow::Cow::Borrowed(&*model.params),
        };
        let left = req.tokens_left.map(|t| u32::try_from(t).unwrap_or(u32::MAX).max(1));
        let run_id = w.run_id;
        let streamed = AtomicBool::new(false);
        let masks = Mutex::new((StreamMask::new(w.t), StreamMask::new(w.t)));
        let sink = |d: Delta| {
            streamed.store(true, Ordering::Relaxed);
            let mut m = masks.lock().unwrap_or_else(|e| e.into_inner());
            let shown = match d {
                Delta::Text(t) => Delta::Text(m.0.push(&t)),
                Delta::Thinking(t) => Delta::Thinking(m.1.push(&t)),
            };
            if !matches!(&shown, Delta::Text(t) | Delta::Thinking(t) if t.is_empty()) {
                self.hub.publish(run_id, Live::Delta(shown));
            }
        };
        let chat = ChatRequest {
            model: &model.model,
            messages: req.messages,
            tools: req.tools,
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
            _ = req.cancel.cancelled() => return Err(Stop::Halted),
            _ = tokio::time::sleep_until(req.deadline.into()) => return Ok(Attempt::OutOfTime),
            r = model.provider.chat(chat, &sink) => r,
        };
        let mut m = masks.lock().unwrap_or_else(|e| e.into_inner());
        for rest in [Delta::Thinking(m.1.finish()), Delta::Text(m.0.finish())] {
            if !matches!(&rest, Delta::Text(t) | Delta::Thinking(t) if t.is_empty()) {
                self.hub.publish(run_id, Live::Delta(rest));
            }
        }
        Ok(match r {
            Ok(resp) => Attempt::Answer(resp),
            Err(e) => Attempt::Error(e, streamed.load(Ordering::Relaxed)),
        })
    }

    /// Retries (journaled, after its wait), fails over (journaled), or ends.
    async fn after_error(
        &self,
        chain: &[ResolvedModel],
        i: usize,
        attempt: &mut u32,
        (e, streamed): (&ProviderError, bool),
        req: &Request<'_>,
        w: &mut Writer<'_>,
    ) -> Result<Next, Stop> {
        let model = &chain[i];
        let (step, status, error) = (req.step, e.status(), e.to_string());
        let failed_ev = || EventKind::LlmFailed {
            step,
            profile: model.profile.clone(),
            provider: model.provider_name.clone(),
            status,
            error: error.clone(),
        };
        if crate::context::is_context_overflow(e) {
            return Ok(Next::End(Asked::Overflow(vec![failed_ev(), failed("context_overflow", error.clone())])));
        }
        if e.retryable() && *attempt < model.retry.max_retries {
            let retry_after = match e {
                ProviderError::Http { retry_after, .. } => *retry_after,
                _ => None,
            };
            let wait = model.retry.wait(*attempt, retry_after);
            *attempt += 1;
            w.write(&[EventKind::LlmRetry {
                step,
                profile: model.profile.clone(),
                provider: model.provider_name.clone(),
                attempt: *attempt,
                status,
                error,
                wait_ms: wait.as_millis() as u64,
                partial_discarded: streamed,
            }])
            .await?;
            tokio::select! {
                _ = req.cancel.cancelled() => return Err(Stop::Halted),
                _ = tokio::time::sleep_until(req.deadline.into()) => return Ok(Next::End(Asked::OutOfTime)),
                _ = tokio::time::sleep(wait) => {}
            }
            return Ok(Next::Retry);
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
            return Ok(Next::FailOver);
        }
        Ok(Next::End(Asked::Failed(vec![failed_ev(), failed(e.code(), error.clone())])))
    }
}
