//! The simple tenant document kinds, each declared once: its fields (as
//! stored and as the API shows them), its check and its paths. A new kind
//! is a struct and its two impls here, and a line in [`routes`].

use agentd_core::ErrorCode;
use agentd_runtime::RuntimeError;
use agentd_runtime::documents::{DocKind, DocumentKind};
use agentd_runtime::templates::Template;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::documents::{Resource, rows};
use crate::routes::Route;

/// Every simple kind's routes.
pub(crate) fn routes() -> Vec<Route> {
    [rows::<Template>(), rows::<Prompt>()].into_iter().flatten().collect()
}

/// Prompt templates: the kind and its check live in the runtime (it renders them).
impl Resource for Template {
    const PATH: &'static str = "/v1/prompt-templates";
    const ITEM: &'static str = "/v1/prompt-templates/{name}";
}

fn bad(message: String) -> RuntimeError {
    RuntimeError::bad(ErrorCode::InvalidRequest, message)
}

/// A saved prompt: text a person keeps to insert into the composer.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub(crate) struct Prompt {
    /// Its text (1 byte to 64 KiB).
    pub text: String,
    /// Words to find it by (at most 32, each 1-64 characters; repeats dropped).
    #[serde(default)]
    pub tags: Vec<String>,
}

impl DocumentKind for Prompt {
    const KIND: DocKind = DocKind::new("prompt");
    const NOUN: &'static str = "saved prompt";

    fn check(&mut self) -> Result<(), RuntimeError> {
        if self.text.trim().is_empty() || self.text.len() > 64 * 1024 {
            return Err(bad("`text` must be 1 byte to 64 KiB and not only white space".into()));
        }
        // Bounded before anything else looks at them.
        if self.tags.len() > 32 {
            return Err(bad("at most 32 tags".into()));
        }
        let mut tags: Vec<String> = vec![];
        for tag in self.tags.drain(..) {
            let tag = tag.trim().to_string();
            if tag.is_empty() || tag.chars().count() > 64 || tag.chars().any(char::is_control) {
                return Err(bad(format!("a tag is 1-64 characters without control characters: {tag:?}")));
            }
            if !tags.contains(&tag) {
                tags.push(tag);
            }
        }
        self.tags = tags;
        Ok(())
    }
}

impl Resource for Prompt {
    const PATH: &'static str = "/v1/prompts";
    const ITEM: &'static str = "/v1/prompts/{name}";
}
