//! Following a run's events over SSE: deltas printed, approvals asked
//! inline when a person is at the terminal.

use std::process::ExitCode;

use agentd_providers::Delta;
use anyhow::{Context, bail};
use eventsource_stream::Eventsource;
use futures::StreamExt;
use serde_json::{Value, json};

use crate::print::Printer;

/// Follows an SSE response until the terminal event; prints deltas. With
/// `answer_at`, approvals are asked for at the terminal and answered there.
pub(crate) async fn follow(resp: reqwest::Response, show_events: bool) -> anyhow::Result<ExitCode> {
    follow_answering(resp, show_events, None).await
}

pub(crate) async fn follow_answering(
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
                Some(base) if crate::prompt::interactive() => {
                    let shown = json!({
                        "id": id, "status": "pending", "risk": v["data"]["risk"], "tool": v["data"]["tool"],
                        "arguments_sanitized": v["data"]["arguments_sanitized"], "reasons": v["data"]["reasons"],
                    });
                    if let Some((decision, reason)) = crate::prompt::prompt(&shown).await {
                        let url = format!("{base}/v1/approvals/{id}");
                        let body = json!({"decision": decision, "reason": reason});
                        if let Err(e) = crate::http::send(crate::http::client(None)?.post(url).json(&body), base).await
                        {
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
