//! What commands print: streamed answers and approvals.

use std::io::Write;
use std::process::ExitCode;

use agentd_providers::Delta;

/// Prints a streamed answer: text to stdout, reasoning dimmed to stderr.
#[derive(Default)]
pub(crate) struct Printer {
    printed: bool,
}

impl Printer {
    pub(crate) fn delta(&mut self, d: &Delta) {
        match d {
            Delta::Text(t) => {
                print!("{t}");
                self.printed = true;
                let _ = std::io::stdout().flush();
            }
            Delta::Thinking(t) => eprint!("\x1b[2m{t}\x1b[0m"),
        }
    }

    /// Ends the output; returns the exit code for the run's final status.
    pub(crate) fn finish(&self, status: &str, output: Option<&str>, error: Option<(&str, &str)>) -> ExitCode {
        match status {
            "completed" => {
                if !self.printed {
                    print!("{}", output.unwrap_or_default());
                }
                println!();
                ExitCode::SUCCESS
            }
            _ => {
                if self.printed {
                    println!();
                }
                let (code, msg) = error.unwrap_or(("unknown", "no error recorded"));
                eprintln!("run {status}: {code}: {msg}");
                ExitCode::FAILURE
            }
        }
    }
}

/// What a person is asked about an approval.
pub(crate) struct Asked {
    pub(crate) id: String,
    pub(crate) status: String,
    pub(crate) risk: agentd_core::policy::Risk,
    pub(crate) tool: String,
    pub(crate) arguments_sanitized: serde_json::Value,
    pub(crate) reasons: Vec<String>,
}

impl From<&agentd_api::Approval> for Asked {
    fn from(a: &agentd_api::Approval) -> Self {
        Self {
            id: a.id.clone(),
            status: a.status.to_string(),
            risk: a.risk,
            tool: a.tool.clone(),
            arguments_sanitized: a.arguments_sanitized.clone(),
            reasons: a.reasons.clone(),
        }
    }
}

/// One line describing an approval.
pub(crate) fn describe(a: &Asked) -> String {
    let why = if a.reasons.is_empty() { String::new() } else { format!(" ({})", a.reasons.join("; ")) };
    format!("{}  {:<9} {:<6} {} {}{why}", a.id, a.status, a.risk.as_str(), a.tool, a.arguments_sanitized)
}
