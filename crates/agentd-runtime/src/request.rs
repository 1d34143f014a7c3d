//! What a model is sent: the system prompt, then the session's messages as
//! the model sees them (compacted, long tool results cut). The run loop
//! builds requests with these, and `GET /v1/runs/{id}/context` rebuilds past
//! ones with the same functions.

use agentd_core::{Message, Role};

/// Most text of one tool result the model is handed; the journal keeps more.
const MODEL_TEXT: usize = 100 * 1024;

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

/// A stored message as the model sees it (tool results cut).
pub(crate) fn model_view(mut m: Message) -> Message {
    if m.role == Role::Tool {
        m.content = for_model(m.content);
    }
    m
}

/// A tool result as the model sees it: long text cut with a marker.
pub(crate) fn for_model(mut content: Vec<agentd_core::ContentPart>) -> Vec<agentd_core::ContentPart> {
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
