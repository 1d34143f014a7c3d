//! MCP client on the official SDK (rmcp): one shared connection per server
//! for the whole process, connected and supervised in the background
//! (`starting` → `ready`, reconnect with backoff, `failed` after repeated
//! failures), with the server's tools exposed as `mcp__<server>__<tool>`.

mod config;
mod tool;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use agentd_core::Tenant;
use rmcp::model::Tool as McpToolDef;
use rmcp::service::{NotificationContext, RoleClient};
use rmcp::{ClientHandler, Peer, ServiceExt};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

pub use config::{McpError, McpServerConfig, ServerInfo, ServerState, valid_server_name};
pub use tool::McpTool;

/// A live connection: the peer to send requests through and its tools.
pub(crate) struct Conn {
    pub peer: Peer<RoleClient>,
    pub tools: Vec<McpToolDef>,
    pub pid: Option<u32>,
}

/// One supervised server.
pub(crate) struct Server {
    pub name: String,
    pub owner: Option<Tenant>,
    pub config: McpServerConfig,
    pub state: Mutex<ServerState>,
    /// Recent state changes, for the API.
    pub history: Mutex<std::collections::VecDeque<serde_json::Value>>,
    pub conn: RwLock<Option<Arc<Conn>>>,
    restart: Notify,
    refresh: Arc<Notify>,
    stop: CancellationToken,
}

impl Server {
    fn set_state(&self, s: ServerState) {
        let mut event = serde_json::to_value(&s).unwrap_or_default();
        event["at"] = serde_json::json!(chrono_now());
        let mut h = self.history.lock().unwrap_or_else(|e| e.into_inner());
        if h.len() >= 20 {
            h.pop_front();
        }
        h.push_back(event);
        *self.state.lock().unwrap_or_else(|e| e.into_inner()) = s;
    }

    pub(crate) fn state(&self) -> ServerState {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub(crate) fn conn(&self) -> Option<Arc<Conn>> {
        self.conn.read().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// Hands `notifications/tools/list_changed` to the supervisor.
#[derive(Clone)]
struct Handler {
    refresh: Arc<Notify>,
}

impl ClientHandler for Handler {
    fn on_tool_list_changed(&self, _context: NotificationContext<RoleClient>) -> impl Future<Output = ()> + Send + '_ {
        self.refresh.notify_one();
        std::future::ready(())
    }
}

/// Every MCP server of this process. Servers from config are shared by all
/// tenants; servers added over the API belong to the tenant that added them.
#[derive(Default)]
pub struct McpManager {
    servers: RwLock<Servers>,
}

/// Directories sandboxed servers must not see (agentd's data dir); one per process.
fn hidden() -> &'static RwLock<Vec<std::path::PathBuf>> {
    static H: std::sync::OnceLock<RwLock<Vec<std::path::PathBuf>>> = std::sync::OnceLock::new();
    H.get_or_init(|| RwLock::new(vec![]))
}

/// Directories every sandboxed server may read besides the system ones
/// (`[mcp] sandbox_read_paths`: where the operator installs servers).
fn read_paths() -> &'static RwLock<Vec<std::path::PathBuf>> {
    static P: std::sync::OnceLock<RwLock<Vec<std::path::PathBuf>>> = std::sync::OnceLock::new();
    P.get_or_init(|| RwLock::new(vec![]))
}

/// Sets the directories sandboxed servers may read besides the system ones.
pub fn set_sandbox_read_paths(paths: Vec<std::path::PathBuf>) {
    *read_paths().write().unwrap_or_else(|e| e.into_inner()) = paths;
}

/// MCP servers one organisation may add.
const MAX_SERVERS_PER_ORG: usize = 16;
/// Processes one sandboxed server may hold.
const SERVER_MAX_PROCESSES: u64 = 256;
/// Address space of each sandboxed server process.
const SERVER_MEMORY_BYTES: u64 = 4 << 30;
/// Largest file a sandboxed server may write.
const SERVER_FILE_BYTES: u64 = 1 << 30;
/// PATH inside a tenant server's clean environment.
const CLEAN_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// Servers by (owning tenant, or `None` for shared ones; name).
type Servers = HashMap<(Option<Tenant>, String), Arc<Server>>;

/// Consecutive failed connection attempts before a server is `failed`.
const FAILURE_BUDGET: u32 = 5;

impl McpManager {
    fn map(&self) -> std::sync::RwLockReadGuard<'_, Servers> {
        self.servers.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Directories sandboxed stdio servers must not see.
    pub fn hide_from_sandbox(&self, dirs: Vec<std::path::PathBuf>) {
        *hidden().write().unwrap_or_else(|e| e.into_inner()) = dirs;
    }

    /// Adds a server and starts connecting in the background. Stdio servers
    /// a tenant adds always run sandboxed.
    pub fn add(&self, owner: Option<Tenant>, name: &str, mut config: McpServerConfig) -> Result<(), McpError> {
        if let Some(t) = owner.as_ref().filter(|_| config.command.is_some()) {
            config.sandbox = true;
            // A tenant's server gets a network only where the operator allows it.
            config.network &= agentd_tools::egress::mcp_network_allowed(&t.org);
        }
        if !valid_server_name(name) {
            return Err(McpError::Invalid("names are 1-64 characters of [A-Za-z0-9_-]".into()));
        }
        config.validate().map_err(McpError::Invalid)?;
        let mut map = self.servers.write().unwrap_or_else(|e| e.into_inner());
        if let Some(t) = &owner
            && map.keys().filter(|(o, _)| o.as_ref().is_some_and(|o| o.org == t.org)).count() >= MAX_SERVERS_PER_ORG
        {
            return Err(McpError::Invalid(format!(
                "an organisation may run at most {MAX_SERVERS_PER_ORG} MCP servers"
            )));
        }
        // A tenant's name may not shadow a shared one (tool names would clash).
        if map.contains_key(&(owner.clone(), name.to_string())) || map.contains_key(&(None, name.to_string())) {
            return Err(McpError::Exists(name.into()));
        }
        let server = Arc::new(Server {
            name: name.into(),
            owner: owner.clone(),
            config,
            state: Mutex::new(ServerState::Starting),
            history: Mutex::new([serde_json::json!({"state": "starting", "at": chrono_now()})].into()),
            conn: RwLock::new(None),
            restart: Notify::new(),
            refresh: Arc::new(Notify::new()),
            stop: CancellationToken::new(),
        });
        map.insert((owner, name.into()), server.clone());
        tokio::spawn(supervise(server));
        Ok(())
    }

    /// Servers the tenant can see: shared ones and its own.
    pub fn list(&self, t: &Tenant) -> Vec<ServerInfo> {
        let mut out: Vec<ServerInfo> = self
            .map()
            .values()
            .filter(|s| s.owner.as_ref().is_none_or(|o| o == t))
            .map(|s| ServerInfo {
                name: s.name.clone(),
                scope: if s.owner.is_some() { "tenant" } else { "config" },
                state: s.state(),
                tools: s.conn().map_or(0, |c| c.tools.len()),
                events: s.history.lock().unwrap_or_else(|e| e.into_inner()).iter().cloned().collect(),
                pid: s.conn().and_then(|c| c.pid),
                config: redacted(&s.config),
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    fn find(&self, t: &Tenant, name: &str) -> Option<Arc<Server>> {
        let map = self.map();
        map.get(&(Some(t.clone()), name.to_string())).or_else(|| map.get(&(None, name.to_string()))).cloned()
    }

    /// Removes a tenant's own server (shared ones come from config).
    pub fn remove(&self, t: &Tenant, name: &str) -> Result<(), McpError> {
        let mut map = self.servers.write().unwrap_or_else(|e| e.into_inner());
        match map.remove(&(Some(t.clone()), name.to_string())) {
            Some(s) => {
                s.stop.cancel();
                Ok(())
            }
            None => Err(McpError::NotFound(name.into())),
        }
    }

    /// Drops the connection and connects again (also after `failed`).
    pub fn restart(&self, t: &Tenant, name: &str) -> Result<(), McpError> {
        let s = self.find(t, name).ok_or_else(|| McpError::NotFound(name.into()))?;
        s.restart.notify_one();
        Ok(())
    }

    /// The tools of every server the tenant can use, ready or not (a call to
    /// a server that is not ready fails fast with a clear message).
    pub fn tools_for(&self, t: &Tenant) -> Vec<Arc<McpTool>> {
        let mut out = vec![];
        for s in self.map().values().filter(|s| s.owner.as_ref().is_none_or(|o| o == t)) {
            if let Some(c) = s.conn() {
                for def in &c.tools {
                    out.push(Arc::new(McpTool::new(s.clone(), def.clone())));
                }
            }
        }
        out
    }

    /// Stops every server (closing their connections and child processes).
    pub fn shutdown(&self) {
        for s in self.map().values() {
            s.stop.cancel();
        }
    }
}

/// Seconds since the epoch with milliseconds, for state-change times.
fn chrono_now() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

/// Header values are shown as their names only (they may hold tokens).
fn redacted(c: &McpServerConfig) -> McpServerConfig {
    let mut c = c.clone();
    for v in c.headers.values_mut() {
        *v = "<redacted>".into();
    }
    for v in c.env.values_mut() {
        *v = "<redacted>".into();
    }
    c
}

type Service = rmcp::service::RunningService<RoleClient, Handler>;

/// A live service, its child's pid, and the fence that must outlive the child.
type Connected = (Service, Option<u32>, Option<agentd_tools::sandbox::FenceGuard>);

async fn connect(s: &Server) -> Result<Connected, String> {
    let handler = Handler { refresh: s.refresh.clone() };
    if let Some(cmd) = &s.config.command {
        let tenant = s.owner.is_some();
        let mut guard = None;
        let c = if s.config.sandbox {
            let mut visible: Vec<std::path::PathBuf> = read_paths().read().unwrap_or_else(|e| e.into_inner()).clone();
            if !tenant {
                // The operator's own server: its program and files stay visible.
                for arg in std::iter::once(cmd).chain(s.config.args.iter()) {
                    let p = std::path::Path::new(arg);
                    if p.is_absolute()
                        && let Some(dir) = p.canonicalize().ok().and_then(|c| c.parent().map(|d| d.to_path_buf()))
                    {
                        visible.push(dir);
                    }
                }
            }
            // Inside the sandbox a missing program only shows as a closed pipe: check first,
            // against what the sandbox will see.
            let sees = |p: &std::path::Path| {
                agentd_tools::sandbox::SYSTEM_DIRS.iter().any(|d| p.starts_with(d))
                    || visible.iter().any(|d| p.starts_with(d))
            };
            let found = if cmd.contains('/') {
                let p = std::path::Path::new(cmd);
                p.is_file() && sees(p)
            } else {
                let path = if tenant { Some(CLEAN_PATH.into()) } else { std::env::var_os("PATH") };
                path.is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(cmd).is_file() && sees(&d)))
            };
            if !found {
                return Err(format!(
                    "cannot start {cmd}: no such program inside the sandbox (the operator can make a directory \
                     visible with [mcp] sandbox_read_paths)"
                ));
            }
            let Some(bwrap) = agentd_tools::find_bwrap() else {
                return Err("sandbox_unavailable: this server runs sandboxed and bubblewrap is not installed".into());
            };
            let mut c = tokio::process::Command::new(bwrap);
            let spec = agentd_tools::sandbox::FenceSpec {
                writable: None,
                read_only: visible,
                network: s.config.network,
                max_processes: SERVER_MAX_PROCESSES,
                // Hidden last, so no bind can uncover them.
                hidden: hidden().read().unwrap_or_else(|e| e.into_inner()).clone(),
            };
            let (fence, g) = agentd_tools::sandbox::build(&mut c, &spec);
            guard = Some(g);
            // Memory and file size bounded like a shell command's; processes by
            // the cgroup (RLIMIT_NPROC, shared by every process of agentd's uid, only without one).
            let mut limits = vec![(libc::RLIMIT_AS, SERVER_MEMORY_BYTES), (libc::RLIMIT_FSIZE, SERVER_FILE_BYTES)];
            if fence.pids != "cgroup" {
                limits.push((libc::RLIMIT_NPROC, SERVER_MAX_PROCESSES));
            }
            agentd_tools::sandbox::set_rlimits(&mut c, limits);
            // The server's variables are set by bwrap inside the sandbox, never on
            // bwrap itself (LD_PRELOAD and the like would run on the host).
            if tenant {
                c.arg("--clearenv");
                for (k, v) in [("PATH", CLEAN_PATH), ("HOME", "/tmp"), ("LANG", "C.UTF-8")] {
                    c.args(["--setenv", k, v]);
                }
            }
            for (k, v) in &s.config.env {
                c.arg("--setenv").arg(k).arg(v);
            }
            c.arg("--").arg(cmd);
            c
        } else {
            tokio::process::Command::new(cmd)
        };
        let sandboxed = s.config.sandbox;
        let c = rmcp::transport::ConfigureCommandExt::configure(c, |c| {
            if tenant {
                // bwrap itself runs with a fixed, clean environment.
                c.env_clear().env("PATH", CLEAN_PATH).env("LANG", "C.UTF-8");
            }
            if !sandboxed {
                c.envs(&s.config.env);
            }
            c.args(&s.config.args).stderr(std::process::Stdio::null());
            // The server must not outlive agentd, even after `kill -9`.
            // SAFETY: prctl is async-signal-safe and only touches the child.
            #[cfg(target_os = "linux")]
            unsafe {
                c.pre_exec(|| {
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                    Ok(())
                });
            }
        });
        let transport = rmcp::transport::TokioChildProcess::new(c).map_err(|e| format!("cannot start {cmd}: {e}"))?;
        if let Some(g) = guard.as_mut() {
            g.spawned();
        }
        let pid = transport.id();
        handler.serve(transport).await.map(|s| (s, pid, guard)).map_err(|e| format!("initialize failed: {e}"))
    } else {
        let url = s.config.url.clone().unwrap_or_default();
        let mut cfg =
            rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig::with_uri(url.clone());
        for (k, v) in &s.config.headers {
            let (Ok(k), Ok(v)) = (k.parse(), v.parse()) else { return Err(format!("invalid header {k}")) };
            cfg.custom_headers.insert(k, v);
        }
        let transport = match &s.owner {
            // A tenant's server is reached through the egress guard, pinned to checked addresses.
            Some(t) => {
                let parsed = reqwest::Url::parse(&url).map_err(|e| format!("invalid URL: {e}"))?;
                let client = agentd_tools::egress::pinned_client(&t.org, &parsed).await.map_err(|e| e.to_string())?;
                rmcp::transport::StreamableHttpClientTransport::with_client(client, cfg)
            }
            None => rmcp::transport::StreamableHttpClientTransport::from_config(cfg),
        };
        handler.serve(transport).await.map(|s| (s, None, None)).map_err(|e| format!("initialize failed: {e}"))
    }
}

/// Aborts a task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Keeps one server connected: connect, list tools, refresh them on
/// `list_changed`, reconnect with backoff when the connection ends.
async fn supervise(s: Arc<Server>) {
    let mut failures = 0u32;
    loop {
        if s.stop.is_cancelled() {
            return;
        }
        let service = tokio::select! {
            r = connect(&s) => r,
            _ = s.stop.cancelled() => return,
        };
        let error = match service {
            Ok((service, pid, _fence)) => {
                let peer = service.peer().clone();
                // agentd keeps the tool list itself and re-lists on list_changed:
                // the SDK's response cache would only hand back a stale list.
                let mut no_cache = rmcp::ClientCacheConfig::default();
                no_cache.enabled = false;
                peer.set_response_cache_config(no_cache).await;
                match peer.list_all_tools().await {
                    Ok(tools) => {
                        failures = 0;
                        *s.conn.write().unwrap_or_else(|e| e.into_inner()) =
                            Some(Arc::new(Conn { peer: peer.clone(), tools, pid }));
                        s.set_state(ServerState::Ready);
                        tracing::info!(server = %s.name, "MCP server ready");
                        // Newer servers send list_changed only to a subscription;
                        // older ones to the handler. Listen on both paths.
                        let listener = {
                            let (peer, refresh) = (peer.clone(), s.refresh.clone());
                            tokio::spawn(async move {
                                let filter = rmcp::model::SubscriptionFilter::builder().tools_list_changed().build();
                                if let Ok(mut sub) = peer.listen(filter).await {
                                    while let Ok(Some(_)) = sub.next().await {
                                        refresh.notify_one();
                                    }
                                }
                            })
                        };
                        let _listener = AbortOnDrop(listener);
                        let ct = service.cancellation_token();
                        let waiting = service.waiting();
                        tokio::pin!(waiting);
                        loop {
                            tokio::select! {
                                _ = &mut waiting => break "the connection closed".to_string(),
                                _ = s.refresh.notified() => {
                                    if let Ok(tools) = peer.list_all_tools().await {
                                        *s.conn.write().unwrap_or_else(|e| e.into_inner()) =
                                            Some(Arc::new(Conn { peer: peer.clone(), tools, pid }));
                                    }
                                }
                                _ = s.restart.notified() => { ct.cancel(); break "restart requested".to_string() }
                                _ = s.stop.cancelled() => { ct.cancel(); *s.conn.write().unwrap_or_else(|e| e.into_inner()) = None; return }
                            }
                        }
                    }
                    Err(e) => {
                        failures += 1;
                        format!("tools/list failed: {e}")
                    }
                }
            }
            Err(e) => {
                failures += 1;
                e
            }
        };
        *s.conn.write().unwrap_or_else(|e| e.into_inner()) = None;
        tracing::warn!(server = %s.name, error = %error, failures, "MCP server not connected");
        if failures >= FAILURE_BUDGET {
            s.set_state(ServerState::Failed { error });
            // Wait for an explicit restart.
            tokio::select! {
                _ = s.restart.notified() => failures = 0,
                _ = s.stop.cancelled() => return,
            }
        } else {
            s.set_state(ServerState::Restarting { error });
            let backoff = Duration::from_millis(200 * 2u64.pow(failures.min(6)));
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = s.restart.notified() => failures = 0,
                _ = s.stop.cancelled() => return,
            }
        }
        s.set_state(ServerState::Starting);
    }
}

/// Times `n` calls of one tool straight through the SDK (no agentd in
/// between), for comparing agentd's per-call overhead.
pub async fn raw_sdk_calls(
    config: &McpServerConfig,
    tool: &str,
    args: serde_json::Value,
    n: usize,
) -> Result<Vec<Duration>, String> {
    let s = Server {
        name: "raw".into(),
        owner: None,
        config: config.clone(),
        state: Mutex::new(ServerState::Starting),
        history: Mutex::new(Default::default()),
        conn: RwLock::new(None),
        restart: Notify::new(),
        refresh: Arc::new(Notify::new()),
        stop: CancellationToken::new(),
    };
    let (service, _, _fence) = connect(&s).await?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let mut params = rmcp::model::CallToolRequestParams::new(tool.to_string());
        params.arguments = args.as_object().cloned();
        let t0 = std::time::Instant::now();
        service.peer().call_tool_once(params).await.map_err(|e| e.to_string())?;
        out.push(t0.elapsed());
    }
    let _ = service.cancel().await;
    Ok(out)
}
