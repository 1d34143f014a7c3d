//! `agentd`: a self-hosted, durable agent runtime. This file only parses
//! the command line and dispatches.

mod cli;
mod commands;
mod http;
mod opts;
mod print;
mod prompt;
mod setup;
mod stream;

use clap::Parser;

fn main() -> std::process::ExitCode {
    // A template worker renders one template and exits (no runtime, no logs).
    if std::env::args_os().nth(1).is_some_and(|a| a == agentd_runtime::template_worker::WORKER_ARG) {
        return agentd_runtime::template_worker::worker_main();
    }
    // Tenant templates render in such workers, bounded in memory by the kernel.
    // `/proc/self/exe` still names this binary after it is replaced on disk.
    let me = std::path::PathBuf::from("/proc/self/exe");
    agentd_runtime::template_worker::use_worker(if me.exists() { me } else { std::env::current_exe().unwrap_or(me) });
    let args = cli::Cli::parse();
    init_tracing(args.verbose);
    // reqwest is built without a default TLS crypto backend; pick ring once.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match rt.block_on(cli::dispatch(args)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn init_tracing(verbose: bool) {
    let default = if verbose { "info,agentd=debug" } else { "warn,agentd=info,agentd_server=info,agentd_runtime=info" };
    let filter = tracing_subscriber::EnvFilter::try_from_env("AGENTD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(|| RedactingStderr).init();
}

/// Log output with secrets masked (each log line is one write).
struct RedactingStderr;

impl std::io::Write for RedactingStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        std::io::stderr().write_all(agentd_core::redact::redact_all(&text).as_bytes())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}
