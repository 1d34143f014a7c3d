//! Workspace disk quotas: bytes one session's workspace may hold, and all
//! of one org's together. Checked before each write through a `Workspace`
//! (the files API and the file tools); a write over either is refused, and
//! nothing is written. Usage is measured by walking the tree (symlinks not
//! followed); an org's total is cached for a moment, plus what was written since.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// How long an org's measured total is trusted.
const ORG_CACHE: Duration = Duration::from_secs(2);
/// Most entries one measure visits (more: counted as full, to fail closed).
const MAX_ENTRIES: usize = 200_000;

/// The caps a workspace's writes are checked against.
#[derive(Debug, Clone)]
pub struct Quota {
    /// Bytes this workspace may hold.
    pub workspace_bytes: u64,
    /// The directory holding all of the org's workspaces, and its cap.
    pub org_root: PathBuf,
    pub org_bytes: u64,
}

/// Bytes of regular files beneath `dir` (`u64::MAX` past [`MAX_ENTRIES`]).
pub fn usage(dir: &Path) -> u64 {
    let (mut total, mut seen, mut todo) = (0u64, 0usize, vec![dir.to_path_buf()]);
    while let Some(d) = todo.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            seen += 1;
            if seen > MAX_ENTRIES {
                return u64::MAX;
            }
            let Ok(m) = e.path().symlink_metadata() else { continue };
            if m.is_dir() {
                todo.push(e.path());
            } else if m.is_file() {
                total = total.saturating_add(m.len());
            }
        }
    }
    total
}

fn org_cache() -> &'static Mutex<HashMap<PathBuf, (u64, Instant)>> {
    static C: OnceLock<Mutex<HashMap<PathBuf, (u64, Instant)>>> = OnceLock::new();
    C.get_or_init(Default::default)
}

/// Striped locks: a check and the write it allows are one step per org
/// (parallel writes cannot each see room the other takes).
static LOCKS: [Mutex<()>; 64] = [const { Mutex::new(()) }; 64];

impl Quota {
    /// Held from a write's check to its end.
    pub fn lock(&self) -> std::sync::MutexGuard<'static, ()> {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        self.org_root.hash(&mut h);
        let i = (h.finish() % LOCKS.len() as u64) as usize;
        LOCKS[i].lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Bytes `root` may still grow by under both caps (measured now, and
    /// the org's measure kept for the next check).
    pub fn room(&self, root: &Path) -> u64 {
        let org = usage(&self.org_root);
        org_cache().lock().unwrap_or_else(|e| e.into_inner()).insert(self.org_root.clone(), (org, Instant::now()));
        self.workspace_bytes.saturating_sub(usage(root)).min(self.org_bytes.saturating_sub(org))
    }

    /// Forgets the org's measure: something wrote past the checks (a shell
    /// command), so the next check measures again.
    pub fn forget(&self) {
        org_cache().lock().unwrap_or_else(|e| e.into_inner()).remove(&self.org_root);
    }

    /// Why writing `new_len` bytes over a file of `old_len` in `root` is
    /// refused, if it is.
    pub fn check(&self, root: &Path, old_len: u64, new_len: u64) -> Result<(), String> {
        let grow = new_len.saturating_sub(old_len);
        if grow == 0 {
            return Ok(());
        }
        let mine = usage(root);
        if mine.saturating_add(grow) > self.workspace_bytes {
            return Err(format!(
                "the workspace quota is {} bytes and {} are used: this write needs {grow} more",
                self.workspace_bytes,
                mine.min(self.workspace_bytes)
            ));
        }
        let mut cache = org_cache().lock().unwrap_or_else(|e| e.into_inner());
        let org = match cache.get(&self.org_root) {
            Some((n, at)) if at.elapsed() < ORG_CACHE => *n,
            _ => {
                let n = usage(&self.org_root);
                if cache.len() > 10_000 {
                    cache.clear();
                }
                cache.insert(self.org_root.clone(), (n, Instant::now()));
                n
            }
        };
        if org.saturating_add(grow) > self.org_bytes {
            return Err(format!(
                "the organisation's workspaces may hold {} bytes together and are full",
                self.org_bytes
            ));
        }
        if let Some(e) = cache.get_mut(&self.org_root) {
            e.0 = e.0.saturating_add(grow);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn writes_over_the_workspace_or_the_org_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let (org, ws) = (tmp.path().join("org"), tmp.path().join("org/u/p/s1"));
        std::fs::create_dir_all(&ws).unwrap();
        std::fs::write(ws.join("a"), vec![0u8; 600]).unwrap();
        std::fs::write(tmp.path().join("org/u/p/other"), vec![0u8; 300]).unwrap();
        assert_eq!(usage(&ws), 600);
        let q = Quota { workspace_bytes: 1000, org_root: org.clone(), org_bytes: 1_000_000 };
        assert!(q.check(&ws, 0, 400).is_ok());
        assert!(q.check(&ws, 0, 401).is_err(), "over the workspace's 1000");
        assert!(q.check(&ws, 600, 1000).is_ok(), "replacing a file counts only what it grows");
        let q = Quota { workspace_bytes: 1_000_000, org_root: org, org_bytes: 1000 };
        assert!(q.check(&ws, 0, 101).is_err(), "the org holds 900 already");
    }
}
