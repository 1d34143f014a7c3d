//! `agentd doctor`: what is configured, and does it work.

use std::process::ExitCode;
use std::time::Duration;

use crate::opts::LocalOpts;

pub(crate) async fn doctor(local: LocalOpts) -> anyhow::Result<ExitCode> {
    let mut ok = true;
    let s = match crate::setup::setup(&local) {
        Ok(s) => {
            let src = local.config.as_ref().map(|p| p.display().to_string()).unwrap_or_else(|| {
                if std::path::Path::new("agentd.toml").exists() {
                    "./agentd.toml".into()
                } else {
                    "none (defaults + environment)".into()
                }
            });
            println!("✓ config: {src}");
            s
        }
        Err(e) => {
            println!("✗ config: {e:#}");
            return Ok(ExitCode::FAILURE);
        }
    };
    let opened = match crate::setup::open_store(&s, false).await {
        Ok(o) => o,
        Err(e) => {
            println!("✗ database: {e:#}");
            return Ok(ExitCode::FAILURE);
        }
    };
    let rt = match crate::setup::build_runtime(&s, &opened) {
        Ok(rt) => rt,
        Err(e) => {
            println!("✗ runtime: {e:#}");
            return Ok(ExitCode::FAILURE);
        }
    };
    match rt.ping().await {
        Ok(()) => println!("✓ database: {}", opened.description),
        Err(e) => {
            ok = false;
            println!("✗ database: {e}");
        }
    }
    if rt.models().is_empty() {
        ok = false;
        println!(
            "✗ providers: none configured; set OPENAI_API_KEY (and OPENAI_BASE_URL) or add [providers.*] to agentd.toml"
        );
    }
    for (name, p) in rt.models().providers() {
        match tokio::time::timeout(Duration::from_secs(10), p.check()).await {
            Ok(Ok(msg)) => println!("✓ provider {name} ({}): {msg}", p.kind()),
            Ok(Err(e)) => {
                ok = false;
                println!("✗ provider {name} ({}): {e}", p.kind());
            }
            Err(_) => {
                ok = false;
                println!("✗ provider {name} ({}): no answer within 10s", p.kind());
            }
        }
    }
    for (name, prof) in &s.config.models {
        let chain = rt.models().chain(name).map(|c| c.iter().map(|m| m.profile.clone()).collect::<Vec<_>>());
        match chain {
            Ok(c) => println!(
                "✓ model {name}: {}/{}{}{}",
                prof.provider,
                prof.model,
                prof.context_window.map(|w| format!(", window {w}")).unwrap_or_default(),
                if c.len() > 1 { format!(", then {}", c[1..].join(" → ")) } else { String::new() }
            ),
            Err(e) => {
                ok = false;
                println!("✗ model {name}: {e}");
            }
        }
    }
    match rt.models().default_model() {
        Some(m) => match rt.models().resolve(m) {
            Ok(_) => println!("✓ default model: {m}"),
            Err(e) => {
                ok = false;
                println!("✗ default model: {e}");
            }
        },
        None => println!("- default model: none (runs must name a model)"),
    }
    let tools: Vec<String> = rt.tools().specs().into_iter().map(|t| t.name).collect();
    println!("✓ tools: {}", tools.join(", "));
    match (s.config.default_agent().sandbox.unwrap_or_default().mode, agentd_tools::find_bwrap()) {
        (agentd_tools::SandboxMode::None, _) => {
            println!("- sandbox: off (mode = \"none\"): shell commands run unsandboxed")
        }
        (_, Some(p)) => println!("✓ sandbox: bubblewrap at {}", p.display()),
        (_, None) => {
            ok = false;
            println!(
                "✗ sandbox: bubblewrap is not installed; install the `bubblewrap` package or set [agents.default.sandbox] mode = \"none\""
            );
        }
    }
    let policy = s.config.default_agent().policy.unwrap_or_default();
    println!(
        "✓ policy: mode {}, high risk {}, {} allow / {} ask / {} deny rules{}",
        policy.mode.as_str(),
        policy.high_risk.as_str(),
        policy.allow.len(),
        policy.ask.len(),
        policy.deny.len(),
        policy.approval_timeout_secs.map(|t| format!(", approvals expire after {t} s")).unwrap_or_default()
    );
    let skill_errors = rt.skill_errors();
    for e in &skill_errors {
        println!("✗ skill {}: {}", e.path, e.reason);
    }
    Ok(if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
