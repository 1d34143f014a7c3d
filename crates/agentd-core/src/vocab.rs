//! Small vocabularies with one spelling each: the string a value has in
//! the API, the journal and the database is written once, in `as_str`.

/// Defines a string-valued enum whose one spelling is its `as_str` (serde
/// goes through it too).
macro_rules! spelled {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $v:ident => $s:literal),* $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
        #[serde(try_from = "String", into = "&'static str")]
        pub enum $name { $($(#[$vm])* $v),* }

        impl $name {
            /// Every value.
            pub const ALL: &'static [$name] = &[$($name::$v),*];

            /// The one spelling (API, journal, database).
            pub fn as_str(self) -> &'static str {
                match self { $($name::$v => $s),* }
            }

            /// The value with this spelling, if any.
            pub fn parse(s: &str) -> Option<Self> {
                Self::ALL.iter().copied().find(|v| v.as_str() == s)
            }
        }

        impl From<$name> for &'static str {
            fn from(v: $name) -> Self {
                v.as_str()
            }
        }

        impl TryFrom<String> for $name {
            type Error = String;
            fn try_from(s: String) -> Result<Self, String> {
                Self::parse(&s).ok_or_else(|| format!("unknown {} {s:?}", stringify!($name)))
            }
        }

        #[cfg(feature = "schema")]
        impl schemars::JsonSchema for $name {
            fn schema_name() -> std::borrow::Cow<'static, str> {
                stringify!($name).into()
            }

            fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
                let all: Vec<&str> = Self::ALL.iter().map(|v| v.as_str()).collect();
                schemars::json_schema!({ "type": "string", "enum": all })
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

spelled!(
    /// How a tool call ended, as its `tool.result` says.
    ToolStatus {
        Ok => "ok",
        Error => "error",
        /// A crash cut the call off and it is not idempotent: its outcome is unknown.
        Interrupted => "interrupted",
        /// The policy or a person refused it.
        Denied => "denied",
        /// A loop guard stopped it.
        Blocked => "blocked",
    }
);

spelled!(
    /// Where a tool comes from.
    ToolSource {
        Builtin => "builtin",
        /// An MCP server's tool (`mcp__<server>__<tool>`).
        Mcp => "mcp",
        /// A tenant's HTTP tool.
        Http => "http",
        /// `load_skill`.
        Skill => "skill",
    }
);

spelled!(
    /// What an API key may do. Each role may do everything the ones below it may.
    KeyRole {
        /// Every organisation (named with `x-org-id`), server-wide settings, keys of any org.
        Operator => "operator",
        /// Its org's keys, secrets, providers, limits, MCP servers and HTTP tools, plus what a member does.
        Admin => "admin",
        /// Runs, sessions, approvals, agents, skills and templates in its org.
        Member => "member",
        /// Reads only.
        Viewer => "viewer",
    }
);

impl KeyRole {
    fn rank(self) -> u8 {
        match self {
            KeyRole::Operator => 3,
            KeyRole::Admin => 2,
            KeyRole::Member => 1,
            KeyRole::Viewer => 0,
        }
    }

    /// Whether this role may do what `needed` may.
    pub fn at_least(self, needed: KeyRole) -> bool {
        self.rank() >= needed.rank()
    }
}

spelled!(
    /// Why a tool refused to run at all (the first word of its error text).
    Refusal {
        /// The shell needs its sandbox and cannot have it (no bubblewrap, or it failed to start).
        SandboxUnavailable => "sandbox_unavailable",
    }
);

spelled!(
    /// Every error code the API answers with (`{"error": {"code": ...}}`).
    ErrorCode {
        // The request itself.
        InvalidRequest => "invalid_request",
        InvalidJson => "invalid_json",
        InvalidBody => "invalid_body",
        InvalidQuery => "invalid_query",
        InvalidScope => "invalid_scope",
        InvalidStatus => "invalid_status",
        InvalidLastEventId => "invalid_last_event_id",
        PayloadTooLarge => "payload_too_large",
        RouteNotFound => "route_not_found",
        MethodNotAllowed => "method_not_allowed",
        InternalError => "internal_error",
        NotFound => "not_found",
        // Starting runs.
        InputRequired => "input_required",
        InvalidMaxSteps => "invalid_max_steps",
        ModelRequired => "model_required",
        UnknownProvider => "unknown_provider",
        UnknownModel => "unknown_model",
        ImagesNotSupported => "images_not_supported",
        InvalidImage => "invalid_image",
        // Templates.
        InvalidTemplate => "invalid_template",
        TemplateTooLarge => "template_too_large",
        TemplateTooComplex => "template_too_complex",
        TemplateError => "template_error",
        MissingVariable => "missing_variable",
        // Tools, skills, agents, approvals.
        InvalidArguments => "invalid_arguments",
        InvalidDecision => "invalid_decision",
        InvalidPolicy => "invalid_policy",
        InvalidSkill => "invalid_skill",
        WorkspaceUnavailable => "workspace_unavailable",
        InvalidPath => "invalid_path",
        FileTooLarge => "file_too_large",
        PermissionDenied => "permission_denied",
        ApprovalRequired => "approval_required",
        // Who is asking.
        Unauthorized => "unauthorized",
        Forbidden => "forbidden",
        RateLimited => "rate_limited",
        KeyNotFound => "key_not_found",
        SecretNotFound => "secret_not_found",
        SecretUnfit => "secret_unfit",
        UnsupportedMediaType => "unsupported_media_type",
        CrossSiteRequest => "cross_site_request",
        HostNotAllowed => "host_not_allowed",
        InlineCredential => "inline_credential",
        QuotaExceeded => "quota_exceeded",
        LimitExceeded => "limit_exceeded",
        // Things that are not there.
        SessionNotFound => "session_not_found",
        RunNotFound => "run_not_found",
        ApprovalNotFound => "approval_not_found",
        TemplateNotFound => "template_not_found",
        ToolNotFound => "tool_not_found",
        SkillNotFound => "skill_not_found",
        AgentNotFound => "agent_not_found",
        TeamNotFound => "team_not_found",
        McpServerNotFound => "mcp_server_not_found",
        ProviderNotFound => "provider_not_found",
        ModelProfileNotFound => "model_profile_not_found",
        FileNotFound => "file_not_found",
        // Conflicts with the current state.
        AlreadyExists => "already_exists",
        TemplateExists => "template_exists",
        ToolExists => "tool_exists",
        SkillExists => "skill_exists",
        AgentExists => "agent_exists",
        TeamExists => "team_exists",
        McpServerExists => "mcp_server_exists",
        ProviderExists => "provider_exists",
        ModelProfileExists => "model_profile_exists",
        FileExists => "file_exists",
        RunAlreadyFinished => "run_already_finished",
        ApprovalNotPending => "approval_not_pending",
        SessionBusy => "session_busy",
        ToolUnavailable => "tool_unavailable",
    }
);
