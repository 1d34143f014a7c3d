//! MCP servers tenants add over the API: stored like their other documents,
//! so they survive a restart and every node that serves the tenant (the one
//! resuming its run included) connects them too.

use agentd_core::ErrorCode;
use std::collections::{BTreeMap, HashMap};
use std::sync::{LazyLock, Mutex};
use std::time::{Duration, Instant};

use agentd_core::Tenant;
use agentd_mcp::{McpError, McpServerConfig, ServerInfo};
use agentd_store::StoreError;

use crate::{Runtime, RuntimeError};

const KIND: agentd_store::DocKind = agentd_store::DocKind::MCP_SERVER;
/// How often a node re-reads a tenant's stored servers (changes made elsewhere).
const SYNC_EVERY: Duration = Duration::from_secs(1);

static SYNCED: LazyLock<Mutex<HashMap<Tenant, Instant>>> = LazyLock::new(Default::default);

fn mcp_error(e: McpError) -> RuntimeError {
    match e {
        McpError::Exists(_) => RuntimeError::exists(ErrorCode::McpServerExists, e.to_string()),
        McpError::NotFound(_) => RuntimeError::not_found(ErrorCode::McpServerNotFound, e.to_string()),
        McpError::Invalid(_) => RuntimeError::bad(ErrorCode::InvalidRequest, e.to_string()),
    }
}

/// Environment variables and HTTP headers of a server whose values are
/// tenant secrets: variable or header name → secret name.
#[derive(Debug, Clone, Default)]
pub struct SecretRefs {
    pub env: BTreeMap<String, String>,
    pub headers: BTreeMap<String, String>,
}

fn stored(doc: &serde_json::Value) -> Option<(String, McpServerConfig, SecretRefs)> {
    let name = doc["name"].as_str()?.to_string();
    let config = serde_json::from_value(doc["config"].clone()).ok()?;
    let refs = SecretRefs {
        env: serde_json::from_value(doc["secret_env"].clone()).unwrap_or_default(),
        headers: serde_json::from_value(doc["secret_headers"].clone()).unwrap_or_default(),
    };
    Some((name, config, refs))
}

impl Runtime {
    /// The config with the secrets its environment names opened, for connecting now.
    async fn opened(
        &self,
        t: &Tenant,
        config: &McpServerConfig,
        refs: &SecretRefs,
    ) -> Result<McpServerConfig, RuntimeError> {
        let mut c = config.clone();
        for (var, secret) in &refs.env {
            c.env.insert(var.clone(), self.secret_for(t, &format!("env {var}"), secret).await?);
        }
        for (h, secret) in &refs.headers {
            c.headers.insert(h.clone(), self.secret_for(t, &format!("header {h}"), secret).await?);
        }
        Ok(c)
    }

    /// Connects a stored server here, its secrets opened now; one that is
    /// connected already (a concurrent sync) counts as connected.
    async fn connect_stored(
        &self,
        t: &Tenant,
        name: &str,
        config: &McpServerConfig,
        refs: &SecretRefs,
    ) -> Result<(), String> {
        let c = self.opened(t, config, refs).await.map_err(|e| e.to_string())?;
        match self.catalog.mcp().add(Some(t.clone()), name, c) {
            Ok(()) | Err(McpError::Exists(_)) => Ok(()),
            Err(e) => Err(e.to_string()),
        }
    }

    /// Adds a server for the tenant: stored first, then connected here.
    /// `refs` names tenant secrets whose values become environment variables
    /// or HTTP headers of the server (opened at each connect, never stored with it).
    pub async fn add_mcp_server(
        &self,
        t: &Tenant,
        name: &str,
        mut config: McpServerConfig,
        mut refs: SecretRefs,
    ) -> Result<Option<ServerInfo>, RuntimeError> {
        self.sync_mcp(t, true).await?;
        if self.catalog.mcp().list(t).iter().any(|i| i.name == name) {
            return Err(mcp_error(McpError::Exists(name.into())));
        }
        // Every value given inline is sealed as a secret (which are credentials
        // no name can tell); the stored server references them.
        for (which, plain, into) in
            [("mcp-env", &mut config.env, &mut refs.env), ("mcp-header", &mut config.headers, &mut refs.headers)]
        {
            for (k, v) in std::mem::take(plain) {
                let secret = self.seal_inline(t, (which, name, &k), &v).await?;
                into.insert(k, secret);
            }
        }
        // A secret that does not open is refused now, not at some later connect.
        let live = self.opened(t, &config, &refs).await?;
        let doc =
            serde_json::json!({"name": name, "config": config, "secret_env": refs.env, "secret_headers": refs.headers});
        match self.store.create_doc(t, KIND, name, &doc).await {
            Ok(()) => {}
            Err(StoreError::AlreadyExists) => return Err(mcp_error(McpError::Exists(name.into()))),
            Err(e) => return Err(e.into()),
        }
        match self.catalog.mcp().add(Some(t.clone()), name, live) {
            // Exists: a concurrent sync connected it from the stored copy already.
            Ok(()) | Err(McpError::Exists(_)) => Ok(self.catalog.mcp().list(t).into_iter().find(|i| i.name == name)),
            Err(e) => {
                let _ = self.store.delete_doc(t, KIND, name).await;
                Err(mcp_error(e))
            }
        }
    }

    /// Removes one of the tenant's servers, stored and connected.
    pub async fn remove_mcp_server(&self, t: &Tenant, name: &str) -> Result<(), RuntimeError> {
        let was_stored = self.store.delete_doc(t, KIND, name).await?;
        let was_live = self.catalog.mcp().remove(t, name).is_ok();
        if was_stored || was_live { Ok(()) } else { Err(mcp_error(McpError::NotFound(name.into()))) }
    }

    /// The servers the tenant can see, after picking up changes made on other nodes.
    pub async fn list_mcp_servers(&self, t: &Tenant) -> Result<Vec<ServerInfo>, RuntimeError> {
        self.sync_mcp(t, false).await?;
        Ok(self.catalog.mcp().list(t))
    }

    /// Reconnects one of the servers the tenant can see.
    pub async fn restart_mcp_server(&self, t: &Tenant, name: &str) -> Result<Option<ServerInfo>, RuntimeError> {
        self.sync_mcp(t, false).await?;
        self.catalog.mcp().restart(t, name).map_err(mcp_error)?;
        Ok(self.catalog.mcp().list(t).into_iter().find(|i| i.name == name))
    }

    /// Makes this node's connections match the tenant's stored servers (at
    /// most once a second unless `now`).
    pub(crate) async fn sync_mcp(&self, t: &Tenant, now: bool) -> Result<(), StoreError> {
        {
            let mut seen = SYNCED.lock().unwrap_or_else(|e| e.into_inner());
            if !now && seen.get(t).is_some_and(|at| at.elapsed() < SYNC_EVERY) {
                return Ok(());
            }
            if seen.len() > 10_000 {
                seen.clear();
            }
            seen.insert(t.clone(), Instant::now());
        }
        let docs = self.store.list_docs(t, KIND).await?;
        let wanted: HashMap<String, (McpServerConfig, SecretRefs)> =
            docs.iter().filter_map(stored).map(|(n, c, s)| (n, (c, s))).collect();
        let live: Vec<String> =
            self.catalog.mcp().list(t).into_iter().filter(|i| i.scope == "tenant").map(|i| i.name).collect();
        for (name, (config, refs)) in &wanted {
            if live.contains(name) {
                continue;
            }
            if let Err(e) = self.connect_stored(t, name, config, refs).await {
                tracing::warn!(org = %t.org, server = %name, error = %e, "stored MCP server not connected");
            }
        }
        for name in live.iter().filter(|n| !wanted.contains_key(*n)) {
            let _ = self.catalog.mcp().remove(t, name);
        }
        Ok(())
    }

    /// Connects every tenant's stored servers (at start).
    pub async fn load_mcp_servers(&self) -> Result<usize, StoreError> {
        let all = self.store.list_docs_all(KIND).await?;
        let mut n = 0;
        for (t, doc) in &all {
            let Some((name, config, refs)) = stored(doc) else { continue };
            match self.connect_stored(t, &name, &config, &refs).await {
                Ok(()) => n += 1,
                Err(e) => tracing::warn!(org = %t.org, server = %name, error = %e, "stored MCP server not connected"),
            }
            SYNCED.lock().unwrap_or_else(|e| e.into_inner()).insert(t.clone(), Instant::now());
        }
        Ok(n)
    }
}

/// A server as a tenant's key sees it: the operator's own servers (scope
/// `config`) show their name, state and tools, never their command, address,
/// process or what their errors say (paths, internal addresses).
pub fn as_seen_by_tenant(mut info: ServerInfo) -> ServerInfo {
    if info.scope != "config" {
        return info;
    }
    info.config = McpServerConfig::default();
    info.pid = None;
    let hide = |s: &mut agentd_mcp::ServerState| match s {
        agentd_mcp::ServerState::Restarting { error } | agentd_mcp::ServerState::Failed { error } => {
            *error = "the server is unavailable".into();
        }
        _ => {}
    };
    hide(&mut info.state);
    for e in &mut info.events {
        if let Some(m) = e.as_object_mut() {
            m.remove("error");
        }
    }
    info
}
