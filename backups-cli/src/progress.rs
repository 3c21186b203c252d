//! Progress on stderr: an indicatif bar, plain lines, or nothing.

use std::io::IsTerminal;
use std::sync::Mutex;

use backups_core::Progress;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::args::ProgressMode;

/// Plain mode prints a line every this many bytes.
const PLAIN_STEP: u64 = 16 * 1024 * 1024;

/// The CLI's [`Progress`].
pub struct CliProgress {
    bar: Option<ProgressBar>,
    plain: bool,
    quiet: bool,
    verbose: bool,
    state: Mutex<PlainState>,
}

#[derive(Default)]
struct PlainState {
    phase: String,
    total: Option<u64>,
    done: u64,
    last_line: u64,
}

impl CliProgress {
    /// Chooses the display from the mode and whether stderr is a terminal.
    pub fn new(mode: ProgressMode, quiet: bool, verbose: bool) -> Self {
        let tty = std::io::stderr().is_terminal();
        let (bar, plain) = match (mode, quiet) {
            (_, true) | (ProgressMode::None, _) => (false, false),
            (ProgressMode::Auto, _) => (tty, false),
            (ProgressMode::Bar, _) => (true, false),
            (ProgressMode::Plain, _) => (false, true),
        };
        let bar = bar.then(|| {
            let pb = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            pb.set_style(
                ProgressStyle::with_template(
                    "{msg:>11} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            pb
        });
        CliProgress {
            bar,
            plain,
            quiet,
            verbose,
            state: Mutex::new(PlainState::default()),
        }
    }

    /// A log line, its control characters escaped (file names from an
    /// archive may hold any byte).
    fn line(&self, text: &str) {
        let text = crate::output::escape(text);
        match &self.bar {
            Some(pb) => pb.println(text),
            None => stderr_line!("{text}"),
        }
    }
}

impl Progress for CliProgress {
    fn phase(&self, name: &str, total: Option<u64>) {
        if let Some(pb) = &self.bar {
            pb.reset();
            pb.set_length(total.unwrap_or(0));
            pb.set_message(name.to_string());
        }
        if let Ok(mut s) = self.state.lock() {
            *s = PlainState {
                phase: name.to_string(),
                total,
                ..Default::default()
            };
        }
        if self.plain {
            match total {
                Some(t) => stderr_line!("{name}: 0/{t} bytes"),
                None => stderr_line!("{name}..."),
            }
        }
    }

    fn advance(&self, bytes: u64) {
        if let Some(pb) = &self.bar {
            pb.inc(bytes);
        }
        if self.plain
            && let Ok(mut s) = self.state.lock()
        {
            s.done += bytes;
            if s.done - s.last_line >= PLAIN_STEP {
                s.last_line = s.done;
                match s.total {
                    Some(t) => stderr_line!("{}: {}/{t} bytes", s.phase, s.done),
                    None => stderr_line!("{}: {} bytes", s.phase, s.done),
                }
            }
        }
    }

    fn item(&self, name: &str) {
        if self.verbose {
            self.line(name);
        }
    }

    fn warn(&self, message: &str) {
        if !self.quiet {
            self.line(&format!("warning: {message}"));
        }
    }

    fn finish(&self) {
        if let Some(pb) = &self.bar {
            pb.finish_and_clear();
        }
        if self.plain
            && let Ok(s) = self.state.lock()
            && !s.phase.is_empty()
        {
            stderr_line!("{}: done ({} bytes)", s.phase, s.done);
        }
    }
}
