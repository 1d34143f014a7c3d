//! Following a run's events over SSE: deltas printed, approvals asked
//! inline when a person is at the terminal.

use std::process::ExitCode;

use agentd_api::{EventKind, StoredEvent};
use agentd_providers::Delta;
use anyhow::{Context, bail};
use eventsource_stream::Eventsource;
use futures::StreamExt;

use crate::print::{Asked, Printer};

/// Follows an SSE response until the terminal event; prints deltas. With
/// `answer_at`, approvals are asked for at the terminal and answered there.
pub(crate) async fn follow(resp: reqwest::Response, show_events: bool) -> anyhow::Result<ExitCode> {
    follow_answering(resp, show_events, None).await
}

pub(crate) async fn follow_answering(
    resp: reqwest::Response,
    show_events: bool,
    answer_at: Option<(&str, &reqwest::Client)>,
) -> anyhow::Result<ExitCode> {
    let mut printer = Printer::default();
    let mut events = resp.bytes_stream().eventsource();
    while let Some(ev) = events.next().await {
        let ev = ev.context("stream broke")?;
        // A partial (the text streamed before we subscribed) prints like a delta:
        // this client has printed nothing of that answer yet.
        if ev.event == agentd_core::event_type::DELTA_EVENT || ev.event == agentd_core::event_type::PARTIAL_EVENT {
            let d: agentd_api::Delta = serde_json::from_str(&ev.data).unwrap_or_default();
            if let Some(t) = d.text {
                printer.delta(&Delta::Text(t));
            } else if let Some(t) = d.thinking {
                printer.delta(&Delta::Thinking(t));
            }
            continue;
        }
        let Ok(stored) = serde_json::from_str::<StoredEvent>(&ev.data) else {
            eprintln!("skipping a frame this CLI cannot read: {}", ev.event);
            continue;
        };
        if show_events {
            eprintln!("[{}] {} {}", ev.id, ev.event, stored.data);
        }
        // Event types this CLI does not know yet are shown, not fatal.
        let Ok(kind) = EventKind::from_parts(&stored.type_name, stored.data) else { continue };
        match kind {
            EventKind::ApprovalRequested { approval_id: id, tool, risk, arguments_sanitized, reasons, .. } => {
                match answer_at {
                    Some((base, client)) if crate::prompt::interactive() => {
                        let shown = Asked {
                            id: id.clone(),
                            status: "pending".into(),
                            risk,
                            tool,
                            arguments_sanitized,
                            reasons,
                        };
                        if let Some((decision, reason)) = crate::prompt::prompt(&shown).await {
                            let url = format!("{base}/v1/approvals/{id}");
                            let body = agentd_api::AnswerApproval {
                                decision: decision.as_str().into(),
                                reason,
                                arguments: None,
                            };
                            let req = client.post(url).json(&body);
                            if let Err(e) = crate::http::send(req, base).await {
                                eprintln!("answering failed: {e:#}");
                            }
                        }
                    }
                    _ => eprintln!(
                        "\nwaiting for approval {id} ({tool}): answer with `agentd approve {id}` or `agentd deny {id}`"
                    ),
                }
            }
            EventKind::RunCompleted { output, .. } => return Ok(printer.finish("completed", Some(&output), None)),
            EventKind::RunFailed { error } => {
                return Ok(printer.finish("failed", None, Some((&error.code, &error.message))));
            }
            EventKind::RunCancelled { reason } => {
                return Ok(printer.finish("cancelled", None, Some(("cancelled", reason.as_deref().unwrap_or("")))));
            }
            _ => {}
        }
    }
    bail!("the stream ended before the run finished")
}
