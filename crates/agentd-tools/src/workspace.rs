//! A directory a run's file and shell tools are confined to. Every path a
//! model gives is resolved inside it: absolute paths, `..` that climbs out,
//! NUL bytes and symlinks leading outside are refused.

use std::path::{Component, Path, PathBuf};

/// Why a path was refused.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum PathError {
    #[error("path contains a NUL byte")]
    Nul,
    #[error("absolute paths are not allowed; give a path relative to the workspace")]
    Absolute,
    #[error("path {0:?} leads outside the workspace")]
    Escapes(String),
    #[error("{0:?} does not exist")]
    Missing(String),
    #[error("cannot resolve {0:?}: {1}")]
    Io(String, String),
}

/// A workspace root (canonical).
#[derive(Debug, Clone)]
pub struct Workspace {
    root: PathBuf,
}

impl Workspace {
    /// Uses (and creates) `dir` as the workspace root.
    pub fn open(dir: &Path) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        Ok(Self { root: dir.canonicalize()? })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Resolves `rel` inside the workspace. The longest existing prefix is
    /// canonicalised (following symlinks) and must stay inside; with
    /// `must_exist` the whole path must exist.
    pub fn resolve(&self, rel: &str, must_exist: bool) -> Result<PathBuf, PathError> {
        if rel.contains('\0') {
            return Err(PathError::Nul);
        }
        let p = Path::new(rel);
        if p.is_absolute() {
            return Err(PathError::Absolute);
        }
        let mut parts: Vec<&std::ffi::OsStr> = vec![];
        for c in p.components() {
            match c {
                Component::Normal(x) => parts.push(x),
                Component::CurDir => {}
                Component::ParentDir => {
                    if parts.pop().is_none() {
                        return Err(PathError::Escapes(rel.into()));
                    }
                }
                Component::RootDir | Component::Prefix(_) => return Err(PathError::Absolute),
            }
        }
        // Walk down from the root: canonicalise what exists, keep the rest.
        let mut resolved = self.root.clone();
        let mut i = 0;
        while i < parts.len() {
            let next = resolved.join(parts[i]);
            match std::fs::symlink_metadata(&next) {
                Ok(_) => {
                    resolved = next.canonicalize().map_err(|e| PathError::Io(rel.into(), e.to_string()))?;
                    if !resolved.starts_with(&self.root) {
                        return Err(PathError::Escapes(rel.into()));
                    }
                    i += 1;
                }
                Err(_) => break,
            }
        }
        if i < parts.len() {
            if must_exist {
                return Err(PathError::Missing(rel.into()));
            }
            for x in &parts[i..] {
                resolved.push(x);
            }
        }
        Ok(resolved)
    }

    /// The path as the model should see it (relative to the root).
    pub fn display(&self, p: &Path) -> String {
        let rel = p.strip_prefix(&self.root).unwrap_or(p);
        if rel.as_os_str().is_empty() { ".".into() } else { rel.display().to_string() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let ws = Workspace::open(&dir.path().join("ws")).unwrap();
        std::fs::create_dir_all(ws.root().join("sub")).unwrap();
        std::os::unix::fs::symlink("/etc", ws.root().join("etc-link")).unwrap();
        std::os::unix::fs::symlink("sub", ws.root().join("inner-link")).unwrap();
        assert_eq!(ws.resolve("../x", false), Err(PathError::Escapes("../x".into())));
        assert_eq!(ws.resolve("sub/../../x", false), Err(PathError::Escapes("sub/../../x".into())));
        assert_eq!(ws.resolve("/etc/passwd", false), Err(PathError::Absolute));
        assert_eq!(ws.resolve("a\0b", false), Err(PathError::Nul));
        assert!(matches!(ws.resolve("etc-link/passwd", false), Err(PathError::Escapes(_))));
        assert!(matches!(ws.resolve("etc-link", true), Err(PathError::Escapes(_))));
        // Inside is fine, including symlinks that stay inside and new files.
        assert_eq!(ws.resolve("sub/../new.txt", false).unwrap(), ws.root().join("new.txt"));
        assert_eq!(ws.resolve("inner-link/f", false).unwrap(), ws.root().join("sub/f"));
        assert_eq!(ws.resolve("missing", true), Err(PathError::Missing("missing".into())));
        assert_eq!(ws.resolve(".", true).unwrap(), ws.root());
    }
}
