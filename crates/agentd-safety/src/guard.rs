//! The guard: rates how risky one tool call is (`low`, `medium`, `high`)
//! and says why. Shell commands are parsed, not grepped, so quoting,
//! pipelines and `sh -c` strings cannot hide what runs.

use agentd_core::ToolSource;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::shellparse::{self, Pipeline, Script, SimpleCommand, Word};

pub use agentd_core::policy::Risk;

/// The guard's verdict on one call.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Assessment {
    pub risk: Risk,
    pub reasons: Vec<String>,
}

impl Assessment {
    fn flag(&mut self, risk: Risk, reason: impl Into<String>) {
        let reason = reason.into();
        self.risk = self.risk.max(risk);
        if !self.reasons.contains(&reason) {
            self.reasons.push(reason);
        }
    }
}

/// What the guard knows about the tool being called.
#[derive(Debug, Clone, Copy)]
pub struct ToolFacts<'a> {
    pub name: &'a str,
    pub source: ToolSource,
    /// MCP tool annotations as the server gave them (`readOnlyHint`, `destructiveHint`, …).
    pub annotations: Option<&'a Value>,
}

/// Rates one tool call.
pub fn assess(tool: ToolFacts<'_>, args: &Value) -> Assessment {
    let mut a = Assessment::default();
    match (tool.source, tool.name) {
        (ToolSource::Builtin, "shell") => {
            if let Some(cmd) = args["command"].as_str() {
                assess_command_line(cmd, 0, &mut a);
            } else if let Some(argv) = args["argv"].as_array() {
                let words: Vec<Word> = argv
                    .iter()
                    .map(|v| Word { text: v.as_str().unwrap_or_default().to_string(), dynamic: false })
                    .collect();
                let cmd = SimpleCommand { argv: words, ..Default::default() };
                assess_pipeline(&Pipeline { commands: vec![cmd] }, 0, &mut a);
            }
        }
        (ToolSource::Builtin, "write_file" | "edit_file") => {
            let path = args["path"].as_str().unwrap_or_default();
            if outside_workspace(path) {
                a.flag(Risk::High, format!("writes outside the workspace: {path}"));
            } else if sensitive_path(path) {
                a.flag(Risk::Medium, format!("changes a sensitive file: {path}"));
            }
            let size = args["content"].as_str().or(args["new"].as_str()).map_or(0, str::len);
            if size > 1024 * 1024 {
                a.flag(Risk::Medium, format!("large write ({size} bytes)"));
            }
        }
        (ToolSource::Builtin, "http_fetch") => {
            let url = args["url"].as_str().unwrap_or_default();
            let method = args["method"].as_str().unwrap_or("GET").to_ascii_uppercase();
            if private_host(url) {
                a.flag(Risk::High, format!("reaches a local or private network address: {url}"));
            }
            if method != "GET" {
                a.flag(Risk::Medium, format!("sends data over the network ({method})"));
            } else {
                a.flag(Risk::Medium, "network access");
            }
        }
        (ToolSource::Builtin, _) | (ToolSource::Skill, _) => {}
        (ToolSource::Http, _) => a.flag(Risk::Medium, "calls an external HTTP endpoint"),
        (ToolSource::Mcp, _) => {
            let hint = |k: &str| tool.annotations.and_then(|v| v[k].as_bool());
            match (hint("readOnlyHint"), hint("destructiveHint")) {
                (_, Some(true)) => a.flag(Risk::High, "the MCP server marks this tool destructive"),
                (Some(true), _) => {}
                (_, Some(false)) => a.flag(Risk::Medium, "the MCP server marks this tool as changing things"),
                _ => a.flag(Risk::Medium, "MCP tool without read-only or destructive hints"),
            }
            if hint("openWorldHint") == Some(true) {
                a.flag(Risk::Medium, "the MCP server says this tool reaches the outside world");
            }
        }
    }
    a
}

const MAX_DEPTH: usize = 6;

/// Rates a shell command line.
pub fn assess_shell(cmd: &str) -> Assessment {
    let mut a = Assessment::default();
    assess_command_line(cmd, 0, &mut a);
    a
}

fn assess_command_line(src: &str, depth: usize, a: &mut Assessment) {
    if depth > MAX_DEPTH {
        a.flag(Risk::High, "commands nested too deeply to check");
        return;
    }
    let compact: String = src.chars().filter(|c| !c.is_whitespace()).collect();
    if compact.contains(":(){") || compact.contains(":|:&") {
        a.flag(Risk::High, "fork bomb");
    }
    match shellparse::parse(src) {
        Ok(script) => assess_script(&script, depth, a),
        Err(e) => a.flag(Risk::Medium, format!("the command cannot be parsed ({e})")),
    }
}

fn assess_script(s: &Script, depth: usize, a: &mut Assessment) {
    for p in &s.pipelines {
        assess_pipeline(p, depth, a);
    }
    for sub in &s.substitutions {
        assess_command_line(sub, depth + 1, a);
    }
}

const SHELLS: &[&str] = &["sh", "bash", "zsh", "dash", "ksh", "fish", "ash", "mksh", "csh", "tcsh"];
const INTERPRETERS: &[&str] = &["python", "python2", "python3", "perl", "ruby", "node", "nodejs", "php", "lua", "deno"];
const DOWNLOADERS: &[&str] = &["curl", "wget", "fetch", "aria2c", "http", "https", "nc", "ncat", "netcat", "socat"];
const NETWORK: &[&str] = &[
    "curl",
    "wget",
    "nc",
    "ncat",
    "netcat",
    "socat",
    "ssh",
    "scp",
    "sftp",
    "ftp",
    "telnet",
    "nmap",
    "ping",
    "dig",
    "nslookup",
    "host",
    "http",
    "https",
    "aria2c",
    "rsync",
    "fetch",
    "whois",
    "traceroute",
];

fn base(w: &Word) -> &str {
    w.text.rsplit('/').next().unwrap_or(&w.text)
}

fn is_interpreter(name: &str) -> bool {
    SHELLS.contains(&name)
        || INTERPRETERS.contains(&name)
        || (name.starts_with("python") && name[6..].chars().all(|c| c.is_ascii_digit() || c == '.'))
}

fn assess_pipeline(p: &Pipeline, depth: usize, a: &mut Assessment) {
    let mut fed_by: Option<&'static str> = None;
    for (i, c) in p.commands.iter().enumerate() {
        let argv = assess_simple(c, depth, a);
        let Some(prog) = argv.first() else { continue };
        let name = base(prog);
        let reads_stdin = argv.len() == 1 || argv[1..].iter().all(|w| w.text.starts_with('-'));
        if i > 0 && is_interpreter(name) && reads_stdin {
            match fed_by {
                Some("download") => a.flag(Risk::High, "downloaded content is piped into an interpreter (curl | sh)"),
                Some("decode") => a.flag(Risk::High, "decoded (obfuscated) content is piped into an interpreter"),
                _ => a.flag(Risk::Medium, format!("{name} runs commands read from a pipe")),
            }
        }
        if DOWNLOADERS.contains(&name) {
            fed_by = Some("download");
        } else if fed_by.is_none() && is_decoder(name, argv) {
            fed_by = Some("decode");
        }
    }
}

fn is_decoder(name: &str, argv: &[Word]) -> bool {
    let has = |f: &str| argv.iter().any(|w| w.text == f);
    match name {
        "base64" | "base32" => has("-d") || has("--decode") || has("-D"),
        "xxd" => has("-r"),
        "openssl" => has("-d"),
        "gunzip" | "zcat" | "rev" => true,
        _ => false,
    }
}

/// Rates one simple command; returns its argv with wrappers (`sudo`, `env`,
/// `xargs`, …) removed, for the pipeline checks.
fn assess_simple<'a>(c: &'a SimpleCommand, depth: usize, a: &mut Assessment) -> &'a [Word] {
    for r in &c.redirects {
        let writes = r.op == "<>" || (r.op.contains('>') && !r.op.ends_with(">&"));
        if writes && !r.target.starts_with('&') {
            check_write_target(&r.target, a);
        }
    }
    let mut argv = c.argv.as_slice();
    // Wrappers that run the rest of the line as a command.
    loop {
        let Some(first) = argv.first() else { return argv };
        let name = base(first);
        let skip_opts = |v: &'a [Word], with_value: &[&str]| -> &'a [Word] {
            let mut i = 1;
            while i < v.len() && v[i].text.starts_with('-') && v[i].text != "--" {
                i += if with_value.contains(&v[i].text.as_str()) { 2 } else { 1 };
            }
            if v.get(i).is_some_and(|w| w.text == "--") {
                i += 1;
            }
            &v[i.min(v.len())..]
        };
        argv = match name {
            "sudo" | "doas" | "pkexec" | "run0" => {
                a.flag(Risk::High, format!("runs as another user ({name}: privilege escalation)"));
                skip_opts(argv, &["-u", "-g", "-C", "-D", "-h", "-p", "-U", "-r", "-t", "--user", "--group"])
            }
            "su" => {
                a.flag(Risk::High, "switches user (su: privilege escalation)");
                let rest = skip_opts(argv, &[]);
                if let Some(pos) = argv.iter().position(|w| w.text == "-c")
                    && let Some(script) = argv.get(pos + 1)
                {
                    assess_command_line(&script.text, depth + 1, a);
                }
                return rest;
            }
            "env" => {
                let mut rest = skip_opts(argv, &["-u", "-C", "-S", "--unset", "--chdir"]);
                while rest.first().is_some_and(|w| w.text.contains('=')) {
                    rest = &rest[1..];
                }
                if rest.is_empty() {
                    a.flag(Risk::Medium, "prints the environment (may expose secrets)");
                }
                rest
            }
            "nice" | "ionice" => skip_opts(argv, &["-n", "-c", "--adjustment"]),
            "nohup" | "time" | "command" | "builtin" | "exec" | "stdbuf" | "unbuffer" | "setsid" => {
                skip_opts(argv, &[])
            }
            "timeout" => {
                let rest = skip_opts(argv, &["-s", "-k", "--signal", "--kill-after"]);
                rest.get(1..).unwrap_or(&[])
            }
            "xargs" => skip_opts(argv, &["-n", "-I", "-P", "-L", "-d", "-s", "-E", "-a"]),
            "watch" => skip_opts(argv, &["-n", "-d"]),
            "busybox" => &argv[1..],
            "chroot" => {
                a.flag(Risk::High, "changes the root directory (chroot)");
                argv.get(2..).unwrap_or(&[])
            }
            _ => break,
        };
    }
    let prog = &argv[0];
    if prog.dynamic {
        a.flag(Risk::Medium, format!("the program name is only known at run time ({})", prog.text));
    }
    let name = base(prog);
    let args = &argv[1..];
    let has = |f: &str| args.iter().any(|w| w.text == f);
    let operands = || args.iter().filter(|w| !w.text.starts_with('-'));
    let short = |letter: char| {
        args.iter().any(|w| w.text.starts_with('-') && !w.text.starts_with("--") && w.text[1..].contains(letter))
    };
    for w in args {
        if credential_path(&w.text) {
            a.flag(Risk::High, format!("touches a credentials file: {}", w.text));
        }
    }
    match name {
        n if SHELLS.contains(&n) => {
            if let Some(pos) = args.iter().position(|w| {
                w.text == "-c" || (w.text.starts_with('-') && w.text.ends_with('c') && !w.text.starts_with("--"))
            }) {
                match args.get(pos + 1) {
                    Some(script) => assess_command_line(&script.text, depth + 1, a),
                    None => a.flag(Risk::Medium, format!("{n} -c without a command")),
                }
            } else if let Some(doc) = c.redirects.iter().find(|r| r.op.starts_with("<<") && r.op != "<<<") {
                assess_command_line(&doc.target, depth + 1, a);
            } else if let Some(s) = c.redirects.iter().find(|r| r.op == "<<<") {
                assess_command_line(&s.target, depth + 1, a);
            } else if operands().next().is_some() {
                a.flag(Risk::Medium, format!("runs a script file with {n}"));
            }
        }
        "eval" => {
            a.flag(Risk::Medium, "eval runs text as code");
            let text: Vec<&str> = args.iter().map(|w| w.text.as_str()).collect();
            assess_command_line(&text.join(" "), depth + 1, a);
        }
        "source" | "." => a.flag(Risk::Medium, "runs a script in the current shell"),
        n if is_interpreter(n) && (has("-c") || has("-e") || has("--eval") || has("-E")) => {
            a.flag(Risk::Medium, format!("runs inline {n} code"));
        }
        "rm" | "unlink" | "rmdir" => {
            let recursive = has("--recursive") || short('r') || short('R');
            let force = has("--force") || short('f');
            if recursive && force {
                a.flag(Risk::High, "rm -rf: recursive forced delete");
            } else if recursive {
                a.flag(Risk::Medium, "recursive delete");
            } else {
                a.flag(Risk::Medium, "deletes files");
            }
            for p in operands() {
                let t = p.text.trim_end_matches('/');
                if matches!(t, "" | "/*" | "~" | "*" | "." | ".." | "$HOME") || p.text == "/" {
                    a.flag(Risk::High, format!("deletes a whole tree: {}", p.text));
                }
                if outside_workspace(&p.text) {
                    a.flag(Risk::High, format!("touches a path outside the workspace: {}", p.text));
                }
            }
            if has("--no-preserve-root") {
                a.flag(Risk::High, "rm --no-preserve-root");
            }
        }
        "cp" | "mv" | "ln" | "install" | "rsync" if !args.iter().any(|w| w.text.contains(':')) => {
            if let Some(dest) = operands().next_back().filter(|d| outside_workspace(&d.text)) {
                a.flag(Risk::High, format!("writes outside the workspace: {}", dest.text));
            }
        }
        "tee" | "touch" | "mkdir" | "truncate" | "chmod" | "chown" | "chgrp" | "chattr" | "setfacl" => {
            for p in operands().filter(|p| outside_workspace(&p.text)) {
                a.flag(Risk::High, format!("writes outside the workspace: {}", p.text));
            }
            if matches!(name, "chmod" | "chown" | "chgrp") && (short('R') || has("--recursive")) {
                a.flag(Risk::Medium, format!("{name} -R changes a whole tree"));
            }
            if name == "chmod" && args.iter().any(|w| w.text.contains("777") || w.text.contains("+s")) {
                a.flag(Risk::Medium, "makes files world-writable or setuid");
            }
        }
        n if n.starts_with("mkfs")
            || matches!(n, "fdisk" | "sfdisk" | "cfdisk" | "gdisk" | "parted" | "wipefs" | "mkswap") =>
        {
            a.flag(Risk::High, format!("formats or partitions a disk ({n})"));
        }
        "dd" => {
            a.flag(Risk::High, "dd writes raw data (it can overwrite disks)");
            for w in args.iter().filter_map(|w| w.text.strip_prefix("of=")) {
                check_write_target(w, a);
            }
        }
        "shred" | "wipe" | "srm" => a.flag(Risk::High, format!("destroys file contents ({name})")),
        "shutdown" | "reboot" | "halt" | "poweroff" => a.flag(Risk::High, format!("stops the machine ({name})")),
        "init" | "telinit" if operands().any(|w| w.text == "0" || w.text == "6") => {
            a.flag(Risk::High, "stops the machine (init)");
        }
        "systemctl" | "service" => {
            if operands().any(|w| matches!(w.text.as_str(), "poweroff" | "reboot" | "halt" | "kexec")) {
                a.flag(Risk::High, "stops the machine (systemctl)");
            } else if operands().any(|w| matches!(w.text.as_str(), "enable" | "disable" | "mask" | "stop" | "restart"))
            {
                a.flag(Risk::Medium, "changes system services");
            }
        }
        "mount" | "umount" | "modprobe" | "insmod" | "rmmod" | "sysctl" | "iptables" | "ip6tables" | "nft" | "ufw"
        | "swapon" | "swapoff" | "setenforce" | "kexec" => {
            a.flag(Risk::High, format!("changes system configuration ({name})"));
        }
        "useradd" | "userdel" | "usermod" | "passwd" | "chpasswd" | "visudo" | "groupadd" => {
            a.flag(Risk::High, format!("changes user accounts ({name})"));
        }
        "kill" | "pkill" | "killall" => {
            if args.iter().any(|w| w.text == "-1" && name == "kill" && args.len() == 1)
                || operands().any(|w| w.text == "1")
                || args.windows(2).any(|p| p[0].text.starts_with('-') && p[1].text == "-1")
            {
                a.flag(Risk::High, "kills every process or init");
            } else {
                a.flag(Risk::Medium, "stops processes");
            }
        }
        "crontab" | "at" | "batch" => a.flag(Risk::Medium, "schedules jobs that outlive the command"),
        "history" if has("-c") => a.flag(Risk::Medium, "clears the shell history"),
        "printenv" => a.flag(Risk::Medium, "prints the environment (may expose secrets)"),
        "find" => {
            if has("-delete") {
                a.flag(Risk::Medium, "find -delete removes files");
            }
            for (i, w) in args.iter().enumerate() {
                if matches!(w.text.as_str(), "-exec" | "-execdir" | "-ok" | "-okdir") {
                    let rest: Vec<Word> =
                        args[i + 1..].iter().take_while(|w| w.text != ";" && w.text != "+").cloned().collect();
                    let inner = SimpleCommand { argv: rest, ..Default::default() };
                    assess_pipeline(&Pipeline { commands: vec![inner] }, depth + 1, a);
                }
            }
        }
        "git" => assess_git(args, a),
        "docker" | "podman" | "nerdctl" => {
            if has("--privileged") || args.iter().any(|w| w.text.starts_with("/:") || w.text == "--pid=host") {
                a.flag(Risk::High, "starts a privileged container or mounts the host root");
            } else {
                a.flag(Risk::Medium, format!("controls containers ({name})"));
            }
        }
        "apt" | "apt-get" | "yum" | "dnf" | "apk" | "pacman" | "zypper" | "brew" | "pip" | "pip3" | "npm" | "pnpm"
        | "yarn" | "gem" | "cargo" | "go" | "snap" | "dpkg" | "rpm" | "npx" | "uv" | "pipx" => {
            let subs = [
                "install",
                "add",
                "i",
                "get",
                "remove",
                "purge",
                "uninstall",
                "-i",
                "-S",
                "-U",
                "-e",
                "exec",
                "x",
                "run",
            ];
            if name == "npx" || operands().next().is_some_and(|w| subs.contains(&w.text.as_str())) || has("-i") {
                a.flag(Risk::Medium, format!("installs or removes packages ({name})"));
            }
        }
        _ => {}
    }
    if NETWORK.contains(&name) {
        a.flag(Risk::Medium, format!("network access ({name})"));
        let upload = ["-T", "--upload-file", "-F", "--form", "--post-file"];
        if args.iter().any(|w| upload.contains(&w.text.as_str()))
            || args.iter().any(|w| w.text.starts_with('@') || w.text.starts_with("--data-binary=@"))
        {
            a.flag(Risk::High, "uploads a local file over the network");
        } else if args.iter().any(|w| w.text.starts_with("-d") || w.text.starts_with("--data") || w.text == "-X") {
            a.flag(Risk::Medium, "sends data over the network");
        }
        for (i, w) in args.iter().enumerate() {
            if matches!(w.text.as_str(), "-o" | "-O" | "--output" | "--output-document")
                && name != "ssh"
                && let Some(p) = args.get(i + 1)
            {
                check_write_target(&p.text, a);
            }
        }
    }
    argv
}

fn assess_git(args: &[Word], a: &mut Assessment) {
    let has = |f: &str| args.iter().any(|w| w.text == f);
    let sub = args.iter().find(|w| !w.text.starts_with('-')).map(|w| w.text.as_str()).unwrap_or_default();
    match sub {
        "push" => {
            let force = has("--force")
                || has("-f")
                || has("--force-with-lease")
                || has("--mirror")
                || has("--delete")
                || args
                    .iter()
                    .any(|w| w.text.starts_with('+') || w.text.starts_with("--force") || w.text.starts_with(':'));
            if force {
                a.flag(Risk::High, "git push --force rewrites or deletes remote history");
            } else {
                a.flag(Risk::Medium, "git push publishes to a remote");
            }
        }
        "reset" if has("--hard") => a.flag(Risk::Medium, "git reset --hard discards local changes"),
        "clean" if args.iter().any(|w| w.text.starts_with('-') && w.text.contains('f')) => {
            a.flag(Risk::Medium, "git clean deletes untracked files")
        }
        "clone" | "fetch" | "pull" | "ls-remote" | "submodule" => {
            a.flag(Risk::Medium, format!("network access (git {sub})"))
        }
        "config" if has("--global") || has("--system") => {
            a.flag(Risk::Medium, "changes git configuration outside the workspace")
        }
        "filter-branch" | "filter-repo" => a.flag(Risk::Medium, "rewrites history"),
        _ => {}
    }
}

/// Flags a path a command writes to.
fn check_write_target(path: &str, a: &mut Assessment) {
    let harmless = ["/dev/null", "/dev/stdout", "/dev/stderr", "/dev/tty", "-"];
    if harmless.contains(&path) || path.starts_with("/dev/fd/") {
        return;
    }
    if path.starts_with("/dev/") {
        a.flag(Risk::High, format!("writes to a device: {path}"));
    } else if path.starts_with('$') {
        a.flag(Risk::Medium, format!("writes to a path only known at run time: {path}"));
    } else if outside_workspace(path) {
        a.flag(Risk::High, format!("writes outside the workspace: {path}"));
    }
}

/// Absolute, home-relative or climbing out with `..` (private `/tmp` is inside the sandbox).
pub fn outside_workspace(path: &str) -> bool {
    let p = path.trim();
    if p.starts_with("/tmp/") || p == "/tmp" {
        return false;
    }
    p.starts_with('/')
        || p.starts_with('~')
        || p.starts_with("$HOME")
        || p.split('/')
            .try_fold(0i32, |depth, part| match part {
                ".." if depth == 0 => None,
                ".." => Some(depth - 1),
                "" | "." => Some(depth),
                _ => Some(depth + 1),
            })
            .is_none()
}

fn sensitive_path(path: &str) -> bool {
    let p = path.trim_start_matches("./");
    p.starts_with(".git/")
        || p.contains("/.git/hooks")
        || p.starts_with(".github/workflows")
        || credential_path(p)
        || [".bashrc", ".profile", ".zshrc", ".bash_profile"].iter().any(|f| p.ends_with(f))
}

fn credential_path(p: &str) -> bool {
    p.contains(".ssh/")
        || p.ends_with("/.ssh")
        || p.contains("id_rsa")
        || p.contains("id_ed25519")
        || p.contains("/etc/shadow")
        || p.contains("/etc/sudoers")
        || p.contains(".aws/credentials")
        || p.contains(".netrc")
        || p.contains(".git-credentials")
        || p.contains(".docker/config.json")
        || p.contains(".kube/config")
        || p.contains("/proc/self/environ")
        || p.contains("/proc/1/environ")
}

/// Loopback, link-local and private addresses (and localhost names).
fn private_host(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = if let Some(h) = host.strip_prefix('[') {
        h.split(']').next().unwrap_or_default()
    } else {
        host.split(':').next().unwrap_or_default()
    };
    let host = host.to_ascii_lowercase();
    if host == "localhost"
        || host.ends_with(".localhost")
        || host.ends_with(".internal")
        || host == "metadata.google.internal"
    {
        return true;
    }
    match host.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(ip)) => {
            ip.is_loopback() || ip.is_private() || ip.is_link_local() || ip.is_unspecified()
        }
        Ok(std::net::IpAddr::V6(ip)) => {
            ip.is_loopback()
                || ip.is_unspecified()
                || (ip.segments()[0] & 0xfe00) == 0xfc00
                || (ip.segments()[0] & 0xffc0) == 0xfe80
        }
        Err(_) => false,
    }
}
