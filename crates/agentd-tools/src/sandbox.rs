//! The bubblewrap fence shared by `shell` and sandboxed MCP servers: an
//! empty root with the system directories read-only, an unprivileged uid
//! in a user namespace with every capability dropped, a seccomp filter
//! against syscalls a tool never needs, and a process limit that binds (a
//! pids cgroup when the host offers one; `RLIMIT_NPROC` otherwise).

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

/// What a sandboxed command sees of the host, read-only.
pub const SYSTEM_DIRS: &[&str] = &["/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/etc", "/opt"];
/// Resolver files shown only when the sandbox has a network (the directory
/// itself also holds systemd-resolved's socket, a way to the network).
const RESOLVER_FILES: &[&str] = &["/run/systemd/resolve/stub-resolv.conf", "/run/systemd/resolve/resolv.conf"];
/// Files under those that stay hidden (replaced by an empty file).
pub const HIDDEN_FILES: &[&str] = &["/etc/shadow", "/etc/gshadow", "/etc/shadow-", "/etc/gshadow-", "/etc/sudoers"];
/// Size of the sandbox's private `/tmp` (memory-backed).
pub const TMP_BYTES: u64 = 512 * 1024 * 1024;
/// Size of `/dev/shm`.
pub const SHM_BYTES: u64 = 64 * 1024 * 1024;
/// Size of the root and of each tmpfs that covers something (room for mount points only).
pub const COVER_BYTES: u64 = 1024 * 1024;
/// The uid and gid commands run as inside the sandbox ("nobody").
pub const SANDBOX_UID: u32 = 65534;

/// Paths no sandbox may see even where a visible directory holds them:
/// agentd's config file, its `.env`, its data dir (set once at start).
static HIDDEN: std::sync::RwLock<Vec<PathBuf>> = std::sync::RwLock::new(Vec::new());

/// Adds paths every sandbox hides (files become empty, directories empty tmpfs).
pub fn hide(paths: impl IntoIterator<Item = PathBuf>) {
    let mut h = HIDDEN.write().unwrap_or_else(|e| e.into_inner());
    // Paths that do not exist yet (a data dir made later) are kept absolute.
    h.extend(paths.into_iter().filter_map(|p| p.canonicalize().or_else(|_| std::path::absolute(&p)).ok()));
}

/// Files and directories under [`SYSTEM_DIRS`] that "other" may not read.
/// The sandbox's uid maps to agentd's own outside, so without this it could
/// read what only root may (host keys, private TLS keys, service configs);
/// each is covered, so the sandbox sees the system as an unprivileged user would.
fn restricted() -> Vec<(PathBuf, bool)> {
    use std::sync::atomic::{AtomicBool, Ordering};
    type Scan = (std::time::Instant, Vec<(PathBuf, bool)>);
    static R: std::sync::RwLock<Option<Scan>> = std::sync::RwLock::new(None);
    static RESCANNING: AtomicBool = AtomicBool::new(false);
    if let Some((at, list)) = R.read().unwrap_or_else(|e| e.into_inner()).as_ref() {
        // Refreshed in the background now and then, for files added later.
        if at.elapsed() > std::time::Duration::from_secs(300) && !RESCANNING.swap(true, Ordering::SeqCst) {
            std::thread::spawn(|| {
                let fresh = scan_restricted();
                *R.write().unwrap_or_else(|e| e.into_inner()) = Some((std::time::Instant::now(), fresh));
                RESCANNING.store(false, Ordering::SeqCst);
            });
        }
        return list.clone();
    }
    let mut w = R.write().unwrap_or_else(|e| e.into_inner());
    if w.is_none() {
        *w = Some((std::time::Instant::now(), scan_restricted()));
    }
    w.as_ref().map(|(_, l)| l.clone()).unwrap_or_default()
}

fn scan_restricted() -> Vec<(PathBuf, bool)> {
    use std::os::unix::fs::PermissionsExt;
    let (mut out, mut stack, mut seen) = (vec![], vec![], 0usize);
    stack.extend(SYSTEM_DIRS.iter().map(PathBuf::from).filter(|p| !p.is_symlink()));
    while let Some(dir) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&dir) else { continue };
        for e in rd.flatten() {
            seen += 1;
            if seen > 2_000_000 {
                return out;
            }
            let Ok(m) = e.path().symlink_metadata() else { continue };
            let mode = m.permissions().mode();
            if m.is_dir() {
                if mode & 0o005 != 0o005 {
                    out.push((e.path(), true));
                } else {
                    stack.push(e.path());
                }
            } else if m.is_file() && mode & 0o004 == 0 {
                out.push((e.path(), false));
            }
        }
    }
    out
}

/// Starts the scan of what the sandbox must cover, so the first command does not wait for it.
pub fn prepare() {
    std::thread::spawn(|| restricted().len());
}

/// How one sandbox is built.
#[derive(Debug, Clone, Default)]
pub struct FenceSpec {
    /// Writable directory (the workspace), also the working directory.
    pub writable: Option<PathBuf>,
    /// More directories visible read-only.
    pub read_only: Vec<PathBuf>,
    pub network: bool,
    /// Processes the sandbox may hold at once.
    pub max_processes: u64,
    /// Directories covered by an empty tmpfs, whatever the binds above uncover.
    pub hidden: Vec<PathBuf>,
}

/// The fence as built, for the journal.
#[derive(Debug, Clone)]
pub struct Fence {
    pub uid: u32,
    pub seccomp: bool,
    /// `cgroup` when a pids cgroup bounds processes, `rlimit` otherwise.
    pub pids: &'static str,
}

impl Fence {
    pub fn evidence(&self) -> serde_json::Value {
        serde_json::json!({"uid": self.uid, "capabilities": "none", "seccomp": self.seccomp, "pids_limit": self.pids})
    }
}

/// Things that must live until the sandboxed process has started (the
/// seccomp program's pipe) or exited (its cgroup).
pub struct FenceGuard {
    seccomp_fd: Option<OwnedFd>,
    cgroup: Option<PathBuf>,
}

impl FenceGuard {
    /// Closes the parent's end of the seccomp pipe once the child has it.
    pub fn spawned(&mut self) {
        self.seccomp_fd = None;
    }
}

impl Drop for FenceGuard {
    fn drop(&mut self) {
        if let Some(dir) = self.cgroup.take() {
            // Kill stragglers, then remove the group; retried off-thread as the kernel empties it.
            std::thread::spawn(move || {
                for _ in 0..50 {
                    if let Ok(pids) = std::fs::read_to_string(dir.join("cgroup.procs")) {
                        for pid in pids.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
                            // SAFETY: sending a signal to processes of our own sandbox cgroup.
                            unsafe { libc::kill(pid, libc::SIGKILL) };
                        }
                    }
                    if std::fs::remove_dir(&dir).is_ok() || !dir.exists() {
                        return;
                    }
                    std::thread::sleep(std::time::Duration::from_millis(100));
                }
            });
        }
    }
}

/// Adds the fence's arguments to a `bwrap` command and prepares its guard.
/// The caller appends `--` and the program after this.
pub fn build(cmd: &mut tokio::process::Command, spec: &FenceSpec) -> (Fence, FenceGuard) {
    cmd.args(["--unshare-user", "--uid", "65534", "--gid", "65534", "--cap-drop", "ALL"]);
    // An empty root with the system directories read-only: the server's
    // data (other sessions, the database, its config) is not there.
    // Every tmpfs has a size (memory is shared by all tenants); /dev is
    // read-only but for a small /dev/shm.
    cmd.args(["--size", &COVER_BYTES.to_string(), "--tmpfs", "/", "--dev", "/dev", "--proc", "/proc"]);
    cmd.args(["--size", &SHM_BYTES.to_string(), "--tmpfs", "/dev/shm", "--remount-ro", "/dev"]);
    cmd.args(["--size", &TMP_BYTES.to_string(), "--tmpfs", "/tmp"]);
    for dir in SYSTEM_DIRS {
        cmd.args(["--ro-bind-try", dir, dir]);
    }
    for dir in &spec.read_only {
        cmd.arg("--ro-bind-try").arg(dir).arg(dir);
    }
    for f in HIDDEN_FILES {
        if Path::new(f).exists() {
            cmd.args(["--ro-bind", "/dev/null", f]);
        }
    }
    // (Each checked again: one removed since the scan cannot be a mount point.)
    for (p, is_dir) in restricted() {
        match p.symlink_metadata() {
            Ok(m) if is_dir && m.is_dir() => {
                cmd.args(["--size", &COVER_BYTES.to_string(), "--tmpfs"]).arg(&p);
            }
            Ok(m) if !is_dir && m.is_file() => {
                cmd.arg("--ro-bind").arg("/dev/null").arg(&p);
            }
            _ => {}
        }
    }
    // Hidden before the workspace is bound: it may live inside a hidden directory.
    let global = HIDDEN.read().unwrap_or_else(|e| e.into_inner()).clone();
    // Only what a bind would show needs covering (covering the rest would
    // create empty mount points in the sandbox's tree).
    let shown = |p: &Path| {
        SYSTEM_DIRS.iter().any(|d| p.starts_with(d))
            || spec.read_only.iter().chain(spec.writable.iter()).any(|d| p.starts_with(d) || d.starts_with(p))
    };
    for p in spec.hidden.iter().chain(global.iter()).filter(|p| shown(p)) {
        if p.is_dir() {
            cmd.args(["--size", &COVER_BYTES.to_string(), "--tmpfs"]).arg(p);
        } else if p.is_file() {
            cmd.arg("--ro-bind").arg("/dev/null").arg(p);
        }
    }
    if let Some(w) = &spec.writable {
        cmd.arg("--bind").arg(w).arg(w).arg("--chdir").arg(w);
    }
    if spec.network {
        for f in RESOLVER_FILES {
            cmd.args(["--ro-bind-try", f, f]);
        }
    } else {
        cmd.arg("--unshare-net");
    }
    // The root itself read-only: writable are only /tmp and the workspace.
    cmd.args(["--remount-ro", "/"]);
    cmd.args(["--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try"]);
    cmd.args(["--die-with-parent", "--new-session"]);
    let seccomp_fd = seccomp_pipe();
    if let Some(fd) = &seccomp_fd {
        let raw = fd.as_raw_fd();
        cmd.arg("--seccomp").arg(raw.to_string());
        // SAFETY: fcntl is async-signal-safe; it runs in the child, on the pipe bwrap reads.
        unsafe {
            cmd.pre_exec(move || {
                if libc::fcntl(raw, libc::F_SETFD, 0) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    let cgroup = pids_cgroup(spec.max_processes);
    if let Some(dir) = &cgroup {
        let procs = std::ffi::CString::new(dir.join("cgroup.procs").as_os_str().as_encoded_bytes()).ok();
        if let Some(procs) = procs {
            // SAFETY: open/write/close are async-signal-safe; the path was built before fork.
            unsafe {
                cmd.pre_exec(move || {
                    let fd = libc::open(procs.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
                    if fd < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    // "0" moves the writing process: bwrap and all it starts.
                    let r = libc::write(fd, b"0".as_ptr().cast(), 1);
                    libc::close(fd);
                    if r != 1 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
    }
    let fence = Fence {
        uid: SANDBOX_UID,
        seccomp: seccomp_fd.is_some(),
        pids: if cgroup.is_some() { "cgroup" } else { "rlimit" },
    };
    (fence, FenceGuard { seccomp_fd, cgroup })
}

/// Sets resource limits in the child before it execs (`(RLIMIT_*, value)`).
pub fn set_rlimits(cmd: &mut tokio::process::Command, limits: Vec<(libc::__rlimit_resource_t, u64)>) {
    // SAFETY: only setrlimit runs between fork and exec; it is async-signal-safe.
    unsafe {
        cmd.pre_exec(move || {
            for (res, v) in &limits {
                let lim = libc::rlimit { rlim_cur: *v as libc::rlim_t, rlim_max: *v as libc::rlim_t };
                if libc::setrlimit(*res, &lim) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
}

/// A pids cgroup for one sandbox (v1 `pids` hierarchy or v2 with the pids
/// controller), or `None` where the host does not let us make one.
fn pids_cgroup(max: u64) -> Option<PathBuf> {
    static PARENT: std::sync::OnceLock<Option<PathBuf>> = std::sync::OnceLock::new();
    let parent = PARENT
        .get_or_init(|| {
            let v1 = Path::new("/sys/fs/cgroup/pids");
            if v1.join("cgroup.procs").exists() {
                let p = v1.join("agentd-sandbox");
                return std::fs::create_dir_all(&p).ok().map(|_| p);
            }
            let v2 = Path::new("/sys/fs/cgroup");
            let ctl = std::fs::read_to_string(v2.join("cgroup.controllers")).ok()?;
            if !ctl.split_whitespace().any(|c| c == "pids") {
                return None;
            }
            let _ = std::fs::write(v2.join("cgroup.subtree_control"), "+pids");
            let p = v2.join("agentd-sandbox");
            std::fs::create_dir_all(&p).ok()?;
            std::fs::write(p.join("cgroup.subtree_control"), "+pids").ok()?;
            Some(p)
        })
        .as_ref()
        .filter(|p| cgroup_works(p));
    let dir = parent?.join(format!("s{}", uuid_like()));
    std::fs::create_dir(&dir).ok()?;
    if std::fs::write(dir.join("pids.max"), max.max(1).to_string()).is_err() {
        let _ = std::fs::remove_dir(&dir);
        return None;
    }
    Some(dir)
}

/// Whether a process can really be moved into a group under `parent`
/// (delegation rules can refuse it even where the directory was made);
/// probed once, so a host without it falls back to rlimits instead of
/// failing every sandbox.
fn cgroup_works(parent: &Path) -> bool {
    static WORKS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *WORKS.get_or_init(|| {
        let probe = parent.join(format!("probe-{}", std::process::id()));
        if std::fs::create_dir(&probe).is_err() && !probe.is_dir() {
            return false;
        }
        let procs = probe.join("cgroup.procs");
        let moved = std::process::Command::new("/bin/sh")
            .arg("-c")
            .arg(r#"echo 0 > "$1""#)
            .arg("sh")
            .arg(&procs)
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        let _ = std::fs::remove_dir(&probe);
        if !moved {
            tracing::warn!("pids cgroups cannot be used here; sandboxes fall back to RLIMIT_NPROC");
        }
        moved
    })
}

fn uuid_like() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    format!("{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed))
}

/// A pipe holding the seccomp program, its read end inheritable for bwrap.
fn seccomp_pipe() -> Option<OwnedFd> {
    let prog = seccomp_program()?;
    let mut fds = [0i32; 2];
    // SAFETY: pipe2 fills two descriptors we own from here on.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return None;
    }
    // SAFETY: fresh descriptors from pipe2.
    let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    let bytes: Vec<u8> = prog.iter().flat_map(|f| f.to_bytes()).collect();
    let mut file = std::fs::File::from(w);
    std::io::Write::write_all(&mut file, &bytes).ok()?;
    drop(file);
    // Close-on-exec stays set here: only the child that needs it clears it
    // (see `build`), so commands spawned at the same time never inherit it.
    Some(r)
}

#[derive(Clone, Copy)]
struct SockFilter {
    code: u16,
    jt: u8,
    jf: u8,
    k: u32,
}

impl SockFilter {
    fn to_bytes(self) -> [u8; 8] {
        let mut b = [0u8; 8];
        b[..2].copy_from_slice(&self.code.to_ne_bytes());
        b[2] = self.jt;
        b[3] = self.jf;
        b[4..].copy_from_slice(&self.k.to_ne_bytes());
        b
    }
}

const LD_ABS_W: u16 = 0x20;
const JEQ_K: u16 = 0x15;
const JGE_K: u16 = 0x35;
const JSET_K: u16 = 0x45;
const RET_K: u16 = 0x06;
const RET_ALLOW: u32 = 0x7fff_0000;
const RET_ERRNO: u32 = 0x0005_0000;
const RET_KILL_PROCESS: u32 = 0x8000_0000;

/// Syscalls a tool never needs: mounting, tracing, kernel keyrings, BPF,
/// module loading, kexec, namespaces, clocks, swap, reboot, handles.
#[cfg(target_arch = "x86_64")]
const DENIED: &[i64] = &[
    libc::SYS_mount,
    libc::SYS_umount2,
    libc::SYS_pivot_root,
    libc::SYS_chroot,
    libc::SYS_move_mount,
    libc::SYS_open_tree,
    libc::SYS_fsopen,
    libc::SYS_fsconfig,
    libc::SYS_fsmount,
    libc::SYS_fspick,
    libc::SYS_mount_setattr,
    libc::SYS_ptrace,
    libc::SYS_process_vm_readv,
    libc::SYS_process_vm_writev,
    libc::SYS_bpf,
    libc::SYS_perf_event_open,
    libc::SYS_userfaultfd,
    libc::SYS_keyctl,
    libc::SYS_add_key,
    libc::SYS_request_key,
    libc::SYS_kexec_load,
    libc::SYS_kexec_file_load,
    libc::SYS_init_module,
    libc::SYS_finit_module,
    libc::SYS_delete_module,
    libc::SYS_unshare,
    libc::SYS_setns,
    libc::SYS_open_by_handle_at,
    libc::SYS_name_to_handle_at,
    libc::SYS_swapon,
    libc::SYS_swapoff,
    libc::SYS_reboot,
    libc::SYS_syslog,
    libc::SYS_acct,
    libc::SYS_settimeofday,
    libc::SYS_clock_settime,
    libc::SYS_clock_adjtime,
    libc::SYS_adjtimex,
    libc::SYS_sethostname,
    libc::SYS_setdomainname,
    libc::SYS_iopl,
    libc::SYS_ioperm,
    libc::SYS_quotactl,
    libc::SYS_lookup_dcookie,
    libc::SYS_personality,
];

/// The filter: wrong architecture → kill; x32 and denied calls → EPERM;
/// `clone` with namespace flags → EPERM; `clone3` → ENOSYS (libc falls
/// back to `clone`, whose flags can be checked); everything else allowed.
#[cfg(target_arch = "x86_64")]
fn seccomp_program() -> Option<Vec<SockFilter>> {
    const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
    const NS_FLAGS: u32 = (libc::CLONE_NEWNS
        | libc::CLONE_NEWUSER
        | libc::CLONE_NEWPID
        | libc::CLONE_NEWNET
        | libc::CLONE_NEWUTS
        | libc::CLONE_NEWIPC
        | libc::CLONE_NEWCGROUP) as u32;
    let f = |code, jt, jf, k| SockFilter { code, jt, jf, k };
    let n = DENIED.len();
    // Layout: [0] ld arch [1] jeq arch [2] ld nr [3] jge x32 [4..4+n] denied
    // [4+n] jeq clone [5+n] jeq clone3 [6+n] allow [7+n] ld flags [8+n] jset
    // [9+n] allow [10+n] eperm [11+n] enosys [12+n] kill.
    let at = |i: usize, target: usize| (target - i - 1) as u8;
    let (eperm, enosys, kill) = (10 + n, 11 + n, 12 + n);
    let mut p = vec![f(LD_ABS_W, 0, 0, 4), f(JEQ_K, 0, at(1, kill), AUDIT_ARCH_X86_64), f(LD_ABS_W, 0, 0, 0)];
    p.push(f(JGE_K, at(3, eperm), 0, 0x4000_0000));
    for (i, nr) in DENIED.iter().enumerate() {
        p.push(f(JEQ_K, at(4 + i, eperm), 0, *nr as u32));
    }
    p.push(f(JEQ_K, at(4 + n, 7 + n), 0, libc::SYS_clone as u32));
    p.push(f(JEQ_K, at(5 + n, enosys), 0, libc::SYS_clone3 as u32));
    p.push(f(RET_K, 0, 0, RET_ALLOW));
    p.push(f(LD_ABS_W, 0, 0, 16)); // low 32 bits of args[0]: clone's flags
    p.push(f(JSET_K, at(8 + n, eperm), 0, NS_FLAGS));
    p.push(f(RET_K, 0, 0, RET_ALLOW));
    p.push(f(RET_K, 0, 0, RET_ERRNO | libc::EPERM as u32));
    p.push(f(RET_K, 0, 0, RET_ERRNO | libc::ENOSYS as u32));
    p.push(f(RET_K, 0, 0, RET_KILL_PROCESS));
    debug_assert_eq!(p.len(), 13 + n);
    Some(p)
}

/// Other architectures run without the filter (and say so in the fence).
#[cfg(not(target_arch = "x86_64"))]
fn seccomp_program() -> Option<Vec<SockFilter>> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn the_filter_jumps_stay_inside_the_program() {
        let p = seccomp_program().unwrap();
        for (i, ins) in p.iter().enumerate() {
            if ins.code == JEQ_K || ins.code == JGE_K || ins.code == JSET_K {
                assert!(i + 1 + (ins.jt as usize) < p.len() && i + 1 + (ins.jf as usize) < p.len(), "at {i}");
            }
        }
        assert_eq!(p.last().unwrap().k, RET_KILL_PROCESS);
    }
}
