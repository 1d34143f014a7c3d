//! `agentd approvals`, `agentd approve`, `agentd deny`, and the inline
//! prompt `agentd run` shows in a terminal when a call needs a person.

use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;

use anyhow::Context;
use serde_json::{Value, json};

use crate::cli::RemoteOpts;
use crate::client::{client, send};

/// One line describing an approval.
pub(crate) fn describe(a: &Value) -> String {
    let reasons: Vec<&str> =
        a["reasons"].as_array().map(|r| r.iter().filter_map(Value::as_str).collect()).unwrap_or_default();
    let why = if reasons.is_empty() { String::new() } else { format!(" ({})", reasons.join("; ")) };
    format!(
        "{}  {:<9} {:<6} {} {}{why}",
        a["id"].as_str().unwrap_or("?"),
        a["status"].as_str().unwrap_or(""),
        a["risk"].as_str().unwrap_or(""),
        a["tool"].as_str().unwrap_or(""),
        a["arguments_sanitized"]
    )
}

pub(crate) async fn list(remote: &RemoteOpts, run: Option<String>, status: &str) -> anyhow::Result<ExitCode> {
    let mut url = format!("{}/v1/approvals?limit=200", remote.url.trim_end_matches('/'));
    if status != "all" {
        url.push_str(&format!("&status={status}"));
    }
    if let Some(r) = run {
        url.push_str(&format!("&run_id={r}"));
    }
    let body: Value = send(client(Some(remote))?.get(url), &remote.url).await?.json().await?;
    let rows = body["data"].as_array().cloned().unwrap_or_default();
    if rows.is_empty() {
        eprintln!("no {} approvals", if status == "all" { "" } else { status });
    }
    for a in rows {
        println!("{}  run {}", describe(&a), a["run_id"].as_str().unwrap_or(""));
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn answer(
    remote: &RemoteOpts,
    id: &str,
    decision: &str,
    reason: Option<String>,
    args: Option<String>,
) -> anyhow::Result<ExitCode> {
    let mut body = json!({"decision": decision, "reason": reason});
    if let Some(a) = args {
        body["arguments"] = serde_json::from_str(&a).context("--args must be a JSON object")?;
    }
    let url = format!("{}/v1/approvals/{id}", remote.url.trim_end_matches('/'));
    let a: Value = send(client(Some(remote))?.post(url).json(&body), &remote.url).await?.json().await?;
    println!("{}", describe(&a));
    Ok(ExitCode::SUCCESS)
}

/// Whether `agentd run` can ask the person at the keyboard.
pub(crate) fn interactive() -> bool {
    std::io::stdin().is_terminal() && std::io::stderr().is_terminal()
}

/// Asks at the terminal; `None` if stdin closed. Returns (decision, reason).
pub(crate) async fn prompt(a: &Value) -> Option<(String, Option<String>)> {
    let text = describe(a);
    tokio::task::spawn_blocking(move || {
        let mut err = std::io::stderr();
        let _ = writeln!(err, "\napproval needed: {text}");
        loop {
            let _ = write!(err, "approve? [y]es / [s]ession (same request passes from now on) / [n]o: ");
            let _ = err.flush();
            let mut line = String::new();
            if std::io::stdin().lock().read_line(&mut line).ok()? == 0 {
                return None;
            }
            match line.trim().to_ascii_lowercase().as_str() {
                "y" | "yes" => return Some(("approve".into(), None)),
                "s" | "session" => return Some(("approve_for_session".into(), None)),
                "n" | "no" => {
                    let _ = write!(err, "reason (optional): ");
                    let _ = err.flush();
                    let mut reason = String::new();
                    let _ = std::io::stdin().lock().read_line(&mut reason);
                    let reason = Some(reason.trim().to_string()).filter(|r| !r.is_empty());
                    return Some(("deny".into(), reason));
                }
                _ => {}
            }
        }
    })
    .await
    .ok()
    .flatten()
}
