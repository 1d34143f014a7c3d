//! Where a domain type and its API shape differ, the conversion is written
//! here field by field: a change to either side is a compile error, never a
//! 500 at run time. (Types that are the same on both sides are defined once,
//! in `agentd-core`, and need none.)

use std::collections::BTreeMap;

use agentd_api as api;
use agentd_core::{HeaderSpec, ProviderKind};
use agentd_mcp::{McpServerConfig, ServerInfo, ServerState};
use agentd_runtime::SecretRefs;
use agentd_runtime::tenant_models::TenantProvider;

/// An MCP server as the API lists it.
pub(crate) fn mcp_info(i: ServerInfo) -> api::McpServerInfo {
    let (state, error) = match i.state {
        ServerState::Starting => ("starting", None),
        ServerState::Ready => ("ready", None),
        ServerState::Restarting { error } => ("restarting", Some(error)),
        ServerState::Failed { error } => ("failed", Some(error)),
    };
    api::McpServerInfo {
        name: i.name,
        scope: i.scope.to_string(),
        state: state.to_string(),
        error,
        tools: i.tools,
        events: i.events,
        pid: i.pid,
        config: mcp_config_out(i.config),
    }
}

fn plain(map: BTreeMap<String, String>) -> BTreeMap<String, HeaderSpec> {
    map.into_iter().map(|(k, v)| (k, HeaderSpec::Value(v))).collect()
}

fn mcp_config_out(c: McpServerConfig) -> api::McpServerConfig {
    api::McpServerConfig {
        command: c.command,
        args: c.args,
        env: plain(c.env),
        url: c.url,
        headers: plain(c.headers),
        timeout_secs: c.timeout_secs,
        sandbox: c.sandbox,
        network: c.network,
        tool_hints: c.tool_hints,
    }
}

/// An MCP server entry from the API: plain values, and apart from them the
/// variables and headers that name one of the tenant's secrets (the
/// runtime opens those at each connect).
pub(crate) fn mcp_config_in(c: api::McpServerConfig) -> (McpServerConfig, SecretRefs) {
    let mut refs = SecretRefs::default();
    let split = |map: BTreeMap<String, HeaderSpec>, secrets: &mut BTreeMap<String, String>| {
        let mut values = BTreeMap::new();
        for (k, v) in map {
            match v {
                HeaderSpec::Value(v) => {
                    values.insert(k, v);
                }
                HeaderSpec::Secret { secret } => {
                    secrets.insert(k, secret);
                }
            }
        }
        values
    };
    let env = split(c.env, &mut refs.env);
    let headers = split(c.headers, &mut refs.headers);
    let config = McpServerConfig {
        command: c.command,
        args: c.args,
        env,
        url: c.url,
        headers,
        timeout_secs: c.timeout_secs,
        sandbox: c.sandbox,
        network: c.network,
        tool_hints: c.tool_hints,
    };
    (config, refs)
}

/// A provider a tenant adds, as the runtime keeps it.
pub(crate) fn provider_in(b: api::CreateProvider) -> TenantProvider {
    let kind = match b.kind {
        api::TenantProviderKind::Openai => ProviderKind::Openai,
        api::TenantProviderKind::Anthropic => ProviderKind::Anthropic,
        api::TenantProviderKind::Ollama => ProviderKind::Ollama,
    };
    TenantProvider {
        name: b.name,
        kind,
        base_url: b.base_url,
        api_key: b.api_key,
        headers: b.headers,
        timeout_secs: b.timeout_secs,
        stream: b.stream,
        max_tokens_field: b.max_tokens_field,
        think: b.think,
        max_retries: b.max_retries,
        retry_base_ms: b.retry_base_ms,
        created_at: String::new(),
    }
}
