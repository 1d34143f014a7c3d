//! Command-line definitions.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

#[derive(Parser)]
#[command(name = "agentd", version, about = "A self-hosted, durable agent runtime")]
pub(crate) struct Cli {
    /// More log output (or set AGENTD_LOG, e.g. AGENTD_LOG=debug).
    #[arg(short, long, global = true)]
    pub verbose: bool,
    #[command(subcommand)]
    pub cmd: Cmd,
}

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

#[derive(Subcommand)]
pub(crate) enum Cmd {
    /// Run the HTTP server.
    Serve {
        /// Address to listen on (loopback by default).
        #[arg(long, env = "AGENTD_LISTEN")]
        listen: Option<String>,
        /// Require an API key on /v1: `on`, or `off`. Default: on once a key
        /// exists; off while none does and the address is loopback.
        #[arg(long, env = "AGENTD_AUTH", value_parser = ["on", "off"])]
        auth: Option<String>,
        #[command(flatten)]
        local: LocalOpts,
    },
    /// Manage API keys: on the database directly (found like `serve` finds it), or against a server with --url.
    Keys {
        #[command(subcommand)]
        cmd: KeysCmd,
    },
    /// Manage the master key tenants' secrets are sealed with.
    Secrets {
        #[command(subcommand)]
        cmd: SecretsCmd,
    },
    /// Run an agent once and stream its answer (in-process, or against a server with --url).
    Run {
        input: String,
        /// A model profile or provider/model.
        #[arg(long)]
        model: Option<String>,
        /// Continue an existing session.
        #[arg(long)]
        session: Option<String>,
        /// The agent to run (default: `default`).
        #[arg(long)]
        agent: Option<String>,
        #[arg(long)]
        max_steps: Option<u32>,
        /// Run against this server instead of in-process.
        #[arg(long)]
        url: Option<String>,
        /// With --url: the API key to send (when the server has auth on).
        #[arg(long, env = "AGENTD_API_KEY", hide_env_values = true)]
        api_key: Option<String>,
        /// Print journal events to stderr as they happen.
        #[arg(long)]
        events: bool,
        #[command(flatten)]
        local: LocalOpts,
    },
    /// Follow a run's events as they happen.
    Tail {
        run_id: String,
        /// Start after this sequence number.
        #[arg(long, default_value_t = 0)]
        after: i64,
        #[command(flatten)]
        remote: RemoteOpts,
    },
    /// Tools: `agentd tool call NAME --args '{...}'` runs one without a model (against a server).
    Tool {
        #[command(subcommand)]
        cmd: ToolCmd,
    },
    /// A run and every run it delegated to, as a tree.
    Tree {
        run_id: String,
        #[command(flatten)]
        remote: RemoteOpts,
    },
    /// Add a user message to a running or waiting run (taken at its next step).
    Inject {
        run_id: String,
        input: String,
        #[command(flatten)]
        remote: RemoteOpts,
    },
    /// Agents: list, versions, export, import.
    Agents {
        #[command(subcommand)]
        cmd: AgentsCmd,
    },
    /// Teams: list, run, blackboard.
    Teams {
        #[command(subcommand)]
        cmd: TeamsCmd,
    },
    /// Tenant documents of a simple kind: `agentd docs list prompts`, `put prompts NAME --json …`.
    Docs {
        #[command(subcommand)]
        cmd: crate::commands::docs::DocsCmd,
    },
    /// List sessions.
    Sessions {
        #[arg(long, default_value_t = 20)]
        limit: u32,
        #[command(flatten)]
        remote: RemoteOpts,
    },
    /// List runs.
    Runs {
        #[arg(long)]
        session: Option<String>,
        #[arg(long, default_value_t = 20)]
        limit: u32,
        #[command(flatten)]
        remote: RemoteOpts,
    },
    /// List approvals (pending ones by default).
    Approvals {
        /// Only this run's.
        #[arg(long)]
        run: Option<String>,
        /// pending, approved, denied, expired, cancelled, or all.
        #[arg(long, default_value = "pending")]
        status: String,
        #[command(flatten)]
        remote: RemoteOpts,
    },
    /// Approve a pending tool call (or refuse it with --deny).
    Approve {
        id: String,
        /// Let identical requests pass for the rest of the session.
        #[arg(long)]
        for_session: bool,
        /// Refuse instead of approving.
        #[arg(long)]
        deny: bool,
        #[arg(long)]
        reason: Option<String>,
        /// Run the call with these (edited) JSON arguments instead.
        #[arg(long)]
        args: Option<String>,
        #[command(flatten)]
        remote: RemoteOpts,
    },
    /// Refuse a pending tool call; the model is told, with the reason.
    Deny {
        id: String,
        #[arg(long)]
        reason: Option<String>,
        #[command(flatten)]
        remote: RemoteOpts,
    },
    /// Check configuration, database and providers.
    Doctor {
        #[command(flatten)]
        local: LocalOpts,
    },
    /// Delete finished runs (and their events) older than a given age, and idle sessions with no runs left.
    Prune {
        /// Age such as 30d, 12h, 90m or 3600s.
        #[arg(long)]
        older_than: String,
        /// Only this organisation.
        #[arg(long)]
        org: Option<String>,
        #[command(flatten)]
        local: LocalOpts,
    },
    /// Measure the run loop against a mock model on loopback (a child process).
    Bench {
        /// throughput: runs/s and overhead per tool round; waiting: memory of N runs
        /// all waiting on a slow model; resume: time to get N interrupted runs going again;
        /// fanout: a parent spawning 100 children (spawn → wake, overhead per child) and
        /// 1,000 parents waiting on 10 children each (memory per waiting parent), and
        /// the API time of cancelling a tree of ~5,000 runs; limits: RSS under 48
        /// stalled downloads, the template worker's largest render and its cost.
        #[arg(long, default_value = "throughput")]
        scenario: String,
        /// Runs per concurrency level (or waiting / interrupted runs).
        #[arg(long, default_value_t = 200)]
        runs: usize,
        /// Tool rounds per run.
        #[arg(long, default_value_t = 5)]
        rounds: usize,
        /// Concurrency levels, comma separated (throughput).
        #[arg(long, default_value = "1,32", value_delimiter = ',')]
        concurrency: Vec<usize>,
        /// Think time the mock model adds to every answer, in ms.
        #[arg(long, default_value_t = 0)]
        mock_latency_ms: u64,
        /// PostgreSQL URL to bench against (a fresh temporary SQLite file otherwise);
        /// for `mcp`, the mcp-server-everything binary.
        #[arg(long)]
        database: Option<String>,
    },
    /// A mock OpenAI-compatible model for benchmarks and demos (loopback only).
    #[command(hide = true)]
    MockLlm {
        /// Tool rounds (echo) before the final answer.
        #[arg(long, default_value_t = 1)]
        rounds: usize,
        #[arg(long, default_value_t = 0)]
        latency_ms: u64,
        /// Also answer delegation scenarios: `FANOUT-PARENT` spawns this many
        /// `FANOUT-CHILD` runs (one echo round each) and collects them;
        /// `HOLD-PARENT` spawns as many `HOLD-CHILD` runs that answer after 10 minutes.
        #[arg(long, default_value_t = 0)]
        fanout: usize,
    },
}

/// Where `agentd keys` works: a server (`--url`, with `--api-key`) or the database.
#[derive(Args)]
pub(crate) struct KeyTarget {
    /// A server to ask instead of opening the database.
    #[arg(long)]
    pub url: Option<String>,
    /// With --url: the admin or operator key to ask with.
    #[arg(long, env = "AGENTD_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    #[command(flatten)]
    pub local: LocalOpts,
}

#[derive(Subcommand)]
pub(crate) enum AgentsCmd {
    /// Configured, file and tenant agents.
    List {
        #[command(flatten)]
        remote: RemoteOpts,
    },
    /// Every version of a tenant agent.
    Versions {
        name: String,
        #[command(flatten)]
        remote: RemoteOpts,
    },
    /// Print an agent as one portable JSON file (with its skills and template).
    Export {
        name: String,
        #[command(flatten)]
        remote: RemoteOpts,
    },
    /// Take an exported agent back.
    Import {
        file: std::path::PathBuf,
        /// Overwrite what exists (a new version of the agent).
        #[arg(long)]
        replace: bool,
        #[command(flatten)]
        remote: RemoteOpts,
    },
}

impl AgentsCmd {
    pub(crate) fn remote(&self) -> &RemoteOpts {
        match self {
            Self::List { remote }
            | Self::Versions { remote, .. }
            | Self::Export { remote, .. }
            | Self::Import { remote, .. } => remote,
        }
    }
}

#[derive(Subcommand)]
pub(crate) enum TeamsCmd {
    List {
        #[command(flatten)]
        remote: RemoteOpts,
    },
    /// Start a team run; prints its id (follow it with `agentd tail` or `agentd tree`).
    Run {
        name: String,
        input: String,
        #[command(flatten)]
        remote: RemoteOpts,
    },
    /// The team's blackboard.
    Board {
        name: String,
        #[command(flatten)]
        remote: RemoteOpts,
    },
}

impl TeamsCmd {
    pub(crate) fn remote(&self) -> &RemoteOpts {
        match self {
            Self::List { remote } | Self::Run { remote, .. } | Self::Board { remote, .. } => remote,
        }
    }
}

#[derive(Subcommand)]
pub(crate) enum KeysCmd {
    /// Make a key; it is printed alone on the last line (shown only this once).
    Create {
        /// operator, admin, member or viewer.
        #[arg(long)]
        role: String,
        /// The organisation (required except for operator keys).
        #[arg(long)]
        org: Option<String>,
        /// Fix the user (otherwise the key may act for any user via x-user-id).
        #[arg(long)]
        user: Option<String>,
        #[arg(long)]
        project: Option<String>,
        #[arg(long)]
        name: Option<String>,
        /// Lifetime such as 90d, 12h, 30m, 45s, or an RFC 3339 time.
        #[arg(long)]
        expires: Option<String>,
        #[command(flatten)]
        target: KeyTarget,
    },
    /// List keys (never their secrets).
    List {
        #[command(flatten)]
        target: KeyTarget,
    },
    /// Revoke a key: refused from the next request on.
    Revoke {
        id: String,
        #[command(flatten)]
        target: KeyTarget,
    },
}

#[derive(Subcommand)]
pub(crate) enum SecretsCmd {
    /// Re-seal every tenant's secrets under a new master key, in one
    /// transaction (stop every server of this database first).
    RotateKey {
        /// A file holding the new key (base64 of 32 bytes); a random one when absent.
        #[arg(long)]
        new_key_file: Option<std::path::PathBuf>,
        #[command(flatten)]
        local: LocalOpts,
    },
}

#[derive(Subcommand)]
pub(crate) enum ToolCmd {
    /// List the tools the server offers.
    List {
        #[command(flatten)]
        remote: RemoteOpts,
    },
    /// Call a tool directly with JSON arguments.
    Call {
        name: String,
        /// Arguments as a JSON object.
        #[arg(long, default_value = "{}")]
        args: String,
        /// Use this session's workspace (the tenant's scratch workspace otherwise).
        #[arg(long)]
        session: Option<String>,
        #[command(flatten)]
        remote: RemoteOpts,
    },
}

pub(crate) async fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.cmd {
        Cmd::Serve { listen, auth, local } => crate::commands::serve::serve(listen, auth, local).await,
        Cmd::Keys { cmd } => crate::commands::keys::run(cmd).await,
        Cmd::Secrets { cmd } => crate::commands::secrets::run(cmd).await,
        Cmd::Run { input, model, session, agent, max_steps, url, api_key, events, local } => {
            let req =
                agentd_runtime::CreateRun { input, session_id: session, model, max_steps, agent, ..Default::default() };
            match url {
                Some(url) => crate::commands::run::run_remote(&url, api_key.as_deref(), req, events).await,
                None => crate::commands::run::run_local(local, req, events).await,
            }
        }
        Cmd::Tool { cmd: ToolCmd::List { remote } } => crate::commands::tool::tool_list(&remote).await,
        Cmd::Tool { cmd: ToolCmd::Call { name, args, session, remote } } => {
            crate::commands::tool::tool_call(&remote, &name, &args, session).await
        }
        Cmd::Tail { run_id, after, remote } => crate::commands::tail::tail(&remote, &run_id, after).await,
        Cmd::Tree { run_id, remote } => crate::commands::tree::tree(&remote, &run_id).await,
        Cmd::Inject { run_id, input, remote } => crate::commands::tree::inject(&remote, &run_id, &input).await,
        Cmd::Agents { cmd } => crate::commands::tree::agents(cmd.remote(), &cmd).await,
        Cmd::Teams { cmd } => crate::commands::tree::teams(cmd.remote(), &cmd).await,
        Cmd::Docs { cmd } => crate::commands::docs::run(cmd).await,
        Cmd::Sessions { limit, remote } => {
            crate::commands::list::sessions(&remote, &format!("/v1/sessions?limit={limit}")).await
        }
        Cmd::Runs { session, limit, remote } => {
            let path = match session {
                Some(s) => format!("/v1/sessions/{s}/runs?limit={limit}"),
                None => format!("/v1/runs?limit={limit}"),
            };
            crate::commands::list::runs(&remote, &path).await
        }
        Cmd::Approvals { run, status, remote } => crate::commands::approvals::list(&remote, run, &status).await,
        Cmd::Approve { id, for_session, deny, reason, args, remote } => {
            let decision = match (deny, for_session) {
                (true, _) => "deny",
                (false, true) => "approve_for_session",
                (false, false) => "approve",
            };
            crate::commands::approvals::answer(&remote, &id, decision, reason, args).await
        }
        Cmd::Deny { id, reason, remote } => {
            crate::commands::approvals::answer(&remote, &id, "deny", reason, None).await
        }
        Cmd::Doctor { local } => crate::commands::doctor::doctor(local).await,
        Cmd::Prune { older_than, org, local } => crate::commands::prune::prune(local, &older_than, org).await,
        Cmd::Bench { scenario, runs, rounds, concurrency, mock_latency_ms, database } => {
            let opts = crate::commands::bench::BenchOpts { runs, rounds, concurrency, mock_latency_ms, database };
            crate::commands::bench::bench(&scenario, opts).await
        }
        Cmd::MockLlm { rounds, latency_ms, fanout } => {
            crate::commands::bench::mock_llm(rounds, latency_ms, fanout).await
        }
    }
}
