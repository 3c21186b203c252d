//! `GET /`, the status page, in Debian's headless Chromium: the token
//! given once as `?token=` becomes a cookie, the page lists every backup's
//! id, and the screenshot shows the chart's two lines (size in blue,
//! duration in orange). Under CI=true a missing chromium is a failure.

use std::path::Path;
use std::process::Command;

use crate::server::Server;
use crate::support::*;

/// `chromium`, or `None` (skipping) outside CI.
fn chromium() -> Option<&'static str> {
    let found = Command::new("chromium")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if found {
        return Some("chromium");
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("chromium is not installed under CI=true (scripts/test installs Debian's chromium)");
    }
    eprintln!("skipping: chromium is not installed (apt-get install chromium)");
    None
}

fn headless(chromium: &str, profile: &Path, args: &[&str]) -> std::process::Output {
    let out = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--no-first-run",
            // The test's own CA is not in Chromium's store.
            "--ignore-certificate-errors",
            "--window-size=1000,900",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The RGB pixels of an 8-bit RGB or RGBA PNG (what Chromium writes).
fn png_pixels(png: &[u8]) -> (u32, u32, Vec<[u8; 3]>) {
    use std::io::Read;
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "not a PNG");
    let (mut pos, mut idat) = (8, Vec::new());
    let (mut width, mut height, mut channels) = (0u32, 0u32, 0usize);
    while pos + 8 <= png.len() {
        let len = u32::from_be_bytes(png[pos..pos + 4].try_into().unwrap()) as usize;
        let kind = &png[pos + 4..pos + 8];
        let data = &png[pos + 8..pos + 8 + len];
        match kind {
            b"IHDR" => {
                width = u32::from_be_bytes(data[0..4].try_into().unwrap());
                height = u32::from_be_bytes(data[4..8].try_into().unwrap());
                assert_eq!(data[8], 8, "bit depth");
                channels = match data[9] {
                    2 => 3,
                    6 => 4,
                    c => panic!("colour type {c}"),
                };
            }
            b"IDAT" => idat.extend_from_slice(data),
            _ => {}
        }
        pos += 12 + len;
    }
    let mut raw = Vec::new();
    flate2::read::ZlibDecoder::new(&idat[..])
        .read_to_end(&mut raw)
        .unwrap();
    let stride = width as usize * channels;
    let mut prev = vec![0u8; stride];
    let mut pixels = Vec::with_capacity((width * height) as usize);
    for row in raw.chunks(stride + 1).take(height as usize) {
        let (filter, line) = (row[0], &row[1..]);
        let mut cur = vec![0u8; stride];
        for i in 0..stride {
            let a = if i >= channels {
                cur[i - channels] as i16
            } else {
                0
            };
            let b = prev[i] as i16;
            let c = if i >= channels {
                prev[i - channels] as i16
            } else {
                0
            };
            let predictor = match filter {
                0 => 0,
                1 => a,
                2 => b,
                3 => (a + b) / 2,
                4 => {
                    let p = a + b - c;
                    let (pa, pb, pc) = ((p - a).abs(), (p - b).abs(), (p - c).abs());
                    if pa <= pb && pa <= pc {
                        a
                    } else if pb <= pc {
                        b
                    } else {
                        c
                    }
                }
                f => panic!("filter {f}"),
            };
            cur[i] = line[i].wrapping_add(predictor as u8);
        }
        for px in cur.chunks(channels) {
            pixels.push([px[0], px[1], px[2]]);
        }
        prev = cur;
    }
    (width, height, pixels)
}

fn near(px: [u8; 3], rgb: [u8; 3]) -> bool {
    px.iter()
        .zip(rgb)
        .all(|(a, b)| (*a as i16 - b as i16).abs() <= 24)
}

#[test]
fn the_status_page_lists_the_backups_and_draws_the_chart() {
    let Some(chromium) = chromium() else { return };
    let env = Env::new();
    let data = sample_tree(env.path());
    let data = data.to_str().unwrap();
    env.ok(&["create", "--path", data, "--label", "nightly"]);
    std::fs::write(env.path().join("data/more"), vec![b'm'; 200_000]).unwrap();
    env.ok(&["create", "--path", data]);
    std::fs::write(env.path().join("data/even-more"), vec![b'e'; 400_000]).unwrap();
    env.ok(&["create", "--path", data]);
    env.ok(&["verify", "--latest"]);
    let ids: Vec<String> = env
        .json(&["list", "--json"])
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["ID"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), 3);
    let server = Server::start(&env, &[], &[]);
    let profile = env.path().join("chromium-profile");
    let url = format!("{}/?token={}", server.url, server.token("read"));

    let dom = headless(chromium, &profile, &["--dump-dom", &url]);
    let dom = String::from_utf8_lossy(&dom.stdout);
    for id in &ids {
        assert!(dom.contains(id.as_str()), "{id} is not on the page:\n{dom}");
    }
    assert!(dom.contains("<svg"), "{dom}");
    assert!(
        dom.contains("id=\"size-line\"") && dom.contains("id=\"duration-line\""),
        "{dom}"
    );
    assert!(dom.contains("nightly"), "{dom}");
    assert!(dom.contains("signed in as read-token (read)"), "{dom}");
    // The token went into a cookie; the log shows neither it nor the query.
    let log = server.log_lines("GET / ");
    assert!(log.iter().any(|l| l.contains("status=303")), "{log:?}");
    assert!(
        log.iter()
            .any(|l| l.contains("token=read-token status=200")),
        "{log:?}"
    );
    assert!(
        !server
            .log
            .lock()
            .unwrap()
            .join("\n")
            .contains(&server.token("read"))
    );

    let shot = env.path().join("status.png");
    headless(
        chromium,
        &profile,
        &[&format!("--screenshot={}", shot.display()), &url],
    );
    let (width, height, pixels) = png_pixels(&std::fs::read(&shot).unwrap());
    assert_eq!((width, height), (1000, 900));
    let blue = pixels
        .iter()
        .filter(|p| near(**p, [0x1f, 0x77, 0xb4]))
        .count();
    let orange = pixels
        .iter()
        .filter(|p| near(**p, [0xff, 0x7f, 0x0e]))
        .count();
    assert!(
        blue > 200,
        "the size line is not drawn ({blue} blue pixels)"
    );
    assert!(
        orange > 200,
        "the duration line is not drawn ({orange} orange pixels)"
    );

    // Without a token the page is refused.
    let (status, _) = server.curl(&[&format!("{}/", server.url)]);
    assert_eq!(status, 401);
}

#[test]
fn the_status_shows_the_schedules_last_and_next_runs() {
    let env = Env::new();
    let config = crate::schedule::schedule_config(
        &env,
        "[[schedule]]\nname = \"nightly\"\ncron = \"0 3 * * *\"\n",
    );
    let config = config.to_str().unwrap();
    env.ok(&["--config", config, "schedule", "run", "--once", "nightly"]);
    let server = Server::start(&env, &["--config", config], &[]);
    let auth = format!("Authorization: Bearer {}", server.token("read"));
    let (status, body) = server.curl(&["-H", &auth, &format!("{}/api/v1/status", server.url)]);
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["Backups"], 1, "{v}");
    assert_eq!(v["Schedules"][0]["Name"], "nightly", "{v}");
    assert_eq!(v["Schedules"][0]["ConsecutiveFailures"], 0);
    assert!(v["Schedules"][0]["LastSuccess"].is_string(), "{v}");
    let next = v["Schedules"][0]["NextRun"].as_str().unwrap();
    assert!(
        next.ends_with('Z') || next.contains("UTC") || next.contains(':'),
        "{v}"
    );
    assert_eq!(v["PointInTime"], serde_json::json!([]));
    let (status, page) = server.curl(&["-H", &auth, &format!("{}/", server.url)]);
    assert_eq!(status, 200);
    assert!(
        page.contains("<h2>Schedules</h2>") && page.contains("<td>nightly</td>"),
        "{page}"
    );
}
