//! Command-line definitions.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::commands::keys::KeysCmd;
use crate::commands::secrets::SecretsCmd;
use crate::commands::tool::ToolCmd;
use crate::commands::tree::{AgentsCmd, TeamsCmd};
use crate::opts::{LocalOpts, RemoteOpts};

#[derive(Parser)]
#[command(name = "agentd", version, about = "A self-hosted, durable agent runtime")]
pub(crate) struct Cli {
    /// More log output (or set AGENTD_LOG, e.g. AGENTD_LOG=debug).
    #[arg(short, long, global = true)]
    pub verbose: bool,
    #[command(subcommand)]
    pub cmd: Cmd,
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
                (true, _) => agentd_core::Decision::Deny,
                (false, true) => agentd_core::Decision::ApproveForSession,
                (false, false) => agentd_core::Decision::Approve,
            };
            crate::commands::approvals::answer(&remote, &id, decision, reason, args).await
        }
        Cmd::Deny { id, reason, remote } => {
            crate::commands::approvals::answer(&remote, &id, agentd_core::Decision::Deny, reason, None).await
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
