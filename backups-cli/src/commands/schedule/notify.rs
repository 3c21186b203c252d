//! A schedule's `notify_cmd` and `notify_url`: the library's notifiers
//! ([`CommandNotifier`], [`UrlNotifier`]) added to its job.

use std::sync::Arc;

use backups_core::schedule::{CommandNotifier, DEFAULT_NOTIFY_TIMEOUT, Scheduler, UrlNotifier};

use crate::args::parse_duration;
use crate::config::{Config, ScheduleEntry};
use crate::failure::Failure;

/// Adds `entry`'s notifiers to its job in `scheduler`.
pub fn add(
    scheduler: &mut Scheduler,
    config: &Config,
    entry: &ScheduleEntry,
) -> Result<(), Failure> {
    let usage = |what: String| {
        Failure::usage(format!(
            "schedule {} in {}: {what}",
            entry.name,
            config.describe()
        ))
    };
    let timeout = match &entry.notify_timeout {
        Some(t) => parse_duration(t).map_err(|e| usage(format!("notify_timeout: {e}")))?,
        None => DEFAULT_NOTIFY_TIMEOUT,
    };
    if timeout.is_zero() {
        return Err(usage("notify_timeout: must be more than 0s".into()));
    }
    if let Some(command) = &entry.notify_cmd {
        let notifier = CommandNotifier::new(command.clone()).with_timeout(timeout);
        scheduler.add_notifier(&entry.name, Arc::new(notifier))?;
    }
    if let Some(url) = &entry.notify_url {
        let notifier = UrlNotifier::new(url)
            .map_err(|e| usage(e.to_string()))?
            .with_timeout(timeout);
        scheduler.add_notifier(&entry.name, Arc::new(notifier))?;
    }
    Ok(())
}
