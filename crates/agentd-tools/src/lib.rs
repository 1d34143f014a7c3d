//! Tools an agent can call, behind the [`Tool`] trait, and the builtin ones.

mod builtin;
pub mod testing;

use std::collections::BTreeMap;
use std::sync::Arc;

use agentd_core::{ContentPart, ToolSpec};
use async_trait::async_trait;
use tokio_util::sync::CancellationToken;

pub use builtin::{CurrentTime, Echo};

/// What a tool call knows about where it runs.
#[derive(Clone, Debug)]
pub struct ToolContext {
    pub run_id: String,
    pub call_id: String,
    /// Stable across retries and resumes: run id + call id.
    pub idempotency_key: String,
    /// Fires when the run is cancelled; long tools must stop when it does.
    pub cancel: CancellationToken,
}

/// A tool's answer.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolOutput {
    pub content: Vec<ContentPart>,
    pub is_error: bool,
}

impl ToolOutput {
    pub fn text(s: impl Into<String>) -> Self {
        Self { content: vec![ContentPart::text(s)], is_error: false }
    }

    pub fn error(s: impl Into<String>) -> Self {
        Self { content: vec![ContentPart::text(s)], is_error: true }
    }
}

/// Something a model can call.
#[async_trait]
pub trait Tool: Send + Sync {
    fn spec(&self) -> ToolSpec;
    /// True when running the call twice has the same effect as once, so a
    /// call interrupted by a crash may simply be run again.
    fn idempotent(&self) -> bool;
    async fn call(&self, args: serde_json::Value, ctx: ToolContext) -> ToolOutput;
}

/// The tools available to an agent, by name.
#[derive(Clone, Default)]
pub struct ToolRegistry {
    tools: BTreeMap<String, Arc<dyn Tool>>,
}

impl ToolRegistry {
    /// A registry with the builtin tools.
    pub fn builtin() -> Self {
        let mut r = Self::default();
        r.register(Arc::new(Echo));
        r.register(Arc::new(CurrentTime));
        r
    }

    /// Adds the test-only tools (`test_append` writing to `file`, `test_sleep`).
    pub fn with_test_tools(mut self, file: std::path::PathBuf) -> Self {
        self.register(Arc::new(testing::AppendLine { path: file }));
        self.register(Arc::new(testing::Sleep));
        self
    }

    pub fn register(&mut self, tool: Arc<dyn Tool>) {
        self.tools.insert(tool.spec().name, tool);
    }

    pub fn get(&self, name: &str) -> Option<Arc<dyn Tool>> {
        self.tools.get(name).cloned()
    }

    pub fn specs(&self) -> Vec<ToolSpec> {
        self.tools.values().map(|t| t.spec()).collect()
    }
}
