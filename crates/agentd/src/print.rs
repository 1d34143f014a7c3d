//! What commands print: streamed answers and approvals.

use std::io::Write;
use std::process::ExitCode;

use agentd_providers::Delta;
use serde_json::Value;

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
