//! `restore --to-time`: the base backup and the oplog slices that bring
//! the database to the end of a given second.

use backups_core::pitr::{self, Position};
use backups_core::{BackupId, Identities, Metadata};

use crate::args::parse_id;
use crate::context::Context;
use crate::failure::{self, Failure};

/// A restore to a point in time, prepared: nothing changed yet.
pub struct PointInTime {
    /// The base backup restored first.
    pub base: BackupId,
    /// The second restored to (epoch seconds; every entry of it included).
    pub to: u32,
    /// The slices replayed.
    pub slices: Vec<String>,
    /// Oplog entries replayed after the base.
    pub entries: u64,
    /// The entries, concatenated raw BSON, for the loader.
    pub oplog: tempfile::NamedTempFile,
}

impl PointInTime {
    /// What a dry run (and a restore) tells first.
    pub fn summary(&self) -> String {
        let mut text = format!(
            "Point in time {}: base backup {}, then {} oplog entries from {} slices (files come from the base backup only)\n",
            pitr::seconds_rfc3339(self.to),
            self.base,
            self.entries,
            self.slices.len()
        );
        for s in &self.slices {
            text.push_str(&format!("  slice {s}\n"));
        }
        text
    }
}

/// With `--to-time`: the prepared point in time, its summary printed
/// (on stderr with --json).
pub async fn for_args(ctx: &Context, args: &super::Args) -> Result<Option<PointInTime>, Failure> {
    let Some(to) = args.to_time else {
        return Ok(None);
    };
    if args.mongo.uri()?.is_none() && !args.juju {
        return Err(Failure::usage(
            "--to-time restores a database: give --mongo-uri",
        ));
    }
    let keys = args.keys.identities()?;
    let pit = prepare(ctx, to, args.id.as_deref(), &keys).await?;
    if args.json {
        ctx.say(pit.summary().trim_end());
    } else {
        crate::output::out(&pit.summary())?;
    }
    Ok(Some(pit))
}

/// `TIME` in RFC 3339 or `YYYY-MM-DD HH:MM:SS` (UTC), as epoch seconds
/// (a fraction is cut: the whole second is restored).
pub fn parse_time(s: &str) -> Result<u32, String> {
    use time::format_description::well_known::Rfc3339;
    let plain = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
    let t = time::OffsetDateTime::parse(s, &Rfc3339)
        .or_else(|_| time::PrimitiveDateTime::parse(s, plain).map(|t| t.assume_utc()))
        .map_err(|_| format!("expected RFC 3339 or 'YYYY-MM-DD HH:MM:SS' (UTC), got {s:?}"))?;
    u32::try_from(t.unix_timestamp()).map_err(|_| format!("{s:?} is out of range"))
}

fn refused(message: String) -> Failure {
    Failure {
        message,
        code: failure::VERIFICATION,
    }
}

/// Picks the base (the given id, else the newest whose consistent point is
/// at or before `to`) and the slices, and writes the entries to replay.
/// Refused (exit 5, naming what is covered) when `to` is not covered.
pub async fn prepare(
    ctx: &Context,
    to: u32,
    id: Option<&str>,
    identities: &Identities,
) -> Result<PointInTime, Failure> {
    let backups = ctx.list().await?;
    let base: Metadata = match id {
        Some(id) => {
            let id = parse_id(id)?;
            backups
                .iter()
                .find(|m| m.id.as_ref() == Some(&id))
                .cloned()
                .ok_or_else(|| Failure::from(backups_core::Error::NotFound { id }))?
        }
        None => backups
            .iter()
            .filter(|m| pitr::base_end(m).is_some_and(|e| e.seconds <= to))
            .max_by_key(|m| pitr::base_end(m))
            .cloned()
            .ok_or_else(|| {
                refused(format!(
                    "no base backup with a recorded consistent point at or before {}",
                    pitr::seconds_rfc3339(to)
                ))
            })?,
    };
    let base_id = base
        .id
        .clone()
        .ok_or_else(|| refused("the base backup has no id".into()))?;
    let end: Position = pitr::base_end(&base).ok_or_else(|| {
        refused(format!(
            "backup {base_id} records no oplog position (made before point-in-time recovery, or not from a replica set)"
        ))
    })?;
    let chains = pitr::catalog(ctx.backups.as_ref()).await?;
    let chain = chains
        .iter()
        .find(|c| base.replica_set.as_deref().is_none_or(|rs| rs == c.name))
        .ok_or_else(|| {
            refused(format!(
                "the store holds no oplog slices for backup {base_id}"
            ))
        })?;
    // From a second before the base started: the dump's own oplog range
    // may miss an entry the server made visible late.
    let started = base
        .started
        .map(|t| u32::try_from(t.unix_timestamp()).unwrap_or(0))
        .unwrap_or(end.seconds);
    let from = Position::new(started.saturating_sub(1), 0);
    let (after, plan) = chain
        .plan_from(from, end, to)
        .map_err(|e| refused(e.reason))?;
    let mut oplog = tempfile::NamedTempFile::new()
        .map_err(|e| failure::io_failure("creating a temporary file", e))?;
    // The databases the base holds, as the dump's own oplog.bson does.
    let mut dbs: Vec<String> = base
        .databases
        .keys()
        .filter_map(|ns| ns.split_once('.').map(|(db, _)| db.to_string()))
        .filter(|db| !db.starts_with("oplog"))
        .collect();
    dbs.dedup();
    let mut entries = 0;
    for slice in &plan {
        let bytes = pitr::read_slice(ctx.backups.as_ref(), slice, identities).await?;
        entries += backups_mongo::pitr::filter_oplog(&bytes, after, to, &dbs, oplog.as_file_mut())?;
    }
    Ok(PointInTime {
        base: base_id,
        to,
        slices: plan.iter().map(|s| s.object.clone()).collect(),
        entries,
        oplog,
    })
}
