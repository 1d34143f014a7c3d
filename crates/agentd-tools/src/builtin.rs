//! Builtin tools that need no configuration.

use agentd_core::ToolSpec;
use async_trait::async_trait;
use serde_json::json;

use crate::{Tool, ToolContext, ToolOutput};

/// Returns its JSON arguments as text; accepts any object.
pub struct Echo;

#[async_trait]
impl Tool for Echo {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: "echo".into(),
            description: "Returns its arguments unchanged, as JSON text.".into(),
            input_schema: json!({"type": "object", "additionalProperties": true}),
        }
    }

    fn idempotent(&self) -> bool {
        true
    }

    async fn call(&self, args: serde_json::Value, _ctx: ToolContext) -> ToolOutput {
        if !args.is_object() {
            return ToolOutput::error("echo expects a JSON object as arguments");
        }
        ToolOutput::text(args.to_string())
    }
}

/// The current date and time, in UTC and (optionally) a fixed offset.
pub struct CurrentTime;

#[async_trait]
impl Tool for CurrentTime {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: "current_time".into(),
            description: "Returns the current date and time (RFC 3339, UTC, and Unix seconds).".into(),
            input_schema: json!({"type": "object", "properties": {}, "additionalProperties": false}),
        }
    }

    fn idempotent(&self) -> bool {
        true
    }

    async fn call(&self, args: serde_json::Value, _ctx: ToolContext) -> ToolOutput {
        if !(args.is_object() || args.is_null()) {
            return ToolOutput::error("current_time takes no arguments");
        }
        let now = chrono::Utc::now();
        ToolOutput::text(
            json!({
                "utc": now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                "unix": now.timestamp(),
                "weekday": now.format("%A").to_string(),
            })
            .to_string(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio_util::sync::CancellationToken;

    fn ctx() -> ToolContext {
        ToolContext {
            org: "o".into(),
            run_id: "r".into(),
            call_id: "c".into(),
            idempotency_key: "r:c".into(),
            cancel: CancellationToken::new(),
            workspace: None,
            sandbox: Default::default(),
        }
    }

    #[tokio::test]
    async fn echo_returns_arguments() {
        let out = Echo.call(json!({"a": [1, 2]}), ctx()).await;
        assert!(!out.is_error);
        let agentd_core::ContentPart::Text { text } = &out.content[0] else { panic!() };
        assert_eq!(serde_json::from_str::<serde_json::Value>(text).unwrap(), json!({"a": [1, 2]}));
        assert!(Echo.call(json!("str"), ctx()).await.is_error);
    }

    #[tokio::test]
    async fn current_time_is_parseable() {
        let out = CurrentTime.call(json!({}), ctx()).await;
        let agentd_core::ContentPart::Text { text } = &out.content[0] else { panic!() };
        let v: serde_json::Value = serde_json::from_str(text).unwrap();
        assert!(chrono::DateTime::parse_from_rfc3339(v["utc"].as_str().unwrap()).is_ok());
    }
}
