//! Building a node from config and flags: the store, then the runtime.

use std::fs::File;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use agentd_runtime::{AgentSettings, Config, ModelRegistry, Runtime};
use agentd_store::{SqliteStore, Store};
use agentd_tools::ToolRegistry;
use anyhow::{Context, bail};

use crate::opts::LocalOpts;

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

/// The key tenants' secrets are sealed with: `AGENTD_SECRET_KEY` (base64 of
/// 32 bytes; every node of a cluster needs the same), else `secret.key` in
/// the data dir, created (mode 0600) on first use.
pub(crate) fn master_key(data_dir: &std::path::Path) -> anyhow::Result<agentd_runtime::secrets::MasterKey> {
    use agentd_runtime::secrets::MasterKey;
    if let Ok(v) = std::env::var("AGENTD_SECRET_KEY")
        && !v.trim().is_empty()
    {
        return MasterKey::from_base64(&v).map_err(|e| anyhow::anyhow!("AGENTD_SECRET_KEY: {e}"));
    }
    let path = data_dir.join("secret.key");
    if let Ok(text) = std::fs::read_to_string(&path) {
        return MasterKey::from_base64(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()));
    }
    std::fs::create_dir_all(data_dir).with_context(|| format!("cannot create data dir {}", data_dir.display()))?;
    let key = MasterKey::generate().map_err(|e| anyhow::anyhow!(e))?;
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    f.write_all(key.to_base64().as_bytes()).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(key)
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
    let mut agents = AgentSettings::all_from_config(&s.config);
    let agent_dirs: Vec<PathBuf> = s.config.agents_dirs.iter().map(|d| s.config.resolve_path(d)).collect();
    let (from_files, bad) = agentd_runtime::agent_files::load_agent_dirs(&agent_dirs, &agents[0]);
    for e in &bad {
        tracing::warn!(path = %e.path, reason = %e.reason, "agent not loaded");
    }
    for a in from_files {
        if agents.iter().any(|c| c.name == a.name) {
            tracing::warn!(agent = %a.name, "an AGENT.md names an agent the config defines; the config wins");
        } else {
            agents.push(a);
        }
    }
    let rt = Runtime::new(agentd_runtime::RuntimeParts {
        store: o.store.clone(),
        models,
        tools,
        agents,
        node_id: o.node_id.clone(),
        scheduler: s.config.scheduler.clone(),
        workspaces: s.data_dir.join("workspaces"),
        limits: s.config.limits.clone(),
        secret_key: Some(master_key(&s.data_dir)?),
        model_titles: s.config.sessions.model_titles,
    });
    let dirs: Vec<PathBuf> = s.config.skills_dirs.iter().map(|d| s.config.resolve_path(d)).collect();
    rt.load_skill_dirs(&dirs);
    for (name, cfg) in s.config.all_mcp_servers()? {
        rt.mcp().add(None, &name, cfg).map_err(|e| anyhow::anyhow!("MCP server {name}: {e}"))?;
    }
    Ok(rt)
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
