//! Provider instances and model-name resolution (`profile` or `provider/model`).

use agentd_core::ProviderKind;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use agentd_providers::{
    AnthropicConfig, AnthropicProvider, OllamaConfig, OllamaProvider, OpenAiConfig, OpenAiProvider, Provider,
    ScriptedProvider,
};

use crate::config::{Config, ConfigError, ModelProfile, ProviderConfig};

/// A model a run can use.
#[derive(Clone)]
pub struct ResolvedModel {
    /// The profile name, or the `provider/model` string the run named.
    pub profile: String,
    pub provider_name: String,
    pub provider: Arc<dyn Provider>,
    pub model: String,
    pub max_tokens: Option<u32>,
    pub context_window: Option<u64>,
    pub params: Arc<serde_json::Map<String, serde_json::Value>>,
    /// Profiles to fail over to, in order.
    pub fallback: Vec<String>,
    /// False for a profile declared text-only.
    pub accepts_images: bool,
    pub price: Option<crate::config::Price>,
    pub retry: RetryPolicy,
    /// Share of the window that triggers compaction.
    pub compact_at: f64,
    /// Exchanges kept verbatim when compacting.
    pub keep_turns: usize,
}

/// How often and how patiently one provider is retried.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub max_retries: u32,
    pub base: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self { max_retries: 2, base: Duration::from_millis(500) }
    }
}

impl RetryPolicy {
    /// Exponential backoff with full jitter for attempt `n` (0-based), capped at 30 s;
    /// the provider's `Retry-After` wins when it gave one.
    pub fn wait(&self, n: u32, retry_after: Option<Duration>) -> Duration {
        if let Some(d) = retry_after {
            return d;
        }
        let cap = self.base.saturating_mul(1u32 << n.min(16)).min(Duration::from_secs(30));
        let jitter = rand_fraction();
        cap.mul_f64(0.5 + 0.5 * jitter)
    }
}

/// A number in [0, 1) from the clock (jitter needs spread, not secrecy).
fn rand_fraction() -> f64 {
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    let x = (nanos as u64).wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (x >> 11) as f64 / (1u64 << 53) as f64
}

/// Why a model name did not resolve.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("unknown provider {0:?}; configured providers: {1}")]
    UnknownProvider(String, String),
    #[error("unknown model {0:?}: not a profile name and not of the form provider/model")]
    UnknownModel(String),
    #[error("no model given and no default_model configured")]
    NoModel,
}

impl ModelError {
    pub fn code(&self) -> agentd_core::ErrorCode {
        use agentd_core::ErrorCode;
        match self {
            ModelError::UnknownProvider(..) => ErrorCode::UnknownProvider,
            ModelError::UnknownModel(_) => ErrorCode::UnknownModel,
            ModelError::NoModel => ErrorCode::ModelRequired,
        }
    }
}

/// One provider of the server's config.
#[derive(Clone)]
struct ServerProvider {
    provider: Arc<dyn Provider>,
    retry: RetryPolicy,
    /// `None`: a provider added in code (tests, the bench).
    kind: Option<ProviderKind>,
}

/// Builds an HTTP provider (`openai`, `anthropic`, `ollama`) with its key
/// already in hand; `guard` checks every address it connects to.
pub(crate) fn build_provider(
    p: &ProviderConfig,
    api_key: Option<String>,
    headers: Vec<(String, String)>,
    guard: Option<agentd_providers::Guard>,
) -> Result<Arc<dyn Provider>, String> {
    let timeout = Duration::from_secs(p.timeout_secs.unwrap_or(300));
    let stream = p.stream.unwrap_or(true);
    let base = |default: &str| p.base_url.clone().unwrap_or_else(|| default.into());
    let invalid = |e: agentd_providers::ProviderError| e.to_string();
    Ok(match p.kind {
        ProviderKind::Openai => {
            let max_tokens_field = p.max_tokens_field.clone();
            let base_url = base("https://api.openai.com/v1");
            let c = OpenAiConfig { base_url, api_key, headers, timeout, stream, max_tokens_field, guard };
            Arc::new(OpenAiProvider::new(c).map_err(invalid)?)
        }
        ProviderKind::Anthropic => {
            let c = AnthropicConfig {
                base_url: base("https://api.anthropic.com"),
                api_key,
                headers,
                timeout,
                stream,
                guard,
            };
            Arc::new(AnthropicProvider::new(c).map_err(invalid)?)
        }
        ProviderKind::Ollama => {
            let base_url = base("http://127.0.0.1:11434");
            let c = OllamaConfig { base_url, headers, timeout, stream, think: p.think, guard };
            Arc::new(OllamaProvider::new(c).map_err(invalid)?)
        }
        ProviderKind::Scripted => return Err("a scripted provider is built from the config's turns".into()),
    })
}

/// A provider's retry settings.
pub(crate) fn retry_of(p: &ProviderConfig) -> RetryPolicy {
    RetryPolicy {
        max_retries: p.max_retries.unwrap_or(2).min(10),
        base: Duration::from_millis(p.retry_base_ms.unwrap_or(500).max(1)),
    }
}

/// A scripted provider from inline turns or a script file.
fn scripted(cfg: &Config, name: &str, p: &ProviderConfig) -> Result<ScriptedProvider, ConfigError> {
    match (&p.turns, &p.script) {
        (Some(t), _) => Ok(ScriptedProvider::new(t.clone())),
        (None, Some(path)) => {
            let path = cfg.resolve_path(path);
            let text = std::fs::read_to_string(&path).map_err(|e| {
                ConfigError::Invalid(format!("provider {name}: cannot read script {}: {e}", path.display()))
            })?;
            ScriptedProvider::from_json(&text).map_err(|e| ConfigError::Invalid(format!("provider {name}: {e}")))
        }
        (None, None) => Err(ConfigError::Invalid(format!("provider {name}: scripted needs `turns` or `script`"))),
    }
}

/// A tenant's own providers (by name) and profiles, consulted before the server's.
#[derive(Debug, Clone, Default)]
pub struct TenantLayer {
    pub providers: std::collections::BTreeSet<String>,
    pub profiles: BTreeMap<String, ModelProfile>,
}

/// Where a planned model's provider comes from.
#[derive(Clone)]
pub enum ProviderRef {
    Server(Arc<dyn Provider>, RetryPolicy),
    /// One of the tenant's providers, by name (built when the run uses it).
    Tenant(String),
}

/// A model name resolved to a profile and a provider that is not built yet.
#[derive(Clone)]
pub struct Planned {
    pub profile_name: String,
    pub profile: ModelProfile,
    pub via: ProviderRef,
}

impl Planned {
    /// False for a profile declared text-only.
    pub fn accepts_images(&self) -> bool {
        self.profile.input.as_ref().is_none_or(|i| i.iter().any(|k| k == "image" || k == "images"))
    }

    /// The model, with the provider it runs on.
    pub fn finish(self, provider: Arc<dyn Provider>, retry: RetryPolicy) -> ResolvedModel {
        let accepts_images = self.accepts_images();
        let prof = self.profile;
        ResolvedModel {
            profile: self.profile_name,
            provider_name: prof.provider,
            provider,
            model: prof.model,
            max_tokens: prof.max_tokens,
            context_window: prof.context_window,
            params: Arc::new(prof.params),
            fallback: prof.fallback,
            accepts_images,
            price: prof.price,
            retry,
            compact_at: prof.compact_at.unwrap_or(0.8).clamp(0.1, 1.0),
            keep_turns: prof.keep_turns.unwrap_or(4).max(1),
        }
    }
}

/// Every configured provider and profile.
#[derive(Clone, Default)]
pub struct ModelRegistry {
    providers: BTreeMap<String, ServerProvider>,
    profiles: BTreeMap<String, ModelProfile>,
    default_model: Option<String>,
}

/// Environment variables, then the config's `.env` file; empty means unset.
struct Env(BTreeMap<String, String>);

impl Env {
    fn load(cfg: &Config) -> Result<Self, ConfigError> {
        let mut vars = BTreeMap::new();
        if let Some(f) = &cfg.env_file {
            let path = cfg.resolve_path(f);
            let text =
                std::fs::read_to_string(&path).map_err(|source| ConfigError::Read { path: path.clone(), source })?;
            for line in text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
                let line = line.strip_prefix("export ").unwrap_or(line);
                if let Some((k, v)) = line.split_once('=') {
                    let v = v.trim();
                    let v = v.strip_prefix('"').and_then(|v| v.strip_suffix('"')).unwrap_or(v);
                    vars.insert(k.trim().to_string(), v.to_string());
                }
            }
        }
        Ok(Self(vars))
    }

    fn get(&self, name: &str) -> Option<String> {
        std::env::var(name)
            .ok()
            .filter(|v| !v.is_empty())
            .or_else(|| self.0.get(name).cloned().filter(|v| !v.is_empty()))
    }

    /// Values from the `.env` file, to be masked like environment secrets.
    fn values(&self) -> impl Iterator<Item = &String> {
        self.0.values()
    }
}

impl ModelRegistry {
    /// Builds providers from the config file plus the OpenAI SDK environment
    /// variables (`OPENAI_API_KEY`, `OPENAI_BASE_URL`) for a provider named `openai`.
    pub fn from_config(cfg: &Config) -> Result<Self, ConfigError> {
        let env = Env::load(cfg)?;
        let mut providers = BTreeMap::new();
        let mut entries = cfg.providers.clone();
        if !entries.contains_key("openai")
            && (env.get("OPENAI_API_KEY").is_some() || env.get("OPENAI_BASE_URL").is_some())
        {
            entries.insert(
                "openai".into(),
                crate::config::ProviderConfig { kind: ProviderKind::Openai, ..Default::default() },
            );
        }
        let mut secrets: Vec<String> = env.values().cloned().collect();
        for (name, p) in &entries {
            let default_key_var = match p.kind {
                ProviderKind::Openai if name == "openai" => Some("OPENAI_API_KEY"),
                ProviderKind::Anthropic => Some("ANTHROPIC_API_KEY"),
                _ => None,
            };
            let api_key = match &p.api_key_env {
                Some(var) => env.get(var),
                None => default_key_var.and_then(|v| env.get(v)),
            };
            secrets.extend(api_key.clone());
            let provider: Arc<dyn Provider> = if p.kind == ProviderKind::Scripted {
                Arc::new(scripted(cfg, name, p)?)
            } else {
                let mut p = p.clone();
                if name == "openai" && p.kind == ProviderKind::Openai && p.base_url.is_none() {
                    p.base_url = env.get("OPENAI_BASE_URL");
                }
                let headers = p.headers.clone().into_iter().collect();
                build_provider(&p, api_key, headers, None)
                    .map_err(|e| ConfigError::Invalid(format!("provider {name}: {e}")))?
            };
            let kind = Some(p.kind);
            providers.insert(name.clone(), ServerProvider { provider, retry: retry_of(p), kind });
        }
        // Keys read from the .env file are as secret as environment ones.
        agentd_core::redact::add_secrets(secrets);
        for (name, prof) in &cfg.models {
            if !providers.contains_key(&prof.provider) {
                tracing::warn!(profile = %name, provider = %prof.provider, "model profile names a provider that is not configured");
            }
            for f in &prof.fallback {
                if !cfg.models.contains_key(f) && !f.contains('/') {
                    return Err(ConfigError::Invalid(format!("models.{name}.fallback names unknown profile {f:?}")));
                }
            }
        }
        let default_model = cfg
            .default_agent()
            .model
            .or_else(|| cfg.default_model.clone())
            .or_else(|| env.get("AGENTD_DEFAULT_MODEL"))
            .or_else(|| providers.contains_key("openai").then(|| "openai/gpt-4o-mini".to_string()));
        Ok(Self { providers, profiles: cfg.models.clone(), default_model })
    }

    /// Adds or replaces a provider (used by tests and the bench).
    pub fn insert_provider(&mut self, name: &str, p: Arc<dyn Provider>) {
        self.providers.insert(name.into(), ServerProvider { provider: p, retry: RetryPolicy::default(), kind: None });
    }

    pub fn set_default_model(&mut self, m: Option<String>) {
        self.default_model = m;
    }

    pub fn provider_names(&self) -> Vec<String> {
        self.providers.keys().cloned().collect()
    }

    pub fn providers(&self) -> impl Iterator<Item = (&String, &Arc<dyn Provider>)> {
        self.providers.iter().map(|(k, p)| (k, &p.provider))
    }

    /// The configured providers' names and types.
    pub fn provider_kinds(&self) -> impl Iterator<Item = (&String, &str)> {
        self.providers.iter().map(|(k, p)| (k, p.kind.map_or("custom", ProviderKind::as_str)))
    }

    /// The configured profiles.
    pub fn profiles(&self) -> &BTreeMap<String, ModelProfile> {
        &self.profiles
    }

    pub fn is_empty(&self) -> bool {
        self.providers.is_empty()
    }

    /// The model name a run without one gets.
    pub fn default_model(&self) -> Option<&str> {
        self.default_model.as_deref()
    }

    /// Plans a profile name or `provider/model`: the tenant's profiles
    /// first, then the server's; a tenant profile or `provider/model` names
    /// the tenant's provider first, a server profile only the server's.
    pub fn plan(&self, tenant: &TenantLayer, name: &str) -> Result<Planned, ModelError> {
        let (prof, tenant_first) = if let Some(p) = tenant.profiles.get(name) {
            (p.clone(), true)
        } else if let Some(p) = self.profiles.get(name) {
            (p.clone(), false)
        } else {
            match name.split_once('/').filter(|(p, m)| !p.is_empty() && !m.is_empty()) {
                Some((prov, model)) => {
                    (ModelProfile { provider: prov.into(), model: model.into(), ..Default::default() }, true)
                }
                None => return Err(ModelError::UnknownModel(name.to_string())),
            }
        };
        let via = if tenant_first && tenant.providers.contains(&prof.provider) {
            ProviderRef::Tenant(prof.provider.clone())
        } else if let Some(p) = self.providers.get(&prof.provider) {
            ProviderRef::Server(p.provider.clone(), p.retry)
        } else {
            let mut known: Vec<String> = tenant.providers.iter().cloned().collect();
            known.extend(self.provider_names());
            let known = if known.is_empty() { "none".into() } else { known.join(", ") };
            return Err(ModelError::UnknownProvider(prof.provider.clone(), known));
        };
        Ok(Planned { profile_name: name.to_string(), profile: prof, via })
    }

    /// A name and its fallbacks, each once, in the order they are tried.
    pub fn plan_chain(&self, tenant: &TenantLayer, name: &str) -> Result<Vec<Planned>, ModelError> {
        let mut out = vec![self.plan(tenant, name)?];
        let mut i = 0;
        while i < out.len() {
            for f in out[i].profile.fallback.clone() {
                if !out.iter().any(|p| p.profile_name == f) {
                    out.push(self.plan(tenant, &f)?);
                }
            }
            i += 1;
        }
        Ok(out)
    }

    /// Resolves a server profile name or `provider/model`.
    pub fn resolve(&self, name: &str) -> Result<ResolvedModel, ModelError> {
        let plan = self.plan(&TenantLayer::default(), name)?;
        match plan.via.clone() {
            ProviderRef::Server(provider, retry) => Ok(plan.finish(provider, retry)),
            ProviderRef::Tenant(p) => Err(ModelError::UnknownProvider(p, self.provider_names().join(", "))),
        }
    }

    /// A server profile and its fallbacks, each once, in the order they are tried.
    pub fn chain(&self, name: &str) -> Result<Vec<ResolvedModel>, ModelError> {
        let plans = self.plan_chain(&TenantLayer::default(), name)?;
        Ok(plans
            .into_iter()
            .filter_map(|p| match p.via.clone() {
                ProviderRef::Server(provider, retry) => Some(p.finish(provider, retry)),
                ProviderRef::Tenant(_) => None,
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_profiles_and_provider_model_pairs() {
        let cfg = Config::parse(
            r#"
            [providers.local]
            type = "scripted"
            turns = [{ text = "hi" }]
            [models.fast]
            provider = "local"
            model = "tiny"
            max_tokens = 64
            "#,
        )
        .unwrap();
        let reg = ModelRegistry::from_config(&cfg).unwrap();
        let m = reg.resolve("fast").unwrap();
        assert_eq!((m.provider_name.as_str(), m.model.as_str(), m.max_tokens), ("local", "tiny", Some(64)));
        assert_eq!(reg.resolve("local/other").unwrap().model, "other");
        assert_eq!(reg.resolve("nope/x").err().unwrap().code().as_str(), "unknown_provider");
        assert_eq!(reg.resolve("nope").err().unwrap().code().as_str(), "unknown_model");
        assert_eq!(reg.resolve("/x").err().unwrap().code().as_str(), "unknown_model");
    }

    #[test]
    fn tenant_names_come_first_but_server_profiles_keep_server_providers() {
        let cfg = Config::parse(
            "[providers.shared]\ntype = \"scripted\"\nturns = [{ text = \"hi\" }]\n\
             [models.fast]\nprovider = \"shared\"\nmodel = \"server-model\"\n",
        )
        .unwrap();
        let reg = ModelRegistry::from_config(&cfg).unwrap();
        let mut layer = TenantLayer::default();
        layer.providers.insert("shared".into());
        layer.profiles.insert(
            "fast".into(),
            ModelProfile { provider: "shared".into(), model: "tenant-model".into(), ..Default::default() },
        );
        layer.profiles.insert(
            "mine".into(),
            ModelProfile {
                provider: "shared".into(),
                model: "m".into(),
                fallback: vec!["shared/x".into()],
                ..Default::default()
            },
        );
        let p = reg.plan(&layer, "fast").unwrap();
        assert_eq!(p.profile.model, "tenant-model", "the tenant's profile of the same name wins");
        assert!(matches!(p.via, ProviderRef::Tenant(ref n) if n == "shared"));
        assert!(matches!(reg.plan(&layer, "shared/y").unwrap().via, ProviderRef::Tenant(_)));
        let plain = reg.plan(&TenantLayer::default(), "fast").unwrap();
        assert!(matches!(plain.via, ProviderRef::Server(..)), "no tenant layer: the server's");
        let chain = reg.plan_chain(&layer, "mine").unwrap();
        assert_eq!(chain.iter().map(|p| p.profile_name.as_str()).collect::<Vec<_>>(), ["mine", "shared/x"]);
        assert_eq!(reg.plan(&layer, "nope/x").err().unwrap().code().as_str(), "unknown_provider");
    }

    #[test]
    fn bad_provider_type_is_a_config_error() {
        // A closed vocabulary: the file does not read, and says what it expected.
        let e = Config::parse("[providers.x]\ntype = \"carrier-pigeon\"").unwrap_err();
        assert!(e.contains("carrier-pigeon") && e.contains("openai"), "{e}");
    }
}
