//! Replica sets, as Juju's HA controllers run them: the member a dump
//! reads from (`--read-from`), and whether a restore may load onto the
//! set it finds.
//!
//! Juju's seeds say to restore only when every controller is lost: the
//! rebuilt controller is a replica set of one, and the other members are
//! added again afterwards (`juju enable-ha`). So before a load the
//! preflight asks `replSetGetStatus` and refuses, changing nothing, when a
//! member is not reachable or not PRIMARY/SECONDARY, and while more than
//! one member is alive (unless [`crate::LoadOptions::force_ha`]); it warns
//! when the set's size differs from the backup's `HANodes`. The load then
//! writes to the primary with majority write concern.

use std::fmt;
use std::str::FromStr;

use backups_core::{Error, Result};
use mongodb::Client;
use mongodb::bson::{Bson, Document, doc};
use mongodb::options::{ReadPreference, SelectionCriteria, WriteConcern};

use crate::client::db_error;

/// Which member a dump reads from (a read preference).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReadFrom {
    /// The primary (the default).
    #[default]
    Primary,
    /// A secondary; fails when none is available.
    Secondary,
    /// The member with the lowest latency, primary or secondary.
    Nearest,
}

impl FromStr for ReadFrom {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "primary" => Ok(ReadFrom::Primary),
            "secondary" => Ok(ReadFrom::Secondary),
            "nearest" => Ok(ReadFrom::Nearest),
            other => Err(format!(
                "unknown member {other:?}: use primary, secondary or nearest"
            )),
        }
    }
}

impl fmt::Display for ReadFrom {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ReadFrom::Primary => "primary",
            ReadFrom::Secondary => "secondary",
            ReadFrom::Nearest => "nearest",
        })
    }
}

impl ReadFrom {
    fn criteria(self) -> SelectionCriteria {
        SelectionCriteria::ReadPreference(match self {
            ReadFrom::Primary => ReadPreference::Primary,
            ReadFrom::Secondary => ReadPreference::Secondary { options: None },
            ReadFrom::Nearest => ReadPreference::Nearest { options: None },
        })
    }
}

/// The member a dump came from, as `hello` tells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Member {
    /// `host:port`, as the replica set names it (`hello.me`).
    pub address: String,
    /// The replica set's name, when it is one.
    pub replica_set: Option<String>,
}

/// Asks `hello` of the member `read_from` selects (the primary when
/// `None`), and checks it is what was asked for.
pub(crate) async fn member(
    client: &Client,
    asked: Option<ReadFrom>,
    shown: &str,
) -> Result<Member> {
    let read_from = asked.unwrap_or_default();
    let hello = client
        .database("admin")
        .run_command(doc! {"hello": 1})
        .selection_criteria(read_from.criteria())
        .await
        .map_err(|e| db_error(format!("finding the {read_from} member of {shown}"), e))?;
    // A direct connection reaches its one server whatever the preference.
    let is = |field: &str| hello.get_bool(field).unwrap_or(false);
    let refuse = |is_what: &str| Error::Database {
        message: format!(
            "finding the {read_from} member of {shown}: {} is {is_what} (connect with the replica set's members, without directConnection, to let it choose)",
            hello.get_str("me").unwrap_or(shown)
        ),
        source: None,
    };
    match asked {
        Some(ReadFrom::Secondary) if !is("secondary") => Err(refuse("not a secondary")),
        Some(ReadFrom::Primary) if hello.get_str("setName").is_ok() && !is("isWritablePrimary") => {
            Err(refuse("not the primary"))
        }
        _ => Ok(member_of(&hello, shown)),
    }
}

fn member_of(hello: &Document, shown: &str) -> Member {
    Member {
        address: hello
            .get_str("me")
            .map(str::to_string)
            .unwrap_or_else(|_| shown.to_string()),
        replica_set: hello.get_str("setName").ok().map(str::to_string),
    }
}

/// One member of a replica set, from `replSetGetStatus`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetMember {
    /// `host:port`.
    pub name: String,
    /// `PRIMARY`, `SECONDARY`, `(not reachable/healthy)`, `RECOVERING`...
    pub state: String,
    /// The set's last heartbeat reached it.
    pub healthy: bool,
}

/// A replica set as `replSetGetStatus` describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaSet {
    /// Its name (`set`).
    pub name: String,
    /// Its members.
    pub members: Vec<SetMember>,
}

impl ReplicaSet {
    /// Reads a `replSetGetStatus` reply.
    pub fn from_status(status: &Document) -> Result<ReplicaSet> {
        let bad = |why: &str| Error::Database {
            message: format!("unexpected replSetGetStatus reply: {why}"),
            source: None,
        };
        let name = status.get_str("set").map_err(|_| bad("no set name"))?;
        let members = status
            .get_array("members")
            .map_err(|_| bad("no members"))?
            .iter()
            .map(|m| {
                let Bson::Document(m) = m else {
                    return Err(bad("a member is not a document"));
                };
                let health = match m.get("health") {
                    Some(Bson::Double(h)) => *h >= 1.0,
                    Some(Bson::Int32(h)) => *h >= 1,
                    Some(Bson::Int64(h)) => *h >= 1,
                    _ => false,
                };
                Ok(SetMember {
                    name: m
                        .get_str("name")
                        .map_err(|_| bad("a member has no name"))?
                        .into(),
                    state: m.get_str("stateStr").unwrap_or("UNKNOWN").into(),
                    healthy: health,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(ReplicaSet {
            name: name.into(),
            members,
        })
    }
}

/// The replica set `client` is connected to, or `None` for a standalone
/// server.
pub(crate) async fn replica_set(client: &Client, shown: &str) -> Result<Option<ReplicaSet>> {
    let admin = client.database("admin");
    let hello = admin
        .run_command(doc! {"hello": 1})
        .await
        .map_err(|e| db_error(format!("asking {shown} hello"), e))?;
    if hello.get_str("setName").is_err() {
        return Ok(None);
    }
    let status = admin
        .run_command(doc! {"replSetGetStatus": 1})
        .await
        .map_err(|e| db_error(format!("asking {shown} for its replica set status"), e))?;
    ReplicaSet::from_status(&status).map(Some)
}

/// Connects for a load, as application `app_name`: onto a replica set,
/// writes wait for a majority of its members (they go to the primary).
pub(crate) async fn connect_for_load(uri: &str, app_name: &str) -> Result<Client> {
    let named = |o: &mut mongodb::options::ClientOptions| o.app_name = Some(app_name.to_string());
    let client = crate::client::connect_with(uri, named).await?;
    let hello = client
        .database("admin")
        .run_command(doc! {"hello": 1})
        .await
        .map_err(|e| {
            db_error(
                format!("asking {} hello", crate::client::redact_uri(uri)),
                e,
            )
        })?;
    if hello.get_str("setName").is_err() {
        return Ok(client);
    }
    crate::client::connect_with(uri, |o| {
        named(o);
        o.write_concern = Some(WriteConcern::majority());
    })
    .await
}

/// The preflight of a load: the replica set it would load onto, checked
/// by [`check_restore_target`].
pub(crate) async fn preflight_load(
    client: &Client,
    ha_nodes: u64,
    force_ha: bool,
    shown: &str,
) -> Result<Vec<String>> {
    let set = replica_set(client, shown).await?;
    check_restore_target(set.as_ref(), ha_nodes, force_ha, shown)
}

/// Whether a load may go ahead onto `set` (see the module docs); returns
/// the warnings to show. `ha_nodes` is the backup's `HANodes` (0 when not
/// recorded).
pub fn check_restore_target(
    set: Option<&ReplicaSet>,
    ha_nodes: u64,
    force_ha: bool,
    shown: &str,
) -> Result<Vec<String>> {
    let Some(set) = set else {
        return Ok(Vec::new());
    };
    let refuse = |reason: String| Error::Incompatible {
        subject: format!("replica set {} at {shown}", set.name),
        reason,
    };
    let unfit: Vec<String> = set
        .members
        .iter()
        .filter(|m| !m.healthy || !matches!(m.state.as_str(), "PRIMARY" | "SECONDARY"))
        .map(|m| format!("{} ({})", m.name, m.state))
        .collect();
    if !unfit.is_empty() {
        return Err(refuse(format!(
            "members not reachable or not PRIMARY/SECONDARY: {}; remove them from the replica set (rs.remove) or bring them back, then restore",
            unfit.join(", ")
        )));
    }
    if !set.members.iter().any(|m| m.state == "PRIMARY") {
        return Err(refuse("it has no primary to load on".into()));
    }
    let members: Vec<&str> = set.members.iter().map(|m| m.name.as_str()).collect();
    if members.len() > 1 && !force_ha {
        return Err(refuse(format!(
            "{} members are alive ({}): restore only when every controller is lost, onto a replica set of one, and re-add members afterwards (juju enable-ha); --force-ha loads anyway, on the primary",
            members.len(),
            members.join(", ")
        )));
    }
    let mut warnings = Vec::new();
    if ha_nodes > 0 && ha_nodes != members.len() as u64 {
        warnings.push(format!(
            "the backup's controller had {ha_nodes} HA nodes; replica set {} has {}: after the restore, re-add the others (juju enable-ha)",
            set.name,
            members.len()
        ));
    }
    Ok(warnings)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `replSetGetStatus` reply as MongoDB 4.4 sends it (trimmed to the
    /// fields read), one member per `(name, stateStr, health)`.
    fn status(members: &[(&str, &str, f64)]) -> Document {
        let members: Vec<Bson> = members
            .iter()
            .enumerate()
            .map(|(i, (name, state, health))| {
                Bson::Document(doc! {
                    "_id": i as i32,
                    "name": *name,
                    "health": *health,
                    "state": match *state { "PRIMARY" => 1, "SECONDARY" => 2, _ => 8 },
                    "stateStr": *state,
                    "uptime": 120,
                })
            })
            .collect();
        doc! {"set": "juju", "date": 0, "myState": 1, "members": members, "ok": 1.0}
    }

    fn check(members: &[(&str, &str, f64)], ha: u64, force: bool) -> Result<Vec<String>> {
        let set = ReplicaSet::from_status(&status(members))?;
        check_restore_target(Some(&set), ha, force, "mongodb://10.0.9.9:37017/")
    }

    #[test]
    fn a_replica_set_of_one_primary_is_loaded_with_a_warning_when_ha_differs() {
        let w = check(&[("10.0.9.9:37017", "PRIMARY", 1.0)], 1, false).unwrap();
        assert!(w.is_empty(), "{w:?}");
        let w = check(&[("10.0.9.9:37017", "PRIMARY", 1.0)], 3, false).unwrap();
        assert_eq!(w.len(), 1);
        assert!(
            w[0].contains("had 3 HA nodes") && w[0].contains("juju enable-ha"),
            "{w:?}"
        );
        assert!(
            check_restore_target(None, 3, false, "x")
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn more_than_one_live_member_is_refused_unless_forced() {
        let three = [
            ("10.0.9.9:37017", "PRIMARY", 1.0),
            ("10.0.9.10:37017", "SECONDARY", 1.0),
            ("10.0.9.11:37017", "SECONDARY", 1.0),
        ];
        let err = check(&three, 3, false).unwrap_err().to_string();
        assert!(
            err.contains("3 members are alive")
                && err.contains("10.0.9.11:37017")
                && err.contains("--force-ha"),
            "{err}"
        );
        assert!(check(&three, 3, true).unwrap().is_empty());
        assert_eq!(check(&three, 1, true).unwrap().len(), 1);
    }

    #[test]
    fn an_unreachable_or_recovering_member_is_refused_even_when_forced() {
        let err = check(
            &[
                ("10.0.9.9:37017", "PRIMARY", 1.0),
                ("10.0.9.10:37017", "(not reachable/healthy)", 0.0),
            ],
            2,
            true,
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("10.0.9.10:37017 ((not reachable/healthy))") && err.contains("rs.remove"),
            "{err}"
        );
        let err = check(
            &[
                ("10.0.9.9:37017", "PRIMARY", 1.0),
                ("10.0.9.10:37017", "RECOVERING", 1.0),
            ],
            2,
            true,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("RECOVERING"), "{err}");
        let err = check(&[("10.0.9.10:37017", "SECONDARY", 1.0)], 1, false)
            .unwrap_err()
            .to_string();
        assert!(err.contains("no primary"), "{err}");
    }

    #[test]
    fn replies_are_read_and_bad_ones_refused() {
        assert!(ReplicaSet::from_status(&doc! {"ok": 1.0}).is_err());
        assert!(ReplicaSet::from_status(&doc! {"set": "s", "members": [1]}).is_err());
        let set = ReplicaSet::from_status(&status(&[("a:1", "PRIMARY", 1.0)])).unwrap();
        assert_eq!(
            set.members,
            [SetMember {
                name: "a:1".into(),
                state: "PRIMARY".into(),
                healthy: true
            }]
        );
        let m = member_of(
            &doc! {"me": "10.0.9.9:37017", "setName": "juju", "isWritablePrimary": true},
            "x",
        );
        assert_eq!(m.address, "10.0.9.9:37017");
        assert_eq!(m.replica_set.as_deref(), Some("juju"));
        assert_eq!(member_of(&doc! {"ok": 1}, "db:27017").address, "db:27017");
    }

    #[test]
    fn read_from_parses_the_three_modes() {
        for m in ["primary", "secondary", "nearest"] {
            assert_eq!(m.parse::<ReadFrom>().unwrap().to_string(), m);
        }
        assert!("primaryPreferred".parse::<ReadFrom>().is_err());
    }
}
