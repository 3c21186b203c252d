//! The config file: named profiles holding what the flags hold (the store
//! and its options, the MongoDB URI, paths, excludes, labels, compression,
//! encryption), the `[[schedule]]` entries `backups schedule` runs and
//! the `[[pitr]]` oplog shippers it runs next to them.
//!
//! Found at `--config FILE` / `$BACKUPS_CONFIG`, else
//! `~/.config/backups/config.toml`, else `/etc/backups/config.toml`; no
//! file is an empty config. The profile is `--profile P` /
//! `$BACKUPS_PROFILE`, else `default` when the file has one. Flags (and
//! their `BACKUPS_*` variables) override the profile, which overrides the
//! built-in defaults ([`apply`]). Every table refuses unknown keys, and
//! the error names the key and the file.

pub mod apply;
pub mod show;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use backups_core::{CompressionKind, RetentionPolicy, VerifyLevel};
use serde::{Deserialize, Serialize};

use crate::failure::{Failure, USAGE, io_failure};

/// What the config file holds.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// `[profile.NAME]` tables.
    #[serde(default)]
    pub profile: BTreeMap<String, Profile>,
    /// `[[schedule]]` entries, in file order.
    #[serde(default)]
    pub schedule: Vec<ScheduleEntry>,
    /// `[[pitr]]` entries, in file order.
    #[serde(default)]
    pub pitr: Vec<PitrEntry>,
}

/// A named set of settings: each key is the flag of the same name.
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// --store.
    pub store: Option<String>,
    /// --endpoint.
    pub endpoint: Option<String>,
    /// --region.
    pub region: Option<String>,
    /// --allow-http.
    pub allow_http: Option<bool>,
    /// --store-option KEY=VALUE, as a table.
    #[serde(default)]
    pub store_option: BTreeMap<String, String>,
    /// --mongo-uri (prefer mongo_uri_file: this file then holds a password).
    pub mongo_uri: Option<String>,
    /// --mongo-uri-file.
    pub mongo_uri_file: Option<PathBuf>,
    /// --include-db.
    #[serde(default)]
    pub include_dbs: Vec<String>,
    /// --exclude-ns.
    #[serde(default)]
    pub exclude_ns: Vec<String>,
    /// --path.
    #[serde(default)]
    pub paths: Vec<PathBuf>,
    /// --exclude.
    #[serde(default)]
    pub excludes: Vec<String>,
    /// --label.
    #[serde(default)]
    pub labels: Vec<String>,
    /// --compression: "gzip" or "zstd".
    pub compression: Option<CompressionKind>,
    /// --compression-level.
    pub compression_level: Option<u32>,
    /// --encrypt-to.
    #[serde(default)]
    pub recipients: Vec<String>,
    /// --recipients-file.
    pub recipients_file: Option<PathBuf>,
    /// --lock-cmd: one command or a list, run in order.
    #[serde(default, deserialize_with = "one_or_many")]
    pub lock_cmd: Vec<String>,
    /// --unlock-cmd: one command or a list, run in order.
    #[serde(default, deserialize_with = "one_or_many")]
    pub unlock_cmd: Vec<String>,
    /// --juju.
    pub juju: Option<bool>,
    /// --juju-data-dir.
    pub juju_data_dir: Option<PathBuf>,
    /// --juju-mongo-address.
    pub juju_mongo_address: Option<String>,
    /// --immutable-for (create, upload, and copies into this profile's store).
    pub immutable_for: Option<String>,
    /// --immutable-mode: "governance" or "compliance".
    pub immutable_mode: Option<String>,
}

/// A `[[schedule]]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleEntry {
    /// The job's name (letters, digits, `.`, `_`, `-`).
    pub name: String,
    /// 5 fields, or 6 with seconds first; evaluated in UTC.
    pub cron: String,
    /// The profile its backups are made with (default: the selected one).
    pub profile: Option<String>,
    /// Labels added to the profile's (and to `scheduled`, `schedule:<name>`).
    #[serde(default)]
    pub labels: Vec<String>,
    /// Applied after each successful create.
    pub retention: Option<RetentionPolicy>,
    /// Run after each create: none (`None`), stored, read-data or drill.
    #[serde(default, deserialize_with = "verify_level")]
    pub verify: Option<VerifyLevel>,
    /// Where a drill makes its scratch directory.
    pub scratch_dir: Option<PathBuf>,
    /// Run a missed run once at start.
    #[serde(default)]
    pub catch_up: bool,
    /// Profiles whose stores each new backup is copied to, once verified.
    #[serde(default)]
    pub copy_to: Vec<String>,
    /// Run with `sh -c` after each run (`BACKUPS_JOB`, `BACKUPS_OK`,
    /// `BACKUPS_ID`, `BACKUPS_ERROR` in its environment).
    pub notify_cmd: Option<String>,
    /// POSTed the job's status JSON after each run (http or https).
    pub notify_url: Option<String>,
    /// How long a notification may take (default 30s).
    pub notify_timeout: Option<String>,
}

/// A `[[pitr]]` entry: `backups pitr run` with a profile's store, MongoDB
/// URI and encryption, run by `schedule run` next to the schedules.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PitrEntry {
    /// The profile (default: the selected one); it names the shipper's
    /// status (`pitr-<profile>`).
    pub profile: Option<String>,
    /// --slice (default 60s).
    #[serde(default, deserialize_with = "slice")]
    pub slice: Option<std::time::Duration>,
    /// --base-if-missing.
    #[serde(default)]
    pub base_if_missing: bool,
}

/// `slice = "60s"`, as `pitr run --slice` takes it.
fn slice<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<std::time::Duration>, D::Error> {
    let s = String::deserialize(d)?;
    crate::args::parse_slice(&s)
        .map(Some)
        .map_err(|e| serde::de::Error::custom(format!("slice {s:?}: {e}")))
}

/// A string or a list of strings (`lock_cmd = "..."` or `["...", "..."]`).
fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) => vec![s],
        OneOrMany::Many(v) => v,
    })
}

/// `verify = "none" | "stored" | "read-data" | "drill"`: the library's
/// [`VerifyLevel`] (kebab-case), or `none`.
fn verify_level<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<VerifyLevel>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Choice {
        Level(VerifyLevel),
        Word(String),
    }
    match Choice::deserialize(d)? {
        Choice::Level(level) => Ok(Some(level)),
        Choice::Word(w) if w == "none" => Ok(None),
        Choice::Word(w) => Err(serde::de::Error::custom(format!(
            "unknown verify level {w:?}: expected none, stored, read-data or drill"
        ))),
    }
}

/// The config file in use (if any) and what it holds.
#[derive(Debug, Default)]
pub struct Config {
    /// The file read; `None` when there was none.
    pub path: Option<PathBuf>,
    /// Its contents.
    pub file: ConfigFile,
}

impl Config {
    /// Reads `explicit` (--config / $BACKUPS_CONFIG; it must exist), else
    /// the first of the user's and the system's config files that exists.
    pub fn load(explicit: Option<&Path>) -> Result<Self, Failure> {
        let path = match explicit {
            Some(p) => Some(p.to_path_buf()),
            None => candidates().into_iter().find(|p| p.is_file()),
        };
        let Some(path) = path else {
            return Ok(Config::default());
        };
        let text = std::fs::read_to_string(&path)
            .map_err(|e| io_failure(&format!("reading config file {}", path.display()), e))?;
        let mut file: ConfigFile = toml::from_str(&text).map_err(|e| Failure {
            message: format!(
                "config file {}: {}",
                path.display(),
                e.to_string().trim_end()
            ),
            code: USAGE,
        })?;
        // A relative store directory is relative to the file, not to
        // wherever the command happens to run.
        let base = std::path::absolute(&path)
            .ok()
            .and_then(|p| p.parent().map(Path::to_path_buf));
        if let Some(base) = base {
            for profile in file.profile.values_mut() {
                if let Some(store) = profile.store.as_mut().filter(|s| is_relative_dir(s)) {
                    *store = base.join(&*store).display().to_string();
                }
            }
        }
        Ok(Config {
            path: Some(path),
            file,
        })
    }

    /// The profile `name` (which must exist), else `default` if the file
    /// has one, else none; with the name it goes by.
    pub fn profile(&self, name: Option<&str>) -> Result<(Option<String>, Profile), Failure> {
        match name {
            Some(n) => match self.file.profile.get(n) {
                Some(p) => Ok((Some(n.to_string()), p.clone())),
                None => Err(Failure::usage(format!(
                    "no profile {n:?} in {}",
                    self.describe()
                ))),
            },
            None => Ok(match self.file.profile.get("default") {
                Some(p) => (Some("default".into()), p.clone()),
                None => (None, Profile::default()),
            }),
        }
    }

    /// "the config file PATH", or that there is none.
    pub fn describe(&self) -> String {
        match &self.path {
            Some(p) => format!("the config file {}", p.display()),
            None => "the config (no config file found)".into(),
        }
    }
}

/// Whether a store value is a relative directory: not absolute and not a
/// URL (`scheme:...`).
fn is_relative_dir(store: &str) -> bool {
    let scheme = store.split_once(':').is_some_and(|(s, _)| {
        s.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
    });
    !store.is_empty() && !store.starts_with('/') && !scheme
}

/// The user's, then the system's config file.
fn candidates() -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Some(dir) = dirs::config_dir() {
        out.push(dir.join("backups/config.toml"));
    }
    out.push(PathBuf::from("/etc/backups/config.toml"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use backups_core::retention::{KeepCount, RetentionDuration};

    #[test]
    fn a_full_file_parses() {
        let file: ConfigFile = toml::from_str(
            r#"
            [profile.default]
            store = "s3://bucket/controller"
            region = "garage"
            allow_http = true
            store_option = { virtual_hosted_style_request = "false" }
            paths = ["/var/lib/juju"]
            labels = ["prod"]
            compression = "zstd"

            [[schedule]]
            name = "nightly"
            cron = "0 3 * * *"
            verify = "read-data"
            catch_up = true
            retention = { keep_daily = 7, keep_weekly = "unlimited", keep_within = "2d" }

            [[pitr]]
            slice = "5s"
            "#,
        )
        .unwrap();
        assert_eq!(file.pitr[0].slice, Some(std::time::Duration::from_secs(5)));
        assert!(file.pitr[0].profile.is_none() && !file.pitr[0].base_if_missing);
        let err = toml::from_str::<ConfigFile>("[[pitr]]\nslice = '0s'")
            .unwrap_err()
            .to_string();
        assert!(err.contains("slice \"0s\""), "{err}");
        let p = &file.profile["default"];
        assert_eq!(p.compression, Some(CompressionKind::Zstd));
        assert_eq!(p.store_option["virtual_hosted_style_request"], "false");
        let s = &file.schedule[0];
        assert_eq!(s.verify, Some(VerifyLevel::ReadData));
        let r = s.retention.as_ref().unwrap();
        assert_eq!(
            r,
            &RetentionPolicy::new()
                .with_keep_daily(KeepCount::Count(7))
                .with_keep_weekly(KeepCount::Unlimited)
                .with_keep_within(RetentionDuration::new(0, 0, 2, 0))
        );
        // The table refuses what `forget`'s flags refuse, naming the key.
        for (table, says) in [
            ("{ keep_daily = 0 }", "0 keeps nothing"),
            ("{ keep_dayly = 3 }", "keep_dayly"),
            ("{ keep_within = \"2x\" }", "2x"),
            ("{ group_by = \"host\" }", "model"),
        ] {
            let text =
                format!("[[schedule]]\nname = \"n\"\ncron = \"* * * * *\"\nretention = {table}\n");
            let err = toml::from_str::<ConfigFile>(&text).unwrap_err().to_string();
            assert!(err.contains(says), "{table}: {err}");
        }
    }

    #[test]
    fn only_relative_directories_count_as_relative() {
        for relative in ["store", "./store", "../backups/store"] {
            assert!(is_relative_dir(relative), "{relative}");
        }
        for not in [
            "/var/backups",
            "file:///var/backups",
            "s3://b/p",
            "memory://",
            "",
        ] {
            assert!(!is_relative_dir(not), "{not}");
        }
    }

    #[test]
    fn unknown_keys_are_refused_in_every_table() {
        for text in [
            "stor = 'x'",
            "[profile.default]\nstor = 'x'",
            "[[schedule]]\nname = 'n'\ncron = '* * * * *'\nstor = 'x'",
            "[[schedule]]\nname = 'n'\ncron = '* * * * *'\nretention = { stor = 1 }",
            "[[pitr]]\nprofile = 'p'\nstor = 'x'",
        ] {
            let e = toml::from_str::<ConfigFile>(text).unwrap_err().to_string();
            assert!(e.contains("unknown field `stor`"), "{text}: {e}");
        }
    }
}
