//! Tools an agent can call, behind the [`Tool`] trait: builtin ones (echo,
//! current_time, workspace file tools, shell, http_fetch) and test-only ones.

mod builtin;
pub mod delegation;
pub mod egress;
mod fs;
mod http_fetch;
mod http_tool;
pub mod pool;
pub mod quota;
pub mod sandbox;
mod shell;
pub mod skills;
#[cfg(feature = "test-tools")]
pub mod testing;
pub mod workspace;

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use agentd_core::{ContentPart, ToolSpec};
use async_trait::async_trait;
use tokio_util::sync::CancellationToken;

pub use builtin::{CurrentTime, Echo};
pub use http_fetch::html_to_text;
pub use http_tool::{HttpTool, SECRET_ENV_PREFIX, set_secret_hosts, validate_http_tool};
pub use shell::{SandboxMode, SandboxSettings, find_bwrap};
pub use workspace::{PathError, Workspace};

/// What a tool call knows about where it runs.
#[derive(Clone, Debug)]
pub struct ToolContext {
    /// The calling organisation (bounds its share of blocking tool work).
    pub org: String,
    pub run_id: String,
    pub call_id: String,
    /// Stable across retries and resumes: run id + call id.
    pub idempotency_key: String,
    /// Fires when the run is cancelled; long tools must stop when it does.
    pub cancel: CancellationToken,
    /// The directory file and shell tools are confined to.
    pub workspace: Option<Workspace>,
    /// How far `shell` may reach (the agent's sandbox settings).
    pub sandbox: SandboxSettings,
}

/// A tool's answer.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolOutput {
    pub content: Vec<ContentPart>,
    pub is_error: bool,
    /// How the call was fenced (shell), for the journal.
    pub sandbox: Option<serde_json::Value>,
}

impl ToolOutput {
    pub fn text(s: impl Into<String>) -> Self {
        Self { content: vec![ContentPart::text(s)], is_error: false, sandbox: None }
    }

    pub fn error(s: impl Into<String>) -> Self {
        Self { content: vec![ContentPart::text(s)], is_error: true, sandbox: None }
    }

    /// The same output with sandbox evidence attached.
    pub fn with_sandbox(mut self, evidence: serde_json::Value) -> Self {
        self.sandbox = Some(evidence);
        self
    }
}

/// Something a model can call.
#[async_trait]
pub trait Tool: Send + Sync {
    fn spec(&self) -> ToolSpec;
    /// True when running the call twice has the same effect as once, so a
    /// call interrupted by a crash may simply be run again.
    fn idempotent(&self) -> bool;
    /// Whether the call needs the run's workspace directory (file and shell tools).
    fn needs_workspace(&self) -> bool {
        false
    }
    /// Hints about the tool's effects (MCP `annotations`: `readOnlyHint`, `destructiveHint`, …).
    fn annotations(&self) -> Option<serde_json::Value> {
        None
    }
    /// How calls of this tool are fenced, for tools whose results do not say
    /// it themselves (`shell` does): recorded with every result.
    fn fence(&self) -> serde_json::Value {
        serde_json::json!({"adapter": "in-process", "mode": "none", "network": false})
    }
    async fn call(&self, args: serde_json::Value, ctx: ToolContext) -> ToolOutput;
}

/// A registered tool with its compiled argument validator.
struct Entry {
    tool: Arc<dyn Tool>,
    source: agentd_core::ToolSource,
    validator: OnceLock<Result<jsonschema::Validator, String>>,
}

/// The tools available to an agent, by name.
#[derive(Clone, Default)]
pub struct ToolRegistry {
    tools: BTreeMap<String, Arc<Entry>>,
}

/// Why arguments were refused.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("invalid arguments for {tool}: {field}: {message}")]
pub struct InvalidArguments {
    pub tool: String,
    /// JSON pointer of the offending field (`/path`), or `/` for the whole object.
    pub field: String,
    pub message: String,
}

/// Deepest JSON Schema accepted from tenants and MCP servers.
pub const MAX_SCHEMA_DEPTH: usize = 32;
/// Most values (objects, arrays, scalars) one JSON Schema may hold.
pub const MAX_SCHEMA_NODES: usize = 10_000;

/// Refuses a schema nested or sized beyond the bounds above, without recursing.
pub fn check_schema_bounds(schema: &serde_json::Value) -> Result<(), String> {
    let (mut stack, mut nodes) = (vec![(schema, 1usize)], 0usize);
    while let Some((v, depth)) = stack.pop() {
        nodes += 1;
        if depth > MAX_SCHEMA_DEPTH || nodes > MAX_SCHEMA_NODES {
            return Err(format!(
                "the schema is too complex (at most {MAX_SCHEMA_DEPTH} levels and {MAX_SCHEMA_NODES} values)"
            ));
        }
        match v {
            serde_json::Value::Object(m) => stack.extend(m.values().map(|c| (c, depth + 1))),
            serde_json::Value::Array(a) => stack.extend(a.iter().map(|c| (c, depth + 1))),
            _ => {}
        }
    }
    Ok(())
}

/// Compiles a JSON Schema validator after checking its bounds.
pub fn compile_schema(schema: &serde_json::Value) -> Result<jsonschema::Validator, String> {
    check_schema_bounds(schema)?;
    jsonschema::validator_for(schema).map_err(|e| e.to_string())
}

/// Checks arguments against a JSON Schema (for tools whose schema comes
/// from elsewhere, such as MCP servers); the error names the field.
pub fn check_args(tool: &str, schema: &serde_json::Value, args: &serde_json::Value) -> Result<(), InvalidArguments> {
    let Ok(v) = compile_schema(schema) else { return Ok(()) };
    match v.iter_errors(args).next() {
        None => Ok(()),
        Some(err) => {
            let mut field = err.instance_path().to_string();
            if let jsonschema::error::ValidationErrorKind::Required { property } = err.kind() {
                field = format!("{field}/{}", property.as_str().unwrap_or_default());
            }
            if field.is_empty() {
                field = "/".into();
            }
            Err(InvalidArguments { tool: tool.into(), field, message: err.to_string() })
        }
    }
}

impl ToolRegistry {
    /// A registry with every builtin tool (each call brings its sandbox settings).
    pub fn builtin() -> Self {
        let mut r = Self::default();
        r.register(Arc::new(Echo));
        r.register(Arc::new(CurrentTime));
        r.register(Arc::new(fs::ReadFile));
        r.register(Arc::new(fs::WriteFile));
        r.register(Arc::new(fs::EditFile));
        r.register(Arc::new(fs::ListDir));
        r.register(Arc::new(fs::Glob));
        r.register(Arc::new(fs::Grep));
        r.register(Arc::new(shell::Shell));
        r.register(Arc::new(http_fetch::HttpFetch));
        for name in delegation::DELEGATION_TOOLS {
            r.register(Arc::new(delegation::Delegation(name)));
        }
        r
    }

    /// Adds the test-only tools (`test_append` writing to `file`, `test_sleep`).
    #[cfg(feature = "test-tools")]
    pub fn with_test_tools(mut self, file: std::path::PathBuf) -> Self {
        self.register(Arc::new(testing::AppendLine { path: file }));
        self.register(Arc::new(testing::Sleep));
        self
    }

    pub fn register(&mut self, tool: Arc<dyn Tool>) {
        self.register_as(tool, agentd_core::ToolSource::Builtin);
    }

    /// Registers a tool with its source (`builtin`, `mcp`, `skill`, `http`).
    pub fn register_as(&mut self, tool: Arc<dyn Tool>, source: agentd_core::ToolSource) {
        let entry = Entry { tool: tool.clone(), source, validator: OnceLock::new() };
        self.tools.insert(tool.spec().name, Arc::new(entry));
    }

    pub fn get(&self, name: &str) -> Option<Arc<dyn Tool>> {
        self.tools.get(name).map(|e| e.tool.clone())
    }

    /// Where a tool comes from.
    pub fn source(&self, name: &str) -> Option<agentd_core::ToolSource> {
        self.tools.get(name).map(|e| e.source)
    }

    pub fn specs(&self) -> Vec<ToolSpec> {
        self.tools.values().map(|e| e.tool.spec()).collect()
    }

    /// Checks arguments against the tool's JSON Schema, naming the first bad field.
    pub fn validate(&self, name: &str, args: &serde_json::Value) -> Result<(), InvalidArguments> {
        let Some(e) = self.tools.get(name) else { return Ok(()) };
        let v = e.validator.get_or_init(|| compile_schema(&e.tool.spec().input_schema));
        let bad = |field: String, message: String| InvalidArguments { tool: name.into(), field, message };
        match v {
            Err(schema_err) => Err(bad("/".into(), format!("the tool's schema is invalid: {schema_err}"))),
            Ok(v) => match v.iter_errors(args).next() {
                None => Ok(()),
                Some(err) => {
                    let mut field = err.instance_path().to_string();
                    // A missing required property is reported on its parent: name it.
                    if let jsonschema::error::ValidationErrorKind::Required { property } = err.kind() {
                        field = format!("{field}/{}", property.as_str().unwrap_or_default());
                    }
                    if field.is_empty() {
                        field = "/".into();
                    }
                    Err(bad(field, err.to_string()))
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_names_the_field() {
        let r = ToolRegistry::builtin();
        assert!(r.validate("read_file", &serde_json::json!({"path": "a"})).is_ok());
        let e = r.validate("read_file", &serde_json::json!({"path": 5})).unwrap_err();
        assert_eq!(e.field, "/path");
        let e = r.validate("read_file", &serde_json::json!({})).unwrap_err();
        assert_eq!(e.field, "/path", "{e}");
        let e = r.validate("shell", &serde_json::json!({"command": "x", "argv": ["y"]})).unwrap_err();
        assert_eq!(e.field, "/");
        assert!(r.validate("echo", &serde_json::json!({"anything": [1]})).is_ok());
    }
}
