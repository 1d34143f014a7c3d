//! Domain types shared by every agentd crate: ids, tenant scope, messages,
//! run status and the journal's event enum. No I/O lives here.

#[macro_use]
pub mod vocab;
pub mod access;
pub mod approval;
pub mod event;
pub mod event_type;
pub mod ids;
pub mod message;
pub mod redact;
pub mod run;

pub use access::{ApiKey, AuditEntry};
pub use approval::{Approval, ApprovalChange, ApprovalStatus, Decision, Resolution};
pub use event::{EventKind, StoredEvent};
pub use event_type::EventType;
pub use ids::{Tenant, new_id};
pub use message::{ContentPart, Message, Role, ToolCall, ToolSpec, Usage};
pub use run::{Ceiling, HeaderSpec, HttpToolDef, Run, RunError, RunStatus, SecretRef, Session, TeamMember, TeamSpec};
pub use vocab::{ErrorCode, KeyRole, Refusal, ToolSource, ToolStatus};
