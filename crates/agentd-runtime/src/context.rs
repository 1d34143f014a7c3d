//! Keeping a conversation inside the model's context window: token
//! counting, the view of a session after compactions, and where to cut.

use agentd_core::{ContentPart, Message, Role, ToolSpec};
use agentd_store::SessionMessage;

/// Tokens a message costs beyond its text (role, separators), as OpenAI counts them.
const PER_MESSAGE: u64 = 4;

/// Counts tokens the way the model's tokenizer would: tiktoken for
/// OpenAI-family model names, otherwise an estimate calibrated on
/// English text and code (≈ 3.6 bytes per token, rounded up, +5%).
pub struct Counter {
    bpe: Option<&'static tiktoken_rs::CoreBPE>,
}

impl Counter {
    pub fn for_model(model: &str) -> Self {
        Self { bpe: tiktoken_rs::bpe_for_model(model).ok() }
    }

    /// Whether counts come from the real tokenizer.
    pub fn exact(&self) -> bool {
        self.bpe.is_some()
    }

    pub fn text(&self, s: &str) -> u64 {
        match self.bpe {
            Some(b) => b.encode_ordinary(s).len() as u64,
            None => ((s.len() as f64 / 3.6) * 1.05).ceil() as u64,
        }
    }

    pub fn message(&self, m: &Message) -> u64 {
        let mut n = PER_MESSAGE;
        for p in &m.content {
            n += match p {
                ContentPart::Text { text } => self.text(text),
                // Providers bill images by size; ~1k tokens is a typical tile budget.
                ContentPart::Image { .. } => 1_000,
            };
        }
        for c in &m.tool_calls {
            n += self.text(&c.name) + self.text(&c.arguments.to_string()) + 3;
        }
        n
    }

    pub fn request(&self, messages: &[Message], tools: &[ToolSpec]) -> u64 {
        let tools: u64 = tools
            .iter()
            .map(|t| self.text(&t.name) + self.text(&t.description) + self.text(&t.input_schema.to_string()))
            .sum();
        messages.iter().map(|m| self.message(m)).sum::<u64>() + tools + 3
    }
}

/// A session's messages as the model sees them: the latest compaction
/// summary, then the messages it kept verbatim and everything after it.
pub fn view(history: Vec<SessionMessage>) -> Vec<(i64, Message)> {
    let last = history.iter().rposition(|m| m.message.compaction.is_some());
    let Some(p) = last else {
        return history.into_iter().map(|m| (m.index, m.message)).collect();
    };
    let (summary_idx, keep_from) = (history[p].index, history[p].message.compaction.unwrap_or(0));
    let mut out = vec![];
    let mut rest = vec![];
    for m in history {
        if m.index == summary_idx {
            out.push((m.index, m.message));
        } else if m.message.compaction.is_none() && (m.index >= keep_from) {
            rest.push((m.index, m.message));
        }
    }
    out.extend(rest);
    out
}

/// Where the kept part starts so that the last `keep` exchanges stay
/// verbatim: an exchange is a user message, or an assistant message with
/// the tool results that answer it, so a call is never cut from its result.
/// Returns 0 when there is nothing older to compact.
pub fn cut(view: &[(i64, Message)], keep: usize) -> usize {
    let starts: Vec<usize> = (0..view.len()).filter(|&i| view[i].1.role != Role::Tool).collect();
    if starts.len() <= keep.max(1) {
        return 0;
    }
    starts[starts.len() - keep.max(1)]
}

/// The older part as plain text for the summariser (long parts shortened).
pub fn transcript(older: &[(i64, Message)], max_part: usize) -> String {
    let mut out = String::new();
    for (_, m) in older {
        let who = match (m.role, m.compaction.is_some()) {
            (_, true) => "Earlier summary",
            (Role::System, _) => "System",
            (Role::User, _) => "User",
            (Role::Assistant, _) => "Assistant",
            (Role::Tool, _) => "Tool result",
        };
        let mut text = m.text_content();
        for c in &m.tool_calls {
            text.push_str(&format!("\n[calls {}({})]", c.name, c.arguments));
        }
        out.push_str(who);
        out.push_str(": ");
        out.push_str(&agentd_core::text::shorten_middle(&text, max_part));
        out.push('\n');
    }
    out
}

/// Words that providers use when a request does not fit.
pub fn is_context_overflow(e: &agentd_providers::ProviderError) -> bool {
    let agentd_providers::ProviderError::Http { status, message, .. } = e else { return false };
    let m = message.to_ascii_lowercase();
    matches!(status, 400 | 413 | 422)
        && (m.contains("context length")
            || m.contains("context_length")
            || m.contains("context window")
            || m.contains("maximum context")
            || m.contains("too long")
            || m.contains("too many tokens")
            || m.contains("exceeds the context"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use agentd_core::ToolCall;

    fn sm(index: i64, m: Message) -> SessionMessage {
        SessionMessage { index, run_id: "r".into(), seq: index, message: m, created_at: String::new() }
    }

    #[test]
    fn counts_with_the_real_tokenizer_for_openai_models() {
        let c = Counter::for_model("gpt-4o");
        assert!(c.exact());
        assert_eq!(c.text("hello world"), 2);
        let est = Counter::for_model("llama3.2");
        assert!(!est.exact());
        let n = est.text(&"word ".repeat(100));
        assert!((100..=160).contains(&n), "{n}");
    }

    #[test]
    fn cuts_never_separate_a_call_from_its_result() {
        let mut call = Message::text(Role::Assistant, "");
        call.tool_calls = vec![ToolCall { id: "c".into(), name: "t".into(), arguments: serde_json::json!({}) }];
        let v: Vec<(i64, Message)> = vec![
            (0, Message::text(Role::User, "a")),
            (1, call.clone()),
            (2, Message::tool_result("c", vec![])),
            (3, Message::text(Role::Assistant, "ok")),
            (4, Message::text(Role::User, "b")),
            (5, call),
            (6, Message::tool_result("c", vec![])),
        ];
        assert_eq!(cut(&v, 2), 4);
        assert_eq!(cut(&v, 3), 3);
        assert_eq!(cut(&v, 4), 1, "the call at 1 keeps its result at 2");
        assert_eq!(cut(&v, 10), 0);
    }

    #[test]
    fn the_view_starts_at_the_latest_summary() {
        let mut s1 = Message::text(Role::System, "old summary");
        s1.compaction = Some(2);
        let mut s2 = Message::text(Role::System, "new summary");
        s2.compaction = Some(4);
        let h = vec![
            sm(0, Message::text(Role::User, "0")),
            sm(1, Message::text(Role::User, "1")),
            sm(2, Message::text(Role::User, "2")),
            sm(3, s1),
            sm(4, Message::text(Role::User, "4")),
            sm(5, Message::text(Role::User, "5")),
            sm(6, s2),
            sm(7, Message::text(Role::User, "7")),
        ];
        let texts: Vec<String> = view(h).into_iter().map(|(_, m)| m.text_content()).collect();
        assert_eq!(texts, ["new summary", "4", "5", "7"]);
    }
}
