//! Building a node (store + runtime) from config and flags; in-process runs; prune.

use std::fs::File;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use agentd_core::Tenant;
use agentd_providers::Delta;
use agentd_runtime::{AgentSettings, Config, CreateRun, Live, ModelRegistry, Runtime};
use agentd_store::{PruneScope, SqliteStore, Store};
use agentd_tools::ToolRegistry;
use anyhow::{Context, bail};

use crate::cli::LocalOpts;

/// Loaded configuration with flags and environment applied.
pub(crate) struct Setup {
    pub config: Config,
    pub data_dir: PathBuf,
    pub database: Option<String>,
    pub node_id: Option<String>,
    #[cfg(feature = "test-tools")]
    pub test_tools: Option<PathBuf>,
}

/// Reads the config file and applies flags/env (flags/env > file > defaults).
pub(crate) fn setup(local: &LocalOpts) -> anyhow::Result<Setup> {
    let config = Config::load(local.config.as_deref())?;
    let data_dir =
        local.data_dir.clone().or_else(|| config.data_dir.clone()).unwrap_or_else(|| PathBuf::from("./data"));
    let database = local.database.clone().or_else(|| config.database.clone()).filter(|d| !d.is_empty());
    let node_id = local.node_id.clone().or_else(|| config.node_id.clone()).filter(|n| !n.is_empty());
    // Secret values to mask everywhere: secret-looking environment variables,
    // the providers' key variables and the ones named in `[secrets] env`.
    let mut names = config.secrets.env.clone();
    names.extend(config.providers.values().filter_map(|p| p.api_key_env.clone()));
    let mut values = agentd_core::redact::secrets_from_env(&names);
    values.extend(database.clone());
    agentd_core::redact::set_secrets(values);
    agentd_tools::set_secret_hosts(config.secrets.http_hosts.clone());
    agentd_tools::egress::configure(&config.egress).map_err(|e| anyhow::anyhow!("[egress]: {e}"))?;
    // Sandboxes never see agentd's own config, .env or data, whatever else they see.
    let env_file = config.env_file.as_ref().map(|f| config.base_dir.join(f));
    agentd_tools::sandbox::prepare();
    agentd_tools::sandbox::hide(config.path.iter().cloned().chain(env_file).chain([data_dir.clone()]));
    agentd_mcp::set_sandbox_read_paths(config.mcp.sandbox_read_paths.iter().map(|p| config.base_dir.join(p)).collect());
    Ok(Setup {
        config,
        data_dir,
        database,
        node_id,
        #[cfg(feature = "test-tools")]
        test_tools: local.enable_test_tools.clone(),
    })
}

/// A store plus what keeps it exclusively ours.
pub(crate) struct Opened {
    pub store: Arc<dyn Store>,
    /// Held while this process owns the SQLite data dir.
    pub _lock: Option<File>,
    pub node_id: String,
    pub description: String,
}

/// Opens the configured database. With `exclusive`, an SQLite data dir is
/// locked so two processes never execute runs from one file.
pub(crate) async fn open_store(s: &Setup, exclusive: bool) -> anyhow::Result<Opened> {
    if let Some(url) = &s.database {
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            bail!("unsupported database URL (expected postgres://…); leave it unset for SQLite");
        }
        let store = agentd_store::PgStore::connect(url).await.context("cannot open the PostgreSQL database")?;
        // A fresh id per process unless configured: a restarted node then
        // picks its old runs up when their leases expire.
        let node_id = s.node_id.clone().unwrap_or_else(|| agentd_core::new_id("node"));
        return Ok(Opened { store: Arc::new(store), _lock: None, node_id, description: redact_url(url) });
    }
    std::fs::create_dir_all(&s.data_dir).with_context(|| format!("cannot create data dir {}", s.data_dir.display()))?;
    let lock = if exclusive {
        let path = s.data_dir.join("agentd.lock");
        let f = File::create(&path).with_context(|| format!("cannot create {}", path.display()))?;
        if f.try_lock().is_err() {
            bail!(
                "data dir {} is in use by another agentd process; talk to it with --url, or pick another --data-dir",
                s.data_dir.display()
            );
        }
        Some(f)
    } else {
        None
    };
    let db = s.data_dir.join("agentd.db");
    let store = SqliteStore::open(&db).await.with_context(|| format!("cannot open database {}", db.display()))?;
    let node_id = match &s.node_id {
        Some(n) => n.clone(),
        None => persistent_node_id(&s.data_dir)?,
    };
    Ok(Opened { store: Arc::new(store), _lock: lock, node_id, description: db.display().to_string() })
}

/// A database URL without its password, for logs.
fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let creds = &url[scheme + 3..at];
            let user = creds.split(':').next().unwrap_or("");
            format!("{}{}@{}", &url[..scheme + 3], user, &url[at + 1..])
        }
        _ => url.to_string(),
    }
}

/// The node id kept in the data dir, so a restarted node resumes its own runs at once.
fn persistent_node_id(dir: &std::path::Path) -> anyhow::Result<String> {
    let path = dir.join("node-id");
    if let Ok(s) = std::fs::read_to_string(&path) {
        let s = s.trim();
        if !s.is_empty() {
            return Ok(s.to_string());
        }
    }
    let id = agentd_core::new_id("node");
    std::fs::write(&path, &id).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(id)
}

/// A runtime over an opened store (not started).
pub(crate) fn build_runtime(s: &Setup, o: &Opened) -> anyhow::Result<Arc<Runtime>> {
    let models = ModelRegistry::from_config(&s.config)?;
    let tools = ToolRegistry::builtin();
    #[cfg(feature = "test-tools")]
    let tools = match &s.test_tools {
        Some(file) => tools.with_test_tools(file.clone()),
        None => tools,
    };
    let rt = Runtime::new(
        o.store.clone(),
        models,
        tools,
        AgentSettings::all_from_config(&s.config),
        o.node_id.clone(),
        s.config.scheduler.clone(),
        s.data_dir.join("workspaces"),
    );
    let dirs: Vec<PathBuf> = s.config.skills_dirs.iter().map(|d| s.config.resolve_path(d)).collect();
    rt.load_skill_dirs(&dirs);
    for (name, cfg) in s.config.all_mcp_servers()? {
        rt.mcp.add(None, &name, cfg).map_err(|e| anyhow::anyhow!("MCP server {name}: {e}"))?;
    }
    Ok(rt)
}

/// `agentd run` without a server: the runtime lives in this process.
pub(crate) async fn run_local(local: LocalOpts, req: CreateRun, show_events: bool) -> anyhow::Result<ExitCode> {
    let s = setup(&local)?;
    let opened = open_store(&s, true).await?;
    let rt = build_runtime(&s, &opened)?;
    rt.start().await?;
    let t = Tenant::default();
    let created = rt.create_run(&t, req, true).await.map_err(|e| anyhow::anyhow!(e))?;
    let run = created.run;
    let mut rx = created.live.context("no live channel")?;
    let mut printer = Printer::default();
    loop {
        let item = tokio::select! {
            r = rx.recv() => r,
            _ = tokio::signal::ctrl_c() => {
                let _ = rt.cancel(&t, &run.id, Some("interrupted from the terminal".into())).await;
                eprintln!("\ncancelled");
                rt.shutdown(Duration::from_secs(2)).await;
                return Ok(ExitCode::from(130));
            }
        };
        match item {
            Ok(Live::Delta(d)) => printer.delta(&d),
            Ok(Live::Event(ev)) => {
                if show_events {
                    eprintln!("[{}] {}", ev.seq, ev.type_name);
                }
                if ev.is_terminal() {
                    break;
                }
            }
            Ok(Live::Changed(_)) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
            Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                // The run's task ended: finished, or paused for a person.
                let now = rt.get_run(&t, &run.id).await.map_err(|e| anyhow::anyhow!(e))?;
                if now.status.is_terminal() {
                    break;
                }
                // Listen again before answering, so nothing of the resumed run is missed.
                rx = rt.hub.open(&run.id);
                if now.status == agentd_core::RunStatus::WaitingApproval && !answer_locally(&rt, &t, &run.id).await? {
                    eprintln!(
                        "\nrun {} is waiting for approval; start `agentd serve` on this data dir and answer with \
                         `agentd approvals` / `agentd approve ID`",
                        run.id
                    );
                    rt.shutdown(Duration::from_secs(2)).await;
                    return Ok(ExitCode::from(3));
                }
            }
        }
    }
    rt.shutdown(Duration::from_secs(2)).await;
    let run = rt.get_run(&t, &run.id).await.map_err(|e| anyhow::anyhow!(e))?;
    Ok(printer.finish(
        run.status.as_str(),
        run.output.as_deref(),
        run.error.as_ref().map(|e| (e.code.as_str(), e.message.as_str())),
    ))
}

/// Parses ages like `30d`, `12h`, `90m`, `3600s`.
pub(crate) fn parse_age(s: &str) -> anyhow::Result<Duration> {
    let s = s.trim();
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = num.parse().with_context(|| format!("invalid age {s:?}: expected e.g. 30d, 12h, 90m, 3600s"))?;
    let secs = match unit {
        "d" => n * 86_400,
        "h" => n * 3_600,
        "m" => n * 60,
        "s" | "" => n,
        _ => bail!("invalid age unit in {s:?}: use d, h, m or s"),
    };
    Ok(Duration::from_secs(secs))
}

/// `agentd prune --older-than AGE`.
pub(crate) async fn prune(local: LocalOpts, older_than: &str, org: Option<String>) -> anyhow::Result<ExitCode> {
    let age = parse_age(older_than)?;
    let s = setup(&local)?;
    let opened = open_store(&s, false).await?;
    let cutoff = agentd_store::ago(age);
    let stats = opened.store.prune(&cutoff, &PruneScope { org, except_orgs: vec![] }).await?;
    println!(
        "pruned {} runs, {} events, {} sessions, {} messages, {} direct tool calls finished before {cutoff}",
        stats.runs, stats.events, stats.sessions, stats.messages, stats.tool_calls
    );
    Ok(ExitCode::SUCCESS)
}

/// Asks at the terminal for each pending approval of the run; false when
/// nobody can be asked (no terminal, or stdin closed).
async fn answer_locally(rt: &Arc<Runtime>, t: &Tenant, run_id: &str) -> anyhow::Result<bool> {
    if !crate::approvals::interactive() {
        return Ok(false);
    }
    let f = agentd_store::ApprovalFilter {
        run_id: Some(run_id.to_string()),
        status: Some("pending".into()),
        ..Default::default()
    };
    let pending = rt
        .list_approvals(t, &f, &agentd_store::Page { after: None, limit: 100 })
        .await
        .map_err(|e| anyhow::anyhow!(e))?;
    for a in pending {
        let shown = serde_json::to_value(&a)?;
        let Some((decision, reason)) = crate::approvals::prompt(&shown).await else { return Ok(false) };
        rt.answer_approval(t, &a.id, &decision, reason, None).await.map_err(|e| anyhow::anyhow!(e))?;
    }
    Ok(true)
}

/// Prints a streamed answer: text to stdout, reasoning dimmed to stderr.
#[derive(Default)]
pub(crate) struct Printer {
    printed: bool,
}

impl Printer {
    pub(crate) fn delta(&mut self, d: &Delta) {
        match d {
            Delta::Text(t) => {
                print!("{t}");
                self.printed = true;
                let _ = std::io::stdout().flush();
            }
            Delta::Thinking(t) => eprint!("\x1b[2m{t}\x1b[0m"),
        }
    }

    /// Ends the output; returns the exit code for the run's final status.
    pub(crate) fn finish(&self, status: &str, output: Option<&str>, error: Option<(&str, &str)>) -> ExitCode {
        match status {
            "completed" => {
                if !self.printed {
                    print!("{}", output.unwrap_or_default());
                }
                println!();
                ExitCode::SUCCESS
            }
            _ => {
                if self.printed {
                    println!();
                }
                let (code, msg) = error.unwrap_or(("unknown", "no error recorded"));
                eprintln!("run {status}: {code}: {msg}");
                ExitCode::FAILURE
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_lose_their_password() {
        assert_eq!(redact_url("postgres://u:secret@h:5/db"), "postgres://u@h:5/db");
        assert_eq!(redact_url("postgres://h/db"), "postgres://h/db");
    }

    #[test]
    fn ages_parse() {
        assert_eq!(parse_age("30d").unwrap(), Duration::from_secs(30 * 86_400));
        assert_eq!(parse_age("12h").unwrap(), Duration::from_secs(12 * 3_600));
        assert_eq!(parse_age("90").unwrap(), Duration::from_secs(90));
        assert!(parse_age("3w").is_err());
        assert!(parse_age("d").is_err());
    }
}
