//! After a job's run, tell someone: a [`Notifier`] the embedder adds to a
//! job ([`super::Scheduler::add_notifier`]) is called with the run's
//! [`Notification`] once its status is recorded. The scheduler bounds each
//! call by the notifier's [`Notifier::timeout`]; a notifier that fails or
//! runs over is reported ([`super::ScheduleEvent::NotifyFailed`], naming the
//! job) and changes nothing else: the run's outcome, its status and the
//! next run stand. Two notifiers come with the library: a shell command
//! ([`CommandNotifier`]) and an HTTP POST of the job's status JSON
//! ([`UrlNotifier`]).

use std::collections::VecDeque;
use std::io::{BufRead, Seek};
use std::time::Duration;

use async_trait::async_trait;

use std::sync::Arc;

use super::status::JobStatus;
use super::{EventSink, JobError, ScheduleEvent, error_chain};
use crate::error::{Error, InputKind, Result};
use crate::secret::redact_uri;
use crate::services::GroupKiller;

/// How long a notifier may take unless it says otherwise.
pub const DEFAULT_NOTIFY_TIMEOUT: Duration = Duration::from_secs(30);

/// What a notifier is told about one run (a run aborted because the
/// scheduler stopped is not notified: nothing of it was recorded).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Notification {
    /// The job's name.
    pub job: String,
    /// Whether the run succeeded.
    pub ok: bool,
    /// The backup the run made (`None` when it failed).
    pub backup: Option<String>,
    /// Why it failed, with its causes, secrets redacted (`None` when it
    /// succeeded).
    pub error: Option<String>,
    /// The job's status as recorded after the run (what its status file
    /// holds).
    pub status: JobStatus,
}

impl Notification {
    /// The environment a notify command sees: `BACKUPS_JOB`, `BACKUPS_OK`
    /// (`1` or `0`), `BACKUPS_ID` (the new backup's id, empty when the run
    /// failed) and `BACKUPS_ERROR` (empty when it succeeded).
    pub fn env(&self) -> [(&'static str, String); 4] {
        [
            ("BACKUPS_JOB", self.job.clone()),
            ("BACKUPS_OK", if self.ok { "1" } else { "0" }.to_string()),
            ("BACKUPS_ID", self.backup.clone().unwrap_or_default()),
            ("BACKUPS_ERROR", self.error.clone().unwrap_or_default()),
        ]
    }
}

/// Told after each recorded run of the jobs it was added to.
#[async_trait]
pub trait Notifier: Send + Sync {
    /// What it is, for the warning when it fails (no secrets in it).
    fn describe(&self) -> String;

    /// How long one call may take; the scheduler abandons it after that
    /// (dropping its future) and reports it as failed.
    fn timeout(&self) -> Duration {
        DEFAULT_NOTIFY_TIMEOUT
    }

    /// Tells of one run; an error is reported and changes nothing else.
    async fn notify(&self, notification: &Notification) -> Result<(), JobError>;
}

/// A notifier that failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NotifyError {
    /// The command could not be run, or exited with a failure.
    #[error("`{command}` failed: {detail}")]
    Command {
        /// The command.
        command: String,
        /// Its exit status and the end of its output.
        detail: String,
    },
    /// The POST could not be sent, or was answered with an error status.
    #[error("POST {url} failed: {detail}")]
    Http {
        /// The URL, credentials redacted.
        url: String,
        /// What went wrong.
        detail: String,
    },
}

/// Runs a shell command (`sh -c`) with the [`Notification::env`]
/// variables, in its own process group: when it runs over its timeout the
/// whole group is killed. Its output goes to a temp file whose last lines
/// are in the error when it fails.
#[derive(Debug, Clone)]
pub struct CommandNotifier {
    command: String,
    timeout: Duration,
}

impl CommandNotifier {
    /// Runs `command` after each run, for at most [`DEFAULT_NOTIFY_TIMEOUT`].
    pub fn new(command: impl Into<String>) -> Self {
        CommandNotifier {
            command: command.into(),
            timeout: DEFAULT_NOTIFY_TIMEOUT,
        }
    }

    /// Gives the command at most `timeout`.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
}

#[async_trait]
impl Notifier for CommandNotifier {
    fn describe(&self) -> String {
        "notify command".to_string()
    }

    fn timeout(&self) -> Duration {
        self.timeout
    }

    async fn notify(&self, notification: &Notification) -> Result<(), JobError> {
        let fail = |detail: String| NotifyError::Command {
            command: self.command.clone(),
            detail,
        };
        let mut output = tempfile::tempfile().map_err(|e| fail(format!("no temp file: {e}")))?;
        let stderr = output
            .try_clone()
            .map_err(|e| fail(format!("no temp file: {e}")))?;
        let stdout = output
            .try_clone()
            .map_err(|e| fail(format!("no temp file: {e}")))?;
        let mut child = tokio::process::Command::new("sh")
            .args(["-c", &self.command])
            .envs(notification.env())
            .stdin(std::process::Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| fail(format!("cannot run sh: {e}")))?;
        let mut killer = GroupKiller::new(child.id());
        let status = child
            .wait()
            .await
            .map_err(|e| fail(format!("waiting for it failed: {e}")))?;
        killer.disarm();
        if status.success() {
            return Ok(());
        }
        let tail = last_lines(&mut output, 3);
        Err(Box::new(fail(if tail.is_empty() {
            status.to_string()
        } else {
            format!("{status}: {}", tail.join(" | "))
        })))
    }
}

/// The last `n` lines of `file` (read from its start).
fn last_lines(file: &mut std::fs::File, n: usize) -> Vec<String> {
    if file.rewind().is_err() {
        return Vec::new();
    }
    let mut tail = VecDeque::new();
    for line in std::io::BufReader::new(file).lines().map_while(|l| l.ok()) {
        if tail.len() == n {
            tail.pop_front();
        }
        tail.push_back(line);
    }
    tail.into()
}

/// POSTs the job's status JSON ([`Notification::status`], as its status
/// file holds it) to an `http` or `https` URL, without following redirects;
/// anything but a 2xx answer is a failure. User info in the URL is sent as
/// basic authentication, and neither it nor a secret query value appears
/// in any message ([`redact_uri`]).
#[derive(Debug, Clone)]
pub struct UrlNotifier {
    url: url::Url,
    shown: String,
    client: reqwest::Client,
    timeout: Duration,
}

impl UrlNotifier {
    /// POSTs to `url` after each run, for at most
    /// [`DEFAULT_NOTIFY_TIMEOUT`]; an error when it is not an absolute
    /// `http` or `https` URL.
    pub fn new(url: &str) -> Result<Self> {
        let shown = redact_uri(url);
        let invalid = |reason: String| Error::InvalidInput {
            what: InputKind::NotifyUrl,
            value: shown.clone(),
            reason,
        };
        let parsed = url::Url::parse(url).map_err(|e| invalid(e.to_string()))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(invalid(format!(
                "only http and https are supported, not {}",
                parsed.scheme()
            )));
        }
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("backups/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| invalid(format!("cannot make an HTTP client: {}", e.without_url())))?;
        Ok(UrlNotifier {
            url: parsed,
            shown,
            client,
            timeout: DEFAULT_NOTIFY_TIMEOUT,
        })
    }

    /// Gives the POST (connect, send, answer) at most `timeout`.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
}

#[async_trait]
impl Notifier for UrlNotifier {
    fn describe(&self) -> String {
        format!("notify URL {}", self.shown)
    }

    fn timeout(&self) -> Duration {
        self.timeout
    }

    async fn notify(&self, notification: &Notification) -> Result<(), JobError> {
        let fail = |detail: String| NotifyError::Http {
            url: self.shown.clone(),
            detail,
        };
        let body = serde_json::to_vec(&notification.status)
            .map_err(|e| fail(format!("serialising the status: {e}")))?;
        let answer = self
            .client
            .post(self.url.clone())
            .timeout(self.timeout)
            .header("Content-Type", "application/json")
            .body(body)
            .send()
            .await
            .map_err(|e| fail(http_error(e)))?;
        let status = answer.status();
        if status.is_success() {
            Ok(())
        } else {
            Err(Box::new(fail(format!("answered {status}"))))
        }
    }
}

/// Tells `notification` to every notifier at once, each bounded by its
/// timeout; a failure is a [`ScheduleEvent::NotifyFailed`] sent to `events`.
pub(crate) async fn tell(
    notifiers: Vec<Arc<dyn Notifier>>,
    notification: Notification,
    events: EventSink,
) {
    let notification = Arc::new(notification);
    let calls = notifiers.into_iter().map(|notifier| {
        let notification = notification.clone();
        let events = events.clone();
        async move {
            let timeout = notifier.timeout();
            let error = match tokio::time::timeout(timeout, notifier.notify(&notification)).await {
                Ok(Ok(())) => return,
                Ok(Err(e)) => error_chain(e.as_ref()),
                Err(_) => format!("timed out after {}s and was stopped", timeout.as_secs_f64()),
            };
            events(&ScheduleEvent::NotifyFailed {
                job: notification.job.clone(),
                notifier: notifier.describe(),
                error,
            });
        }
    });
    futures::future::join_all(calls).await;
}

/// A reqwest error and its causes, without the URL it names.
fn http_error(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut text = e.to_string();
    let mut cause = std::error::Error::source(&e);
    while let Some(c) = cause {
        let more = c.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        cause = c.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_http_and_https_urls_and_their_secrets_stay_out_of_messages() {
        for bad in ["ftp://u:hunter2@host/x", "file:///etc/passwd", "not a url"] {
            let e = UrlNotifier::new(bad).unwrap_err().to_string();
            assert!(e.contains("notify URL"), "{e}");
            assert!(!e.contains("hunter2"), "{e}");
        }
        let n = UrlNotifier::new("https://u:hunter2@host/hook?token=abc&x=1").unwrap();
        assert_eq!(
            n.describe(),
            "notify URL https://u:***@host/hook?token=***&x=1"
        );
    }

    #[test]
    fn the_command_sees_four_variables() {
        let mut n = Notification {
            job: "nightly".into(),
            ok: false,
            backup: None,
            error: Some("boom".into()),
            status: JobStatus::new("nightly"),
        };
        assert_eq!(
            n.env().map(|(k, v)| format!("{k}={v}")),
            [
                "BACKUPS_JOB=nightly",
                "BACKUPS_OK=0",
                "BACKUPS_ID=",
                "BACKUPS_ERROR=boom"
            ]
        );
        n.ok = true;
        n.error = None;
        n.backup = Some("20261201-030000.x".into());
        assert_eq!(n.env()[1].1, "1");
        assert_eq!(n.env()[2].1, "20261201-030000.x");
        assert_eq!(n.env()[3].1, "");
    }
}
