//! Regression tests for the outside attack (hardening issue): each finding
//! replayed against the real binary, with variations.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed step is a failed test

use crate::common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::common::{Opts, Server};
use agentd_testkit::MockOpenAi;
use serde_json::{Value, json};

fn config(text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("agentd.toml");
    std::fs::write(&p, text).unwrap();
    (dir, p)
}

/// Direct calls pass the policy without a person (what is refused here is the fence's doing).
const OPEN: &str = "[agents.default.policy]\nmode = \"allow\"\nhigh_risk = \"allow\"\n";

async fn call_as(s: &Server, org: &str, tool: &str, args: Value) -> (u16, Value) {
    s.call(reqwest::Method::POST, &format!("/v1/tools/{tool}/call"), Some(json!({"arguments": args})), Some(org)).await
}

fn text(v: &Value) -> String {
    v["content"][0]["text"].as_str().unwrap_or_default().to_string()
}

fn rss_kb(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

async fn alive(s: &Server) {
    let (c, v) = s.get("/readyz").await;
    assert_eq!(c, 200, "the server must stay up and ready: {v}");
}

/// Finding 1: one request must not kill the process; every untrusted parser is bounded.
#[tokio::test(flavor = "multi_thread")]
async fn deep_or_long_inputs_get_400_and_the_server_lives() {
    let mock = MockOpenAi::start(vec![], 0).await.unwrap();
    let s = Server::start(&mock.base_url);
    for (name, content) in [
        ("filters", format!("{{{{ x{} }}}}", "|upper".repeat(10_000))),
        ("attrs", format!("{{{{ x{} }}}}", ".a".repeat(20_000))),
        ("concat", format!("{{{{ x{} }}}}", " ~ x".repeat(10_000))),
        ("calls", format!("{{{{ x{} }}}}", "()".repeat(10_000))),
        ("blocks", format!("{}x{}", "{% if x %}".repeat(3_000), "{% endif %}".repeat(3_000))),
    ] {
        let (c, v) = s.post("/v1/prompt-templates", json!({"name": name, "content": content})).await;
        assert_eq!(c, 400, "{name}: {v}");
        assert!(v["error"]["code"].as_str().is_some_and(|c| c.starts_with("template_") || c == "invalid_template"));
        alive(&s).await;
    }
    // Deeply nested JSON bodies and schemas.
    let deep = format!("{}1{}", "[".repeat(5_000), "]".repeat(5_000));
    let r = s.req(reqwest::Method::POST, "/v1/runs").header("content-type", "application/json").body(deep);
    assert_eq!(r.send().await.unwrap().status().as_u16(), 400);
    let mut schema = json!({"type": "object"});
    for _ in 0..40 {
        schema = json!({"type": "object", "properties": {"a": schema}});
    }
    let def = json!({"name": "deep", "url": "https://example.com/x", "input_schema": schema});
    let (c, v) = s.post("/v1/http-tools", def).await;
    assert_eq!(c, 400, "{v}");
    assert!(v["error"]["message"].as_str().unwrap_or_default().contains("too complex"), "{v}");
    // Huge globs and regexes are refused as tool errors, never a crash.
    let (_dir, cfg) = config(OPEN);
    drop(s);
    let s = Server::start_with(Opts { mock: Some(&mock.base_url), config: Some(&cfg), ..Default::default() });
    // Within the length limit but nested beyond the regex parser's: a tool error.
    let (c, v) = call_as(&s, "a", "grep", json!({"pattern": "(".repeat(1_000) + &")".repeat(1_000)})).await;
    assert_eq!((c, v["is_error"].as_bool()), (200, Some(true)), "{v}");
    // Beyond the length limits: 400 invalid_arguments naming the field.
    for (tool, args) in [
        ("grep", json!({"pattern": "(".repeat(3_000) + &")".repeat(3_000)})),
        ("glob", json!({"pattern": "{a,".repeat(5_000)})),
        ("read_file", json!({"path": "a/".repeat(5_000)})),
        ("shell", json!({"command": format!("echo {}", "$(".repeat(40_000))})),
    ] {
        let (c, v) = call_as(&s, "a", tool, args).await;
        assert_eq!((c, v["error"]["code"].as_str()), (400, Some("invalid_arguments")), "{tool}: {v}");
    }
    let cmd = format!("echo {}", "$(".repeat(2_000));
    let (c, _) = call_as(&s, "a", "shell", json!({"command": cmd})).await;
    assert!(c < 500);
    alive(&s).await;
}

/// Findings 3 and 4: no tool reaches agentd itself or an internal address, however spelled.
#[tokio::test(flavor = "multi_thread")]
async fn the_egress_guard_refuses_internal_addresses_and_agentd_itself() {
    let mock = MockOpenAi::start(vec![], 0).await.unwrap();
    let (_dir, cfg) = config(OPEN);
    let s = Server::start_with(Opts { mock: Some(&mock.base_url), config: Some(&cfg), ..Default::default() });
    let port = s.url.rsplit(':').next().unwrap().to_string();
    let mock_port = mock.base_url.split(':').nth(2).unwrap().split('/').next().unwrap().to_string();
    for host in [
        "127.0.0.1",
        "2130706433",
        "0x7f000001",
        "0177.0.0.1",
        "127.1",
        "0",
        "[::1]",
        "[::ffff:127.0.0.1]",
        "[::ffff:7f00:1]",
        "localhost",
    ] {
        for p in [&port, &mock_port] {
            let url = format!("http://{host}:{p}/v1/models");
            let (c, v) = call_as(&s, "a", "http_fetch", json!({"url": url})).await;
            assert_eq!(c, 200, "{url}: {v}");
            assert_eq!(v["is_error"], true, "{url} must be refused: {v}");
            assert!(text(&v).contains("egress refused"), "{url}: {v}");
        }
    }
    let hostname = std::fs::read_to_string("/etc/hostname").unwrap_or_default().trim().to_string();
    if !hostname.is_empty() {
        let (_, v) = call_as(&s, "a", "http_fetch", json!({"url": format!("http://{hostname}:{port}/healthz")})).await;
        assert_eq!(v["is_error"], true, "the machine's own name: {v}");
    }
    // An HTTP tool aimed at agentd's API with another tenant's header is refused too.
    let def = json!({"name": "pivot", "url": format!("http://127.0.0.1:{port}/v1/approvals"),
                     "headers": {"x-org-id": "victim"}, "input_schema": {"type": "object"}});
    let (c, v) = s.call(reqwest::Method::POST, "/v1/http-tools", Some(def), Some("attacker")).await;
    assert_eq!(c, 201, "{v}");
    let (c, v) = call_as(&s, "attacker", "pivot", json!({})).await;
    assert_eq!((c, v["is_error"].as_bool()), (200, Some(true)), "{v}");
    assert!(text(&v).contains("egress refused"), "{v}");
    alive(&s).await;
}

/// The operator can allow loopback for a tenant; agentd's own port stays refused,
/// and redirects are checked hop by hop.
#[tokio::test(flavor = "multi_thread")]
async fn an_allow_list_opens_loopback_but_never_agentd_and_redirects_are_rechecked() {
    let mock = MockOpenAi::start(vec![], 0).await.unwrap();
    let (_dir, cfg) = config(&format!("{OPEN}[egress.orgs.trusted]\nallow = [\"127.0.0.1\"]\n"));
    let s = Server::start_with(Opts { mock: Some(&mock.base_url), config: Some(&cfg), ..Default::default() });
    let port = s.url.rsplit(':').next().unwrap().to_string();
    let (_, v) = call_as(&s, "trusted", "http_fetch", json!({"url": format!("{}/models", mock.base_url)})).await;
    assert_eq!(v["is_error"], false, "allowed for this tenant: {v}");
    let (_, v) = call_as(&s, "other", "http_fetch", json!({"url": format!("{}/models", mock.base_url)})).await;
    assert_eq!(v["is_error"], true, "not for another tenant: {v}");
    let (_, v) = call_as(&s, "trusted", "http_fetch", json!({"url": format!("http://127.0.0.1:{port}/healthz")})).await;
    assert_eq!(v["is_error"], true, "agentd itself, even for an allowed tenant: {v}");
    assert!(text(&v).contains("agentd's own address"), "{v}");
    // A redirect from the allowed mock to agentd's own address is refused at the hop.
    let hop = format!("{}/redirect?to=http://127.0.0.1:{port}/healthz", mock.base_url.trim_end_matches("/v1"));
    let (_, v) = call_as(&s, "trusted", "http_fetch", json!({"url": hop})).await;
    assert_eq!(v["is_error"], true, "{v}");
    assert!(text(&v).contains("agentd's own address") || text(&v).contains("egress refused"), "{v}");
}

/// Finding 5: a tenant's MCP server gets none of agentd's environment or files, and no network.
#[tokio::test(flavor = "multi_thread")]
async fn tenant_mcp_servers_get_a_clean_environment_and_a_minimal_root() {
    let Some(python) = ["/usr/bin/python3", "/usr/local/bin/python3"].into_iter().find(|p| Path::new(p).exists())
    else {
        panic!("python3 is required");
    };
    let outside = tempfile::tempdir().unwrap();
    let script = outside.path().join("probe.py");
    std::fs::write(&script, common::probe_mcp_server(PROBE)).unwrap();
    let cfg_text = format!("{OPEN}[mcp]\nsandbox_read_paths = [{:?}]\n", outside.path().display().to_string().as_str());
    // The config and its .env sit in a directory the servers may read: they stay hidden anyway.
    let cfg = outside.path().join("agentd.toml");
    std::fs::write(&cfg, format!("env_file = \".env\"\n{cfg_text}")).unwrap();
    std::fs::write(outside.path().join(".env"), "SOME_OTHER_KEY=sk-from-dotenv-file-0123456789\n").unwrap();
    let s = Server::start_with(Opts {
        config: Some(&cfg),
        env: vec![
            ("AGENTD_SECRET_DEPLOY".into(), "deploy-secret-value-123456".into()),
            ("OPENAI_API_KEY".into(), "sk-server-key-abcdefghijklmnop".into()),
        ],
        ..Default::default()
    });
    // A library that marks the host if anything outside the sandbox loads it
    // (the tenant's env must reach only the sandboxed server, never bwrap).
    let marker = outside.path().join("host-was-here");
    let preload = outside.path().join("evil.so");
    let c_src = outside.path().join("evil.c");
    std::fs::write(
        &c_src,
        format!(
            "#include <stdio.h>\n__attribute__((constructor)) static void f(void) {{ FILE *m = fopen({:?}, \"w\"); if (m) fclose(m); }}\n",
            marker.display().to_string()
        ),
    )
    .unwrap();
    let compiled = std::process::Command::new("gcc")
        .args(["-shared", "-fPIC", "-o"])
        .arg(&preload)
        .arg(&c_src)
        .status()
        .is_ok_and(|s| s.success());
    let body = json!({"name": "probe", "command": python, "args": [script.to_str().unwrap(),
        cfg.to_str().unwrap()], "env": {"MINE": "tenant-value", "LD_PRELOAD": preload.to_str().unwrap()},
        "network": true});
    let (c, v) = s.call(reqwest::Method::POST, "/v1/mcp-servers", Some(body), Some("acme")).await;
    assert_eq!(c, 201, "{v}");
    let mut out = Value::Null;
    for _ in 0..300 {
        let (c, v) = call_as(&s, "acme", "mcp__probe__probe", json!({})).await;
        if c == 200 && v["is_error"] == false {
            out = v;
            break;
        }
        out = json!({"status": c, "body": v});
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let report: Value = serde_json::from_str(&text(&out)).unwrap_or_else(|_| panic!("{out}"));
    let env = report["env"].as_object().unwrap();
    assert_eq!(env.get("MINE").and_then(Value::as_str), Some("tenant-value"), "{report}");
    for k in env.keys() {
        let ok = ["MINE", "PATH", "HOME", "LANG", "PWD", "SHLVL", "_", "LC_CTYPE", "LD_PRELOAD"];
        assert!(ok.contains(&k.as_str()), "leaked {k}");
    }
    if compiled {
        assert!(!marker.exists(), "the tenant's LD_PRELOAD ran on the host");
    } else {
        eprintln!("gcc missing: the LD_PRELOAD check was skipped");
    }
    assert_eq!(report["sees_config"], false, "{report}");
    assert_eq!(report["sees_root_home"], false, "{report}");
    assert_eq!(report["net"], false, "no network unless the operator allows it: {report}");
    assert_eq!(report["uid"], 65534, "{report}");
    // Descriptions and results pass redaction; /v1/tools shows no raw secret.
    let (_, tools) = s.call(reqwest::Method::GET, "/v1/tools", None, Some("acme")).await;
    let all = tools.to_string();
    assert!(!all.contains("sk-server-key") && !all.contains("deploy-secret-value"), "{all}");
}

/// A line-delimited JSON-RPC MCP server whose tool reports what it can see.
/// Its description carries a key-shaped string, which must come back masked.
const PROBE: &str = r#"
import socket
cfg = sys.argv[1]
DESCRIPTION = "key sk-server-key-abcdefghijklmnop " + os.environ.get("AGENTD_SECRET_DEPLOY", "")
def net():
    try:
        socket.create_connection(("1.1.1.1", 53), timeout=1).close(); return True
    except OSError as e:
        return False
def probe():
    return {"env": dict(os.environ), "sees_config": any(os.path.exists(p) and os.path.getsize(p) > 0 for p in (cfg, os.path.join(os.path.dirname(cfg), ".env"))), "sees_root_home": os.path.exists("/root"),
            "net": net(), "uid": os.getuid()}
"#;

/// Finding 7: the shell runs unprivileged, without capabilities, under seccomp,
/// with a process limit that binds.
#[tokio::test(flavor = "multi_thread")]
async fn the_shell_sandbox_holds_no_privileges() {
    let (_dir, cfg) = config(&format!("{OPEN}[agents.default.sandbox]\nmax_processes = 40\n"));
    // A root-only file in a system directory (the sandbox's uid is root's outside).
    let root_only = PathBuf::from(format!("/opt/agentd-hardening-{}", std::process::id()));
    std::fs::create_dir_all(&root_only).unwrap();
    let key = root_only.join("server.key");
    std::fs::write(&key, "PRIVATE KEY MATERIAL").unwrap();
    std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let mock = MockOpenAi::start(vec![], 0).await.unwrap();
    let s = Server::start_with(Opts { mock: Some(&mock.base_url), config: Some(&cfg), ..Default::default() });
    let (_, v) = call_as(&s, "a", "shell", json!({"argv": ["cat", key.to_str().unwrap()]})).await;
    let _ = std::fs::remove_dir_all(&root_only);
    assert!(!text(&v).contains("PRIVATE KEY MATERIAL"), "a root-only file was readable: {v}");
    let cmd = "id -u; grep CapEff /proc/self/status; grep '^Seccomp:' /proc/self/status; \
               mkdir -p m; mount -t tmpfs none m && echo MOUNTED; mknod dev c 1 3 && echo MKNOD; \
               unshare -U true && echo UNSHARED; \
               python3 -c 'import os, time\nn = 0\nfor i in range(120):\n    try:\n        p = os.fork()\n    except OSError:\n        break\n    if p == 0:\n        time.sleep(3)\n        os._exit(0)\n    n += 1\nprint(\"procs=%d\" % n)'";
    let (c, v) = call_as(&s, "a", "shell", json!({"command": cmd})).await;
    assert_eq!(c, 200, "{v}");
    let out = text(&v);
    assert!(out.contains("\n65534\n") || out.contains("stdout ---\n65534"), "{out}");
    let field = |name: &str| out.lines().find(|l| l.starts_with(name)).map(|l| l[name.len()..].trim().to_string());
    assert_eq!(field("CapEff:").as_deref(), Some("0000000000000000"), "{out}");
    assert_eq!(field("Seccomp:").as_deref(), Some("2"), "{out}");
    for bad in ["MOUNTED", "MKNOD", "UNSHARED"] {
        assert!(!out.contains(bad), "{bad}: {out}");
    }
    let procs: u64 = out
        .split("procs=")
        .nth(1)
        .and_then(|x| x.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("{out}"));
    let fence = &v["sandbox"];
    assert_eq!(fence["uid"], 65534, "{v}");
    assert_eq!(fence["capabilities"], "none", "{v}");
    assert_eq!(fence["seccomp"], true, "{v}");
    if fence["pids_limit"] == "cgroup" {
        assert!(procs < 40, "the process limit binds: {procs} processes");
    }
}

/// Findings 8 and 9: a FIFO cannot stall anything; big files are streamed, not slurped.
#[tokio::test(flavor = "multi_thread")]
async fn fifos_are_refused_and_big_files_are_streamed() {
    let mock = MockOpenAi::start(vec![], 0).await.unwrap();
    let (_dir, cfg) = config(OPEN);
    let s = Server::start_with(Opts { mock: Some(&mock.base_url), config: Some(&cfg), ..Default::default() });
    let (c, v) = call_as(
        &s,
        "evil",
        "shell",
        json!({"command": "mkfifo p && yes 'a line of text' | head -c 300000000 > big && echo ok"}),
    )
    .await;
    assert!(c == 200 && text(&v).contains("ok"), "{v}");
    let mut calls = vec![];
    for _ in 0..200 {
        let url = format!("{}/v1/tools/read_file/call", s.url);
        calls.push(tokio::spawn(async move {
            let r = reqwest::Client::new()
                .post(url)
                .header("x-org-id", "evil")
                .json(&json!({"arguments": {"path": "p"}}))
                .timeout(Duration::from_secs(20))
                .send()
                .await;
            r.map(|r| r.status().as_u16()).unwrap_or(0)
        }));
    }
    // Meanwhile another tenant is served.
    let t0 = std::time::Instant::now();
    let (c, _) = s.call(reqwest::Method::GET, "/v1/sessions", None, Some("victim")).await;
    assert_eq!(c, 200);
    alive(&s).await;
    assert!(t0.elapsed() < Duration::from_secs(10), "another tenant waited {:?}", t0.elapsed());
    for h in calls {
        assert_eq!(h.await.unwrap(), 200);
    }
    let (_, v) = call_as(&s, "evil", "read_file", json!({"path": "p"})).await;
    assert!(text(&v).contains("not a regular file"), "{v}");
    // A 300 MB file: the answer is capped and the server does not hold the file.
    let pid = s.pid();
    let before = rss_kb(pid);
    let (_, v) = call_as(&s, "evil", "read_file", json!({"path": "big"})).await;
    let after = rss_kb(pid);
    eprintln!("read_file of a 300 MB file: RSS {before} kB before, {after} kB after");
    assert!(text(&v).len() <= 300 * 1024, "{}", text(&v).len());
    assert!(after < before + 100 * 1024, "RSS grew from {before} kB to {after} kB");
}

/// Finding 11: secrets are masked on the API's write paths; an unlisted secret goes nowhere.
#[tokio::test(flavor = "multi_thread")]
async fn secrets_are_masked_on_writes_and_unlisted_secrets_are_sent_nowhere() {
    let mock = MockOpenAi::start(vec![], 0).await.unwrap();
    let (_dir, cfg) = config(&format!("{OPEN}[egress]\nallow = [\"127.0.0.1\"]\n"));
    let s = Server::start_with(Opts {
        mock: Some(&mock.base_url),
        config: Some(&cfg),
        env: vec![("AGENTD_SECRET_TOKEN".into(), "tok-very-secret-value-42".into())],
        ..Default::default()
    });
    let secret = common::API_KEY;
    let (c, v) = s.post("/v1/sessions", json!({"title": format!("t {secret}"), "metadata": {"k": secret}})).await;
    assert_eq!(c, 201, "{v}");
    assert!(!v.to_string().contains(secret), "{v}");
    let (_, v) = s.post("/v1/agents", json!({"name": "a1", "system_prompt": format!("use {secret}")})).await;
    assert!(!v.to_string().contains(secret), "{v}");
    let (_, v) = s.get("/v1/agents").await;
    assert!(!v.to_string().contains(secret), "{v}");
    let (_, v) = s.post("/v1/prompt-templates", json!({"name": "p1", "content": format!("k={secret}")})).await;
    assert!(!v.to_string().contains(secret), "{v}");
    let (_, v) = s.get("/v1/prompt-templates/p1").await;
    assert!(!v.to_string().contains(secret), "{v}");
    let echo = mock.base_url.trim_end_matches("/v1").to_string() + "/echo";
    let def = json!({"name": "h1", "url": echo, "headers": {"X-Key": secret, "X-Mine": "tenant-token-1"},
                     "secret_headers": {"Authorization": "AGENTD_SECRET_TOKEN"}, "input_schema": {"type": "object"}});
    let (c, v) = s.post("/v1/http-tools", def).await;
    assert_eq!(c, 400, "AGENTD_SECRET_TOKEN is listed nowhere, so it may go nowhere: {v}");
    drop(s);
    // Listed as a bare host, a secret goes over HTTPS only, never in clear text.
    let (_dir2, cfg2) = config(&format!(
        "{OPEN}[egress]\nallow = [\"127.0.0.1\"]\n[secrets.http_hosts]\nAGENTD_SECRET_TOKEN = [\"127.0.0.1\"]\n"
    ));
    let s = Server::start_with(Opts {
        mock: Some(&mock.base_url),
        config: Some(&cfg2),
        env: vec![("AGENTD_SECRET_TOKEN".into(), "tok-very-secret-value-42".into())],
        ..Default::default()
    });
    let def = json!({"name": "h1", "url": echo, "secret_headers": {"Authorization": "AGENTD_SECRET_TOKEN"},
                     "input_schema": {"type": "object"}});
    let (c, v) = s.post("/v1/http-tools", def).await;
    assert_eq!(c, 400, "{v}");
    assert!(v["error"]["message"].as_str().unwrap_or_default().contains("http://127.0.0.1"), "{v}");
    let def = json!({"name": "h2", "url": echo, "headers": {"X-Key": secret, "X-Mine": "tenant-token-1"},
                     "input_schema": {"type": "object"}});
    let (c, v) = s.post("/v1/http-tools", def).await;
    assert_eq!(c, 201, "{v}");
    let (_, v) = s.get("/v1/http-tools").await;
    assert!(!v.to_string().contains(secret) && !v.to_string().contains("tenant-token-1"), "{v}");
}

/// Finding 12: an SSE stream resumed at or past the end of a finished run closes.
#[tokio::test(flavor = "multi_thread")]
async fn sse_resumed_past_the_end_of_a_finished_run_closes() {
    let mock = MockOpenAi::start(vec![agentd_testkit::Turn::text("done")], 0).await.unwrap();
    let s = Server::start(&mock.base_url);
    let (_, run) = s.post("/v1/runs", json!({"input": "hi"})).await;
    let id = run["id"].as_str().unwrap().to_string();
    s.wait_run(&id).await;
    let last = s.events(&id).await.len();
    for (header, query) in [(Some(last.to_string()), String::new()), (None, format!("?after={}", last + 50))] {
        let path = format!("/v1/runs/{id}/events{query}");
        let mut r = s.req(reqwest::Method::GET, &path).header("accept", "text/event-stream");
        if let Some(h) = header {
            r = r.header("last-event-id", h);
        }
        let resp = r.send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 200);
        let frames = tokio::time::timeout(Duration::from_secs(10), common::frames(resp)).await;
        assert!(frames.is_ok(), "the stream stayed open past the end");
    }
    // On a live run, a cursor far past the end is clamped: the stream follows and ends.
    let slow = agentd_testkit::Turn::Slow(Duration::from_millis(400), "late".into());
    let mock2 = MockOpenAi::start(vec![slow], 0).await.unwrap();
    let s2 = Server::start(&mock2.base_url);
    let (_, run) = s2.post("/v1/runs", json!({"input": "hi"})).await;
    let id = run["id"].as_str().unwrap().to_string();
    let resp = s2
        .req(reqwest::Method::GET, &format!("/v1/runs/{id}/events"))
        .header("accept", "text/event-stream")
        .header("last-event-id", i64::MAX.to_string())
        .send()
        .await
        .unwrap();
    let frames = common::frames(resp).await;
    assert_eq!(frames.last().map(|f| f.event.as_str()), Some("run.completed"), "{frames:?}");
}

/// The fuzz pass: malformed and oversized bodies, deep nesting and odd bytes in
/// every field and path parameter: no 5xx, the process alive, /readyz green after.
#[tokio::test(flavor = "multi_thread")]
async fn a_bounded_fuzz_pass_over_every_route() {
    let mock = MockOpenAi::start(vec![], 0).await.unwrap();
    fuzz(&Server::start(&mock.base_url)).await;
}

/// The same on PostgreSQL, which refuses NUL in text where SQLite takes it.
#[tokio::test(flavor = "multi_thread")]
async fn a_bounded_fuzz_pass_over_every_route_postgres() {
    let mock = MockOpenAi::start(vec![], 0).await.unwrap();
    let db = common::fresh_pg_database().await;
    let s = Server::start_with(Opts {
        mock: Some(&mock.base_url),
        args: vec!["--database".into(), db],
        ..Default::default()
    });
    fuzz(&s).await;
    drop(s);
    // A model answer with NUL characters is stored (as U+FFFD), not a failed run.
    let mock = MockOpenAi::start(vec![agentd_testkit::Turn::text("a\u{0}b")], 0).await.unwrap();
    let db = common::fresh_pg_database().await;
    let s = Server::start_with(Opts {
        mock: Some(&mock.base_url),
        args: vec!["--database".into(), db],
        ..Default::default()
    });
    let (c, run) = s.post("/v1/runs", json!({"input": "hi"})).await;
    assert_eq!(c, 202, "{run}");
    let done = s.wait_run(run["id"].as_str().unwrap()).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["output"], "a\u{fffd}b", "{done}");
}

async fn fuzz(s: &Server) {
    let routes: &[(&str, &str)] = &[
        ("POST", "/v1/runs"),
        ("GET", "/v1/runs"),
        ("GET", "/v1/runs/{}"),
        ("POST", "/v1/runs/{}/cancel"),
        ("GET", "/v1/runs/{}/events"),
        ("POST", "/v1/sessions"),
        ("GET", "/v1/sessions"),
        ("GET", "/v1/sessions/{}"),
        ("DELETE", "/v1/sessions/{}"),
        ("GET", "/v1/sessions/{}/runs"),
        ("GET", "/v1/tools"),
        ("POST", "/v1/tools/{}/call"),
        ("POST", "/v1/mcp-servers"),
        ("GET", "/v1/mcp-servers"),
        ("DELETE", "/v1/mcp-servers/{}"),
        ("POST", "/v1/mcp-servers/{}/restart"),
        ("POST", "/v1/http-tools"),
        ("GET", "/v1/http-tools"),
        ("DELETE", "/v1/http-tools/{}"),
        ("GET", "/v1/tool-calls"),
        ("POST", "/v1/agents"),
        ("GET", "/v1/agents"),
        ("DELETE", "/v1/agents/{}"),
        ("POST", "/v1/skills"),
        ("GET", "/v1/skills"),
        ("GET", "/v1/skills/{}"),
        ("PUT", "/v1/skills/{}"),
        ("DELETE", "/v1/skills/{}"),
        ("POST", "/v1/prompt-templates"),
        ("GET", "/v1/prompt-templates"),
        ("GET", "/v1/prompt-templates/{}"),
        ("PUT", "/v1/prompt-templates/{}"),
        ("DELETE", "/v1/prompt-templates/{}"),
        ("GET", "/v1/approvals"),
        ("GET", "/v1/approvals/{}"),
        ("POST", "/v1/approvals/{}"),
    ];
    let params = ["x", "..%2F..%2Fetc%2Fpasswd", "%00", "%FF%FE", "a%0Ab", &"z".repeat(5000), "run_%F0%9F%92%A9"];
    let nested = format!("{}{}", "{\"a\":".repeat(3000), "}".repeat(3000));
    let odd = |s: &str| {
        json!({"input": s, "name": s, "content": s, "title": s, "decision": s, "arguments": {"x": s},
                            "url": s, "command": s, "session_id": s, "model": s, "template": s, "agent": s})
    };
    let bodies: Vec<Vec<u8>> = vec![
        b"{".to_vec(),
        b"null".to_vec(),
        b"[]".to_vec(),
        b"\xff\xfe\x00".to_vec(),
        nested.into_bytes(),
        vec![b'a'; 3 * 1024 * 1024],
        odd("\u{0000}\u{202e}\u{fffd}").to_string().into_bytes(),
        odd(&"\u{1F4A9}".repeat(2000)).to_string().into_bytes(),
        json!({"input": 1, "name": [], "content": {}, "max_steps": -1, "limit": "x"}).to_string().into_bytes(),
    ];
    let http = reqwest::Client::new();
    let (mut n, mut closed) = (0, 0);
    for (method, route) in routes {
        for p in params {
            let path = route.replace("{}", p);
            for body in &bodies {
                let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
                let sent = http
                    .request(m, format!("{}{path}?after=-5&limit=abc&status=%00", s.url))
                    .header("content-type", "application/json")
                    .body(body.clone())
                    .send()
                    .await;
                let r = match sent {
                    Ok(r) => r,
                    // A body the server refuses early (413, or a route that
                    // reads none) may be cut off mid-send: not an error of ours,
                    // as long as the server stays up.
                    Err(_) => {
                        closed += 1;
                        alive(s).await;
                        continue;
                    }
                };
                let code = r.status().as_u16();
                assert!(code < 500, "{method} {path} -> {code}: {}", r.text().await.unwrap_or_default());
                n += 1;
            }
            if route.contains("{}") {
                continue;
            }
            break;
        }
    }
    // Odd scope headers on every route.
    for (method, route) in routes {
        for org in ["../../etc", ".hidden", &"o".repeat(300), "a b", "%00", "ü"] {
            let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
            let r = http
                .request(m, format!("{}{}", s.url, route.replace("{}", "x")))
                .header("x-org-id", reqwest::header::HeaderValue::from_bytes(org.as_bytes()).unwrap())
                .header("x-user-id", "../u")
                .json(&json!({"input": "x"}))
                .send()
                .await
                .unwrap();
            let code = r.status().as_u16();
            assert!(code < 500, "{method} {route} as {org:?} -> {code}");
            n += 1;
        }
    }
    eprintln!("{n} fuzz requests, no 5xx ({closed} cut off while sending)");
    alive(s).await;
}
