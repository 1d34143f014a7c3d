//! The tools that hand work to child runs: `delegate` (wait for the answer),
//! `spawn` (start and go on) and `wait_children` (collect spawned children).
//! Only their specs live here: the run loop carries them out, because a call
//! creates runs and pauses its own run, which no tool can do from inside.

use agentd_core::ToolSpec;
use async_trait::async_trait;
use serde_json::json;

use crate::{Tool, ToolContext, ToolOutput};

/// Names of the tools the run loop carries out itself.
pub const DELEGATION_TOOLS: [&str; 5] = ["delegate", "spawn", "wait_children", "blackboard_read", "blackboard_write"];

/// The blackboard tools, offered only to the members and lead of a team run.
pub const BLACKBOARD_TOOLS: [&str; 2] = ["blackboard_read", "blackboard_write"];

fn child_schema() -> serde_json::Value {
    json!({
        "type": "object",
        "properties": {
            "task": {"type": "string", "minLength": 1, "maxLength": 100000,
                     "description": "What the child should do; it sees only this and `context`."},
            "agent": {"type": "string", "description": "The agent to run (default: this run's agent)."},
            "model": {"type": "string", "description": "A model profile for the child (default: the agent's)."},
            "tools": {"type": "array", "items": {"type": "string"}, "maxItems": 256,
                      "description": "Tools the child may use: a subset of yours."},
            "context": {"type": "string", "maxLength": 100000, "description": "Background the child needs."}
        },
        "required": ["task"],
        "additionalProperties": false
    })
}

/// One of the delegation tools, by name.
pub struct Delegation(pub &'static str);

#[async_trait]
impl Tool for Delegation {
    fn spec(&self) -> ToolSpec {
        let (description, schema) = match self.0 {
            "delegate" => (
                "Hands a task to a child agent run and waits for its answer, which comes back as this call's \
                 result. Several delegate calls in one turn run in parallel.",
                child_schema(),
            ),
            "spawn" => (
                "Starts a child agent run on a task and returns its run id at once; collect its answer later \
                 with wait_children.",
                child_schema(),
            ),
            "blackboard_read" => (
                "Reads your team's blackboard: every entry (author, kind, text) in the order written.",
                json!({"type": "object", "properties": {}, "additionalProperties": false}),
            ),
            "blackboard_write" => (
                "Adds an entry to your team's blackboard for the other members and the lead.",
                json!({
                    "type": "object",
                    "properties": {
                        "kind": {"type": "string", "enum": ["task", "proposal", "evidence", "decision", "note"]},
                        "content": {"type": "string", "minLength": 1, "maxLength": 100000}
                    },
                    "required": ["kind", "content"],
                    "additionalProperties": false
                }),
            ),
            _ => (
                "Waits until the child runs started with spawn have ended and returns their answers in one \
                 message (all uncollected children, or the run ids given).",
                json!({
                    "type": "object",
                    "properties": {"run_ids": {"type": "array", "items": {"type": "string"}, "maxItems": 1000}},
                    "additionalProperties": false
                }),
            ),
        };
        ToolSpec { name: self.0.into(), description: description.into(), input_schema: schema }
    }

    /// Carried out from the journal: a crash never creates a child twice.
    fn idempotent(&self) -> bool {
        true
    }

    async fn call(&self, _args: serde_json::Value, _ctx: ToolContext) -> ToolOutput {
        ToolOutput::error(format!("{} is carried out by an agent run; it cannot be called directly", self.0))
    }
}
