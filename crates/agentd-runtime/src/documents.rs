//! Tenant documents of the simple kinds: a named JSON document per tenant
//! with one path for every kind — the name rule, the kind's own check, a
//! cap per tenant, masking on the way in, and typed values out. A new kind
//! implements [`DocumentKind`]; nothing here or in the store changes.

use std::sync::Arc;

use agentd_core::{ErrorCode, Tenant};
use agentd_store::{DocStore, StoreError};

pub use agentd_core::Document;
pub use agentd_store::DocKind;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::RuntimeError;

/// What a kind of document says of itself.
pub trait DocumentKind: Serialize + DeserializeOwned + Clone + Send + Sync + 'static {
    /// Its spelling in the store.
    const KIND: DocKind;
    /// What a person calls one ("saved prompt"), for messages.
    const NOUN: &'static str;
    /// The code of a name nobody has.
    const NOT_FOUND: ErrorCode = ErrorCode::NotFound;
    /// The code of a name taken.
    const EXISTS: ErrorCode = ErrorCode::AlreadyExists;
    /// How many one organisation may keep (all its users and projects together).
    const MAX_PER_ORG: u32 = 1000;

    /// Checks (and completes) a document before it is stored, after masking.
    fn check(&mut self) -> Result<(), RuntimeError> {
        Ok(())
    }
}

/// The one rule for a document's name: 1-128 characters of `[A-Za-z0-9_.-]`, not starting with a dot.
pub fn check_name(name: &str) -> Result<(), RuntimeError> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        && !name.starts_with('.');
    if ok {
        Ok(())
    } else {
        Err(RuntimeError::bad(ErrorCode::InvalidRequest, "`name` must be 1-128 characters of [A-Za-z0-9_.-]"))
    }
}

/// Create, list, read, replace and remove documents of any simple kind.
#[derive(Clone)]
pub struct Documents {
    store: Arc<dyn DocStore>,
}

fn not_found<K: DocumentKind>(name: &str) -> RuntimeError {
    RuntimeError::not_found(K::NOT_FOUND, format!("no {} named {name:?}", K::NOUN))
}

fn corrupt(e: serde_json::Error) -> RuntimeError {
    RuntimeError::Store(StoreError::Corrupt(e.to_string()))
}

impl Documents {
    pub fn new(store: Arc<dyn DocStore>) -> Self {
        Self { store }
    }

    /// The document as it is stored: masked for its tenant, then checked. A
    /// name is an identifier, never masked: one that holds a secret is refused.
    fn prepare<K: DocumentKind>(
        t: &Tenant,
        doc: &Document<K>,
    ) -> Result<(Document<K>, serde_json::Value), RuntimeError> {
        if agentd_core::redact::redact_for(t, &doc.name) != doc.name.as_str() {
            return Err(RuntimeError::bad(ErrorCode::InvalidRequest, "`name` must not hold a secret"));
        }
        // The kind's bounds first (masking walks every string of the body),
        // then again on what is stored.
        let mut probe = doc.body.clone();
        probe.check()?;
        let value = serde_json::to_value(doc).map_err(corrupt)?;
        let mut masked = agentd_store::masked_doc(t, K::KIND, &value);
        masked["name"] = serde_json::Value::String(doc.name.clone());
        let mut doc: Document<K> =
            serde_json::from_value(masked).map_err(|e| RuntimeError::bad(ErrorCode::InvalidRequest, e.to_string()))?;
        doc.body.check()?;
        let value = serde_json::to_value(&doc).map_err(corrupt)?;
        Ok((doc, value))
    }

    pub async fn create<K: DocumentKind>(&self, t: &Tenant, name: &str, body: K) -> Result<Document<K>, RuntimeError> {
        check_name(name)?;
        let now = agentd_store::now();
        let doc = Document { name: name.to_string(), body, created_at: now.clone(), updated_at: now };
        let (doc, value) = Self::prepare(t, &doc)?;
        match self.store.create_doc_capped(t, K::KIND, name, &value, K::MAX_PER_ORG).await {
            Ok(()) => Ok(doc),
            Err(StoreError::AlreadyExists) => {
                Err(RuntimeError::exists(K::EXISTS, format!("a {} named {name:?} exists; PUT replaces it", K::NOUN)))
            }
            Err(StoreError::Full(n)) => Err(RuntimeError::bad(
                ErrorCode::LimitExceeded,
                format!("an organisation keeps at most {n} {}s", K::NOUN),
            )),
            Err(e) => Err(e.into()),
        }
    }

    /// The tenant's documents of a kind, by name; one that no longer reads as its kind is left out.
    pub async fn list<K: DocumentKind>(&self, t: &Tenant) -> Result<Vec<Document<K>>, RuntimeError> {
        let docs = self.store.list_docs(t, K::KIND).await?;
        Ok(docs.into_iter().filter_map(|d| serde_json::from_value(d).ok()).collect())
    }

    /// A page of the tenant's documents of a kind, by name, after `after`.
    pub async fn page<K: DocumentKind>(
        &self,
        t: &Tenant,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<Document<K>>, RuntimeError> {
        let docs = self.store.list_docs_page(t, K::KIND, after, limit).await?;
        Ok(docs.into_iter().filter_map(|d| serde_json::from_value(d).ok()).collect())
    }

    pub async fn get<K: DocumentKind>(&self, t: &Tenant, name: &str) -> Result<Document<K>, RuntimeError> {
        let doc = self.store.get_doc(t, K::KIND, name).await?.ok_or_else(|| not_found::<K>(name))?;
        serde_json::from_value(doc).map_err(corrupt)
    }

    /// Replaces a document's fields (its creation time stays).
    pub async fn replace<K: DocumentKind>(&self, t: &Tenant, name: &str, body: K) -> Result<Document<K>, RuntimeError> {
        let old = self.get::<K>(t, name).await?;
        let doc =
            Document { name: name.to_string(), body, created_at: old.created_at, updated_at: agentd_store::now() };
        let (doc, value) = Self::prepare(t, &doc)?;
        if !self.store.replace_doc(t, K::KIND, name, &value).await? {
            return Err(not_found::<K>(name));
        }
        Ok(doc)
    }

    pub async fn delete<K: DocumentKind>(&self, t: &Tenant, name: &str) -> Result<(), RuntimeError> {
        if self.store.delete_doc(t, K::KIND, name).await? { Ok(()) } else { Err(not_found::<K>(name)) }
    }
}
