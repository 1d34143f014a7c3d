//! A directory a run's file and shell tools are confined to. Every path a
//! model gives is opened beneath it in one step (`openat2` with
//! `RESOLVE_BENEATH`): the kernel refuses absolute paths, `..` that climbs
//! out and symlinks leading outside at the moment of opening, so swapping a
//! directory for a symlink between a check and the open cannot escape.
//! Only regular files and directories are opened (a FIFO or device would
//! block a thread or read forever).

use std::fs::File;
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
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
    #[error("{0:?} is not a regular file or directory")]
    NotRegular(String),
    #[error("{0:?} is a directory")]
    IsDir(String),
    #[error("{0:?} is not a directory")]
    NotDir(String),
    #[error("cannot open {0:?}: {1}")]
    Io(String, String),
    #[error("cannot write {0:?}: {1}")]
    Quota(String, String),
}

/// What kind of object an open must find.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Want {
    File,
    Dir,
}

/// A workspace root (canonical).
#[derive(Debug, Clone)]
pub struct Workspace {
    root: PathBuf,
    /// Caps on the bytes written through it (none: unbounded, as in tests).
    quota: Option<std::sync::Arc<crate::quota::Quota>>,
}

/// Most entries a directory walk visits.
pub const MAX_WALK_ENTRIES: usize = 100_000;
/// Deepest directory a walk descends into.
pub const MAX_WALK_DEPTH: usize = 64;

fn cstr(rel: &Path) -> Result<std::ffi::CString, PathError> {
    std::ffi::CString::new(rel.as_os_str().as_bytes()).map_err(|_| PathError::Nul)
}

/// `openat2(dir, rel, flags, RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS)`.
fn openat2(dir: &OwnedFd, rel: &Path, flags: i32, mode: u32, extra: u64) -> std::io::Result<OwnedFd> {
    let c = cstr(rel).map_err(|_| std::io::Error::from_raw_os_error(libc::EINVAL))?;
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = (flags | libc::O_CLOEXEC) as u64;
    how.mode = if flags & libc::O_CREAT != 0 { mode as u64 } else { 0 };
    how.resolve = libc::RESOLVE_BENEATH | libc::RESOLVE_NO_MAGICLINKS | extra;
    loop {
        // SAFETY: `c` and `how` outlive the call; the kernel copies both.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                dir.as_raw_fd(),
                c.as_ptr(),
                &how as *const libc::open_how,
                std::mem::size_of::<libc::open_how>(),
            )
        };
        if fd >= 0 {
            // SAFETY: a fresh descriptor the kernel just gave us.
            return Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) });
        }
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EAGAIN) && e.raw_os_error() != Some(libc::EINTR) {
            return Err(e);
        }
    }
}

fn fstat(fd: &OwnedFd) -> std::io::Result<libc::stat> {
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `st` is a valid out-pointer for the duration of the call.
    if unsafe { libc::fstat(fd.as_raw_fd(), &mut st) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(st)
}

impl Workspace {
    /// Uses (and creates) `dir` as the workspace root.
    pub fn open(dir: &Path) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        Ok(Self { root: dir.canonicalize()?, quota: None })
    }

    /// The same workspace with its writes checked against `quota`.
    pub fn with_quota(mut self, quota: crate::quota::Quota) -> Self {
        self.quota = Some(std::sync::Arc::new(quota));
        self
    }

    /// Bytes this workspace may still take under its quota (`None`: no quota).
    pub fn quota_room(&self) -> Option<u64> {
        self.quota.as_ref().map(|q| q.room(&self.root))
    }

    /// After writes that bypass the checks (a shell command): the next check measures again.
    pub fn quota_forget(&self) {
        if let Some(q) = &self.quota {
            q.forget();
        }
    }

    /// The quota's lock, to hold from a check to the end of its write.
    pub fn quota_lock(&self) -> Option<std::sync::MutexGuard<'static, ()>> {
        self.quota.as_ref().map(|q| q.lock())
    }

    /// Refuses a write of `new_len` bytes over `old_len` that would take
    /// the workspace or its org over their quota.
    pub fn check_quota(&self, rel: &str, old_len: u64, new_len: u64) -> Result<(), PathError> {
        match &self.quota {
            Some(q) => q.check(&self.root, old_len, new_len).map_err(|why| PathError::Quota(rel.into(), why)),
            None => Ok(()),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Lexical check of a relative path, for clear errors before the kernel's.
    /// Returns the normalised relative path (`.` for the root).
    pub fn check(&self, rel: &str) -> Result<PathBuf, PathError> {
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
        Ok(if parts.is_empty() { PathBuf::from(".") } else { parts.iter().collect() })
    }

    fn root_fd(&self) -> Result<OwnedFd, PathError> {
        let f = File::open(&self.root).map_err(|e| PathError::Io(".".into(), e.to_string()))?;
        Ok(OwnedFd::from(f))
    }

    fn map_err(rel: &str, e: std::io::Error) -> PathError {
        match e.raw_os_error() {
            Some(libc::EXDEV) | Some(libc::ELOOP) => PathError::Escapes(rel.into()),
            Some(libc::ENOENT) => PathError::Missing(rel.into()),
            Some(libc::ENOTDIR) => PathError::NotDir(rel.into()),
            Some(libc::EISDIR) => PathError::IsDir(rel.into()),
            Some(libc::ENXIO) | Some(libc::ENODEV) => PathError::NotRegular(rel.into()),
            _ => PathError::Io(rel.into(), e.to_string()),
        }
    }

    /// Opens `rel` beneath the root in one step, checking what it is.
    /// `O_NONBLOCK` keeps a FIFO from blocking the open; it is refused after.
    fn open_kind(&self, rel: &str, flags: i32, want: Want) -> Result<OwnedFd, PathError> {
        let p = self.check(rel)?;
        let root = self.root_fd()?;
        let fd =
            openat2(&root, &p, flags | libc::O_NONBLOCK | libc::O_NOCTTY, 0, 0).map_err(|e| Self::map_err(rel, e))?;
        let st = fstat(&fd).map_err(|e| PathError::Io(rel.into(), e.to_string()))?;
        match (st.st_mode & libc::S_IFMT, want) {
            (libc::S_IFREG, Want::File) | (libc::S_IFDIR, Want::Dir) => Ok(fd),
            (libc::S_IFDIR, Want::File) => Err(PathError::IsDir(rel.into())),
            (libc::S_IFREG, Want::Dir) => Err(PathError::NotDir(rel.into())),
            _ => Err(PathError::NotRegular(rel.into())),
        }
    }

    /// Opens a regular file for reading.
    pub fn open_read(&self, rel: &str) -> Result<File, PathError> {
        self.open_kind(rel, libc::O_RDONLY, Want::File).map(File::from)
    }

    /// Opens a regular file for reading and writing in place.
    pub fn open_rw(&self, rel: &str) -> Result<File, PathError> {
        self.open_kind(rel, libc::O_RDWR, Want::File).map(File::from)
    }

    /// What `rel` is: a file, a directory, or an error (missing, escaping, special).
    pub fn kind(&self, rel: &str) -> Result<Want, PathError> {
        match self.open_kind(rel, libc::O_RDONLY, Want::Dir) {
            Ok(_) => Ok(Want::Dir),
            Err(PathError::NotDir(_)) => Ok(Want::File),
            Err(e) => Err(e),
        }
    }

    /// Reads at most `cap` bytes of a regular file; also says whether more were left.
    pub fn read_capped(&self, rel: &str, cap: usize) -> Result<(Vec<u8>, bool), PathError> {
        let f = self.open_read(rel)?;
        let mut buf = Vec::with_capacity(cap.min(64 * 1024));
        f.take(cap as u64 + 1).read_to_end(&mut buf).map_err(|e| PathError::Io(rel.into(), e.to_string()))?;
        let more = buf.len() > cap;
        buf.truncate(cap);
        Ok((buf, more))
    }

    /// Creates the parent directories of `rel` one level at a time, each
    /// beneath a directory already opened beneath the root.
    fn make_parents(&self, rel: &Path, orig: &str) -> Result<(), PathError> {
        let root = self.root_fd()?;
        let comps: Vec<&std::ffi::OsStr> = rel.iter().collect();
        for i in 0..comps.len().saturating_sub(1) {
            let parent: PathBuf = if i == 0 { PathBuf::from(".") } else { comps[..i].iter().collect() };
            let dir =
                openat2(&root, &parent, libc::O_PATH | libc::O_DIRECTORY, 0, 0).map_err(|e| Self::map_err(orig, e))?;
            let name = cstr(Path::new(comps[i]))?;
            // SAFETY: `name` is a valid C string; `dir` an open directory.
            let r = unsafe { libc::mkdirat(dir.as_raw_fd(), name.as_ptr(), 0o755) };
            if r != 0 {
                let e = std::io::Error::last_os_error();
                if e.raw_os_error() != Some(libc::EEXIST) {
                    return Err(PathError::Io(orig.into(), e.to_string()));
                }
            }
        }
        Ok(())
    }

    /// Creates or replaces a regular file beneath the root, with its parents.
    pub fn write(&self, rel: &str, content: &[u8]) -> Result<(), PathError> {
        use std::io::Write;
        let p = self.check(rel)?;
        if p == Path::new(".") {
            return Err(PathError::IsDir(rel.into()));
        }
        // Checked before anything is created: a refused write leaves nothing.
        let _held = self.quota_lock();
        if self.quota.is_some() {
            let old = match self.open_read(rel) {
                Ok(f) => f.metadata().map(|m| m.len()).unwrap_or(0),
                Err(_) => 0,
            };
            self.check_quota(rel, old, content.len() as u64)?;
        }
        self.make_parents(&p, rel)?;
        let root = self.root_fd()?;
        let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_NONBLOCK | libc::O_NOCTTY;
        let fd = openat2(&root, &p, flags, 0o644, 0).map_err(|e| Self::map_err(rel, e))?;
        let st = fstat(&fd).map_err(|e| PathError::Io(rel.into(), e.to_string()))?;
        if st.st_mode & libc::S_IFMT != libc::S_IFREG {
            return Err(PathError::NotRegular(rel.into()));
        }
        let mut f = File::from(fd);
        f.set_len(0).map_err(|e| PathError::Io(rel.into(), e.to_string()))?;
        f.write_all(content).map_err(|e| PathError::Io(rel.into(), e.to_string()))
    }

    /// The directory holding `rel`, opened beneath the root, and the last
    /// component's name (the root itself has no parent here).
    fn parent_of(&self, rel: &str) -> Result<(OwnedFd, std::ffi::CString), PathError> {
        let p = self.check(rel)?;
        let (Some(name), Some(parent)) = (p.file_name(), p.parent()) else {
            return Err(PathError::Escapes(rel.into()));
        };
        let parent = if parent.as_os_str().is_empty() { Path::new(".") } else { parent };
        let root = self.root_fd()?;
        let dir = openat2(&root, parent, libc::O_PATH | libc::O_DIRECTORY, 0, 0).map_err(|e| Self::map_err(rel, e))?;
        Ok((dir, cstr(Path::new(name))?))
    }

    /// Removes a file (a symlink itself, never its target) or an empty directory.
    pub fn remove(&self, rel: &str) -> Result<(), PathError> {
        let (dir, name) = self.parent_of(rel)?;
        // SAFETY: `name` is a valid C string; `dir` an open directory.
        let mut r = unsafe { libc::unlinkat(dir.as_raw_fd(), name.as_ptr(), 0) };
        if r != 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EISDIR) {
            // SAFETY: as above.
            r = unsafe { libc::unlinkat(dir.as_raw_fd(), name.as_ptr(), libc::AT_REMOVEDIR) };
        }
        if r != 0 {
            let e = std::io::Error::last_os_error();
            return Err(match e.raw_os_error() {
                Some(libc::ENOTEMPTY) | Some(libc::EEXIST) => {
                    PathError::Io(rel.into(), "the directory is not empty".into())
                }
                _ => Self::map_err(rel, e),
            });
        }
        Ok(())
    }

    /// Renames `from` to `to` (both beneath the root; `to`'s parents are
    /// made); an existing `to` is not replaced.
    pub fn rename(&self, from: &str, to: &str) -> Result<(), PathError> {
        let target = self.check(to)?;
        self.make_parents(&target, to)?;
        let (a, an) = self.parent_of(from)?;
        let (b, bn) = self.parent_of(to)?;
        // SAFETY: valid C strings and open directories; RENAME_NOREPLACE keeps `to`.
        let r =
            unsafe { libc::renameat2(a.as_raw_fd(), an.as_ptr(), b.as_raw_fd(), bn.as_ptr(), libc::RENAME_NOREPLACE) };
        if r != 0 {
            let e = std::io::Error::last_os_error();
            return Err(match e.raw_os_error() {
                Some(libc::EEXIST) => PathError::Io(to.into(), "exists already".into()),
                _ => Self::map_err(from, e),
            });
        }
        Ok(())
    }

    /// Entries of a directory beneath the root: (name, is_dir, is_symlink, size).
    pub fn list(&self, rel: &str) -> Result<Vec<(String, bool, bool, u64)>, PathError> {
        let fd = self.open_kind(rel, libc::O_RDONLY | libc::O_DIRECTORY, Want::Dir)?;
        Self::entries(&fd).map_err(|e| PathError::Io(rel.into(), e.to_string()))
    }

    fn entries(fd: &OwnedFd) -> std::io::Result<Vec<(String, bool, bool, u64)>> {
        // The /proc link names the directory already opened, not a path to resolve again.
        let rd = std::fs::read_dir(format!("/proc/self/fd/{}", fd.as_raw_fd()))?;
        let mut out = vec![];
        for e in rd.filter_map(Result::ok) {
            let name = e.file_name().to_string_lossy().to_string();
            // DirEntry::metadata is an fstatat on the open directory, never following links.
            let (is_dir, is_link, size) = match e.metadata() {
                Ok(m) => (m.is_dir(), m.file_type().is_symlink(), if m.is_file() { m.len() } else { 0 }),
                Err(_) => (false, false, 0),
            };
            out.push((name, is_dir, is_link, size));
        }
        Ok(out)
    }

    /// Regular files under `rel` (paths relative to the root), never through
    /// a symlink; each directory is opened beneath the root before it is read.
    pub fn walk_files(&self, rel: &str) -> Result<Vec<String>, PathError> {
        let start = self.check(rel)?;
        let root = self.root_fd()?;
        let mut stack = vec![(start, 0usize)];
        let (mut files, mut seen) = (vec![], 0usize);
        while let Some((dir, depth)) = stack.pop() {
            let Ok(fd) = openat2(&root, &dir, libc::O_RDONLY | libc::O_DIRECTORY, 0, libc::RESOLVE_NO_SYMLINKS) else {
                continue;
            };
            let Ok(entries) = Self::entries(&fd) else { continue };
            for (name, is_dir, is_link, _) in entries {
                seen += 1;
                if seen > MAX_WALK_ENTRIES {
                    return Ok(files);
                }
                let child = if dir == Path::new(".") { PathBuf::from(&name) } else { dir.join(&name) };
                if is_link {
                    continue;
                } else if is_dir {
                    if depth < MAX_WALK_DEPTH {
                        stack.push((child, depth + 1));
                    }
                } else {
                    files.push(child.display().to_string());
                }
            }
        }
        Ok(files)
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
    fn remove_and_rename_stay_beneath_the_root() {
        let tmp = tempfile::tempdir().unwrap();
        let outside = tmp.path().join("outside.txt");
        std::fs::write(&outside, "keep").unwrap();
        let ws = Workspace::open(&tmp.path().join("ws")).unwrap();
        ws.write("a/b.txt", b"x").unwrap();
        ws.rename("a/b.txt", "c/d.txt").unwrap();
        assert_eq!(ws.read_capped("c/d.txt", 10).unwrap().0, b"x");
        ws.write("e.txt", b"y").unwrap();
        assert!(ws.rename("e.txt", "c/d.txt").is_err(), "no replacing");
        assert!(matches!(ws.rename("e.txt", "../escaped.txt"), Err(PathError::Escapes(_))));
        assert!(matches!(ws.remove("../outside.txt"), Err(PathError::Escapes(_))));
        std::os::unix::fs::symlink(&outside, ws.root().join("link")).unwrap();
        std::os::unix::fs::symlink(tmp.path(), ws.root().join("out")).unwrap();
        assert!(matches!(ws.rename("e.txt", "out/moved.txt"), Err(PathError::Escapes(_))), "through a symlink out");
        assert!(!tmp.path().join("moved.txt").exists());
        ws.remove("link").unwrap();
        assert_eq!(std::fs::read_to_string(&outside).unwrap(), "keep", "the symlink went, not its target");
        assert!(ws.remove("c").is_err(), "not empty");
        ws.remove("c/d.txt").unwrap();
        ws.remove("c").unwrap();
        assert!(matches!(ws.remove("."), Err(PathError::Escapes(_))));
    }

    #[test]
    fn escapes_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let ws = Workspace::open(&dir.path().join("ws")).unwrap();
        std::fs::create_dir_all(ws.root().join("sub")).unwrap();
        std::fs::write(ws.root().join("sub/f"), "inside").unwrap();
        std::fs::write(dir.path().join("secret"), "outside").unwrap();
        std::os::unix::fs::symlink("/etc", ws.root().join("etc-link")).unwrap();
        std::os::unix::fs::symlink("../secret", ws.root().join("up-link")).unwrap();
        std::os::unix::fs::symlink("sub", ws.root().join("inner-link")).unwrap();
        assert_eq!(ws.check("../x"), Err(PathError::Escapes("../x".into())));
        assert_eq!(ws.check("sub/../../x"), Err(PathError::Escapes("sub/../../x".into())));
        assert_eq!(ws.check("/etc/passwd"), Err(PathError::Absolute));
        assert_eq!(ws.check("a\0b"), Err(PathError::Nul));
        assert!(matches!(ws.open_read("etc-link/passwd"), Err(PathError::Escapes(_))));
        assert!(matches!(ws.open_read("up-link"), Err(PathError::Escapes(_))));
        assert!(matches!(ws.write("etc-link/x", b"x"), Err(PathError::Escapes(_))));
        assert!(matches!(ws.write("up-link", b"x"), Err(PathError::Escapes(_))));
        assert_eq!(std::fs::read_to_string(dir.path().join("secret")).unwrap(), "outside");
        // Inside is fine, including symlinks that stay inside and new files.
        assert_eq!(ws.read_capped("inner-link/f", 100).unwrap(), (b"inside".to_vec(), false));
        assert_eq!(ws.read_capped("sub/f", 3).unwrap(), (b"ins".to_vec(), true));
        ws.write("new/deep/x.txt", b"hi").unwrap();
        assert_eq!(std::fs::read_to_string(ws.root().join("new/deep/x.txt")).unwrap(), "hi");
        assert!(matches!(ws.open_read("missing"), Err(PathError::Missing(_))));
        assert_eq!(ws.kind(".").unwrap(), Want::Dir);
        let mut files = ws.walk_files(".").unwrap();
        files.sort();
        assert_eq!(files, ["new/deep/x.txt", "sub/f"]);
    }

    #[test]
    fn fifos_and_devices_are_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let ws = Workspace::open(&dir.path().join("ws")).unwrap();
        let fifo = std::ffi::CString::new(ws.root().join("p").as_os_str().as_bytes()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }, 0);
        assert_eq!(ws.open_read("p").err(), Some(PathError::NotRegular("p".into())));
        assert_eq!(ws.write("p", b"x").err(), Some(PathError::NotRegular("p".into())));
        std::os::unix::fs::symlink("/dev/zero", ws.root().join("z")).unwrap();
        assert!(ws.open_read("z").is_err());
    }

    #[test]
    fn a_directory_swapped_for_a_symlink_never_leads_outside() {
        // Hardening finding 6: check-then-open raced with a swapping shell.
        let dir = tempfile::tempdir().unwrap();
        let other = dir.path().join("other");
        std::fs::create_dir_all(&other).unwrap();
        std::fs::write(other.join("f"), "other tenant").unwrap();
        let ws = Workspace::open(&dir.path().join("ws")).unwrap();
        let root = ws.root().to_path_buf();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        std::fs::create_dir_all(root.join("real")).unwrap();
        std::fs::write(root.join("real/f"), "mine").unwrap();
        std::os::unix::fs::symlink(&other, root.join("link")).unwrap();
        let swapper = std::thread::spawn(move || {
            let (d, real, link) = (root.join("d"), root.join("real"), root.join("link"));
            let clear = |d: &Path| {
                // A directory the writer made in between: out of the way.
                if std::fs::symlink_metadata(d).is_ok_and(|m| m.is_dir()) {
                    let _ = std::fs::remove_dir_all(d);
                }
            };
            while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                clear(&d);
                let _ = std::fs::rename(&real, &d);
                let _ = std::fs::rename(&d, &real);
                clear(&d);
                let _ = std::fs::rename(&link, &d);
                let _ = std::fs::rename(&d, &link);
            }
        });
        let mut leaked = 0;
        for _ in 0..20_000 {
            if let Ok((b, _)) = ws.read_capped("d/f", 100)
                && b == b"other tenant"
            {
                leaked += 1;
            }
            let _ = ws.write("d/f", b"overwritten");
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        swapper.join().unwrap();
        assert_eq!(leaked, 0);
        assert_eq!(std::fs::read_to_string(dir.path().join("other/f")).unwrap(), "other tenant");
    }
}
