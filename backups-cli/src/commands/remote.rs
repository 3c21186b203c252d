//! `--remote URL`: the commands run through a backups server
//! ([`backups_server::RemoteBackups`]) instead of a store, printing what
//! they print against a store (the same tables, lines and JSON) and
//! failing with the same exit codes; a refused token or role is exit 16.

use std::sync::Arc;

use backups_core::download::DownloadTo;
use backups_core::immutable::ObjectLock;
use backups_core::{
    ArchiveSource, BackupId, Backups, Metadata, Progress, Verification, VerifyLevel,
};
use backups_server::RemoteBackups;
use serde_json::{Value, json};

use super::{
    create, download, forget, label, list, remove, restore as restore_cmd, show, upload, verify,
};
use crate::args::{GlobalArgs, parse_id};
use crate::failure::{CliResult, Failure, io_failure, some_failed};
use crate::output::{self, out};
use crate::progress::CliProgress;

/// The server, and how the command shows progress and messages.
pub struct Remote {
    client: RemoteBackups,
    quiet: bool,
    progress: Arc<dyn Progress>,
}

impl Remote {
    fn say(&self, text: &str) {
        output::say(self.quiet, text);
    }
}

/// The first line of the token file.
fn read_token(global: &GlobalArgs) -> Result<String, Failure> {
    let path = global.remote_token_file.as_ref().ok_or_else(|| {
        Failure::usage(
            "--remote needs a token: give --remote-token-file FILE (or $BACKUPS_REMOTE_TOKEN_FILE)",
        )
    })?;
    let text = std::fs::read_to_string(path)
        .map_err(|e| io_failure(&format!("reading {}", path.display()), e))?;
    let token = text.lines().next().unwrap_or("").trim().to_string();
    if token.is_empty() {
        return Err(Failure::usage(format!("{} holds no token", path.display())));
    }
    Ok(token)
}

/// The server at `url`, with the token and CA the global options name.
pub fn connect(global: &GlobalArgs, url: &str) -> Result<Remote, Failure> {
    let token = read_token(global)?;
    let ca = match &global.remote_ca {
        Some(p) => {
            Some(std::fs::read(p).map_err(|e| io_failure(&format!("reading {}", p.display()), e))?)
        }
        None => None,
    };
    Ok(Remote {
        client: RemoteBackups::new(url, &token, ca.as_deref())?,
        quiet: global.quiet,
        progress: Arc::new(CliProgress::new(global.progress, global.quiet, false)),
    })
}

fn metadata(v: &Value, url: &str) -> Result<Metadata, Failure> {
    let bytes = serde_json::to_vec(v).unwrap_or_default();
    Ok(Metadata::from_json(&bytes, url)?)
}

/// `list` through the server.
pub async fn list(r: &Remote, args: list::Args) -> CliResult {
    let values = r.client.list_json().await?;
    if args.json {
        return out(&format!("{}\n", Value::Array(values)));
    }
    if values.is_empty() {
        return out("No backups to display.\n");
    }
    let list: Vec<Metadata> = values
        .iter()
        .map(|v| metadata(v, r.client.url()))
        .collect::<Result<_, _>>()?;
    let marked: Vec<bool> = values
        .iter()
        .map(|v| v["PendingRecovery"] == json!(true))
        .collect();
    // The server reads the locks from its store, as list does.
    let locks: Vec<Option<ObjectLock>> = values
        .iter()
        .map(|v| serde_json::from_value(v["Immutable"].clone()).ok())
        .collect();
    out(&output::table(
        &list,
        &marked,
        &locks,
        output::terminal_width(),
    ))
}

/// `show` through the server.
pub async fn show(r: &Remote, args: show::Args) -> CliResult {
    let id = parse_id(&args.id)?;
    let v = r.client.show_json(&id).await?;
    if args.json {
        return out(&format!(
            "{}\n",
            serde_json::to_string_pretty(&v).unwrap_or_default()
        ));
    }
    let meta = metadata(&v, r.client.url())?;
    let mut text = output::details(&meta);
    let lock: Option<ObjectLock> = serde_json::from_value(v["Immutable"].clone()).ok();
    text.push_str(&output::immutable_line(&meta, lock));
    if v["PendingRecovery"] == json!(true) {
        text.push_str("pending recovery: yes: a restore journal on the server needs it to undo a restore that did not finish\n");
    }
    out(&text)
}

/// `download` through the server.
pub async fn download(r: &Remote, args: download::Args) -> CliResult {
    let id = parse_id(&args.id)?;
    if args.decrypt {
        return Err(Failure::usage(
            "--decrypt does not work with --remote yet: download the .tar.gz.age and decrypt it with `age -d -i KEY`",
        ));
    }
    match download::destination(&args, &id)? {
        None => {
            let mut stdout = tokio::io::stdout();
            r.client
                .download(&id, DownloadTo::Writer(&mut stdout), r.progress.clone())
                .await?;
        }
        Some(path) => {
            let meta = r
                .client
                .download(&id, DownloadTo::File(&path), r.progress.clone())
                .await?;
            r.say(&format!(
                "Downloaded {id} to {} ({} bytes, checksum verified)",
                path.display(),
                meta.stored_size()
            ));
        }
    }
    Ok(())
}

/// `upload` through the server.
pub async fn upload(r: &Remote, args: upload::Args) -> CliResult {
    if args.encrypt.encryption()?.is_some() || args.require_encryption {
        return Err(Failure::usage(
            "encrypting an upload does not work with --remote: encrypt it with age first (the server stores it as it comes)",
        ));
    }
    let outcome = r
        .client
        .add(
            ArchiveSource::File(args.file.clone()),
            None,
            r.progress.clone(),
        )
        .await?;
    upload::print_outcome(outcome)
}

/// `remove` through the server.
pub async fn remove(r: &Remote, args: remove::Args) -> CliResult {
    if let Some(n) = args.keep_latest {
        let policy = json!({"keep_last": n, "group_by": "none"});
        let v = r.client.forget_remote(policy, args.dry_run).await?;
        let verb = if args.dry_run {
            "Would remove"
        } else {
            "Removed"
        };
        let removed = ids(&v["Remove"]);
        if removed.is_empty() {
            out("Nothing to remove.\n")?;
        }
        for id in removed.iter().filter(|id| !ids(&v["Failed"]).contains(id)) {
            out(&format!("{verb} backup {id}\n"))?;
        }
        return report_failed(&v["Failed"]);
    }
    let ids: Vec<BackupId> = args
        .ids
        .iter()
        .map(|s| parse_id(s))
        .collect::<Result<_, _>>()?;
    let mut first_error = None;
    for id in ids {
        if args.dry_run {
            out(&format!("Would remove backup {id}\n"))?;
            continue;
        }
        match r.client.remove_backup(&id, args.force).await {
            Ok(()) => out(&format!("Removed backup {id}\n"))?,
            Err(e) => {
                let f = Failure::from(e);
                stderr_line!("error: {}", output::escape_lines(&f.message));
                first_error.get_or_insert(f);
            }
        }
    }
    some_failed(first_error, "some backups could not be removed (see above)")
}

/// The ids of a server's list (`[{"ID": ...}]`): only well-formed backup
/// ids, so nothing raw from the server reaches the terminal.
fn ids(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|e| e["ID"].as_str())
                .filter_map(|s| s.parse::<BackupId>().ok())
                .map(|id| id.to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// The server's `Failed` list: each on stderr, the first one's exit code.
fn report_failed(failed: &Value) -> CliResult {
    let mut first = None;
    for f in failed.as_array().into_iter().flatten() {
        let message = f["Error"].as_str().unwrap_or("").to_string();
        stderr_line!(
            "error: could not remove {}: {}",
            output::escape(f["ID"].as_str().unwrap_or("")),
            output::escape_lines(&message)
        );
        first.get_or_insert(Failure {
            message,
            code: crate::failure::remote_exit_code(f["Kind"].as_str().unwrap_or("")),
        });
    }
    some_failed(first, "some backups could not be removed (see above)")
}

/// `forget` through the server.
pub async fn forget(r: &Remote, args: forget::Args) -> CliResult {
    // The server reads the policy as the config table does.
    let policy = serde_json::to_value(&args.policy).unwrap_or_default();
    if args.policy().is_empty() {
        return Err(Failure::usage(
            "refusing to forget without a policy: give at least one --keep-* option (--keep-last, --keep-daily, --keep-within, --keep-label...)",
        ));
    }
    let v = r.client.forget_remote(policy, args.dry_run).await?;
    let keep: Vec<(String, Vec<String>)> = v["Keep"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|k| {
            let reasons = k["Reasons"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|r| r.as_str().map(str::to_string))
                .collect();
            (k["ID"].as_str().unwrap_or("").to_string(), reasons)
        })
        .collect();
    let remove = ids(&v["Remove"]);
    if args.json {
        out(&format!(
            "{}\n",
            json!({"Keep": v["Keep"], "Remove": v["Remove"]})
        ))?;
    } else if keep.is_empty() && remove.is_empty() {
        out("No backups to display.\n")?;
    } else {
        out(&forget::table_of(&keep, &remove))?;
    }
    let failed = ids(&v["Failed"]).len();
    r.say(&match args.dry_run {
        true => format!(
            "Would keep {} and remove {} backups (dry run: nothing was changed).",
            keep.len(),
            remove.len()
        ),
        false => format!(
            "Kept {} and removed {} backups.",
            keep.len(),
            remove.len().saturating_sub(failed)
        ),
    });
    report_failed(&v["Failed"])
}

/// `verify` through the server.
pub async fn verify(r: &Remote, args: verify::Args) -> CliResult {
    if args.drill || args.scratch_dir.is_some() {
        return Err(Failure::usage(
            "--drill does not work with --remote: run it on the server",
        ));
    }
    let level = if args.read_data {
        VerifyLevel::ReadData
    } else {
        VerifyLevel::Stored
    };
    let chosen: Vec<BackupId> = if args.all || args.latest {
        let list = r.client.list().await?;
        let ids = list.into_iter().filter_map(|m| m.id);
        if args.latest {
            ids.take(1).collect()
        } else {
            ids.collect()
        }
    } else {
        args.ids
            .iter()
            .map(|s| parse_id(s))
            .collect::<Result<_, _>>()?
    };
    if chosen.is_empty() {
        if args.json {
            r.say("No backups to verify.");
            return out("[]\n");
        }
        return out("No backups to verify.\n");
    }
    let mut failed = 0;
    let mut results = Vec::new();
    for id in chosen {
        let v = r.client.verify_remote(&id, level).await?;
        let ok = v["Ok"] == json!(true);
        if !ok {
            failed += 1;
        }
        if args.json {
            results.push(v);
        } else {
            let record = Verification::now(level, ok, v["Detail"].as_str().unwrap_or(""));
            out(&format!("{id}: {}\n", output::format_verification(&record)))?;
        }
    }
    if args.json {
        out(&format!("{}\n", Value::Array(results)))?;
    }
    if failed > 0 {
        return Err(Failure {
            message: format!("{failed} backups failed verification (see above)"),
            code: crate::failure::VERIFICATION,
        });
    }
    Ok(())
}

/// `label` through the server.
pub async fn label(r: &Remote, args: label::LabelArgs) -> CliResult {
    label::check(&args)?;
    for id in &args.ids {
        let id = parse_id(id)?;
        let meta = r.client.edit_labels(&id, &args.add, &args.remove).await?;
        out(&format!("{id}: {}\n", meta.labels.join(",")))?;
    }
    Ok(())
}

/// `notes` through the server.
pub async fn notes(r: &Remote, args: label::NotesArgs) -> CliResult {
    let id = parse_id(&args.id)?;
    r.client.set_notes(&id, &args.text).await?;
    r.say(&format!("Updated the notes of {id}"));
    Ok(())
}

/// `create` through the server.
pub async fn create(r: &Remote, args: create::Args) -> CliResult {
    if !args.paths.is_empty()
        || args.mongo.mongo_uri.is_some()
        || args.mongo.mongo_uri_file.is_some()
        || args.juju
        || !args.lock_cmd.is_empty()
    {
        return Err(Failure::usage(
            "with --remote the server backs up what its profile names: give only --notes, --label and --download",
        ));
    }
    let meta = r.client.create_remote(&args.notes, &args.labels).await?;
    let id = meta.id.clone().ok_or_else(|| Failure {
        message: "created backup has no id".into(),
        code: crate::failure::OTHER,
    })?;
    r.say(&format!(
        "Created backup {id}: {} files, {} ({} bytes)",
        meta.file_count.unwrap_or(0),
        output::human_size(meta.size),
        meta.size
    ));
    out(&format!("{id}\n"))?;
    if let Some(path) = args.download {
        r.client
            .download(&id, DownloadTo::File(&path), r.progress.clone())
            .await?;
        r.say(&format!("Downloaded to {}", path.display()));
    }
    Ok(())
}

/// `restore` through the server: its plan (a dry run there), then, unless
/// --dry-run and once confirmed (--yes), the restore with the plan's
/// token. Only the server's own target can be named (--target), and
/// nothing but --target, --dry-run, --yes and --json is sent.
pub async fn restore(r: &Remote, args: restore_cmd::Args) -> CliResult {
    let Some(id) = args.id.as_deref() else {
        return Err(Failure::usage(
            "with --remote, give a backup id (--file and --to-time restore here)",
        ));
    };
    let id = parse_id(id)?;
    let elsewhere = args.file.is_some()
        || args.to_time.is_some()
        || args.juju
        || args.mongo.uri()?.is_some()
        || !args.rewrite.is_empty()
        || !args.stop_cmd.is_empty()
        || !args.start_cmd.is_empty();
    if elsewhere {
        return Err(Failure::usage(
            "with --remote the server restores as it is configured: give only the id, --target (the server's), --dry-run, --yes and --json",
        ));
    }
    let planned = r.client.restore_plan(&id, &args.target).await?;
    let plan = &planned["Plan"];
    let summary = |v: &Value| {
        format!(
            "{} files, {} bytes into {}",
            v["Files"],
            v["Bytes"],
            v["Target"].as_str().unwrap_or("")
        )
    };
    if args.dry_run {
        if args.json {
            return out(&format!("{plan:#}\n"));
        }
        return out(&format!(
            "Would restore {id} on the server: {}\n",
            summary(plan)
        ));
    }
    if !args.yes {
        output::confirm(&format!("Restore {id} on the server: {}?", summary(plan)))?;
    }
    let token = planned["Token"].as_str().unwrap_or("");
    let done = r.client.restore_planned(token).await?;
    let report = &done["Report"];
    if args.json {
        return out(&format!("{report:#}\n"));
    }
    out(&format!(
        "Restored {id} on the server: {}\n",
        summary(report)
    ))
}
