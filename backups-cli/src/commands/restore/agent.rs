//! `restore --juju` without a MongoDB URI: which agent.conf holds the
//! credentials of the target's database.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use backups_core::juju::JujuAgentConfig;
use backups_core::{Backups, NoProgress, RestoreRequest, RestoreSource};

use super::Args;
use crate::context::Context;
use crate::failure::{Failure, io_failure};

/// How deep below a scratch restore a backup's data dir is looked for.
const SEARCH_DEPTH: usize = 12;

/// The live agent.conf under --juju-data-dir (default
/// `<target>/var/lib/juju`), read before anything is restored: it holds
/// the password and CA of the MongoDB running now. Without one, the
/// backup's own, read from its files extracted to a scratch directory.
pub(super) async fn juju_agent(
    ctx: &Context,
    args: &Args,
    source: &RestoreSource,
) -> Result<JujuAgentConfig, Failure> {
    let data_dir = args.juju_data_dir();
    if has_agent_conf(&data_dir) {
        return Ok(JujuAgentConfig::find(&data_dir)?);
    }
    ctx.say(&format!(
        "No agent.conf under {}: connecting with the backup's (extracting its files to a scratch directory to read it)",
        data_dir.display()
    ));
    let scratch = tempfile::Builder::new()
        .prefix("backups-juju-")
        .tempdir()
        .map_err(|e| io_failure("creating a scratch directory", e))?;
    let request = RestoreRequest::new(source.clone(), scratch.path().to_path_buf())
        .with_identities(args.keys.identities()?)
        .with_require_encryption(args.require_encryption);
    ctx.backups.restore(request, Arc::new(NoProgress)).await?;
    let standard = scratch.path().join("var/lib/juju");
    let found = if has_agent_conf(&standard) {
        vec![standard]
    } else {
        let mut found = Vec::new();
        data_dirs_below(scratch.path(), SEARCH_DEPTH, &mut found);
        found
    };
    match found.as_slice() {
        [one] => Ok(JujuAgentConfig::find(one)?),
        [] => Err(Failure::usage(format!(
            "no agent.conf under {} and none in the backup: give --juju-data-dir or --mongo-uri",
            data_dir.display()
        ))),
        many => Err(Failure::usage(format!(
            "no agent.conf under {} and the backup holds several Juju data dirs ({}): give --juju-data-dir or --mongo-uri",
            data_dir.display(),
            many.iter()
                .map(|p| format!("/{}", p.strip_prefix(scratch.path()).unwrap_or(p).display()))
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// Whether `data_dir/agents/machine-*/agent.conf` exists.
fn has_agent_conf(data_dir: &Path) -> bool {
    std::fs::read_dir(data_dir.join("agents")).is_ok_and(|entries| {
        entries.flatten().any(|e| {
            e.file_name().to_string_lossy().starts_with("machine-")
                && e.path().join("agent.conf").is_file()
        })
    })
}

/// The directories below `dir` (symlinks not followed) that hold
/// `agents/machine-*/agent.conf`.
fn data_dirs_below(dir: &Path, depth: usize, found: &mut Vec<PathBuf>) {
    if has_agent_conf(dir) {
        found.push(dir.to_path_buf());
        return;
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut dirs: Vec<PathBuf> = entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.path())
        .collect();
    dirs.sort();
    if depth > 0 {
        for d in dirs {
            data_dirs_below(&d, depth - 1, found);
        }
    }
}
