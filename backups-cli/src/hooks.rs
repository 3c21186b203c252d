//! `--stop-cmd`, `--start-cmd`, `--post-restore-cmd`: the service hooks of
//! a restore, run with `sh -c`.
//!
//! Each runs in its own process group with a time limit (`--hook-timeout`);
//! when it runs over, or the restore is interrupted, the whole group is
//! killed. Its output is shown on stderr, each line prefixed with the hook's
//! name, and the last lines of its stderr go into the error when it fails.
//! Hooks see `BACKUPS_HOOK` (stop, post-restore, start), the variables
//! the CLI adds (`BACKUPS_RESTORE_SOURCE`, `BACKUPS_RESTORE_TARGET`) and, for
//! the start after a rollback, `BACKUPS_ROLLED_BACK=1`.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use backups_core::services::{GroupKiller, OrderedLock, OrderedServices, ServiceStep};
use backups_core::{Error, Result};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};

/// How hooks run: their time limit, extra environment and output.
#[derive(Debug, Clone)]
pub struct Hooks {
    /// How long one hook may run.
    pub timeout: Duration,
    /// Extra environment for every hook.
    pub env: Vec<(String, String)>,
    /// Do not echo the hooks' output.
    pub quiet: bool,
}

/// The restore's service hooks: every `--stop-cmd` in order, then after
/// the restore `--post-restore-cmd`, then every `--start-cmd` in order (see
/// [`OrderedServices`] for what a stop failing part-way starts again).
pub fn shell_services(
    hooks: Hooks,
    stop: &[String],
    post_restore: &Option<String>,
    start: &[String],
) -> OrderedServices {
    let hooks = Arc::new(hooks);
    let steps = |name: &'static str, commands: &mut dyn Iterator<Item = &String>| {
        commands
            .map(|c| {
                Arc::new(ShellStep {
                    hooks: hooks.clone(),
                    hook: name,
                    command: c.clone(),
                }) as Arc<dyn ServiceStep>
            })
            .collect::<Vec<_>>()
    };
    OrderedServices {
        stop: steps("stop", &mut stop.iter()),
        post_restore: steps("post-restore", &mut post_restore.iter()),
        start: steps("start", &mut start.iter()),
    }
}

/// One service hook: a shell command.
struct ShellStep {
    hooks: Arc<Hooks>,
    hook: &'static str,
    command: String,
}

#[async_trait]
impl ServiceStep for ShellStep {
    fn describe(&self) -> String {
        format!("{}: `{}`", self.hook, self.command)
    }

    async fn run(&self, rolled_back: bool) -> Result<()> {
        let env: &[(&str, &str)] = if rolled_back {
            &[("BACKUPS_ROLLED_BACK", "1")]
        } else {
            &[]
        };
        self.hooks
            .run(self.hook, &Some(self.command.clone()), env)
            .await
    }
}

/// Echoes `stream` line by line as `[hook] line` on stderr, keeping the
/// last three lines in `tail`.
async fn echo<R: AsyncRead + Unpin>(
    stream: Option<R>,
    hook: &'static str,
    quiet: bool,
    tail: Option<Arc<Mutex<VecDeque<String>>>>,
) {
    let Some(stream) = stream else { return };
    let mut lines = BufReader::new(stream).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if !quiet {
            stderr_line!("[{hook}] {line}");
        }
        if let Some(tail) = &tail {
            let mut t = tail.lock().unwrap_or_else(PoisonError::into_inner);
            if t.len() == 3 {
                t.pop_front();
            }
            t.push_back(line);
        }
    }
}

impl Hooks {
    /// Runs one hook (`hook` names it in its output and errors); no command
    /// is success.
    async fn run(
        &self,
        hook: &'static str,
        command: &Option<String>,
        extra_env: &[(&str, &str)],
    ) -> Result<()> {
        let Some(command) = command else {
            return Ok(());
        };
        let fail = |detail: String| Error::Hook {
            hook,
            command: command.clone(),
            detail,
        };
        let mut child = tokio::process::Command::new("sh")
            .args(["-c", command])
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("BACKUPS_HOOK", hook)
            .envs(extra_env.iter().copied())
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| fail(format!("cannot run sh: {e}")))?;
        let mut killer = GroupKiller::new(child.id());
        let tail = Arc::new(Mutex::new(VecDeque::new()));
        let echoes = [
            tokio::spawn(echo(child.stdout.take(), hook, self.quiet, None)),
            tokio::spawn(echo(
                child.stderr.take(),
                hook,
                self.quiet,
                Some(tail.clone()),
            )),
        ];
        let status = match tokio::time::timeout(self.timeout, child.wait()).await {
            Ok(Ok(status)) => status,
            Ok(Err(e)) => return Err(fail(format!("waiting for it failed: {e}"))),
            Err(_) => {
                drop(killer);
                let _ = child.wait().await;
                return Err(fail(format!(
                    "timed out after {} (--hook-timeout); its process group was killed",
                    human_duration(self.timeout)
                )));
            }
        };
        killer.disarm();
        // The output is read to its end unless a process the hook left
        // running still holds it open.
        for task in echoes {
            if tokio::time::timeout(Duration::from_millis(500), task)
                .await
                .is_err()
            {
                break;
            }
        }
        if status.success() {
            return Ok(());
        }
        let tail: Vec<String> = tail
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .cloned()
            .collect();
        Err(fail(if tail.is_empty() {
            status.to_string()
        } else {
            format!("{status}: {}", tail.join(" | "))
        }))
    }
}

/// `10min`-style durations, for the timeout message.
fn human_duration(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        s if s >= 3600 && s % 3600 == 0 => format!("{}h", s / 3600),
        s if s >= 60 && s % 60 == 0 => format!("{}min", s / 60),
        s => format!("{s}s"),
    }
}

/// `create --lock-cmd CMD... --unlock-cmd CMD...`: shell commands that
/// quiesce the controller's writers around a backup, as the library's
/// [`OrderedLock`]: the locks run in the order given, and a lock failing
/// part-way unlocks what the locks that ran locked (one unlock per lock,
/// in reverse order: exactly those; else every unlock). The unlocks run
/// whatever happened, in the order given, with `BACKUPS_BACKUP_OK=1` or `0`.
pub fn shell_lock(hooks: Hooks, lock: &[String], unlock: &[String]) -> OrderedLock {
    let hooks = Arc::new(hooks);
    let steps = |hook: &'static str, commands: &[String]| {
        commands
            .iter()
            .map(|c| {
                Arc::new(LockStep {
                    hooks: hooks.clone(),
                    hook,
                    command: c.clone(),
                }) as Arc<dyn ServiceStep>
            })
            .collect::<Vec<_>>()
    };
    OrderedLock::new(steps("lock", lock), steps("unlock", unlock))
}

/// One lock hook: a shell command; an unlock sees the backup's outcome.
struct LockStep {
    hooks: Arc<Hooks>,
    hook: &'static str,
    command: String,
}

#[async_trait]
impl ServiceStep for LockStep {
    fn describe(&self) -> String {
        format!("{}: `{}`", self.hook, self.command)
    }

    async fn run(&self, failed: bool) -> Result<()> {
        let env: &[(&str, &str)] = match (self.hook, failed) {
            ("lock", _) => &[],
            (_, true) => &[("BACKUPS_BACKUP_OK", "0")],
            (_, false) => &[("BACKUPS_BACKUP_OK", "1")],
        };
        self.hooks
            .run(self.hook, &Some(self.command.clone()), env)
            .await
    }
}
