//! `--stop-cmd`, `--start-cmd`, `--post-restore-cmd`: the service hooks of
//! a restore, run with `sh -c`.

use async_trait::async_trait;
use backups_core::plan::ServiceController;
use backups_core::{Error, Result};

/// Shell commands standing in for the controller's services.
pub struct ShellServices {
    pub stop: Option<String>,
    pub start: Option<String>,
    pub post_restore: Option<String>,
}

async fn run(hook: &'static str, command: &Option<String>) -> Result<()> {
    let Some(command) = command else {
        return Ok(());
    };
    let out = tokio::process::Command::new("sh")
        .args(["-c", command])
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .map_err(|e| Error::Hook {
            hook,
            command: command.clone(),
            detail: format!("cannot run sh: {e}"),
        })?;
    if out.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    let tail: String = stderr
        .lines()
        .rev()
        .take(3)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect::<Vec<_>>()
        .join(" | ");
    Err(Error::Hook {
        hook,
        command: command.clone(),
        detail: format!(
            "{}{}",
            out.status,
            if tail.is_empty() {
                String::new()
            } else {
                format!(": {tail}")
            }
        ),
    })
}

#[async_trait]
impl ServiceController for ShellServices {
    async fn stop(&self) -> Result<()> {
        run("stop", &self.stop).await
    }

    async fn post_restore(&self) -> Result<()> {
        run("post-restore", &self.post_restore).await
    }

    async fn start(&self) -> Result<()> {
        run("start", &self.start).await
    }
}
