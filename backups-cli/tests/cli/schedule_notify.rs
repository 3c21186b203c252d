//! A schedule's notifications (issue 26): `notify_cmd` sees the run's four
//! variables, `notify_url` gets the job's status JSON (a loopback listener
//! here), and a notification that fails or hangs fails nothing and keeps
//! its secrets out of the log.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::*;

/// The binary with the config file `config` (HOME and the state in `env`).
fn run(env: &Env, config: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(["--progress", "none"])
        .args(args)
        .env_remove("BACKUPS_STORE")
        .env_remove("BACKUPS_PROFILE")
        .env_remove("BACKUPS_MONGO_URI")
        .env("BACKUPS_CONFIG", config)
        .env("HOME", env.path().join("home"))
        .env("BACKUPS_MODEL_UUID", MODEL)
        .env("BACKUPS_STATE_DIR", env.path().join("state"))
        .current_dir(env.path())
        .output()
        .unwrap()
}

/// A config with a default profile backing up the sample tree, a `broken`
/// one whose path does not exist, and `schedules`.
fn config(env: &Env, schedules: &str) -> PathBuf {
    let tree = sample_tree(env.path());
    let path = env.path().join("config.toml");
    std::fs::write(
        &path,
        format!(
            "[profile.default]\nstore = {store:?}\npaths = [{tree:?}]\n\n\
             [profile.broken]\nstore = {store:?}\npaths = [{missing:?}]\n\n{schedules}",
            store = env.store().to_str().unwrap(),
            tree = tree.to_str().unwrap(),
            missing = env.path().join("missing").to_str().unwrap(),
        ),
    )
    .unwrap();
    path
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn status(env: &Env, name: &str) -> Value {
    let path = env.path().join(format!("state/schedule/{name}.json"));
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// The `KEY=VALUE` lines the notify command wrote for `job`.
fn told(env: &Env, job: &str) -> Vec<String> {
    std::fs::read_to_string(env.path().join(format!("{job}.env")))
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

const RECORD: &str = r#"notify_cmd = 'for v in BACKUPS_JOB BACKUPS_OK BACKUPS_ID BACKUPS_ERROR; do printf "%s=%s\n" $v "$(printenv $v)"; done > "$BACKUPS_JOB.env"'"#;

#[test]
fn notify_cmd_sees_the_job_its_outcome_the_backup_and_the_error() {
    let env = Env::new();
    let config = config(
        &env,
        &format!(
            "[[schedule]]\nname = \"good\"\ncron = \"0 3 * * *\"\n{RECORD}\n\n\
             [[schedule]]\nname = \"bad\"\ncron = \"0 3 * * *\"\nprofile = \"broken\"\n{RECORD}\n"
        ),
    );
    let out = run(&env, &config, &["schedule", "run", "--once", "good"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let id = first_id(&env);
    assert_eq!(
        told(&env, "good"),
        [
            "BACKUPS_JOB=good",
            "BACKUPS_OK=1",
            &format!("BACKUPS_ID={id}"),
            "BACKUPS_ERROR="
        ]
    );

    let out = run(&env, &config, &["schedule", "run", "--once", "bad"]);
    assert_eq!(out.status.code(), Some(7), "{}", stderr(&out));
    let bad = told(&env, "bad");
    assert_eq!(bad[..3], ["BACKUPS_JOB=bad", "BACKUPS_OK=0", "BACKUPS_ID="]);
    let error = bad[3].strip_prefix("BACKUPS_ERROR=").unwrap();
    assert!(error.contains("missing"), "{bad:?}");
    assert_eq!(Some(error), status(&env, "bad")["LastError"].as_str());
}

/// One HTTP request: its head (request line and headers) and body; the
/// listener answers `answer` (a status line).
fn serve_one(
    listener: TcpListener,
    answer: &'static str,
) -> std::thread::JoinHandle<(String, Vec<u8>)> {
    std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut head = String::new();
        let mut length = 0;
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                length = v.trim().parse().unwrap();
            }
            if line == "\r\n" || line.is_empty() {
                break;
            }
            head.push_str(&line);
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).unwrap();
        let mut stream = stream;
        write!(
            stream,
            "HTTP/1.1 {answer}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        (head, body)
    })
}

#[test]
fn notify_url_gets_the_status_json_and_its_credentials_stay_out_of_the_log() {
    for (answer, ok) in [
        ("204 No Content", true),
        ("500 Internal Server Error", false),
    ] {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let env = Env::new();
        let port = listener.local_addr().unwrap().port();
        let server = serve_one(listener, answer);
        let config = config(
            &env,
            &format!(
                "[[schedule]]\nname = \"hooked\"\ncron = \"0 3 * * *\"\n\
                 notify_url = \"http://pager:hunter2@127.0.0.1:{port}/hook?token=sekrit&team=ops\"\n"
            ),
        );
        let out = run(&env, &config, &["schedule", "run", "--once", "hooked"]);
        let err = stderr(&out);
        assert!(out.status.success(), "{err}");
        let (head, body) = server.join().unwrap();
        assert!(
            head.starts_with("POST /hook?token=sekrit&team=ops HTTP/1.1\r\n"),
            "{head}"
        );
        let head = head.to_ascii_lowercase();
        assert!(head.contains("content-type: application/json"), "{head}");
        // pager:hunter2, as basic authentication.
        assert!(
            head.contains(
                "authorization: basic cgfnzxi6aHVudGVyMg=="
                    .to_ascii_lowercase()
                    .as_str()
            ),
            "{head}"
        );
        let posted: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(posted, status(&env, "hooked"));
        assert_eq!(posted["Name"], "hooked");
        assert_eq!(posted["LastBackup"], first_id(&env).as_str());
        assert!(!err.contains("hunter2") && !err.contains("sekrit"), "{err}");
        let warned = err.lines().any(|l| {
            l.contains("schedule hooked: warning: notify URL http://pager:***@127.0.0.1:")
                && l.contains("/hook?token=***&team=ops failed")
                && l.contains("500")
        });
        assert_eq!(warned, !ok, "{err}");
    }
}

#[test]
fn a_notification_that_fails_hangs_or_finds_nobody_fails_nothing() {
    let env = Env::new();
    let pid_file = env.path().join("sleeper.pid");
    // A port nobody listens on.
    let closed = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = config(
        &env,
        &format!(
            "[[schedule]]\nname = \"failing\"\ncron = \"0 3 * * *\"\n\
             notify_cmd = \"echo the pager is down >&2; exit 3\"\n\
             notify_url = \"http://127.0.0.1:{closed}/hook\"\n\n\
             [[schedule]]\nname = \"hanging\"\ncron = \"0 3 * * *\"\nnotify_timeout = \"1s\"\n\
             notify_cmd = \"sleep 1000 & echo $! > {pid}; wait\"\n",
            pid = pid_file.to_str().unwrap()
        ),
    );
    let out = run(&env, &config, &["schedule", "run", "--once", "failing"]);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(
        err.lines().any(
            |l| l.contains("schedule failing: warning: notify command failed:")
                && l.contains("exit status: 3: the pager is down")
        ),
        "{err}"
    );
    assert!(
        err.lines()
            .any(|l| l.contains("schedule failing: warning: notify URL http://127.0.0.1:")),
        "{err}"
    );

    let out = run(&env, &config, &["schedule", "run", "--once", "hanging"]);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(
        err.lines()
            .any(|l| l
                .contains("schedule hanging: warning: notify command failed: timed out after 1s")),
        "{err}"
    );
    for name in ["failing", "hanging"] {
        let s = status(&env, name);
        assert_eq!(
            (s["Runs"].as_u64(), s["Failures"].as_u64()),
            (Some(1), Some(0)),
            "{s}"
        );
        assert_eq!(s["LastError"], Value::Null);
    }
    // The hung command's whole process group was killed (polled with a
    // generous deadline: the kill is asynchronous).
    let pid = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .to_string();
    let deadline = Instant::now() + Duration::from_secs(30);
    let alive = || {
        std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
            !s.rsplit(')')
                .next()
                .unwrap_or("")
                .trim_start()
                .starts_with('Z')
        })
    };
    while alive() {
        assert!(
            Instant::now() < deadline,
            "the notify command's sleep {pid} still runs"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_notify_url_that_is_not_http_is_refused_naming_the_schedule() {
    let env = Env::new();
    let config = config(
        &env,
        "[[schedule]]\nname = \"ftp\"\ncron = \"0 3 * * *\"\n\
         notify_url = \"ftp://u:hunter2@host/x\"\n",
    );
    let out = run(&env, &config, &["schedule", "run", "--once", "ftp"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("schedule ftp") && err.contains("only http and https"),
        "{err}"
    );
    assert!(!err.contains("hunter2"), "{err}");
}
