//! The command line shared by every command: the top-level parser, the
//! global options, and argument groups and value parsers used by several
//! commands. Each command's own arguments live beside it in
//! [`crate::commands`].

use std::path::PathBuf;

use backups_core::BackupId;
use clap::{Args, ValueEnum};

use crate::failure::{Failure, io_failure};

/// The options every command takes: where the store is, how uploads are
/// made, and how much is shown. Listed under their own heading in each
/// command's `--help`, after the command's own options.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Global options")]
pub struct GlobalArgs {
    /// The config file (default: ~/.config/backups/config.toml, else
    /// /etc/backups/config.toml).
    #[arg(long, global = true, env = "BACKUPS_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// The config file's profile to use (default: "default", if it has one).
    #[arg(long, global = true, env = "BACKUPS_PROFILE", value_name = "NAME")]
    pub profile: Option<String>,

    /// Where backups are kept: a directory, file:///path, memory://,
    /// s3://bucket/prefix, az://container/prefix or gs://bucket/prefix.
    #[arg(long, global = true, env = "BACKUPS_STORE", value_name = "URL")]
    pub store: Option<String>,

    /// Endpoint of an S3-compatible or Azure store, e.g. http://127.0.0.1:9000.
    #[arg(long, global = true, env = "BACKUPS_ENDPOINT", value_name = "URL")]
    pub endpoint: Option<String>,

    /// Region of an S3 store (S3-compatible stores often want their own, e.g. "garage").
    #[arg(long, global = true, env = "BACKUPS_REGION")]
    pub region: Option<String>,

    /// Allow plain http:// endpoints (local test servers).
    #[arg(long, global = true, env = "BACKUPS_ALLOW_HTTP")]
    pub allow_http: bool,

    /// Any other object_store option as KEY=VALUE (repeatable), e.g.
    /// use_emulator=true, virtual_hosted_style_request=true.
    #[arg(long = "store-option", global = true, value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub store_options: Vec<(String, String)>,

    /// Multipart upload part size in MiB (memory use is about part size x
    /// (concurrency + 1)); S3 needs at least 5.
    #[arg(long, global = true, default_value_t = 8, value_name = "MIB",
          value_parser = clap::value_parser!(u32).range(5..=5120))]
    pub part_size: u32,

    /// Parts uploaded at the same time.
    #[arg(long, global = true, default_value_t = 4, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..=64))]
    pub upload_concurrency: u32,

    /// How to show progress on stderr: a bar on a terminal (auto), always a
    /// bar, plain lines, or nothing.
    #[arg(long, global = true, value_enum, default_value_t = ProgressMode::Auto)]
    pub progress: ProgressMode,

    /// Print only results and errors (no progress, no warnings).
    #[arg(long, short, global = true)]
    pub quiet: bool,

    /// Work through a backups server (`backups serve`) at this URL instead
    /// of a store: list, show, download, upload, remove, forget, verify,
    /// label, notes and create.
    #[arg(long, global = true, env = "BACKUPS_REMOTE", value_name = "URL")]
    pub remote: Option<String>,

    /// The file holding the token for --remote (its first line).
    #[arg(
        long,
        global = true,
        env = "BACKUPS_REMOTE_TOKEN_FILE",
        value_name = "FILE"
    )]
    pub remote_token_file: Option<PathBuf>,

    /// The CA certificate (PEM) the --remote server's certificate must be
    /// signed by (default: the system's CAs).
    #[arg(long, global = true, env = "BACKUPS_REMOTE_CA", value_name = "FILE")]
    pub remote_ca: Option<PathBuf>,
}

/// Progress display.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProgressMode {
    /// A bar when stderr is a terminal, nothing otherwise.
    Auto,
    /// Always a bar.
    Bar,
    /// Plain text lines (for logs).
    Plain,
    /// Nothing.
    None,
}

/// Where the MongoDB database is. The URI may hold a password: prefer the
/// environment variable or a file to keep it off the command line.
#[derive(Debug, Args, Clone)]
pub struct MongoArgs {
    /// MongoDB connection string, e.g. mongodb://user:pass@host:27017/?authSource=admin.
    #[arg(
        long,
        env = "BACKUPS_MONGO_URI",
        hide_env_values = true,
        value_name = "URI"
    )]
    pub mongo_uri: Option<String>,
    /// Read the MongoDB connection string from this file (first line).
    #[arg(long, value_name = "FILE", conflicts_with = "mongo_uri")]
    pub mongo_uri_file: Option<PathBuf>,
}

impl MongoArgs {
    /// The MongoDB URI from --mongo-uri, $BACKUPS_MONGO_URI or
    /// --mongo-uri-file; `None` when no database is named.
    pub fn uri(&self) -> Result<Option<String>, Failure> {
        if let Some(uri) = &self.mongo_uri {
            return Ok(Some(uri.clone()));
        }
        match &self.mongo_uri_file {
            None => Ok(None),
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| io_failure(&format!("reading {}", path.display()), e))?;
                let uri = text.lines().next().unwrap_or("").trim().to_string();
                if uri.is_empty() {
                    return Err(Failure::usage(format!(
                        "{} holds no MongoDB URI",
                        path.display()
                    )));
                }
                Ok(Some(uri))
            }
        }
    }
}

/// A backup id given on the command line; a malformed one is a usage error.
pub fn parse_id(s: &str) -> Result<BackupId, Failure> {
    s.parse::<BackupId>()
        .map_err(|e| Failure::usage(e.to_string()))
}

/// Parses a label (`[A-Za-z0-9._:/-]{1,64}`, [`backups_core::metadata::check_label`]).
pub fn parse_label(s: &str) -> Result<String, String> {
    match backups_core::metadata::check_label(s) {
        Ok(()) => Ok(s.to_string()),
        Err(backups_core::Error::InvalidInput { reason, .. }) => Err(reason),
        Err(e) => Err(e.to_string()),
    }
}

/// Parses `KEY=VALUE`.
pub fn parse_key_value(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("expected KEY=VALUE, got {s:?}"))
}

/// Parses a duration: a number with `s`, `min`, `h` or `d` (seconds
/// without). A bare `m` is refused: in `--keep-within` it is restic's
/// months, so here it would read both ways.
pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (n, unit) = s.split_at(split);
    let n: u64 = n
        .parse()
        .map_err(|_| format!("expected e.g. 30min, 24h or 7d, got {s:?}"))?;
    let unit_secs: u64 = match unit {
        "s" | "" => 1,
        "min" => 60,
        "h" => 3600,
        "d" => 86400,
        "m" => {
            return Err(format!(
                "{s:?} is ambiguous: 'm' is months in --keep-within (restic's meaning); write {n}min for minutes"
            ));
        }
        _ => {
            return Err(format!(
                "unknown unit {unit:?} in {s:?} (use s, min, h or d)"
            ));
        }
    };
    n.checked_mul(unit_secs)
        .map(std::time::Duration::from_secs)
        .ok_or_else(|| format!("{s:?} is too long"))
}

/// Durations as elsewhere, plus plain seconds (`5s`).
pub fn parse_slice(s: &str) -> Result<std::time::Duration, String> {
    match s.strip_suffix('s').map(str::parse::<u64>) {
        Some(Ok(n)) if n > 0 => Ok(std::time::Duration::from_secs(n)),
        _ => parse_duration(s).and_then(|d| {
            if d.is_zero() {
                Err("a slice must be longer than 0".into())
            } else {
                Ok(d)
            }
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90"), Ok(std::time::Duration::from_secs(90)));
        assert_eq!(
            parse_duration("2h"),
            Ok(std::time::Duration::from_secs(7200))
        );
        assert!(parse_duration("5w").is_err());
        assert_eq!(
            parse_duration("10min"),
            Ok(std::time::Duration::from_secs(600))
        );
        assert!(parse_duration("10m").unwrap_err().contains("10min"));
    }
}
