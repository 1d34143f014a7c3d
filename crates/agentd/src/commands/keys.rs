//! `agentd keys create | list | revoke`: on the database directly (so the
//! first key exists before any server), or against a server with `--url`.

use std::process::ExitCode;

use agentd_api::{ApiKey, ApiKeyCreated, CreateApiKey, KeyRole, Page};
use anyhow::Context;

use crate::http::fetch;

use clap::{Args, Subcommand};

use crate::opts::LocalOpts;

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

pub(crate) async fn run(cmd: KeysCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        KeysCmd::Create { role, org, user, project, name, expires, target } => {
            let role = KeyRole::parse(&role).context("--role must be operator, admin, member or viewer")?;
            let expires_at = expires.as_deref().map(expiry).transpose()?;
            let req = CreateApiKey { name, role, org, user, project, expires_at };
            let made = match &target.url {
                Some(url) => {
                    fetch::<ApiKeyCreated>(
                        crate::http::keyed_client(target.api_key.as_deref())?.post(api(url, "")).json(&req),
                        url,
                    )
                    .await?
                }
                None => {
                    let rt = runtime(&target).await?;
                    let new = agentd_runtime::access::NewKey {
                        name: req.name.unwrap_or_default(),
                        role: req.role,
                        org: req.org,
                        user: req.user,
                        project: req.project,
                        expires_at: req.expires_at,
                    };
                    let (key, secret) = rt.create_key(None, None, new).await.map_err(|e| anyhow::anyhow!(e))?;
                    ApiKeyCreated { key, secret }
                }
            };
            eprintln!("{}", describe(&made.key));
            eprintln!("store this key now: only its hash is kept");
            println!("{}", made.secret);
        }
        KeysCmd::List { target } => {
            let keys = match &target.url {
                Some(url) => {
                    fetch::<Page<ApiKey>>(crate::http::keyed_client(target.api_key.as_deref())?.get(api(url, "")), url)
                        .await?
                        .data
                }
                None => runtime(&target).await?.list_keys(None).await.map_err(|e| anyhow::anyhow!(e))?,
            };
            for k in &keys {
                println!("{}", describe(k));
            }
        }
        KeysCmd::Revoke { id, target } => {
            let key = match &target.url {
                Some(url) => {
                    fetch::<ApiKey>(
                        crate::http::keyed_client(target.api_key.as_deref())?.delete(api(url, &format!("/{id}"))),
                        url,
                    )
                    .await?
                }
                None => runtime(&target).await?.revoke_key(None, &id).await.map_err(|e| anyhow::anyhow!(e))?,
            };
            println!("{}", describe(&key));
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn api(url: &str, rest: &str) -> String {
    format!("{}/v1/api-keys{rest}", url.trim_end_matches('/'))
}

/// The runtime over the database `serve` would use (nothing is started).
async fn runtime(t: &KeyTarget) -> anyhow::Result<std::sync::Arc<agentd_runtime::Runtime>> {
    let s = crate::setup::setup(&t.local)?;
    let opened = crate::setup::open_store(&s, false).await?;
    crate::setup::build_runtime(&s, &opened)
}

/// One line about a key.
fn describe(k: &ApiKey) -> String {
    let state = match (&k.revoked_at, &k.expires_at) {
        (Some(_), _) => "revoked".to_string(),
        (None, Some(t)) => format!("expires {t}"),
        (None, None) => "active".to_string(),
    };
    format!(
        "{}  {}…  {:<8} org={} user={} project={}  {state}  {}",
        k.id,
        k.prefix,
        k.role.as_str(),
        k.org.as_deref().unwrap_or("*"),
        k.user.as_deref().unwrap_or("*"),
        k.project.as_deref().unwrap_or("*"),
        k.name
    )
}

/// `90d`, `12h`, `30m`, `45s` from now, or an RFC 3339 time as it is.
fn expiry(s: &str) -> anyhow::Result<String> {
    if chrono::DateTime::parse_from_rfc3339(s).is_ok() {
        return Ok(s.to_string());
    }
    let (n, unit) = s.split_at(s.len().saturating_sub(1));
    let n: i64 = n.parse().with_context(|| format!("--expires {s:?}: use 90d, 12h, 30m, 45s or an RFC 3339 time"))?;
    let secs = match unit {
        "d" => n * 86_400,
        "h" => n * 3_600,
        "m" => n * 60,
        "s" => n,
        _ => anyhow::bail!("--expires {s:?}: use 90d, 12h, 30m, 45s or an RFC 3339 time"),
    };
    let at = chrono::Utc::now() + chrono::Duration::seconds(secs);
    Ok(at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
}
