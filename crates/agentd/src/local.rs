//! Building a runtime from config and a data directory; in-process runs.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use agentd_core::Tenant;
use agentd_providers::Delta;
use agentd_runtime::{AgentSettings, Config, CreateRun, Live, ModelRegistry, Runtime};
use agentd_store::SqliteStore;
use agentd_tools::ToolRegistry;
use anyhow::Context;

use crate::cli::LocalOpts;

/// Loaded configuration with the data directory resolved.
pub struct Setup {
    pub config: Config,
    pub data_dir: PathBuf,
}

/// Reads the config file and resolves the data dir (flag/env > file > `./data`).
pub fn setup(local: &LocalOpts) -> anyhow::Result<Setup> {
    let config = Config::load(local.config.as_deref())?;
    let data_dir =
        local.data_dir.clone().or_else(|| config.data_dir.clone()).unwrap_or_else(|| PathBuf::from("./data"));
    Ok(Setup { config, data_dir })
}

/// Opens the store and builds the runtime.
pub async fn runtime(s: &Setup) -> anyhow::Result<Arc<Runtime>> {
    std::fs::create_dir_all(&s.data_dir).with_context(|| format!("cannot create data dir {}", s.data_dir.display()))?;
    let db = s.data_dir.join("agentd.db");
    let store = SqliteStore::open(&db).await.with_context(|| format!("cannot open database {}", db.display()))?;
    let models = ModelRegistry::from_config(&s.config)?;
    Ok(Runtime::new(Arc::new(store), models, ToolRegistry::builtin(), AgentSettings::from_config(&s.config)))
}

/// `agentd run` without a server: the runtime lives in this process.
pub async fn run_local(local: LocalOpts, req: CreateRun, show_events: bool) -> anyhow::Result<ExitCode> {
    let s = setup(&local)?;
    let rt = runtime(&s).await?;
    let t = Tenant::default();
    let (run, rx) = rt.create_run(&t, req, true).await.map_err(|e| anyhow::anyhow!(e))?;
    let mut rx = rx.context("no live channel")?;
    let mut printer = Printer::default();
    loop {
        let item = tokio::select! {
            r = rx.recv() => r,
            _ = tokio::signal::ctrl_c() => {
                let _ = rt.cancel(&t, &run.id, Some("interrupted from the terminal".into())).await;
                eprintln!("\ncancelled");
                return Ok(ExitCode::from(130));
            }
        };
        match item {
            Ok(Live::Delta(d)) => printer.delta(&d),
            Ok(Live::Event(ev)) => {
                if show_events {
                    eprintln!("[{}] {}", ev.seq, ev.type_name);
                }
                if ev.is_terminal() {
                    break;
                }
            }
            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
            Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
        }
    }
    rt.shutdown().await;
    let run = rt.get_run(&t, &run.id).await.map_err(|e| anyhow::anyhow!(e))?;
    Ok(printer.finish(
        run.status.as_str(),
        run.output.as_deref(),
        run.error.as_ref().map(|e| (e.code.as_str(), e.message.as_str())),
    ))
}

/// Prints a streamed answer: text to stdout, reasoning dimmed to stderr.
#[derive(Default)]
pub struct Printer {
    printed: bool,
}

impl Printer {
    pub fn delta(&mut self, d: &Delta) {
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
    pub fn finish(&self, status: &str, output: Option<&str>, error: Option<(&str, &str)>) -> ExitCode {
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
