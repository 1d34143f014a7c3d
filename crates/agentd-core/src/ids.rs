//! Identifiers and tenant scope.

use serde::{Deserialize, Serialize};

/// A new time-ordered identifier with a short type prefix (`run_…`, `ses_…`).
pub fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::now_v7().simple())
}

/// The owner of every stored row: organisation, user and project.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Tenant {
    pub org: String,
    pub user: String,
    pub project: String,
}

impl Default for Tenant {
    fn default() -> Self {
        Self { org: "default".into(), user: "default".into(), project: "default".into() }
    }
}

/// One part of a tenant scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScopePart {
    Org,
    User,
    Project,
}

/// Why a tenant scope value was refused (the server names the header).
#[derive(Debug, thiserror::Error)]
#[error("must be 1-128 characters of [A-Za-z0-9._:@-], not starting with a dot")]
pub struct InvalidScope {
    pub part: ScopePart,
}

impl Tenant {
    /// Builds a tenant from optional values, defaulting each to `default`.
    pub fn from_parts(org: Option<&str>, user: Option<&str>, project: Option<&str>) -> Result<Self, InvalidScope> {
        fn check(part: ScopePart, v: Option<&str>) -> Result<String, InvalidScope> {
            let v = v.unwrap_or("default");
            // Values name workspace directories, so nothing that starts with a dot.
            let ok = !v.is_empty()
                && !v.starts_with('.')
                && v.len() <= 128
                && v.chars().all(|c| c.is_ascii_alphanumeric() || "._:@-".contains(c));
            if ok { Ok(v.to_string()) } else { Err(InvalidScope { part }) }
        }
        Ok(Self {
            org: check(ScopePart::Org, org)?,
            user: check(ScopePart::User, user)?,
            project: check(ScopePart::Project, project)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_prefixed_and_ordered() {
        let a = new_id("run");
        let b = new_id("run");
        assert!(a.starts_with("run_"));
        assert!(a < b, "uuid v7 ids sort by creation time");
    }

    #[test]
    fn scope_defaults_and_validation() {
        let t = Tenant::from_parts(None, Some("alice"), None).unwrap();
        assert_eq!(t.org, "default");
        assert_eq!(t.user, "alice");
        assert!(Tenant::from_parts(Some("a b"), None, None).is_err());
        assert!(Tenant::from_parts(Some(""), None, None).is_err());
        assert!(Tenant::from_parts(Some(".."), None, None).is_err());
        assert!(Tenant::from_parts(None, None, Some(".hidden")).is_err());
    }
}
