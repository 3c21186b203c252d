//! The effective settings, as `backups config show` prints them: every
//! key of a profile with the value in force (flag, profile or default),
//! secrets redacted.

use std::collections::BTreeMap;
use std::path::PathBuf;

use backups_core::secret::redact_uri;
use serde::Serialize;

use crate::args::GlobalArgs;
use backups_core::CompressionKind;

use crate::commands::create;

/// The effective settings, keyed like a profile.
#[derive(Debug, Serialize)]
pub struct Settings {
    /// The config file read.
    pub config: Option<PathBuf>,
    /// The profile used.
    pub profile: Option<String>,
    /// The store URL.
    pub store: String,
    /// --endpoint.
    pub endpoint: Option<String>,
    /// --region.
    pub region: Option<String>,
    /// --allow-http.
    pub allow_http: bool,
    /// Other object_store options.
    pub store_option: BTreeMap<String, String>,
    /// The MongoDB URI, password redacted.
    pub mongo_uri: Option<String>,
    /// The file the MongoDB URI is read from.
    pub mongo_uri_file: Option<PathBuf>,
    /// Databases dumped.
    pub include_dbs: Vec<String>,
    /// Namespaces left out.
    pub exclude_ns: Vec<String>,
    /// Paths backed up.
    pub paths: Vec<PathBuf>,
    /// Exclude patterns.
    pub excludes: Vec<String>,
    /// Labels of a new backup.
    pub labels: Vec<String>,
    /// gzip or zstd.
    pub compression: CompressionKind,
    /// The compression level (`None`: the compression's default).
    pub compression_level: Option<u32>,
    /// Encryption recipients.
    pub recipients: Vec<String>,
    /// The file recipients are read from.
    pub recipients_file: Option<PathBuf>,
    /// The Juju profile (`--juju`).
    pub juju: bool,
    /// Its data dir and MongoDB address (shown with `juju` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub juju_data_dir: Option<PathBuf>,
    /// Where the controller's MongoDB listens.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub juju_mongo_address: Option<String>,
    /// The object lock new backups are written under (shown when set).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub immutable_for: Option<String>,
    /// Its mode (shown with `immutable_for`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub immutable_mode: Option<String>,
}

impl Settings {
    /// The settings in force for merged `global` and `create` options.
    pub fn effective(
        config: Option<PathBuf>,
        profile: Option<String>,
        store: String,
        global: &GlobalArgs,
        create: &create::Args,
    ) -> Self {
        let store_option = global
            .store_options
            .iter()
            .map(|(k, v)| (k.clone(), redact_option(k, v)))
            .collect();
        Settings {
            config,
            profile,
            store: redact_uri(&store),
            endpoint: global.endpoint.as_deref().map(redact_uri),
            region: global.region.clone(),
            allow_http: global.allow_http,
            store_option,
            mongo_uri: create.mongo.mongo_uri.as_deref().map(redact_uri),
            mongo_uri_file: create.mongo.mongo_uri_file.clone(),
            include_dbs: create.include_dbs.clone(),
            exclude_ns: create.exclude_ns.clone(),
            paths: create.paths.clone(),
            excludes: create.excludes.clone(),
            labels: if create.labels.is_empty() {
                vec!["manual".into()]
            } else {
                create.labels.clone()
            },
            compression: create.compression.unwrap_or_default(),
            compression_level: create.compression_level,
            recipients: create.encrypt.encrypt_to.clone(),
            recipients_file: create.encrypt.recipients_file.clone(),
            juju: create.juju,
            juju_data_dir: create.juju.then(|| create.juju_data_dir()),
            juju_mongo_address: create.juju.then(|| create.juju_mongo_address().to_string()),
            immutable_for: create.immutable.immutable_for.clone(),
            immutable_mode: create.immutable.immutable_for.as_ref().map(|_| {
                create
                    .immutable
                    .immutable_mode
                    .clone()
                    .unwrap_or_else(|| "governance".into())
            }),
        }
    }

    /// As TOML, with where it came from in a comment first.
    pub fn to_toml(&self) -> String {
        let from = match (&self.config, &self.profile) {
            (Some(c), Some(p)) => format!("# {} [profile.{p}]", c.display()),
            (Some(c), None) => format!("# {} (no profile)", c.display()),
            (None, _) => "# no config file: flags and defaults only".into(),
        };
        #[derive(Serialize)]
        struct Body<'a> {
            #[serde(flatten)]
            settings: &'a Settings,
        }
        let body = toml::to_string(&Body { settings: self })
            .unwrap_or_else(|e| format!("# cannot show the settings as TOML: {e}\n"));
        // The source is the comment; the body keeps only profile keys.
        let body: String = body
            .lines()
            .filter(|l| !l.starts_with("config = ") && !l.starts_with("profile = "))
            .map(|l| format!("{l}\n"))
            .collect();
        format!("{from}\n{body}")
    }
}

/// A store option's value as shown: secrets as `***`, passwords and
/// secret query values in URLs redacted (the rule error messages follow,
/// [`backups_core::secret::redact_value`]).
fn redact_option(key: &str, value: &str) -> String {
    backups_core::secret::redact_value(key, value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_options_are_redacted_and_others_shown() {
        assert_eq!(redact_option("aws_secret_access_key", "abc"), "***");
        assert_eq!(redact_option("azure_storage_account_key", "abc"), "***");
        assert_eq!(redact_option("aws_access_key_id", "AKIA1"), "AKIA1");
        assert_eq!(redact_option("use_emulator", "true"), "true");
        assert_eq!(redact_option("aws_sse_customer_key_base64", "abc"), "***");
        assert_eq!(redact_option("azure_storage_encryption_key", "abc"), "***");
        assert_eq!(redact_option("azure_storage_master_key", "abc"), "***");
        assert_eq!(
            redact_option("proxy_url", "http://u:pw@proxy:3128"),
            "http://u:***@proxy:3128"
        );
    }
}
