//! Domain types shared by every agentd crate: ids, tenant scope, messages,
//! run status and the journal's event enum. No I/O lives here.

#[macro_use]
pub mod vocab;
pub mod access;
pub mod approval;
pub mod catalog;
pub mod event;
pub mod event_type;
pub mod ids;
pub mod message;
pub mod policy;
pub mod redact;
pub mod run;
pub mod text;

pub use access::{ApiKey, AuditEntry};
pub use approval::{Approval, ApprovalChange, ApprovalStatus, Decision, Resolution};
pub use catalog::{
    AGENT_EXPORT_FORMAT, AgentDef, AgentExport, AgentImported, AgentLimits, AgentListing, AgentSource, AgentVersion,
    BlackboardEntry, DirectCall, Document, FileEntry, FileHit, FileKind, ModelPrice, ModelProfile, Named, OrgLimits,
    ProviderKind, TeamDef, TeamStrategy, Template, UsageReport, UsageRow,
};
pub use event::{EventKind, StoredEvent};
pub use event_type::EventType;
pub use ids::{Tenant, new_id};
pub use message::{ContentPart, ContextTokens, Message, ModelContext, Role, ToolCall, ToolSpec, Usage};
pub use run::{
    Ceiling, HeaderSpec, HttpToolDef, IfBusy, Run, RunError, RunStatus, SecretRef, Session, SessionMessage, TeamMember,
    TeamSpec,
};
pub use vocab::{ErrorCode, KeyRole, Refusal, ToolSource, ToolStatus};
