//! The options commands share: where the local database and config are,
//! and how to reach a running server.

use std::path::PathBuf;

use clap::Args;

/// Where the local database and config are.
#[derive(Args, Clone)]
pub(crate) struct LocalOpts {
    /// Data directory holding the SQLite database.
    #[arg(long, env = "AGENTD_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Config file (default: ./agentd.toml when present).
    #[arg(long, env = "AGENTD_CONFIG")]
    pub config: Option<PathBuf>,
    /// PostgreSQL URL (postgres://…); SQLite under the data dir when absent.
    #[arg(long, env = "DATABASE_URL")]
    pub database: Option<String>,
    /// This node's name in leases and run events.
    #[arg(long, env = "AGENTD_NODE_ID")]
    pub node_id: Option<String>,
    /// Register the test-only tools (`test_append` writes to FILE, `test_sleep`);
    /// only in builds with the `test-tools` feature.
    #[cfg(feature = "test-tools")]
    #[arg(long, env = "AGENTD_TEST_TOOLS_FILE", hide = true)]
    pub enable_test_tools: Option<PathBuf>,
}

/// How to reach a running server.
#[derive(Args, Clone)]
pub(crate) struct RemoteOpts {
    /// Server URL.
    #[arg(long, env = "AGENTD_URL", default_value = "http://127.0.0.1:7700")]
    pub url: String,
    /// Tenant scope sent as x-org-id / x-user-id / x-project-id.
    #[arg(long, env = "AGENTD_ORG")]
    pub org: Option<String>,
    #[arg(long, env = "AGENTD_USER")]
    pub user: Option<String>,
    #[arg(long, env = "AGENTD_PROJECT")]
    pub project: Option<String>,
    /// API key sent as `Authorization: Bearer` (when the server has auth on).
    #[arg(long, env = "AGENTD_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
}
