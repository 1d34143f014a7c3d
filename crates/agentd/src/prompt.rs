//! Asking the person at the terminal about an approval.

use std::io::{BufRead, IsTerminal, Write};

use agentd_core::Decision;

use crate::print::{Asked, describe};

/// Whether `agentd run` can ask the person at the keyboard.
pub(crate) fn interactive() -> bool {
    std::io::stdin().is_terminal() && std::io::stderr().is_terminal()
}

/// Asks at the terminal; `None` if stdin closed. Returns (decision, reason).
pub(crate) async fn prompt(a: &Asked) -> Option<(Decision, Option<String>)> {
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
                "y" | "yes" => return Some((Decision::Approve, None)),
                "s" | "session" => return Some((Decision::ApproveForSession, None)),
                "n" | "no" => {
                    let _ = write!(err, "reason (optional): ");
                    let _ = err.flush();
                    let mut reason = String::new();
                    let _ = std::io::stdin().lock().read_line(&mut reason);
                    let reason = Some(reason.trim().to_string()).filter(|r| !r.is_empty());
                    return Some((Decision::Deny, reason));
                }
                _ => {}
            }
        }
    })
    .await
    .ok()
    .flatten()
}
