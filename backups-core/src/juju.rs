//! The Juju profile: the files Juju's own `create-backup` takes from a
//! controller (its `state/backups/files.go`), and the identity and database
//! credentials in the machine agent's `agent.conf`.
//!
//! `agent.conf` is YAML (`# format 2.0`, then `tag: machine-0`,
//! `controller: controller-<uuid>`, `model: model-<uuid>`,
//! `upgradedToVersion: 2.8-beta1.1`, `cacert: |` (a PEM block),
//! `statepassword: ...`, `stateport: 37017` and keys not read here).
//! It is parsed with `yaml-rust2`, and only those keys are taken.

use std::path::{Component, Path, PathBuf};

use crate::error::{Error, Result};
use crate::host::{host_name, os_series};
use crate::request::Identity;

/// Juju's data directory on a controller machine.
pub const JUJU_DATA_DIR: &str = "/var/lib/juju";

/// The user's SSH keys Juju backs up when present, relative to the root the
/// data dir is under.
const AUTHORIZED_KEYS: &str = "home/ubuntu/.ssh/authorized_keys";

/// What a machine agent's `agent.conf` says about the controller: who it is
/// and how it reaches its MongoDB. `Debug` leaves out the password.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct JujuAgentConfig {
    /// The file this was read from.
    pub path: PathBuf,
    /// The agent's tag (`machine-0`): also its MongoDB user name.
    pub tag: String,
    /// The controller UUID (`controller: controller-<uuid>`).
    pub controller_uuid: String,
    /// The model UUID (`model: model-<uuid>`).
    pub model_uuid: String,
    /// The Juju version (`upgradedToVersion`).
    pub version: String,
    /// The CA certificate (PEM) that signed the controller's certificates
    /// (`cacert`); empty when absent.
    pub ca_cert: String,
    /// The agent's MongoDB password (`statepassword`); empty when absent
    /// (machines that are not controllers have none).
    pub state_password: String,
    /// The MongoDB port (`stateport`), when given.
    pub state_port: Option<u16>,
}

impl std::fmt::Debug for JujuAgentConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JujuAgentConfig")
            .field("path", &self.path)
            .field("tag", &self.tag)
            .field("controller_uuid", &self.controller_uuid)
            .field("model_uuid", &self.model_uuid)
            .field("version", &self.version)
            .field("state_port", &self.state_port)
            .finish_non_exhaustive()
    }
}

impl JujuAgentConfig {
    /// Parses the text of an `agent.conf` read from `path` (named in errors).
    pub fn parse(text: &str, path: &Path) -> Result<Self> {
        use yaml_rust2::{Yaml, YamlLoader};
        let bad = |reason: String| Error::JujuConfig {
            path: path.to_path_buf(),
            reason,
        };
        let docs = YamlLoader::load_from_str(text).map_err(|e| bad(format!("not YAML: {e}")))?;
        let Some(doc @ Yaml::Hash(_)) = docs.first() else {
            return Err(bad("not a YAML mapping of agent settings".into()));
        };
        let scalar = |key: &str| -> Option<String> {
            match &doc[key] {
                Yaml::String(s) | Yaml::Real(s) => Some(s.clone()),
                Yaml::Integer(n) => Some(n.to_string()),
                Yaml::Boolean(b) => Some(b.to_string()),
                _ => None,
            }
        };
        let required = |key: &str| {
            scalar(key)
                .filter(|v| !v.is_empty())
                .ok_or_else(|| bad(format!("no `{key}`: not a Juju machine agent's agent.conf")))
        };
        let uuid = |key: &str| -> Result<String> {
            let value = required(key)?;
            let prefix = format!("{key}-");
            match value.strip_prefix(&prefix) {
                Some(uuid) if uuid::Uuid::parse_str(uuid).is_ok() => Ok(uuid.to_string()),
                _ => Err(bad(format!(
                    "`{key}: {value}` is not a {key} tag ({prefix}<uuid>)"
                ))),
            }
        };
        let tag = required("tag")?;
        machine_of_tag(&tag).ok_or_else(|| {
            bad(format!(
                "tag {tag:?} is not a machine or controller agent's (machine-N)"
            ))
        })?;
        let state_port = match scalar("stateport") {
            None => None,
            Some(p) => Some(
                p.parse::<u16>()
                    .map_err(|_| bad(format!("`stateport: {p}` is not a port")))?,
            ),
        };
        Ok(JujuAgentConfig {
            path: path.to_path_buf(),
            controller_uuid: uuid("controller")?,
            model_uuid: uuid("model")?,
            version: required("upgradedToVersion")?,
            ca_cert: scalar("cacert").unwrap_or_default(),
            state_password: scalar("statepassword").unwrap_or_default(),
            state_port,
            tag,
        })
    }

    /// Reads and parses the `agent.conf` at `path`.
    pub fn read(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            action: "reading the Juju agent config",
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// The machine agent's `agent.conf` under a data dir:
    /// `<data_dir>/agents/machine-*/agent.conf`, which must be exactly one
    /// (a controller machine runs one machine agent).
    pub fn find(data_dir: &Path) -> Result<Self> {
        let agents = data_dir.join("agents");
        let found: Vec<PathBuf> = matching(&agents, "machine-")?
            .into_iter()
            .map(|dir| dir.join("agent.conf"))
            .filter(|conf| conf.is_file())
            .collect();
        match found.as_slice() {
            [one] => Self::read(one),
            [] => Err(Error::JujuConfig {
                path: agents.join("machine-*/agent.conf"),
                reason: "no machine agent config: not a Juju controller's data dir \
                         (give the right one with --juju-data-dir)"
                    .into(),
            }),
            many => Err(Error::JujuConfig {
                path: agents.join("machine-*/agent.conf"),
                reason: format!(
                    "{} machine agent configs ({}): expected one",
                    many.len(),
                    many.iter()
                        .map(|p| p.display().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            }),
        }
    }

    /// The machine id the tag names: `machine-0` is `0`, a container's
    /// `machine-0-lxd-1` is `0/lxd/1`, a Kubernetes `controller-0` is `0`.
    pub fn machine(&self) -> String {
        // Invariant: `parse` refuses a tag `machine_of_tag` does not accept.
        machine_of_tag(&self.tag).unwrap_or_default()
    }

    /// The identity a backup of this controller records: model, controller,
    /// machine (also as the controller machine id) and version. Host name
    /// and series are not in agent.conf: the caller adds them.
    pub fn identity(&self) -> Identity {
        let mut identity = Identity::new(self.model_uuid.clone());
        identity.controller_uuid = self.controller_uuid.clone();
        identity.machine = self.machine();
        identity.controller_machine_id = self.machine();
        identity.version = self.version.clone();
        identity
    }
}

/// The Juju profile: what a controller's backup takes and leaves out, the
/// identity it records and what a restore leaves alone, as Juju's own
/// `create-backup` and `juju-restore` do. The CLI's `--juju` is this.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct JujuProfile {
    /// The controller's data dir (`/var/lib/juju`).
    pub data_dir: PathBuf,
    /// Its machine agent's `agent.conf`.
    pub agent: JujuAgentConfig,
}

impl JujuProfile {
    /// Where a Juju controller's MongoDB listens by default.
    pub const DEFAULT_MONGO_ADDRESS: &'static str = "localhost:37017";

    /// The databases Juju's backups leave out, besides admin, local and
    /// config (which are never dumped unless named).
    pub const EXCLUDED_DBS: [&'static str; 1] = ["backups"];

    /// The profile of the controller whose data dir is `data_dir` (its
    /// machine agent's `agent.conf` is read: [`JujuAgentConfig::find`]).
    pub fn load(data_dir: impl Into<PathBuf>) -> Result<Self> {
        let data_dir = data_dir.into();
        let agent = JujuAgentConfig::find(&data_dir)?;
        Ok(JujuProfile { data_dir, agent })
    }

    /// The files a backup takes ([`juju_files`]).
    pub fn files(&self) -> Result<Vec<PathBuf>> {
        juju_files(&self.data_dir)
    }

    /// The identity a backup of this controller records: agent.conf's
    /// model, controller, machine and version, this host's name, and the
    /// series in the name of the agent's tools (else this host's OS
    /// release).
    pub fn backup_identity(&self) -> Identity {
        let mut identity = self.agent.identity();
        identity.hostname = host_name();
        identity.series = juju_tools_series(&self.data_dir, &self.agent.tag)
            .filter(|s| !is_os_name(s))
            .unwrap_or_else(os_series);
        identity
    }

    /// The databases a dump of this controller leaves out.
    pub fn excluded_dbs() -> Vec<String> {
        Self::EXCLUDED_DBS.map(String::from).to_vec()
    }

    /// What a restore leaves alone, as juju-restore does: the logs and
    /// (unless `include_status_history`) the status history.
    pub fn restore_ns_excludes(include_status_history: bool) -> Vec<String> {
        let mut excludes = vec!["logs.*".to_string()];
        if !include_status_history {
            excludes.push("juju.statuseshistory".to_string());
        }
        excludes
    }
}

/// Juju 3 names tools by OS (`3.1.6-ubuntu-amd64`), not by series.
fn is_os_name(series: &str) -> bool {
    matches!(
        series,
        "ubuntu" | "centos" | "windows" | "opensuse" | "genericlinux" | "osx" | "kubernetes"
    )
}

/// `machine-0` -> `0`, `machine-0-lxd-1` -> `0/lxd/1`, `controller-0` -> `0`.
fn machine_of_tag(tag: &str) -> Option<String> {
    let id = tag
        .strip_prefix("machine-")
        .or_else(|| tag.strip_prefix("controller-"))?;
    let ok = !id.is_empty()
        && id
            .split('-')
            .all(|part| !part.is_empty() && part.chars().all(|c| c.is_ascii_alphanumeric()));
    ok.then(|| id.replace('-', "/"))
}

/// The entries of `dir` whose names start with `prefix` (all with ""),
/// sorted; none when `dir` does not exist.
fn matching(dir: &Path, prefix: &str) -> Result<Vec<PathBuf>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(Error::Io {
                action: "listing",
                path: dir.to_path_buf(),
                source,
            });
        }
    };
    let mut found = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| Error::Io {
            action: "listing",
            path: dir.to_path_buf(),
            source,
        })?;
        if entry.file_name().to_string_lossy().starts_with(prefix) {
            found.push(entry.path());
        }
    }
    found.sort();
    Ok(found)
}

/// The root a data dir is under: `/srv/x` for `/srv/x/var/lib/juju`, `/`
/// for any data dir not ending in `var/lib/juju` (Juju's `rootDir`).
pub fn juju_root(data_dir: &Path) -> PathBuf {
    let parts: Vec<Component<'_>> = data_dir.components().collect();
    let tail = [
        Component::Normal("var".as_ref()),
        Component::Normal("lib".as_ref()),
        Component::Normal("juju".as_ref()),
    ];
    if parts.ends_with(&tail) {
        let root: PathBuf = parts[..parts.len() - tail.len()].iter().collect();
        if root.as_os_str().is_empty() {
            return PathBuf::from("/");
        }
        return root;
    }
    PathBuf::from("/")
}

/// What Juju's `create-backup` takes from a controller whose data dir is
/// `data_dir`: `tools/`, `system-identity`, `server.pem`, `shared-secret`
/// (all required), `agents/machine-*`, `init/*`, and when present
/// `nonce.txt` and `<root>/home/ubuntu/.ssh/authorized_keys` (the root is
/// [`juju_root`]). Directories are listed once and backed up whole.
pub fn juju_files(data_dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for name in ["tools", "system-identity", "server.pem", "shared-secret"] {
        let path = data_dir.join(name);
        std::fs::symlink_metadata(&path).map_err(|source| Error::Io {
            action: "finding what a Juju backup needs:",
            path: path.clone(),
            source,
        })?;
        files.push(path);
    }
    files.extend(matching(&data_dir.join("agents"), "machine-")?);
    files.extend(matching(&data_dir.join("init"), "")?);
    for optional in [
        data_dir.join("nonce.txt"),
        juju_root(data_dir).join(AUTHORIZED_KEYS),
    ] {
        match std::fs::symlink_metadata(&optional) {
            Ok(_) => files.push(optional),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(Error::Io {
                    action: "checking",
                    path: optional,
                    source,
                });
            }
        }
    }
    Ok(files)
}

/// The series (or OS) in the name of the tools the machine agent runs:
/// `tools/machine-0 -> 2.8-beta1-bionic-amd64` gives `bionic`; `None`
/// without that link.
pub fn juju_tools_series(data_dir: &Path, tag: &str) -> Option<String> {
    let target = std::fs::read_link(data_dir.join("tools").join(tag)).ok()?;
    let name = target.file_name()?.to_str()?.to_string();
    // <version>-<series>-<arch>; the version itself may hold '-' (2.8-beta1).
    let mut parts = name.rsplitn(3, '-');
    let _arch = parts.next()?;
    let series = parts.next()?;
    parts.next()?;
    (!series.is_empty()).then(|| series.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONF: &str = "# format 2.0\ntag: machine-0\ndatadir: /var/lib/juju\n\
        jobs:\n- JobManageModel\nupgradedToVersion: 2.8-beta1.1\ncacert: |\n  -----BEGIN CERTIFICATE-----\n  MIIB\n  -----END CERTIFICATE-----\n\
        statepassword: 'pw: with:colons'\ncontroller: controller-8a293c6a-855b-47fd-8201-affdf29c9605\n\
        model: model-e2a6a1e5-abea-4393-8593-5a45ae53ab97\nvalues:\n  PROVIDER_TYPE: lxd\nstateport: 37017\n";

    #[test]
    fn agent_conf_keys_are_read() {
        let conf = JujuAgentConfig::parse(CONF, Path::new("/x/agent.conf")).unwrap();
        assert_eq!(conf.tag, "machine-0");
        assert_eq!(conf.machine(), "0");
        assert_eq!(conf.controller_uuid, "8a293c6a-855b-47fd-8201-affdf29c9605");
        assert_eq!(conf.model_uuid, "e2a6a1e5-abea-4393-8593-5a45ae53ab97");
        assert_eq!(conf.version, "2.8-beta1.1");
        assert_eq!(conf.state_password, "pw: with:colons");
        assert_eq!(conf.state_port, Some(37017));
        assert_eq!(
            conf.ca_cert,
            "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
        );
        assert!(!format!("{conf:?}").contains("colons"));
        let id = conf.identity();
        assert_eq!(
            (id.machine.as_str(), id.controller_machine_id.as_str()),
            ("0", "0")
        );
    }

    #[test]
    fn malformed_agent_confs_name_the_file_and_the_key() {
        let path = Path::new("/data/agents/machine-0/agent.conf");
        let cases = [
            (
                CONF.replace("tag: machine-0", "tag: unit-app-0"),
                "unit-app-0",
            ),
            (
                CONF.replace("model: model-", "model: "),
                "is not a model tag",
            ),
            (
                CONF.replace("upgradedToVersion", "version"),
                "upgradedToVersion",
            ),
            (
                CONF.replace("stateport: 37017", "stateport: 99999"),
                "stateport",
            ),
            ("- a\n- b\n".to_string(), "mapping"),
            ("tag: [unclosed\n".to_string(), "not YAML"),
        ];
        for (text, said) in cases {
            let err = JujuAgentConfig::parse(&text, path).unwrap_err().to_string();
            assert!(
                err.contains(said) && err.contains("/data/agents/machine-0/agent.conf"),
                "{err}"
            );
        }
    }

    #[test]
    fn tags_name_machines() {
        assert_eq!(machine_of_tag("machine-12").as_deref(), Some("12"));
        assert_eq!(
            machine_of_tag("machine-0-lxd-3").as_deref(),
            Some("0/lxd/3")
        );
        assert_eq!(machine_of_tag("controller-0").as_deref(), Some("0"));
        assert_eq!(machine_of_tag("machine-"), None);
        assert_eq!(machine_of_tag("machine-0--1"), None);
        assert_eq!(machine_of_tag("user-admin"), None);
    }

    #[test]
    fn the_root_is_what_the_data_dir_is_under() {
        assert_eq!(juju_root(Path::new("/var/lib/juju")), Path::new("/"));
        assert_eq!(
            juju_root(Path::new("/tmp/t/var/lib/juju")),
            Path::new("/tmp/t")
        );
        assert_eq!(juju_root(Path::new("/srv/juju")), Path::new("/"));
    }

    #[test]
    fn juju_files_are_what_create_backup_takes() {
        let root = tempfile::tempdir().unwrap();
        let data = root.path().join("var/lib/juju");
        let missing = juju_files(&data).unwrap_err().to_string();
        assert!(missing.contains("var/lib/juju/tools"), "{missing}");
        for dir in [
            "tools/2.9.0-focal-amd64",
            "agents/machine-1",
            "agents/unit-x-0",
            "init/jujud-machine-1",
        ] {
            std::fs::create_dir_all(data.join(dir)).unwrap();
        }
        for file in [
            "system-identity",
            "server.pem",
            "shared-secret",
            "other-file",
        ] {
            std::fs::write(data.join(file), b"x").unwrap();
        }
        std::os::unix::fs::symlink("2.9.0-focal-amd64", data.join("tools/machine-1")).unwrap();
        let names = |files: Vec<PathBuf>| -> Vec<String> {
            files
                .iter()
                .map(|p| p.strip_prefix(root.path()).unwrap().display().to_string())
                .collect()
        };
        let base = [
            "var/lib/juju/tools",
            "var/lib/juju/system-identity",
            "var/lib/juju/server.pem",
            "var/lib/juju/shared-secret",
            "var/lib/juju/agents/machine-1",
            "var/lib/juju/init/jujud-machine-1",
        ];
        assert_eq!(names(juju_files(&data).unwrap()), base);
        std::fs::write(data.join("nonce.txt"), b"n").unwrap();
        std::fs::create_dir_all(root.path().join("home/ubuntu/.ssh")).unwrap();
        std::fs::write(root.path().join(AUTHORIZED_KEYS), b"k").unwrap();
        let mut all: Vec<&str> = base.to_vec();
        all.extend(["var/lib/juju/nonce.txt", AUTHORIZED_KEYS]);
        assert_eq!(names(juju_files(&data).unwrap()), all);
        assert_eq!(
            juju_tools_series(&data, "machine-1").as_deref(),
            Some("focal")
        );
        assert_eq!(juju_tools_series(&data, "machine-2"), None);
    }

    /// The real Juju 2.8 agent.conf in the fixture archive's root.tar.
    #[test]
    fn the_fixtures_agent_conf() {
        let fixture = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../shared/fixtures/juju/valid-backup.tar.gz");
        let mut outer = tar::Archive::new(flate2::read::GzDecoder::new(
            std::fs::File::open(&fixture).unwrap(),
        ));
        let mut root_tar = Vec::new();
        for entry in outer.entries().unwrap() {
            let mut entry = entry.unwrap();
            if entry.path().unwrap() == Path::new("juju-backup/root.tar") {
                std::io::Read::read_to_end(&mut entry, &mut root_tar).unwrap();
            }
        }
        let dir = tempfile::tempdir().unwrap();
        tar::Archive::new(&root_tar[..]).unpack(dir.path()).unwrap();
        let data = dir.path().join("var/lib/juju");
        let conf = JujuAgentConfig::find(&data).unwrap();
        assert_eq!(conf.machine(), "0");
        assert_eq!(conf.model_uuid, "e2a6a1e5-abea-4393-8593-5a45ae53ab97");
        assert_eq!(conf.controller_uuid, "8a293c6a-855b-47fd-8201-affdf29c9605");
        assert_eq!(conf.version, "2.8-beta1.1");
        assert_eq!(conf.state_port, Some(37017));
        assert_eq!(conf.state_password.len(), 24);
        assert!(
            conf.ca_cert
                .starts_with("-----BEGIN CERTIFICATE-----\nMIIErTCC")
                && conf.ca_cert.ends_with("-----END CERTIFICATE-----\n"),
            "{}",
            conf.ca_cert
        );
        assert_eq!(
            juju_tools_series(&data, &conf.tag).as_deref(),
            Some("bionic")
        );
        let files = juju_files(&data).unwrap();
        let rel: Vec<_> = files
            .iter()
            .map(|p| p.strip_prefix(dir.path()).unwrap().display().to_string())
            .collect();
        assert_eq!(
            rel,
            [
                "var/lib/juju/tools",
                "var/lib/juju/system-identity",
                "var/lib/juju/server.pem",
                "var/lib/juju/shared-secret",
                "var/lib/juju/agents/machine-0",
                "var/lib/juju/nonce.txt",
                AUTHORIZED_KEYS,
            ]
        );
    }
}
