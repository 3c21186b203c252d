//! The harness of the remote tests: a CA and a server certificate made
//! with openssl, a token of each role, `backups serve` on loopback with
//! TLS ([`Server`]), the client run with `--remote` ([`Server::client`]),
//! and a TCP relay that breaks a connection after N bytes ([`Relay`]).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::{BIN, Env, MODEL, sh};

/// A CA, and a certificate for 127.0.0.1 and localhost it signed, in `dir`
/// (`ca.pem`, `cert.pem`, `key.pem`).
pub fn make_tls(dir: &Path) {
    let script = "\
set -e
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
  -keyout ca.key -out ca.pem -days 2 -subj /CN=backups-test-ca
openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
  -keyout key.pem -out server.csr -subj /CN=localhost
printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\\nbasicConstraints=CA:FALSE\\nextendedKeyUsage=serverAuth\\n' > ext.cnf
openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial \
  -out cert.pem -days 2 -extfile ext.cnf";
    let out = sh(script, dir);
    assert!(
        out.status.success(),
        "openssl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `backups token generate`: (token, tokens-file line).
pub fn generate_token(name: &str, role: &str) -> (String, String) {
    let out = Command::new(BIN)
        .args(["token", "generate", "--name", name, "--role", role])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let mut lines = text.lines();
    let token = lines.next().unwrap().to_string();
    let line = lines.next().unwrap().to_string();
    (token, line)
}

/// `backups serve` on 127.0.0.1 with TLS over `env`'s store, with a token
/// file per role (`read`, `append`, `operator`) beside it. Killed when
/// dropped.
pub struct Server {
    child: Child,
    /// `https://127.0.0.1:PORT`.
    pub url: String,
    /// Where the certificates and tokens are.
    pub dir: PathBuf,
    /// The request log so far.
    pub log: Arc<Mutex<Vec<String>>>,
    /// Where uploads are spooled (the server's TMPDIR).
    pub spool: PathBuf,
}

impl Server {
    /// Serves `env`'s store with `extra` arguments after `serve` (and
    /// `global` before it: `--config`, `--profile`).
    pub fn start(env: &Env, global: &[&str], extra: &[&str]) -> Server {
        Self::start_on(env, env.store().to_str().unwrap(), &[], global, extra)
    }

    /// [`Server::start`] over `store` (with `envs`: credentials).
    pub fn start_on(
        env: &Env,
        store: &str,
        envs: &[(&str, &str)],
        global: &[&str],
        extra: &[&str],
    ) -> Server {
        let dir = env.path().join("tls");
        if !dir.join("cert.pem").exists() {
            std::fs::create_dir_all(&dir).unwrap();
            make_tls(&dir);
            let mut lines = String::new();
            for role in ["read", "append", "operator"] {
                let (token, line) = generate_token(&format!("{role}-token"), role);
                std::fs::write(dir.join(format!("{role}.token")), format!("{token}\n")).unwrap();
                lines.push_str(&line);
                lines.push('\n');
            }
            std::fs::write(dir.join("tokens"), lines).unwrap();
        }
        let spool = env.path().join("spool");
        std::fs::create_dir_all(&spool).unwrap();
        let mut child = Command::new(BIN)
            .args(["--store", store, "--progress", "none"])
            .args(global)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .arg("--tls-cert")
            .arg(dir.join("cert.pem"))
            .arg("--tls-key")
            .arg(dir.join("key.pem"))
            .arg("--tokens-file")
            .arg(dir.join("tokens"))
            .args(extra)
            .env_remove("BACKUPS_STORE")
            .env("BACKUPS_MODEL_UUID", MODEL)
            .env("BACKUPS_STATE_DIR", env.path().join("state"))
            .env("TMPDIR", &spool)
            .envs(envs.iter().copied())
            .current_dir(env.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stderr = BufReader::new(child.stderr.take().unwrap());
        let mut first = String::new();
        stderr.read_line(&mut first).unwrap();
        let url = first
            .split_whitespace()
            .find(|w| w.starts_with("https://"))
            .unwrap_or_else(|| panic!("serve did not start: {first}"))
            .to_string();
        let log = Arc::new(Mutex::new(Vec::new()));
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in stderr.lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        Server {
            child,
            url,
            dir,
            log,
            spool,
        }
    }

    /// The token file of a role.
    pub fn token_file(&self, role: &str) -> PathBuf {
        self.dir.join(format!("{role}.token"))
    }

    /// The token of a role.
    pub fn token(&self, role: &str) -> String {
        std::fs::read_to_string(self.token_file(role))
            .unwrap()
            .trim()
            .to_string()
    }

    /// The client, with `role`'s token, run in `dir` (no store of its own).
    pub fn client_at(&self, url: &str, role: &str, dir: &Path, args: &[&str]) -> Output {
        Command::new(BIN)
            .args(["--remote", url, "--progress", "none"])
            .arg("--remote-token-file")
            .arg(self.token_file(role))
            .arg("--remote-ca")
            .arg(self.dir.join("ca.pem"))
            .args(args)
            .env_remove("BACKUPS_STORE")
            .env("BACKUPS_STORE", dir.join("no-store-here"))
            .env("BACKUPS_STATE_DIR", dir.join("client-state"))
            .current_dir(dir)
            .output()
            .unwrap()
    }

    /// [`Server::client_at`] this server, in `dir`.
    pub fn client(&self, role: &str, dir: &Path, args: &[&str]) -> Output {
        self.client_at(&self.url, role, dir, args)
    }

    /// The client, expecting success: its stdout.
    pub fn ok(&self, role: &str, dir: &Path, args: &[&str]) -> String {
        let out = self.client(role, dir, args);
        assert!(
            out.status.success(),
            "backups --remote {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// The client, expecting failure: (exit code, stderr).
    pub fn fail(&self, role: &str, dir: &Path, args: &[&str]) -> (i32, String) {
        let out = self.client(role, dir, args);
        assert!(!out.status.success(), "backups --remote {args:?} succeeded");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8(out.stderr).unwrap(),
        )
    }

    /// curl with the CA, `args` after it: (HTTP status, body).
    pub fn curl(&self, args: &[&str]) -> (u16, String) {
        let out = Command::new("curl")
            .args(["-s", "-o", "-", "-w", "\n%{http_code}", "--cacert"])
            .arg(self.dir.join("ca.pem"))
            .args(args)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
        (code.trim().parse().unwrap_or(0), body.to_string())
    }

    /// The server's log lines that contain `needle`, waiting up to 10 s
    /// for the first.
    pub fn log_lines(&self, needle: &str) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let found: Vec<String> = self
                .log
                .lock()
                .unwrap()
                .iter()
                .filter(|l| l.contains(needle))
                .cloned()
                .collect();
            if !found.is_empty() || Instant::now() > deadline {
                return found;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills the server at once (SIGKILL).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Waits (polling, up to 30 s) until `cond` holds; panics with `what` if
/// it never does.
pub fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A TCP relay on 127.0.0.1 to a server: its first connection is cut
/// after `limit` bytes from the server, and held open until
/// [`Relay::release`]; later connections are relayed in full.
pub struct Relay {
    /// `https://127.0.0.1:PORT`.
    pub url: String,
    /// Bytes relayed from the server on the first connection.
    pub relayed: Arc<AtomicU64>,
    /// Set once the first connection reached its limit.
    pub cut: Arc<AtomicBool>,
    release: Arc<AtomicBool>,
}

impl Relay {
    pub fn start(server_url: &str, limit: u64) -> Relay {
        let target = server_url.trim_start_matches("https://").to_string();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("https://{}", listener.local_addr().unwrap());
        let relayed = Arc::new(AtomicU64::new(0));
        let cut = Arc::new(AtomicBool::new(false));
        let release = Arc::new(AtomicBool::new(false));
        let (r, c, rel) = (relayed.clone(), cut.clone(), release.clone());
        std::thread::spawn(move || {
            for (n, client) in listener.incoming().enumerate() {
                let Ok(client) = client else { return };
                let Ok(server) = TcpStream::connect(&target) else {
                    drop(client);
                    continue;
                };
                let limit = if n == 0 { limit } else { u64::MAX };
                let (r, c, rel) = (r.clone(), c.clone(), rel.clone());
                std::thread::spawn(move || relay(client, server, limit, r, c, rel));
            }
        });
        Relay {
            url,
            relayed,
            cut,
            release,
        }
    }

    /// Closes the first connection (it was held at its limit).
    pub fn release(&self) {
        self.release.store(true, Ordering::SeqCst);
    }
}

fn relay(
    client: TcpStream,
    server: TcpStream,
    limit: u64,
    relayed: Arc<AtomicU64>,
    cut: Arc<AtomicBool>,
    release: Arc<AtomicBool>,
) {
    let (mut c_read, mut s_write) = (client.try_clone().unwrap(), server.try_clone().unwrap());
    std::thread::spawn(move || {
        let mut buf = [0u8; 16384];
        while let Ok(n) = c_read.read(&mut buf) {
            if n == 0 || s_write.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        let _ = s_write.shutdown(Shutdown::Write);
    });
    let (mut s_read, mut c_write) = (server, client);
    let mut buf = [0u8; 16384];
    let mut sent = 0u64;
    loop {
        let want = (limit - sent).min(buf.len() as u64) as usize;
        if want == 0 {
            break;
        }
        match s_read.read(&mut buf[..want]) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if c_write.write_all(&buf[..n]).is_err() {
                    break;
                }
                sent += n as u64;
                if limit != u64::MAX {
                    relayed.store(sent, Ordering::SeqCst);
                }
            }
        }
    }
    if sent >= limit {
        cut.store(true, Ordering::SeqCst);
        while !release.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    let _ = c_write.shutdown(Shutdown::Both);
    let _ = s_read.shutdown(Shutdown::Both);
}
