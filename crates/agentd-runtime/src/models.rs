//! Provider instances and model-name resolution (`profile` or `provider/model`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use agentd_providers::{OpenAiConfig, OpenAiProvider, Provider, ScriptedProvider};

use crate::config::{Config, ConfigError, ModelProfile};

/// A model a run can use.
#[derive(Clone)]
pub struct ResolvedModel {
    pub provider_name: String,
    pub provider: Arc<dyn Provider>,
    pub model: String,
    pub max_tokens: Option<u32>,
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
    pub fn code(&self) -> &'static str {
        match self {
            ModelError::UnknownProvider(..) => "unknown_provider",
            ModelError::UnknownModel(_) => "unknown_model",
            ModelError::NoModel => "model_required",
        }
    }
}

/// Every configured provider and profile.
#[derive(Clone, Default)]
pub struct ModelRegistry {
    providers: BTreeMap<String, Arc<dyn Provider>>,
    profiles: BTreeMap<String, ModelProfile>,
    default_model: Option<String>,
}

/// Reads one environment variable, treating empty as unset.
fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

impl ModelRegistry {
    /// Builds providers from the config file plus the OpenAI SDK environment
    /// variables (`OPENAI_API_KEY`, `OPENAI_BASE_URL`) for a provider named `openai`.
    pub fn from_config(cfg: &Config) -> Result<Self, ConfigError> {
        let mut providers: BTreeMap<String, Arc<dyn Provider>> = BTreeMap::new();
        let mut entries = cfg.providers.clone();
        if !entries.contains_key("openai") && (env("OPENAI_API_KEY").is_some() || env("OPENAI_BASE_URL").is_some()) {
            entries.insert(
                "openai".into(),
                crate::config::ProviderConfig {
                    kind: "openai".into(),
                    base_url: None,
                    api_key_env: None,
                    headers: BTreeMap::new(),
                    timeout_secs: None,
                    stream: None,
                    script: None,
                    turns: None,
                },
            );
        }
        for (name, p) in &entries {
            let provider: Arc<dyn Provider> = match p.kind.as_str() {
                "openai" => {
                    let is_openai = name == "openai";
                    let api_key = match &p.api_key_env {
                        Some(var) => env(var),
                        None if is_openai => env("OPENAI_API_KEY"),
                        None => None,
                    };
                    let base_url = p
                        .base_url
                        .clone()
                        .or_else(|| if is_openai { env("OPENAI_BASE_URL") } else { None })
                        .unwrap_or_else(|| "https://api.openai.com/v1".into());
                    let cfg = OpenAiConfig {
                        base_url,
                        api_key,
                        headers: p.headers.clone().into_iter().collect(),
                        timeout: Duration::from_secs(p.timeout_secs.unwrap_or(300)),
                        stream: p.stream.unwrap_or(true),
                    };
                    Arc::new(
                        OpenAiProvider::new(cfg).map_err(|e| ConfigError::Invalid(format!("provider {name}: {e}")))?,
                    )
                }
                "scripted" => {
                    let turns = match (&p.turns, &p.script) {
                        (Some(t), _) => ScriptedProvider::new(t.clone()),
                        (None, Some(path)) => {
                            let path = cfg.resolve_path(path);
                            let text = std::fs::read_to_string(&path).map_err(|e| {
                                ConfigError::Invalid(format!(
                                    "provider {name}: cannot read script {}: {e}",
                                    path.display()
                                ))
                            })?;
                            ScriptedProvider::from_json(&text)
                                .map_err(|e| ConfigError::Invalid(format!("provider {name}: {e}")))?
                        }
                        (None, None) => {
                            return Err(ConfigError::Invalid(format!(
                                "provider {name}: scripted needs `turns` or `script`"
                            )));
                        }
                    };
                    Arc::new(turns)
                }
                other => {
                    return Err(ConfigError::Invalid(format!(
                        "provider {name}: unknown type {other:?} (expected \"openai\" or \"scripted\")"
                    )));
                }
            };
            providers.insert(name.clone(), provider);
        }
        for (name, prof) in &cfg.models {
            if !providers.contains_key(&prof.provider) {
                tracing::warn!(profile = %name, provider = %prof.provider, "model profile names a provider that is not configured");
            }
        }
        let default_model = cfg
            .default_agent()
            .model
            .or_else(|| cfg.default_model.clone())
            .or_else(|| env("AGENTD_DEFAULT_MODEL"))
            .or_else(|| providers.contains_key("openai").then(|| "openai/gpt-4o-mini".to_string()));
        Ok(Self { providers, profiles: cfg.models.clone(), default_model })
    }

    /// Adds or replaces a provider (used by tests and the bench).
    pub fn insert_provider(&mut self, name: &str, p: Arc<dyn Provider>) {
        self.providers.insert(name.into(), p);
    }

    pub fn set_default_model(&mut self, m: Option<String>) {
        self.default_model = m;
    }

    pub fn provider_names(&self) -> Vec<String> {
        self.providers.keys().cloned().collect()
    }

    pub fn providers(&self) -> impl Iterator<Item = (&String, &Arc<dyn Provider>)> {
        self.providers.iter()
    }

    pub fn is_empty(&self) -> bool {
        self.providers.is_empty()
    }

    /// The model name a run without one gets.
    pub fn default_model(&self) -> Option<&str> {
        self.default_model.as_deref()
    }

    /// Resolves a profile name or `provider/model`.
    pub fn resolve(&self, name: &str) -> Result<ResolvedModel, ModelError> {
        let (provider_name, model, max_tokens) = if let Some(p) = self.profiles.get(name) {
            (p.provider.clone(), p.model.clone(), p.max_tokens)
        } else if let Some((prov, model)) = name.split_once('/').filter(|(p, m)| !p.is_empty() && !m.is_empty()) {
            (prov.to_string(), model.to_string(), None)
        } else {
            return Err(ModelError::UnknownModel(name.to_string()));
        };
        let provider = self.providers.get(&provider_name).cloned().ok_or_else(|| {
            let known = if self.providers.is_empty() { "none".into() } else { self.provider_names().join(", ") };
            ModelError::UnknownProvider(provider_name.clone(), known)
        })?;
        Ok(ResolvedModel { provider_name, provider, model, max_tokens })
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
        assert_eq!(reg.resolve("nope/x").err().unwrap().code(), "unknown_provider");
        assert_eq!(reg.resolve("nope").err().unwrap().code(), "unknown_model");
        assert_eq!(reg.resolve("/x").err().unwrap().code(), "unknown_model");
    }

    #[test]
    fn bad_provider_type_is_a_config_error() {
        let cfg = Config::parse("[providers.x]\ntype = \"carrier-pigeon\"").unwrap();
        assert!(ModelRegistry::from_config(&cfg).is_err());
    }
}
