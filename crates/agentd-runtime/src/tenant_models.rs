//! Providers and model profiles a tenant adds over the API, so each tenant
//! can bring its own model keys. A run resolves a model name tenant-first,
//! then from the server's config; a tenant's providers are stored with its
//! other documents and are never visible to another tenant. Keys are secret
//! references, opened when a run starts using the provider; every address a
//! tenant's provider connects to passes the egress guard.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, LazyLock, Mutex};

use agentd_core::{ErrorCode, HeaderSpec, SecretRef, Tenant};
use agentd_providers::Provider;
use agentd_store::{DocKind, StoreError};
use serde::{Deserialize, Serialize};

use crate::config::{ModelProfile, ProviderConfig};
use crate::models::{self, Planned, ProviderRef, ResolvedModel, RetryPolicy, TenantLayer};
use crate::{Runtime, RuntimeError};

/// Provider types a tenant may add (`scripted` reads files: operators only).
const TENANT_KINDS: [&str; 3] = ["openai", "anthropic", "ollama"];
/// How long a reachability check may take.
const CHECK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(15);

/// A provider a tenant added: `[providers.*]` keys, its key a secret reference.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TenantProvider {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: agentd_core::ProviderKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key: Option<SecretRef>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, HeaderSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_secs: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens_field: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub think: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_retries: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_base_ms: Option<u64>,
    #[serde(default)]
    pub created_at: String,
}

impl TenantProvider {
    fn config(&self) -> ProviderConfig {
        ProviderConfig {
            kind: self.kind,
            base_url: Some(self.base_url()),
            timeout_secs: self.timeout_secs,
            stream: self.stream,
            max_tokens_field: self.max_tokens_field.clone(),
            think: self.think,
            max_retries: self.max_retries,
            retry_base_ms: self.retry_base_ms,
            ..Default::default()
        }
    }

    fn base_url(&self) -> String {
        self.base_url.clone().unwrap_or_else(|| {
            match self.kind {
                agentd_core::ProviderKind::Anthropic => "https://api.anthropic.com",
                _ => "https://api.openai.com/v1",
            }
            .into()
        })
    }
}

/// A model profile a tenant added: a name plus the keys of `[models.*]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TenantProfile {
    pub name: String,
    #[serde(flatten)]
    pub profile: ModelProfile,
    #[serde(default)]
    pub created_at: String,
}

/// Built providers by (tenant, definition, opened secrets) digest: a
/// changed definition or secret builds anew; clients are reused otherwise.
static BUILT: LazyLock<Mutex<Built>> = LazyLock::new(Default::default);
type Built = HashMap<Vec<u8>, Arc<dyn Provider>>;

fn bad(message: impl Into<String>) -> RuntimeError {
    RuntimeError::bad(ErrorCode::InvalidRequest, message)
}

/// Names of providers and profiles: they appear in `provider/model`, so no `/`.
fn check_name(what: &str, name: &str) -> Result<(), RuntimeError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.chars().all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))
        && !name.starts_with('.');
    if ok { Ok(()) } else { Err(bad(format!("a {what}'s name is 1-64 characters of [A-Za-z0-9_.-]"))) }
}

fn model_error(e: models::ModelError) -> RuntimeError {
    RuntimeError::bad(e.code(), e.to_string())
}

impl Runtime {
    /// Builds (or reuses) one of the tenant's providers, its secrets opened now.
    async fn build_tenant_provider(
        &self,
        t: &Tenant,
        def: &TenantProvider,
    ) -> Result<(Arc<dyn Provider>, RetryPolicy), RuntimeError> {
        let url = reqwest_url(&def.base_url())?;
        agentd_tools::egress::check_url(&t.org, &url).map_err(|e| bad(e.to_string()))?;
        let api_key = match &def.api_key {
            Some(r) => Some(self.secret_for(t, "api_key", &r.secret).await?),
            None => None,
        };
        let mut headers = vec![];
        for (k, v) in &def.headers {
            let value = match v {
                HeaderSpec::Value(v) => v.clone(),
                HeaderSpec::Secret { secret } => self.secret_for(t, &format!("headers.{k}"), secret).await?,
            };
            headers.push((k.clone(), value));
        }
        let cfg = def.config();
        let retry = models::retry_of(&cfg);
        let mut h = ring::digest::Context::new(&ring::digest::SHA256);
        for part in [t.org.as_str(), &t.user, &t.project, &serde_json::to_string(def).unwrap_or_default()] {
            h.update(part.as_bytes());
            h.update(&[0]);
        }
        for v in api_key.iter().chain(headers.iter().map(|(_, v)| v)) {
            h.update(v.as_bytes());
            h.update(&[0]);
        }
        let key = h.finish().as_ref().to_vec();
        if let Some(p) = BUILT.lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
            return Ok((p.clone(), retry));
        }
        let guard = agentd_providers::Guard(agentd_tools::egress::resolver(&t.org));
        let p = models::build_provider(&cfg, api_key, headers, Some(guard))
            .map_err(|e| bad(format!("provider {}: {e}", def.name)))?;
        let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
        if built.len() >= 256 {
            built.clear();
        }
        built.insert(key, p.clone());
        Ok((p, retry))
    }

    /// The tenant's providers and profiles as stored.
    async fn tenant_models(
        &self,
        t: &Tenant,
    ) -> Result<(BTreeMap<String, TenantProvider>, BTreeMap<String, TenantProfile>), RuntimeError> {
        let mut providers = BTreeMap::new();
        for d in self.store.list_docs(t, DocKind::PROVIDER).await? {
            let p: TenantProvider = serde_json::from_value(d).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            providers.insert(p.name.clone(), p);
        }
        let mut profiles = BTreeMap::new();
        for d in self.store.list_docs(t, DocKind::MODEL_PROFILE).await? {
            let p: TenantProfile = serde_json::from_value(d).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            profiles.insert(p.name.clone(), p);
        }
        Ok((providers, profiles))
    }

    async fn layer(&self, t: &Tenant) -> Result<(TenantLayer, BTreeMap<String, TenantProvider>), RuntimeError> {
        let (providers, profiles) = self.tenant_models(t).await?;
        let layer = TenantLayer {
            providers: providers.keys().cloned().collect(),
            profiles: profiles.into_iter().map(|(k, v)| (k, v.profile)).collect(),
        };
        Ok((layer, providers))
    }

    /// What a model name resolves to for the tenant, without building anything.
    pub async fn plan_model(&self, t: &Tenant, name: &str) -> Result<Planned, RuntimeError> {
        let (layer, _) = self.layer(t).await?;
        self.models.plan(&layer, name).map_err(model_error)
    }

    /// A model name and its fallbacks for the tenant, ready to call.
    pub async fn model_chain(&self, t: &Tenant, name: &str) -> Result<Vec<ResolvedModel>, RuntimeError> {
        let (layer, defs) = self.layer(t).await?;
        let plans = self.models.plan_chain(&layer, name).map_err(model_error)?;
        let mut out = Vec::with_capacity(plans.len());
        for plan in plans {
            let (provider, retry) = match &plan.via {
                ProviderRef::Server(p, r) => (p.clone(), *r),
                ProviderRef::Tenant(n) => match defs.get(n) {
                    Some(def) => self.build_tenant_provider(t, def).await?,
                    None => return Err(RuntimeError::bad(ErrorCode::UnknownProvider, format!("no provider {n:?}"))),
                },
            };
            out.push(plan.finish(provider, retry));
        }
        Ok(out)
    }

    /// Adds a provider for the tenant: its destination passes the egress
    /// guard and its secrets exist, or it is refused now.
    pub async fn add_provider(&self, t: &Tenant, mut def: TenantProvider) -> Result<TenantProvider, RuntimeError> {
        check_name("provider", &def.name)?;
        if def.kind == agentd_core::ProviderKind::Scripted {
            return Err(bad(format!("`type` must be one of {}", TENANT_KINDS.join(", "))));
        }
        if def.kind == agentd_core::ProviderKind::Ollama && def.base_url.is_none() {
            return Err(bad("an ollama provider needs `base_url`"));
        }
        if def.timeout_secs.is_some_and(|s| s == 0 || s > 3600) {
            return Err(bad("`timeout_secs` must be between 1 and 3600"));
        }
        if def.max_tokens_field.as_deref().is_some_and(|f| f != "max_tokens" && f != "max_completion_tokens") {
            return Err(bad("`max_tokens_field` is max_tokens or max_completion_tokens"));
        }
        let url = reqwest_url(&def.base_url())?;
        // Credentials given inline (headers, or in the URL) are never stored as given.
        if url.password().is_some() || !url.username().is_empty() {
            return Err(RuntimeError::bad(
                ErrorCode::InlineCredential,
                "`base_url` may not carry a user or password; give the key as `api_key: {\"secret\": \"NAME\"}`",
            ));
        }
        agentd_tools::egress::check_destination(&t.org, &url).await.map_err(|e| bad(e.to_string()))?;
        def.headers = self.sealed_headers(t, ("provider", &def.name), def.headers).await?;
        // Built once now: bad headers and missing secrets are refused here.
        self.build_tenant_provider(t, &def).await?;
        def.created_at = agentd_store::now();
        let doc = serde_json::to_value(&def).map_err(|e| bad(e.to_string()))?;
        match self.store.create_doc(t, DocKind::PROVIDER, &def.name, &doc).await {
            Ok(()) => Ok(def),
            Err(StoreError::AlreadyExists) => {
                Err(RuntimeError::exists(ErrorCode::ProviderExists, format!("a provider named {} exists", def.name)))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The tenant's own providers.
    pub async fn list_providers(&self, t: &Tenant) -> Result<Vec<TenantProvider>, RuntimeError> {
        Ok(self.tenant_models(t).await?.0.into_values().collect())
    }

    pub async fn delete_provider(&self, t: &Tenant, name: &str) -> Result<(), RuntimeError> {
        if self.store.delete_doc(t, DocKind::PROVIDER, name).await? {
            Ok(())
        } else {
            Err(RuntimeError::not_found(ErrorCode::ProviderNotFound, format!("no provider named {name:?}")))
        }
    }

    /// Whether a provider the tenant can use (its own first) answers, and how.
    pub async fn check_provider(&self, t: &Tenant, name: &str) -> Result<Result<String, String>, RuntimeError> {
        let (_, defs) = self.layer(t).await?;
        // The server's own providers are configuration a tenant must not
        // see: their health says only whether, never where.
        let (provider, server) = match defs.get(name) {
            Some(def) => (self.build_tenant_provider(t, def).await?.0, false),
            None => match self.models.providers().find(|(n, _)| *n == name) {
                Some((_, p)) => (p.clone(), true),
                None => {
                    return Err(RuntimeError::not_found(
                        ErrorCode::ProviderNotFound,
                        format!("no provider named {name:?}"),
                    ));
                }
            },
        };
        Ok(match tokio::time::timeout(CHECK_TIMEOUT, provider.check()).await {
            Ok(Ok(_)) if server => Ok("reachable".into()),
            Ok(Ok(detail)) => Ok(agentd_core::redact::redact_for(t, &detail).into_owned()),
            Ok(Err(e)) if server => Err(server_check_error(&e)),
            Ok(Err(e)) => Err(agentd_core::redact::redact_for(t, &e.to_string()).into_owned()),
            Err(_) => Err(format!("no answer within {} s", CHECK_TIMEOUT.as_secs())),
        })
    }

    /// Adds a model profile for the tenant; its provider and fallbacks must resolve.
    pub async fn add_model_profile(&self, t: &Tenant, mut def: TenantProfile) -> Result<TenantProfile, RuntimeError> {
        check_name("model profile", &def.name)?;
        let p = &def.profile;
        if p.model.is_empty() || p.model.len() > 256 {
            return Err(bad("`model` must be 1-256 characters"));
        }
        if p.compact_at.is_some_and(|c| !(0.1..=1.0).contains(&c)) {
            return Err(bad("`compact_at` must be between 0.1 and 1.0"));
        }
        // A negative price would earn the org credit against its daily budget.
        let fair = |x: f64| x.is_finite() && (0.0..=1e6).contains(&x);
        if p.price.is_some_and(|pr| !fair(pr.input_per_mtok) || !fair(pr.output_per_mtok)) {
            return Err(bad("prices must be between 0 and 1,000,000 USD per million tokens"));
        }
        // A tenant's profile may name the operator's providers: its params are
        // sampling settings only, never what the request is made of, how much it
        // may cost (`n`, token caps, tiers) or where it reaches (tools, servers).
        const SAMPLING: [&str; 9] = [
            "temperature",
            "top_p",
            "top_k",
            "min_p",
            "seed",
            "stop",
            "presence_penalty",
            "frequency_penalty",
            "repeat_penalty",
        ];
        if let Some(k) = p.params.keys().find(|k| !SAMPLING.contains(&k.as_str())) {
            return Err(bad(format!("`params` may set only {}; not {k:?}", SAMPLING.join(", "))));
        }
        let (mut layer, _) = self.layer(t).await?;
        if layer.profiles.contains_key(&def.name) {
            return Err(self.profile_exists(&def.name));
        }
        layer.profiles.insert(def.name.clone(), def.profile.clone());
        self.models.plan_chain(&layer, &def.name).map_err(model_error)?;
        def.created_at = agentd_store::now();
        let doc = serde_json::to_value(&def).map_err(|e| bad(e.to_string()))?;
        match self.store.create_doc(t, DocKind::MODEL_PROFILE, &def.name, &doc).await {
            Ok(()) => Ok(def),
            Err(StoreError::AlreadyExists) => Err(self.profile_exists(&def.name)),
            Err(e) => Err(e.into()),
        }
    }

    fn profile_exists(&self, name: &str) -> RuntimeError {
        RuntimeError::exists(ErrorCode::ModelProfileExists, format!("a model profile named {name} exists"))
    }

    /// The tenant's own model profiles.
    pub async fn list_model_profiles(&self, t: &Tenant) -> Result<Vec<TenantProfile>, RuntimeError> {
        Ok(self.tenant_models(t).await?.1.into_values().collect())
    }

    pub async fn delete_model_profile(&self, t: &Tenant, name: &str) -> Result<(), RuntimeError> {
        if self.store.delete_doc(t, DocKind::MODEL_PROFILE, name).await? {
            Ok(())
        } else {
            Err(RuntimeError::not_found(ErrorCode::ModelProfileNotFound, format!("no model profile named {name:?}")))
        }
    }
}

fn reqwest_url(s: &str) -> Result<reqwest::Url, RuntimeError> {
    reqwest::Url::parse(s).map_err(|e| bad(format!("`base_url` is not a URL: {e}")))
}

/// A server provider's failure as a tenant may see it: its class and HTTP
/// status, nothing of the address or what the endpoint said.
pub fn server_check_error(e: &agentd_providers::ProviderError) -> String {
    match e.status() {
        Some(status) => format!("{} (HTTP {status})", e.code()),
        None => e.code().to_string(),
    }
}
