//! A schedule's retention policy, applied to the schedule's own backups.

use crate::config::Retention;
use crate::context::Context;
use crate::failure::Failure;

/// Applies `retention` to the backups of schedule `name`; returns what it
/// did, for the log.
pub async fn apply(_ctx: &Context, _name: &str, _retention: &Retention) -> Result<String, Failure> {
    Ok("retention not applied yet".into())
}
