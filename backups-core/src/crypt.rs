//! Client-side encryption with age (<https://age-encryption.org>): the
//! stored object of an encrypted backup is `<id>.<nonce>.tar.gz.age`, the
//! plain Juju archive encrypted to public recipients (X25519 `age1...`,
//! `ssh-ed25519`, `ssh-rsa`) or with a passphrase. It streams in 64 KiB
//! chunks, each authenticated: memory stays constant, and a flipped byte
//! anywhere is an error, never wrong data.
//!
//! Only public keys are needed to write: a controller that holds only the
//! recipient cannot read its older backups; the identity (private key)
//! stays with the operator and is needed only to restore or decrypt.

use std::fmt;
use std::fs;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use age::secrecy::{ExposeSecret, SecretString};

use crate::digest::{Digests, Hasher, HashingWriter};
use crate::error::{Error, Result};

/// The first bytes of every age file.
pub(crate) const AGE_MAGIC: &[u8] = b"age-encryption.org/";

/// How a new backup is encrypted: [`Encryption::to_recipients`] or
/// [`Encryption::with_passphrase`].
#[derive(Clone)]
pub struct Encryption {
    recipients: Vec<String>,
    passphrase: Option<Arc<SecretString>>,
}

impl fmt::Debug for Encryption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Encryption")
            .field("recipients", &self.recipients)
            .field("passphrase", &self.passphrase.is_some())
            .finish()
    }
}

fn bad_key(value: &str, reason: impl Into<String>) -> Error {
    Error::InvalidInput {
        what: crate::error::InputKind::Recipient,
        value: value.to_string(),
        reason: reason.into(),
    }
}

/// Parses one public recipient: `age1...`, `ssh-ed25519 ...`, `ssh-rsa ...`.
fn parse_recipient(text: &str) -> Result<Box<dyn age::Recipient + Send>> {
    if text.starts_with("ssh-") {
        return age::ssh::Recipient::from_str(text)
            .map(|r| Box::new(r) as _)
            .map_err(|e| bad_key(text, format!("not a usable SSH public key ({e:?})")));
    }
    age::x25519::Recipient::from_str(text)
        .map(|r| Box::new(r) as _)
        .map_err(|e| bad_key(text, format!("not an age recipient: {e}")))
}

/// The non-empty, non-comment lines of a keys file.
fn key_lines(path: &Path) -> Result<Vec<String>> {
    let text = fs::read_to_string(path).map_err(|e| Error::io("reading", path, e))?;
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect())
}

impl Encryption {
    /// Encrypts to these public recipients (each checked now).
    pub fn to_recipients(recipients: &[String]) -> Result<Self> {
        if recipients.is_empty() {
            return Err(bad_key("", "no recipients given"));
        }
        for r in recipients {
            parse_recipient(r)?;
        }
        Ok(Encryption {
            recipients: recipients.to_vec(),
            passphrase: None,
        })
    }

    /// The recipients listed in `path`, one a line (`#` comments), as age's
    /// `-R` reads them, plus `more`.
    pub fn from_recipients_file(path: &Path, more: &[String]) -> Result<Self> {
        let mut all = key_lines(path)?;
        if all.is_empty() {
            return Err(bad_key(
                &path.display().to_string(),
                "the recipients file lists no recipient",
            ));
        }
        all.extend(more.iter().cloned());
        Self::to_recipients(&all)
    }

    /// Encrypts with a passphrase (scrypt): anyone with it can decrypt.
    pub fn with_passphrase(passphrase: impl Into<String>) -> Self {
        Encryption {
            recipients: Vec::new(),
            passphrase: Some(Arc::new(SecretString::from(passphrase.into()))),
        }
    }

    /// The passphrase on the first line of `path`.
    pub fn from_passphrase_file(path: &Path) -> Result<Self> {
        Ok(Self::with_passphrase(read_passphrase(path)?))
    }

    /// The public recipients (empty for a passphrase).
    pub fn recipients(&self) -> &[String] {
        &self.recipients
    }

    /// Whether this is passphrase encryption.
    pub fn is_passphrase(&self) -> bool {
        self.passphrase.is_some()
    }

    /// Starts encrypting into `out`.
    fn wrap<W: Write>(&self, out: W) -> Result<age::stream::StreamWriter<W>> {
        let encryptor = match &self.passphrase {
            Some(p) => age::Encryptor::with_user_passphrase(SecretString::from(
                p.expose_secret().to_string(),
            )),
            None => {
                let parsed = self
                    .recipients
                    .iter()
                    .map(|r| parse_recipient(r))
                    .collect::<Result<Vec<_>>>()?;
                age::Encryptor::with_recipients(parsed.iter().map(|r| r.as_ref() as _))
                    .map_err(|e| bad_key(&self.recipients.join(","), e.to_string()))?
            }
        };
        encryptor
            .wrap_output(out)
            .map_err(|e| Error::io("encrypting", "archive", e))
    }
}

fn read_passphrase(path: &Path) -> Result<String> {
    let text = fs::read_to_string(path).map_err(|e| Error::io("reading", path, e))?;
    let line = text.lines().next().unwrap_or("").to_string();
    if line.is_empty() {
        return Err(bad_key(
            &path.display().to_string(),
            "the passphrase file is empty",
        ));
    }
    Ok(line)
}

/// The writer a new archive goes through: plain, or age-encrypted with the
/// stored bytes hashed on their way out.
pub(crate) enum Sealer<W: Write> {
    /// No encryption: the archive's own digests are the stored ones.
    Plain(W),
    /// Encrypted: the stored (ciphertext) bytes are hashed separately.
    Age(Box<age::stream::StreamWriter<HashingWriter<W>>>),
}

impl<W: Write> Sealer<W> {
    /// Seals `out` with `encryption`, if any.
    pub(crate) fn new(out: W, encryption: Option<&Encryption>) -> Result<Self> {
        Ok(match encryption {
            None => Sealer::Plain(out),
            // The stored bytes' size and SHA-256 (no SHA-1: nothing needs it).
            Some(e) => Sealer::Age(Box::new(
                e.wrap(HashingWriter::with_hasher(out, Hasher::sha256_only()))?,
            )),
        })
    }

    /// Ends the stream; for an encrypted one, returns the stored bytes'
    /// digests.
    pub(crate) fn finish(self) -> io::Result<(W, Option<Digests>)> {
        match self {
            Sealer::Plain(w) => Ok((w, None)),
            Sealer::Age(w) => {
                let (inner, digests) = w.finish()?.finish();
                Ok((inner, Some(digests)))
            }
        }
    }
}

impl<W: Write> Write for Sealer<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Sealer::Plain(w) => w.write(buf),
            Sealer::Age(w) => w.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Sealer::Plain(w) => w.flush(),
            Sealer::Age(w) => w.flush(),
        }
    }
}

/// The keys a restore or download may decrypt with: age identity files,
/// SSH private keys, or a passphrase.
#[derive(Clone, Default)]
pub struct Identities {
    keys: Vec<Arc<dyn age::Identity + Send + Sync>>,
    sources: Vec<PathBuf>,
    /// Some of the keys are passphrases (named so in errors).
    passphrases: bool,
}

impl fmt::Debug for Identities {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identities")
            .field("sources", &self.sources)
            .field("keys", &self.keys.len())
            .finish()
    }
}

impl Identities {
    /// No keys: encrypted backups cannot be read.
    pub fn none() -> Self {
        Identities::default()
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Adds the identities in `path`: an age identity file
    /// (`AGE-SECRET-KEY-1...` lines, as `age-keygen` and `backups key
    /// generate` write) or an unencrypted SSH private key.
    pub fn add_file(&mut self, path: &Path) -> Result<()> {
        let text = fs::read(path).map_err(|e| Error::io("reading", path, e))?;
        let shown = path.display().to_string();
        if text.starts_with(b"-----BEGIN") {
            let key = age::ssh::Identity::from_buffer(&text[..], Some(shown.clone()))
                .map_err(|e| bad_identity(&shown, e.to_string()))?;
            match key {
                age::ssh::Identity::Unencrypted(_) => self.keys.push(Arc::new(key)),
                age::ssh::Identity::Encrypted(_) => {
                    return Err(bad_identity(
                        &shown,
                        "the SSH key is protected by a passphrase; give an unprotected copy (ssh-keygen -p -N '' -f COPY)",
                    ));
                }
                age::ssh::Identity::Unsupported(_) => {
                    return Err(bad_identity(
                        &shown,
                        "this kind of SSH key is not supported",
                    ));
                }
            }
        } else {
            let file = age::IdentityFile::from_buffer(BufReader::new(&text[..]))
                .map_err(|e| bad_identity(&shown, e.to_string()))?;
            let keys = file
                .into_identities()
                .map_err(|e| bad_identity(&shown, e.to_string()))?;
            if keys.is_empty() {
                return Err(bad_identity(&shown, "the file holds no identity"));
            }
            self.keys.extend(keys.into_iter().map(Arc::from));
        }
        self.sources.push(path.to_path_buf());
        Ok(())
    }

    /// Adds the passphrase on the first line of `path`.
    pub fn add_passphrase_file(&mut self, path: &Path) -> Result<()> {
        let passphrase = read_passphrase(path)?;
        self.keys
            .push(Arc::new(age::scrypt::Identity::new(SecretString::from(
                passphrase,
            ))));
        self.sources.push(path.to_path_buf());
        self.passphrases = true;
        Ok(())
    }

    /// The files the keys came from, for messages.
    fn shown_sources(&self) -> String {
        self.sources
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// A reader of the plaintext of the age file `input` (`subject` names it
    /// in errors). Fails at once when no key fits; a tampered or cut chunk
    /// fails when it is read.
    pub(crate) fn open<R: Read + Send + 'static>(
        &self,
        input: R,
        subject: &str,
    ) -> Result<Box<dyn Read + Send>> {
        if self.keys.is_empty() {
            return Err(Error::Encrypted {
                subject: subject.to_string(),
                reason: "the backup is encrypted and no identity was given (--identity FILE)"
                    .into(),
            });
        }
        let decryptor = age::Decryptor::new(input).map_err(|e| Error::Encrypted {
            subject: subject.to_string(),
            reason: format!("not a readable age file: {e}"),
        })?;
        let reader = decryptor
            .decrypt(self.keys.iter().map(|k| k.as_ref() as &dyn age::Identity))
            .map_err(|e| Error::Encrypted {
                subject: subject.to_string(),
                reason: match e {
                    age::DecryptError::NoMatchingKeys
                    | age::DecryptError::DecryptionFailed
                        if self.passphrases =>
                    {
                        format!(
                            "the passphrase given ({}) does not decrypt it: a wrong passphrase, or the backup was not encrypted with one",
                            self.shown_sources()
                        )
                    }
                    age::DecryptError::NoMatchingKeys => format!(
                        "none of the identities given ({}) can decrypt it",
                        self.shown_sources()
                    ),
                    e => e.to_string(),
                },
            })?;
        // Decrypted on a thread of its own, a few chunks ahead: the
        // decompression that reads it runs on another.
        Ok(Box::new(ReadAhead::new(reader)))
    }
}

/// Chunks decrypted ahead of the reader.
const READ_AHEAD_CHUNKS: usize = 4;
/// Size of one read-ahead chunk.
const READ_AHEAD_BYTES: usize = 1 << 20;

/// A reader whose source is read on a thread of its own, up to
/// [`READ_AHEAD_CHUNKS`] chunks ahead. Dropping it stops the thread (its
/// next send fails).
struct ReadAhead {
    rx: std::sync::mpsc::Receiver<io::Result<Vec<u8>>>,
    chunk: Vec<u8>,
    at: usize,
    done: bool,
    /// The source failed: every later read fails too, never a clean end.
    failed: Option<io::ErrorKind>,
}

impl ReadAhead {
    fn new<R: Read + Send + 'static>(mut inner: R) -> Self {
        let (tx, rx) = std::sync::mpsc::sync_channel(READ_AHEAD_CHUNKS);
        std::thread::spawn(move || {
            loop {
                let mut buf = vec![0u8; READ_AHEAD_BYTES];
                let mut filled = 0;
                let result = loop {
                    match inner.read(&mut buf[filled..]) {
                        Ok(0) => break Ok(()),
                        Ok(n) => {
                            filled += n;
                            if filled == buf.len() {
                                break Ok(());
                            }
                        }
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => break Err(e),
                    }
                };
                buf.truncate(filled);
                let last = filled == 0 || result.is_err();
                let message = match result {
                    Ok(()) => Ok(buf),
                    Err(e) => Err(e),
                };
                if tx.send(message).is_err() || last {
                    return;
                }
            }
        });
        ReadAhead {
            rx,
            chunk: Vec::new(),
            at: 0,
            done: false,
            failed: None,
        }
    }
}

impl Read for ReadAhead {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.at == self.chunk.len() {
            if let Some(kind) = self.failed {
                return Err(io::Error::new(
                    kind,
                    "the encrypted archive could not be read",
                ));
            }
            if self.done {
                return Ok(0);
            }
            match self.rx.recv() {
                Ok(Ok(chunk)) => {
                    self.done = chunk.is_empty();
                    self.chunk = chunk;
                    self.at = 0;
                }
                Ok(Err(e)) => {
                    self.failed = Some(e.kind());
                    return Err(e);
                }
                Err(_) => {
                    return Err(io::Error::other("the decrypting thread stopped"));
                }
            }
        }
        let n = buf.len().min(self.chunk.len() - self.at);
        buf[..n].copy_from_slice(&self.chunk[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

fn bad_identity(path: &str, reason: impl Into<String>) -> Error {
    Error::InvalidInput {
        what: crate::error::InputKind::Identity,
        value: path.to_string(),
        reason: reason.into(),
    }
}

/// A new X25519 identity: the identity file's text (with a comment naming
/// its recipient, as `age-keygen` writes it) and the public recipient.
pub fn generate_identity() -> (String, String) {
    let identity = age::x25519::Identity::generate();
    let recipient = identity.to_public().to_string();
    let created = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let text = format!(
        "# created: {created}\n# public key: {recipient}\n{}\n",
        identity.to_string().expose_secret()
    );
    (text, recipient)
}

/// Whether `reader` starts with age's magic; the bytes read are given
/// back in front of it.
pub(crate) fn sniff_age<R: Read + Send + 'static>(
    reader: R,
) -> io::Result<(bool, Box<dyn Read + Send>)> {
    let mut buffered = BufReader::with_capacity(64 * 1024, reader);
    let head = buffered.fill_buf()?;
    let is_age = head.starts_with(AGE_MAGIC);
    Ok((is_age, Box::new(buffered)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sealed(encryption: &Encryption, plain: &[u8]) -> (Vec<u8>, Digests) {
        let mut s = Sealer::new(Vec::new(), Some(encryption)).unwrap();
        s.write_all(plain).unwrap();
        let (bytes, digests) = s.finish().unwrap();
        (bytes, digests.unwrap())
    }

    #[test]
    fn round_trip_to_a_generated_identity_and_wrong_keys_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (text, recipient) = generate_identity();
        let key = dir.path().join("key.txt");
        fs::write(&key, &text).unwrap();
        let plain = vec![7u8; 200_000];
        let enc = Encryption::to_recipients(std::slice::from_ref(&recipient)).unwrap();
        let (bytes, digests) = sealed(&enc, &plain);
        assert!(bytes.starts_with(AGE_MAGIC));
        assert_eq!(digests.size, bytes.len() as u64);
        let mut ids = Identities::none();
        ids.add_file(&key).unwrap();
        let mut out = Vec::new();
        ids.open(std::io::Cursor::new(bytes.clone()), "t")
            .unwrap()
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, plain);

        let (other, _) = generate_identity();
        let other_key = dir.path().join("other.txt");
        fs::write(&other_key, other).unwrap();
        let mut wrong = Identities::none();
        wrong.add_file(&other_key).unwrap();
        let err = wrong
            .open(std::io::Cursor::new(bytes.clone()), "t")
            .err()
            .unwrap();
        assert!(err.to_string().contains("can decrypt it"), "{err}");
        let err = Identities::none()
            .open(std::io::Cursor::new(bytes.clone()), "t")
            .err()
            .unwrap();
        assert!(err.to_string().contains("no identity was given"), "{err}");

        // A flipped byte in the middle chunk: reading fails, never wrong data.
        let mut tampered = bytes;
        let mid = tampered.len() / 2;
        tampered[mid] ^= 1;
        let mut out = Vec::new();
        let read = ids
            .open(std::io::Cursor::new(tampered), "t")
            .unwrap()
            .read_to_end(&mut out);
        assert!(read.is_err());
    }

    #[test]
    fn bad_recipients_are_refused_with_the_value() {
        let err = Encryption::to_recipients(&["age1nope".into()]).unwrap_err();
        assert!(err.to_string().contains("age1nope"), "{err}");
        assert!(Encryption::to_recipients(&[]).is_err());
    }

    #[test]
    fn passphrase_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let pass = dir.path().join("pass");
        fs::write(&pass, "correct horse\n").unwrap();
        let enc = Encryption::from_passphrase_file(&pass).unwrap();
        let (bytes, _) = sealed(&enc, b"hello");
        let mut ids = Identities::none();
        ids.add_passphrase_file(&pass).unwrap();
        let mut out = Vec::new();
        ids.open(std::io::Cursor::new(bytes), "t")
            .unwrap()
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, b"hello");
    }
}
