//! `agentd secrets rotate-key`: re-seals every tenant's secret under a new
//! master key. The new key file is written (as `secret.key.new`) before the
//! database changes and renamed over `secret.key` after it commits, so a
//! crash in between leaves both keys on disk, never secrets without theirs.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::process::ExitCode;

use agentd_runtime::secrets::MasterKey;
use anyhow::Context;

use clap::Subcommand;

use crate::opts::LocalOpts;

#[derive(Subcommand)]
pub(crate) enum SecretsCmd {
    /// Re-seal every tenant's secrets under a new master key, in one
    /// transaction (stop every server of this database first).
    RotateKey {
        /// A file holding the new key (base64 of 32 bytes); a random one when absent.
        #[arg(long)]
        new_key_file: Option<std::path::PathBuf>,
        #[command(flatten)]
        local: LocalOpts,
    },
}

pub(crate) async fn run(cmd: SecretsCmd) -> anyhow::Result<ExitCode> {
    let SecretsCmd::RotateKey { new_key_file, local } = cmd;
    let new = match &new_key_file {
        Some(p) => {
            let text = std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display()))?;
            MasterKey::from_base64(&text).map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?
        }
        None => MasterKey::generate().map_err(|e| anyhow::anyhow!(e))?,
    };
    let s = crate::setup::setup(&local)?;
    // Exclusive: a server on this SQLite data dir must be stopped first.
    let opened = crate::setup::open_store(&s, true).await?;
    let rt = crate::setup::build_runtime(&s, &opened)?;
    let from_env = std::env::var("AGENTD_SECRET_KEY").is_ok_and(|v| !v.trim().is_empty());
    let key_file = s.data_dir.join("secret.key");
    let staged = s.data_dir.join("secret.key.new");
    if !from_env {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&staged)
            .with_context(|| format!("cannot create {}", staged.display()))?;
        f.write_all(new.to_base64().as_bytes())?;
        f.sync_all()?;
    }
    let n = rt.reseal_secrets(&new).await.map_err(|e| anyhow::anyhow!("nothing was changed: {e}"))?;
    if from_env {
        eprintln!("re-sealed {n} secrets; set AGENTD_SECRET_KEY to the new key below on every node, then start them");
        println!("{}", new.to_base64());
    } else {
        std::fs::rename(&staged, &key_file).with_context(|| {
            format!(
                "re-sealed {n} secrets, but cannot rename {} over {}: do it by hand",
                staged.display(),
                key_file.display()
            )
        })?;
        eprintln!(
            "re-sealed {n} secrets; the new key is in {} (copy it to every node that uses this database)",
            key_file.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}
