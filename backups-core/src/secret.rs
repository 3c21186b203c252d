//! Which names hold secrets, and values shown with them redacted: one rule
//! for what sidecars leave out, what `config show` prints and what error
//! messages name.

/// Words that make a name a secret's (matched in lower case, anywhere).
const SECRET_WORDS: &[&str] = &[
    "password",
    "passwd",
    "passphrase",
    "secret",
    "token",
    "privatekey",
    "private_key",
    "credential",
    "apikey",
    "api_key",
    // MongoDB's `authMechanismProperties` carries AWS_SESSION_TOKEN:...
    "authmechanismproperties",
];

/// What redacted values are shown as.
pub const REDACTED: &str = "***";

/// Whether a key of metadata, a store option or a URI query parameter
/// names a secret: it contains (case-insensitive) password, passwd,
/// passphrase, secret, token, privatekey, private_key, credential, apikey
/// or api_key, or ends in `key` / `key_base64` (an account, master,
/// encryption or customer key) and is not a public key.
pub fn is_secret_name(name: &str) -> bool {
    let k = name.to_ascii_lowercase();
    if SECRET_WORDS.iter().any(|w| k.contains(w)) {
        return true;
    }
    !k.contains("public") && (k.ends_with("key") || k.ends_with("key_base64"))
}

/// `uri` with the password of its user info and the values of its secret
/// query parameters ([`is_secret_name`]) replaced by `***`; anything that
/// is not a URL is returned as it is.
pub fn redact_uri(uri: &str) -> String {
    let Some(scheme_end) = uri.find("://") else {
        return uri.to_string();
    };
    let (head, rest) = uri.split_at(scheme_end + 3);
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let authority = match authority.rfind('@') {
        Some(at) => {
            let user = authority[..at].split(':').next().unwrap_or("");
            format!("{user}:{REDACTED}@{}", &authority[at + 1..])
        }
        None => authority.to_string(),
    };
    let tail = match tail.split_once('?') {
        Some((path, query)) => {
            let (query, fragment) = match query.split_once('#') {
                Some((q, f)) => (q, Some(f)),
                None => (query, None),
            };
            let query: Vec<String> = query
                .split('&')
                .map(|pair| match pair.split_once('=') {
                    Some((k, _)) if is_secret_name(k) => format!("{k}={REDACTED}"),
                    _ => pair.to_string(),
                })
                .collect();
            let fragment = fragment.map(|f| format!("#{f}")).unwrap_or_default();
            format!("{path}?{}{fragment}", query.join("&"))
        }
        None => tail.to_string(),
    };
    format!("{head}{authority}{tail}")
}

/// A named value as shown: `***` when the name is a secret's, else the
/// value with any URI secrets redacted ([`redact_uri`]).
pub fn redact_value(name: &str, value: &str) -> String {
    if is_secret_name(name) {
        REDACTED.to_string()
    } else {
        redact_uri(value)
    }
}

/// Free text (an error message) with the same rule applied to each of its
/// words: a word holding a URL loses its password and secret query values
/// ([`redact_uri`]), and a `name=value` or `name: value` pair whose name is
/// a secret's ([`is_secret_name`]) has its value replaced by `***`.
/// Whitespace is kept as it is.
pub fn redact_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut hide_next = false;
    for piece in text.split_inclusive(char::is_whitespace) {
        let trimmed = piece.trim_end_matches(char::is_whitespace);
        let space = &piece[trimmed.len()..];
        if trimmed.is_empty() {
            out.push_str(piece);
            continue;
        }
        if hide_next {
            hide_next = false;
            out.push_str(REDACTED);
            out.push_str(space);
            continue;
        }
        let word = match trimmed.split_once('=') {
            _ if trimmed.contains("://") => redact_uri(trimmed),
            Some((name, value)) if is_secret_name(bare_name(name)) => {
                // Punctuation after the value is the sentence's, kept.
                let kept = value.trim_end_matches(PUNCTUATION);
                format!("{name}={REDACTED}{}", &value[kept.len()..])
            }
            _ => {
                // `password: hunter2`: the value is the next word.
                hide_next = trimmed.ends_with(':')
                    && is_secret_name(bare_name(trimmed.trim_end_matches(':')));
                trimmed.to_string()
            }
        };
        out.push_str(&word);
        out.push_str(space);
    }
    out
}

/// What may close a value in a message.
const PUNCTUATION: &[char] = &[',', ';', '.', ')', ']', '}', '"', '\''];

/// A name without the quotes or brackets around it in a message.
fn bare_name(name: &str) -> &str {
    name.trim_matches(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_names() {
        for name in [
            "APIToken",
            "Credentials",
            "password",
            "CAPrivateKey",
            "private_key",
            "ApiKey",
            "aws_secret_access_key",
            "aws_session_token",
            "aws_sse_customer_key_base64",
            "azure_storage_encryption_key",
            "azure_storage_master_key",
            "azure_storage_account_key",
            "tlsCertificateKeyFilePassword",
            "authMechanismProperties",
            "DBPasswd",
        ] {
            assert!(is_secret_name(name), "{name}");
        }
        for name in [
            "aws_access_key_id",
            "use_emulator",
            "CACert",
            "SSHPublicKey",
            "region",
            "authSource",
        ] {
            assert!(!is_secret_name(name), "{name}");
        }
    }

    #[test]
    fn uris_lose_passwords_and_secret_query_values() {
        assert_eq!(
            redact_uri("mongodb://admin:s3cr%40t@db1:27017,db2/juju?authSource=admin"),
            "mongodb://admin:***@db1:27017,db2/juju?authSource=admin"
        );
        assert_eq!(
            redact_uri(
                "mongodb://db/?tls=true&tlsCertificateKeyFilePassword=pw&authMechanism=MONGODB-AWS&authMechanismProperties=AWS_SESSION_TOKEN:tok"
            ),
            "mongodb://db/?tls=true&tlsCertificateKeyFilePassword=***&authMechanism=MONGODB-AWS&authMechanismProperties=***"
        );
        assert_eq!(redact_uri("mongodb://127.0.0.1/"), "mongodb://127.0.0.1/");
        assert_eq!(redact_uri("not a url"), "not a url");
        assert_eq!(redact_value("azure_storage_master_key", "abc"), "***");
        assert_eq!(
            redact_value("proxy_url", "http://u:pw@proxy:3128"),
            "http://u:***@proxy:3128"
        );
    }

    #[test]
    fn text_loses_the_secrets_of_its_urls_and_named_values() {
        assert_eq!(
            redact_text("connecting to mongodb://admin:s3cr3t@db:27017/?authSource=admin failed"),
            "connecting to mongodb://admin:***@db:27017/?authSource=admin failed"
        );
        assert_eq!(
            redact_text("(see https://u:pw@h/x?token=abc&a=b)\n next"),
            "(see https://u:***@h/x?token=***&a=b)\n next"
        );
        assert_eq!(
            redact_text("bad option aws_secret_access_key=AKIA/xyz, password: hunter2 ok"),
            "bad option aws_secret_access_key=***, password: *** ok"
        );
        assert_eq!(
            redact_text("store unreachable: connection refused"),
            "store unreachable: connection refused"
        );
    }
}
