//! Bearer tokens and their roles. A token is 256 random bits, shown once
//! when it is made; the tokens file keeps only its SHA-256 (hex), a name
//! for the logs and a role, one token a line:
//!
//! ```text
//! # sha256-hex name role
//! 3f1c...e2 controller-0 append
//! ```

use std::path::Path;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::{ApiError, ErrorKind};

/// The cookie the status page's `?token=` sets.
pub const TOKEN_COOKIE: &str = "backups_token";

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// list, show, download, status.
    Read,
    /// read, plus create, upload, verify, label and notes: never remove,
    /// forget or restore.
    Append,
    /// Everything.
    Operator,
}

impl Role {
    /// The role's name in the tokens file.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Read => "read",
            Role::Append => "append",
            Role::Operator => "operator",
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "read" => Ok(Role::Read),
            "append" => Ok(Role::Append),
            "operator" => Ok(Role::Operator),
            _ => Err(format!("unknown role {s:?}: give read, append or operator")),
        }
    }
}

/// Who made a request: the token's name and role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The token's name (for the logs).
    pub name: String,
    /// What it may do.
    pub role: Role,
}

impl Caller {
    /// Refuses (403, kind `forbidden`) unless the caller's role is at least `needed`.
    pub fn require(&self, needed: Role, what: &str) -> Result<(), ApiError> {
        if self.role >= needed {
            return Ok(());
        }
        Err(ApiError::new(
            ErrorKind::Forbidden,
            format!(
                "{what} is not permitted for the {} role of token {:?} (it needs {needed})",
                self.role, self.name
            ),
        ))
    }
}

/// A line of the tokens file.
#[derive(Debug, Clone)]
struct TokenEntry {
    digest: [u8; 32],
    caller: Caller,
}

/// The tokens the server accepts.
#[derive(Debug, Clone, Default)]
pub struct Tokens {
    entries: Vec<TokenEntry>,
}

/// A tokens file that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("tokens file {path}: {reason}")]
pub struct TokensError {
    /// The file.
    pub path: String,
    /// What is wrong, with the line number.
    pub reason: String,
}

impl Tokens {
    /// Reads a tokens file.
    pub fn load(path: &Path) -> Result<Self, TokensError> {
        let text = std::fs::read_to_string(path).map_err(|e| TokensError {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        Self::parse(&text).map_err(|reason| TokensError {
            path: path.display().to_string(),
            reason,
        })
    }

    /// Parses the tokens file's text (`SHA256HEX NAME ROLE` a line, `#`
    /// comments and blank lines skipped).
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut entries = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let fields: Vec<&str> = line.split_whitespace().collect();
            let [hash, name, role] = fields[..] else {
                return Err(format!(
                    "line {}: expected SHA256-HEX NAME ROLE, got {} fields",
                    n + 1,
                    fields.len()
                ));
            };
            let mut digest = [0u8; 32];
            hex::decode_to_slice(hash, &mut digest).map_err(|_| {
                format!(
                    "line {}: the first field must be 64 hex digits (the token's SHA-256)",
                    n + 1
                )
            })?;
            let role = role.parse().map_err(|e| format!("line {}: {e}", n + 1))?;
            entries.push(TokenEntry {
                digest,
                caller: Caller {
                    name: name.to_string(),
                    role,
                },
            });
        }
        Ok(Tokens { entries })
    }

    /// How many tokens there are.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are none (every request is then refused).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The caller a presented token belongs to. Every entry's digest is
    /// compared, in constant time, whatever matched before.
    pub fn check(&self, token: &str) -> Option<Caller> {
        let digest: [u8; 32] = Sha256::digest(token.trim().as_bytes()).into();
        let mut found = None;
        for e in &self.entries {
            if bool::from(e.digest.ct_eq(&digest)) && found.is_none() {
                found = Some(e.caller.clone());
            }
        }
        found
    }
}

/// A new token: 256 random bits, as `bk_` and 64 hex digits.
pub fn generate_token() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    Ok(format!("bk_{}", hex::encode(bytes)))
}

/// The tokens file's line for `token`.
pub fn token_line(token: &str, name: &str, role: Role) -> String {
    format!(
        "{} {name} {role}",
        hex::encode(Sha256::digest(token.as_bytes()))
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_generated_token_is_accepted_only_as_itself() {
        let token = generate_token().unwrap();
        assert_eq!(token.len(), 3 + 64);
        let tokens = Tokens::parse(&format!(
            "# comment\n\n{}\n",
            token_line(&token, "ctl", Role::Append)
        ))
        .unwrap();
        let caller = tokens.check(&token).unwrap();
        assert_eq!(caller.role, Role::Append);
        assert_eq!(caller.name, "ctl");
        assert!(tokens.check(&generate_token().unwrap()).is_none());
        assert!(tokens.check("").is_none());
        assert!(caller.require(Role::Operator, "remove").is_err());
        assert!(caller.require(Role::Read, "list").is_ok());
    }

    #[test]
    fn bad_lines_are_refused_with_their_number() {
        assert!(Tokens::parse("abc x read").unwrap_err().contains("line 1"));
        let h = "0".repeat(64);
        assert!(
            Tokens::parse(&format!("\n{h} x admin"))
                .unwrap_err()
                .contains("line 2")
        );
        assert!(Tokens::parse(&format!("{h} x")).is_err());
    }
}
