//! Commands that talk to a running server: `run --url`, `tail`, `sessions`, `runs`.

use std::process::ExitCode;

use agentd_providers::Delta;
use agentd_runtime::CreateRun;
use anyhow::{Context, bail};
use eventsource_stream::Eventsource;
use futures::StreamExt;
use serde_json::{Value, json};

use crate::cli::RemoteOpts;
use crate::local::Printer;

pub(crate) fn client(remote: Option<&RemoteOpts>) -> anyhow::Result<reqwest::Client> {
    let mut headers = reqwest::header::HeaderMap::new();
    if let Some(r) = remote {
        for (name, v) in [("x-org-id", &r.org), ("x-user-id", &r.user), ("x-project-id", &r.project)] {
            if let Some(v) = v {
                headers.insert(name, v.parse().context("invalid scope value")?);
            }
        }
    }
    Ok(reqwest::Client::builder().default_headers(headers).build()?)
}

async fn error_of(resp: reqwest::Response) -> anyhow::Error {
    let status = resp.status();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    anyhow::anyhow!(
        "server answered {status}: {} {}",
        body["error"]["code"].as_str().unwrap_or(""),
        body["error"]["message"].as_str().unwrap_or("")
    )
}

/// Sends a request; a non-2xx answer becomes an error with the server's code and message.
pub(crate) async fn send(req: reqwest::RequestBuilder, url: &str) -> anyhow::Result<reqwest::Response> {
    let resp = req.send().await.with_context(|| format!("cannot reach {url}"))?;
    if !resp.status().is_success() {
        return Err(error_of(resp).await);
    }
    Ok(resp)
}

/// Follows an SSE response until the terminal event; prints deltas. With
/// `answer_at`, approvals are asked for at the terminal and answered there.
async fn follow(resp: reqwest::Response, show_events: bool) -> anyhow::Result<ExitCode> {
    follow_answering(resp, show_events, None).await
}

async fn follow_answering(
    resp: reqwest::Response,
    show_events: bool,
    answer_at: Option<&str>,
) -> anyhow::Result<ExitCode> {
    let mut printer = Printer::default();
    let mut events = resp.bytes_stream().eventsource();
    while let Some(ev) = events.next().await {
        let ev = ev.context("stream broke")?;
        let v: Value = serde_json::from_str(&ev.data).unwrap_or(Value::Null);
        if ev.event == agentd_core::event_type::DELTA_EVENT {
            if let Some(t) = v["text"].as_str() {
                printer.delta(&Delta::Text(t.into()));
            } else if let Some(t) = v["thinking"].as_str() {
                printer.delta(&Delta::Thinking(t.into()));
            }
            continue;
        }
        if show_events {
            eprintln!("[{}] {} {}", ev.id, ev.event, v["data"]);
        }
        let ty = agentd_core::EventType::parse(&ev.event);
        if ty == Some(agentd_core::EventType::ApprovalRequested) {
            let id = v["data"]["approval_id"].as_str().unwrap_or("?").to_string();
            match answer_at {
                Some(base) if crate::approvals::interactive() => {
                    let shown = json!({
                        "id": id, "status": "pending", "risk": v["data"]["risk"], "tool": v["data"]["tool"],
                        "arguments_sanitized": v["data"]["arguments_sanitized"], "reasons": v["data"]["reasons"],
                    });
                    if let Some((decision, reason)) = crate::approvals::prompt(&shown).await {
                        let url = format!("{base}/v1/approvals/{id}");
                        let body = json!({"decision": decision, "reason": reason});
                        if let Err(e) = send(client(None)?.post(url).json(&body), base).await {
                            eprintln!("answering failed: {e:#}");
                        }
                    }
                }
                _ => eprintln!(
                    "\nwaiting for approval {id} ({}): answer with `agentd approve {id}` or `agentd deny {id}`",
                    v["data"]["tool"].as_str().unwrap_or("")
                ),
            }
            continue;
        }
        use agentd_core::EventType as T;
        match ty {
            Some(T::RunCompleted) => return Ok(printer.finish("completed", v["data"]["output"].as_str(), None)),
            Some(t @ (T::RunFailed | T::RunCancelled)) => {
                let code = v["data"]["error"]["code"].as_str().unwrap_or("cancelled");
                let msg = v["data"]["error"]["message"].as_str().or(v["data"]["reason"].as_str()).unwrap_or("");
                let status = if t == T::RunFailed { "failed" } else { "cancelled" };
                return Ok(printer.finish(status, None, Some((code, msg))));
            }
            _ => {}
        }
    }
    bail!("the stream ended before the run finished")
}

pub(crate) async fn run_remote(url: &str, req: CreateRun, show_events: bool) -> anyhow::Result<ExitCode> {
    let body = json!({"input": req.input, "session_id": req.session_id, "model": req.model, "max_steps": req.max_steps, "stream": true});
    let resp = send(client(None)?.post(format!("{}/v1/runs", url.trim_end_matches('/'))).json(&body), url).await?;
    if let Some(id) = resp.headers().get("x-run-id").and_then(|v| v.to_str().ok()) {
        eprintln!("run {id}");
    }
    follow_answering(resp, show_events, Some(url.trim_end_matches('/'))).await
}

pub(crate) async fn tail(remote: &RemoteOpts, run_id: &str, after: i64) -> anyhow::Result<ExitCode> {
    let resp = send(
        client(Some(remote))?
            .get(format!("{}/v1/runs/{run_id}/events?after={after}", remote.url.trim_end_matches('/')))
            .header("accept", "text/event-stream"),
        &remote.url,
    )
    .await?;
    follow(resp, true).await
}

pub(crate) async fn list(remote: &RemoteOpts, path: &str) -> anyhow::Result<ExitCode> {
    let resp =
        send(client(Some(remote))?.get(format!("{}{path}", remote.url.trim_end_matches('/'))), &remote.url).await?;
    let body: Value = resp.json().await?;
    for row in body["data"].as_array().into_iter().flatten() {
        let id = row["id"].as_str().unwrap_or("?");
        let when = row["created_at"].as_str().unwrap_or("");
        match row.get("status") {
            Some(status) => {
                let input: String = row["input"].as_str().unwrap_or("").chars().take(60).collect();
                println!("{id}  {when}  {:<10} {input}", status.as_str().unwrap_or(""));
            }
            None => println!("{id}  {when}  {}", row["title"].as_str().unwrap_or("")),
        }
    }
    if let Some(c) = body["next_cursor"].as_str() {
        eprintln!("more: pass after={c}");
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn tool_list(remote: &RemoteOpts) -> anyhow::Result<ExitCode> {
    let resp =
        send(client(Some(remote))?.get(format!("{}/v1/tools", remote.url.trim_end_matches('/'))), &remote.url).await?;
    let body: Value = resp.json().await?;
    for t in body["data"].as_array().into_iter().flatten() {
        println!(
            "{:<28} {:<8} {}",
            t["name"].as_str().unwrap_or(""),
            t["source"].as_str().unwrap_or(""),
            t["description"].as_str().unwrap_or("")
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn tool_call(
    remote: &RemoteOpts,
    name: &str,
    args: &str,
    session: Option<String>,
) -> anyhow::Result<ExitCode> {
    let arguments: Value = serde_json::from_str(args).context("--args must be a JSON object")?;
    let resp = send(
        client(Some(remote))?
            .post(format!("{}/v1/tools/{name}/call", remote.url.trim_end_matches('/')))
            .json(&json!({"arguments": arguments, "session_id": session})),
        &remote.url,
    )
    .await?;
    let body: Value = resp.json().await?;
    for part in body["content"].as_array().into_iter().flatten() {
        match part["type"].as_str() {
            Some("text") => println!("{}", part["text"].as_str().unwrap_or("")),
            _ => println!("{part}"),
        }
    }
    Ok(if body["is_error"] == true { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}
