//! Compaction: when a request would not fit the context window, older turns
//! are summarised by the model (or, if the summariser cannot fit either,
//! shortened deterministically) and journaled as `context.compacted`, so a
//! resumed run sees the same conversation.

use agentd_core::{EventKind, Message, Role, Run, Tenant, ToolSpec, Usage};
use agentd_providers::ChatRequest;

use crate::context::{self, Counter};
use crate::request::model_view;
use crate::writer::{Stop, Writer};
use crate::{ResolvedModel, Runtime};

const SUMMARY_PROMPT: &str = "You compress conversations. Summarise the transcript below so the assistant can \
continue the work without it: keep goals, decisions, facts learned, file names, identifiers, numbers, open \
questions and what the user asked for. Write plain prose or bullet points, no preamble.";

/// How hard to compact before a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fit {
    /// Only when the request is over the profile's share of the window, keeping `keep_turns`.
    IfOver,
    /// Now, keeping only the last exchange: the provider said the request does not fit.
    Harder,
}

impl Runtime {
    /// Compacts the session if `messages` (system prompt first) would take
    /// more than the profile's share of `window`; with `force`, compacts
    /// harder (one exchange kept) whatever the count.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn fit(
        &self,
        model: &ResolvedModel,
        window: u64,
        step: u32,
        messages: &mut Vec<Message>,
        tools: &[ToolSpec],
        (t, run): (&Tenant, &Run),
        how: Fit,
        w: &mut Writer<'_>,
    ) -> Result<(), Stop> {
        let force = how == Fit::Harder;
        let counter = Counter::for_model(&model.model);
        let reserve = u64::from(model.max_tokens.unwrap_or(1024)).min(window / 4);
        let limit = ((window as f64 * model.compact_at) as u64).saturating_sub(reserve).max(1);
        let before = counter.request(messages, tools);
        tracing::debug!(before, limit, window, force, "context budget");
        if before <= limit && !force {
            return Ok(());
        }
        let history = self.store.session_messages(t, &run.session_id).await?;
        let view = context::view(history);
        let keep = if force { 1 } else { model.keep_turns };
        let cut = context::cut(&view, keep);
        if cut == 0 {
            // Nothing older than the turns kept: the long parts are already cut for the model.
            return Ok(());
        }
        let (summary, method, usage) = self.summarise(model, &counter, &view[..cut], window).await;
        let system = messages.first().cloned().unwrap_or_else(|| Message::text(Role::System, ""));
        let mut summary_msg = Message::text(Role::System, &summary);
        summary_msg.compaction = Some(view[cut].0);
        let mut next = vec![system, summary_msg];
        next.extend(view[cut..].iter().map(|(_, m)| model_view(m.clone())));
        let after = counter.request(&next, tools);
        w.write(&[EventKind::ContextCompacted {
            step,
            before_tokens: before,
            after_tokens: after,
            keep_from: view[cut].0,
            summary,
            method: method.into(),
            usage,
        }])
        .await?;
        // The session now holds the summary; read the conversation back as the model will see it.
        let history = self.store.session_messages(t, &run.session_id).await?;
        messages.truncate(1);
        messages.extend(context::view(history).into_iter().map(|(_, m)| model_view(m)));
        Ok(())
    }

    /// A summary of `older`, by the model when the transcript fits the
    /// window with room for the summary, otherwise (or if the model fails) a deterministic shortening.
    async fn summarise(
        &self,
        model: &ResolvedModel,
        counter: &Counter,
        older: &[(i64, Message)],
        window: u64,
    ) -> (String, &'static str, Usage) {
        let text = context::transcript(older, 4_000);
        let answer = (window / 4).clamp(64, 2_048);
        let room = window.saturating_sub(answer);
        if counter.text(&text) + counter.text(SUMMARY_PROMPT) + 16 <= room {
            let msgs = vec![Message::text(Role::System, SUMMARY_PROMPT), Message::text(Role::User, text.clone())];
            let req = ChatRequest {
                model: &model.model,
                messages: &msgs,
                tools: &[],
                max_tokens: Some(answer as u32),
                params: None,
            };
            match model.provider.chat(req, &|_| {}).await {
                Ok(r) if !r.message.text_content().trim().is_empty() => {
                    return (r.message.text_content(), "summary", r.usage);
                }
                Ok(_) => tracing::warn!("the summariser answered nothing; truncating instead"),
                Err(e) => tracing::warn!(error = %e, "the summariser failed; truncating instead"),
            }
        }
        // Deterministic: every part shortened, then the whole, to a quarter of the window.
        let bytes = ((window / 4) as f64 * 3.0) as usize;
        (
            agentd_core::text::shorten_middle(&context::transcript(older, 600), bytes.max(200)),
            "truncation",
            Usage::default(),
        )
    }
}
