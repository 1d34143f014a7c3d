//! A session's title from its first exchange, written by the model that
//! answered; the first words of the message stay when it cannot.

use agentd_core::text::prefix_chars;
use std::time::Duration;

use agentd_core::{Message, Role, Run, Tenant, Usage};
use agentd_providers::ChatRequest;
use tokio_util::sync::CancellationToken;

use crate::{ResolvedModel, Runtime};

const PROMPT: &str = "Write a title of at most six words for the conversation below. \
                      Answer with the title only: no quotes, no final punctuation.";
/// A title is a nicety: it never holds a run up for long.
const TIMEOUT: Duration = Duration::from_secs(15);

impl Runtime {
    /// Whether this run's answer should title its session: model titles are
    /// on, no earlier run spoke in the session, and nobody chose a title
    /// (it is still the first words of this input, or none).
    pub(crate) async fn wants_title(
        &self,
        t: &Tenant,
        run: &Run,
        history: &[agentd_store::SessionMessage],
    ) -> Result<bool, agentd_store::StoreError> {
        if !self.model_titles || history.iter().any(|m| m.run_id != run.id) {
            return Ok(false);
        }
        let Some(session) = self.store.get_session(t, &run.session_id).await? else { return Ok(false) };
        Ok(session.title.is_none_or(|title| title == crate::first_words(&run.input)))
    }

    /// The model's title for an exchange (`None` when it fails, times out,
    /// is cancelled or answers nothing usable).
    pub(crate) async fn title_for(
        &self,
        model: &ResolvedModel,
        input: &str,
        answer: &str,
        cancel: &CancellationToken,
    ) -> Option<(String, Usage)> {
        let exchange = format!("User: {}\n\nAssistant: {}", prefix_chars(input, 1_500), prefix_chars(answer, 1_500));
        let msgs = vec![Message::text(Role::System, PROMPT), Message::text(Role::User, exchange)];
        let req = ChatRequest { model: &model.model, messages: &msgs, tools: &[], max_tokens: Some(24), params: None };
        let answer = tokio::select! {
            _ = cancel.cancelled() => return None,
            r = tokio::time::timeout(TIMEOUT, model.provider.chat(req, &|_| {})) => r,
        };
        match answer {
            Ok(Ok(r)) => clean(&r.message.text_content()).map(|t| (t, r.usage)),
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "the model could not title the session");
                None
            }
            Err(_) => None,
        }
    }
}

/// The first line of a model's answer without the decoration models add
/// (`Title:`, quotes, markdown, a final full stop), at most 80 characters.
fn clean(answer: &str) -> Option<String> {
    let line = answer.lines().map(str::trim).find(|l| !l.is_empty())?;
    let line = line.strip_prefix("Title:").or_else(|| line.strip_prefix("title:")).unwrap_or(line);
    let decoration = |c: char| "\"'`*_“”‘’.!:;, ".contains(c);
    let line = line.trim().trim_start_matches('#').trim_matches(decoration);
    let title: String = line.chars().take(80).collect();
    (!title.is_empty()).then_some(title)
}

#[cfg(test)]
mod tests {
    use super::clean;

    #[test]
    fn model_decoration_is_stripped() {
        assert_eq!(clean("Title: \"Planning a trip to Rome\".").as_deref(), Some("Planning a trip to Rome"));
        assert_eq!(clean("\n\n## **Rust lifetimes**\nmore").as_deref(), Some("Rust lifetimes"));
        assert_eq!(clean("  \n \"\" "), None);
        assert_eq!(clean(&"x".repeat(200)).map(|t| t.len()), Some(80));
    }
}
