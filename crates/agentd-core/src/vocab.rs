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
