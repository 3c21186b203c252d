//! `backups completions SHELL` (a completion script for bash, zsh or fish,
//! generated from the clap definitions by clap_complete), the hidden
//! `backups man --out DIR` (a man page per command, by clap_mangen) and the
//! hidden `backups __complete-ids` that the scripts call to offer backup ids.
//!
//! The scripts are clap_complete's static ones with a small addition: for
//! the commands that take a backup id, a word that is not an option (nor
//! an option's value) is completed with the ids in the configured store,
//! listed by `backups __complete-ids` (the global options on the command
//! line, such as `--store`, passed on; a few seconds at most, nothing on any
//! error). Static scripts need no call to the binary for the rest, and a
//! slow or unreachable store costs only the ids.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use backups_core::Backups;
use clap::ValueEnum;

use crate::context::Context;
use crate::failure::{CliResult, io_failure};
use crate::output::out;

/// The commands whose arguments are backup ids.
pub const ID_COMMANDS: &[&str] = &[
    "show", "download", "restore", "remove", "label", "notes", "verify", "copy",
];

/// Examples after `backups completions --help`.
pub const AFTER_HELP: &str = "\
Examples:
  backups completions bash > /etc/bash_completion.d/backups
  backups completions zsh > /usr/local/share/zsh/site-functions/_backups
  backups completions fish > ~/.config/fish/completions/backups.fish
  source <(backups completions bash)          # this shell only

The Debian package installs all three. Backup ids are offered for show,
download, restore, remove, label, notes and verify, listed from the store
the command line (--store, --config, --profile), the environment or the
config file names; a store that does not answer within 3 seconds offers
none.";

/// A shell with a completion script.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Shell {
    /// GNU bash (with the bash-completion package).
    Bash,
    /// Z shell.
    Zsh,
    /// fish.
    Fish,
}

/// `backups completions`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The shell to print the script for.
    #[arg(value_enum)]
    pub shell: Shell,
}

/// `backups man` (hidden: for packaging).
#[derive(Debug, clap::Args)]
pub struct ManArgs {
    /// The directory to write backups.1 and backups-<command>.1 into
    /// (created if missing).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
}

/// `backups __complete-ids` (hidden: for the completion scripts).
#[derive(Debug, clap::Args)]
pub struct IdsArgs {
    /// Give up (printing nothing) after this many milliseconds.
    #[arg(long, default_value_t = 3000, value_name = "MS")]
    pub timeout_ms: u64,
}

/// Prints the completion script for `shell`; `cli` is the whole command line.
pub fn print(cli: clap::Command, shell: Shell) -> CliResult {
    out(&script(cli, shell))
}

/// The completion script: clap_complete's, with backup ids added.
pub fn script(mut cli: clap::Command, shell: Shell) -> String {
    cli.build();
    let mut buf = Vec::new();
    match shell {
        Shell::Bash => {
            clap_complete::generate(clap_complete::Shell::Bash, &mut cli, "backups", &mut buf)
        }
        Shell::Zsh => {
            clap_complete::generate(clap_complete::Shell::Zsh, &mut cli, "backups", &mut buf)
        }
        Shell::Fish => {
            clap_complete::generate(clap_complete::Shell::Fish, &mut cli, "backups", &mut buf)
        }
    }
    let generated = String::from_utf8_lossy(&buf).into_owned();
    let words = Words::of(&cli);
    match shell {
        Shell::Bash => format!("{generated}\n{}", bash_ids(&words)),
        Shell::Zsh => zsh_with_ids(&generated, &words),
        Shell::Fish => format!("{generated}\n{}", fish_ids(&words)),
    }
}

/// What the id completion needs to know of the command line, taken from
/// the clap definitions so it follows them.
struct Words {
    /// Global options (long, with `--`): passed on to `__complete-ids`.
    globals: Vec<(String, bool)>,
    /// Per id command: its options that take a value (`--x` and `-x`),
    /// globals included; after one of them the word is its value.
    valued: Vec<(String, Vec<String>)>,
}

impl Words {
    fn of(cli: &clap::Command) -> Words {
        let spellings = |a: &clap::Arg| {
            let mut s: Vec<String> = a
                .get_long_and_visible_aliases()
                .unwrap_or_default()
                .into_iter()
                .map(|l| format!("--{l}"))
                .collect();
            s.extend(
                a.get_short_and_visible_aliases()
                    .unwrap_or_default()
                    .into_iter()
                    .map(|c| format!("-{c}")),
            );
            s
        };
        let takes_value = |a: &clap::Arg| a.get_num_args().is_some_and(|n| n.takes_values());
        let mut globals = Vec::new();
        for a in cli.get_arguments().filter(|a| a.is_global_set()) {
            for s in spellings(a).into_iter().filter(|s| s.starts_with("--")) {
                globals.push((s, takes_value(a)));
            }
        }
        let mut valued = Vec::new();
        for name in ID_COMMANDS {
            let Some(sub) = cli.find_subcommand(name) else {
                continue;
            };
            let mut opts: Vec<String> = sub
                .get_arguments()
                .filter(|a| !a.is_positional() && takes_value(a))
                .flat_map(spellings)
                .collect();
            opts.sort();
            opts.dedup();
            valued.push((name.to_string(), opts));
        }
        Words { globals, valued }
    }

    /// `--opt=*` for each global option taking a value (a word the shell
    /// did not split at `=`).
    fn joined_pattern(&self) -> String {
        self.globals
            .iter()
            .filter(|(_, v)| *v)
            .map(|(s, _)| format!("{s}=*"))
            .collect::<Vec<_>>()
            .join("|")
    }

    fn global_pattern(&self, valued: bool) -> String {
        self.globals
            .iter()
            .filter(|(_, v)| *v == valued)
            .map(|(s, _)| s.as_str())
            .collect::<Vec<_>>()
            .join("|")
    }
}

fn bash_ids(w: &Words) -> String {
    let mut cases = String::new();
    for (name, opts) in &w.valued {
        let _ = writeln!(cases, "        {name}) valued=\" {} \" ;;", opts.join(" "));
    }
    format!(
        r#"# Backup ids (from `backups __complete-ids`) for the commands that take
# them; clap's completion for everything else.
_backups_with_ids() {{
    local cur=${{COMP_WORDS[COMP_CWORD]}} prev=${{COMP_WORDS[COMP_CWORD-1]}}
    local i w cmd="" valued="" args=()
    for ((i = 1; i < COMP_CWORD; i++)); do
        w=${{COMP_WORDS[i]}}
        case "$w" in
            {valued_globals})
                if [[ ${{COMP_WORDS[i+1]}} == "=" ]]; then
                    args+=("$w=${{COMP_WORDS[i+2]}}"); i=$((i + 2))
                else
                    args+=("$w" "${{COMP_WORDS[i+1]}}"); i=$((i + 1))
                fi
                continue ;;
            {flag_globals}|{joined_globals}) args+=("$w"); continue ;;
            -*) continue ;;
        esac
        if [[ -z $cmd ]]; then cmd=$w; fi
    done
    case "$cmd" in
{cases}        *) cmd="" ;;
    esac
    if [[ -n $cmd && $cur != -* && $prev != "=" && $valued != *" $prev "* ]]; then
        local ids
        ids=$(backups "${{args[@]}}" __complete-ids 2>/dev/null)
        COMPREPLY=($(compgen -W "$ids" -- "$cur"))
        return 0
    fi
    _backups "$@"
}}
if [[ "${{BASH_VERSINFO[0]}}" -eq 4 && "${{BASH_VERSINFO[1]}}" -ge 4 || "${{BASH_VERSINFO[0]}}" -gt 4 ]]; then
    complete -F _backups_with_ids -o nosort -o bashdefault -o default backups
else
    complete -F _backups_with_ids -o bashdefault -o default backups
fi
"#,
        valued_globals = w.global_pattern(true),
        flag_globals = w.global_pattern(false),
        joined_globals = w.joined_pattern(),
    )
}

/// The marker after which clap's zsh script registers or calls `_backups`.
const ZSH_TAIL: &str = "if [ \"$funcstack[1]\" = \"_backups\" ]; then";

/// clap's zsh script with its `_backups` renamed `_backups_clap` and a
/// `_backups` in front that offers ids, so both ways zsh loads it (autoload
/// from fpath, or `source`) reach the wrapper.
fn zsh_with_ids(generated: &str, w: &Words) -> String {
    let renamed = generated.replacen("\n_backups() {\n", "\n_backups_clap() {\n", 1);
    let mut cases = String::new();
    for (name, opts) in &w.valued {
        let _ = writeln!(cases, "        ({name}) valued=\" {} \" ;;", opts.join(" "));
    }
    let wrapper = format!(
        r#"# Backup ids (from `backups __complete-ids`) for the commands that take
# them; clap's completion (_backups_clap) for everything else.
_backups() {{
    local i w cmd= valued= cur=${{words[CURRENT]}} prev=${{words[CURRENT-1]}}
    local -a args ids
    for ((i = 2; i < CURRENT; i++)); do
        w=${{words[i]}}
        case $w in
            ({valued_globals}) args+=($w ${{words[i+1]}}); (( i++ )); continue ;;
            ({flag_globals}|{joined_globals}) args+=($w); continue ;;
            (-*) continue ;;
        esac
        [[ -z $cmd ]] && cmd=$w
    done
    case $cmd in
{cases}        (*) cmd= ;;
    esac
    if [[ -n $cmd && $cur != -* && $valued != *" $prev "* ]]; then
        ids=(${{(f)"$(backups $args __complete-ids 2>/dev/null)"}})
        compadd -a ids
        return
    fi
    _backups_clap "$@"
}}

"#,
        valued_globals = w.global_pattern(true),
        flag_globals = w.global_pattern(false),
        joined_globals = w.joined_pattern(),
    );
    match renamed.find(ZSH_TAIL) {
        Some(at) => format!("{}{wrapper}{}", &renamed[..at], &renamed[at..]),
        None => format!("{renamed}\n{wrapper}compdef _backups backups\n"),
    }
}

fn fish_ids(w: &Words) -> String {
    let valued = w
        .globals
        .iter()
        .filter(|(_, v)| *v)
        .map(|(s, _)| s.as_str())
        .collect::<Vec<_>>()
        .join(" ");
    let flags = w
        .globals
        .iter()
        .filter(|(_, v)| !*v)
        .map(|(s, _)| s.as_str())
        .collect::<Vec<_>>()
        .join(" ");
    let with_eq = w
        .globals
        .iter()
        .filter(|(_, v)| *v)
        .map(|(s, _)| format!("'{s}=*'"))
        .collect::<Vec<_>>()
        .join(" ");
    format!(
        r#"# Backup ids (from `backups __complete-ids`) for the commands that take them.
function __backups_ids
    set -l words (commandline -opc)
    set -e words[1]
    set -l args
    while set -q words[1]
        switch $words[1]
            case {valued}
                set -a args $words[1] $words[2]
                set -e words[1]
            case {with_eq} {flags}
                set -a args $words[1]
        end
        set -e words[1]
    end
    backups $args __complete-ids 2>/dev/null
end
{completes}"#,
        completes = ID_COMMANDS
            .iter()
            .map(|c| {
                format!(
                    "complete -c backups -n \"__fish_backups_using_subcommand {c}\" -f -a \"(__backups_ids)\"\n"
                )
            })
            .collect::<String>(),
    )
}

/// Writes a man page for `cli` and each of its (not hidden) subcommands,
/// at every depth: `backups.1`, `backups-create.1`, `backups-schedule-run.1`...
pub fn man(cli: clap::Command, args: ManArgs) -> CliResult {
    std::fs::create_dir_all(&args.out)
        .map_err(|e| io_failure(&format!("creating {}", args.out.display()), e))?;
    clap_mangen::generate_to(cli, &args.out)
        .map_err(|e| io_failure(&format!("writing man pages to {}", args.out.display()), e))
}

/// Prints the store's backup ids, newest first, one a line; nothing (and
/// success) when the store is slow, unreachable or a local directory that
/// does not exist (opening it would create it).
pub async fn ids(ctx: Context, args: IdsArgs) -> CliResult {
    let list =
        tokio::time::timeout(Duration::from_millis(args.timeout_ms), ctx.backups.list()).await;
    let Ok(Ok(list)) = list else {
        return Ok(());
    };
    let mut text = String::new();
    for meta in list {
        if let Some(id) = &meta.id {
            let _ = writeln!(text, "{id}");
        }
    }
    out(&text)
}

/// Whether `url` names a local directory that does not exist yet.
pub fn missing_local_store(url: &str) -> bool {
    let path = match url.strip_prefix("file://") {
        Some(p) => p,
        None if url.contains("://") => return false,
        None => url,
    };
    !std::path::Path::new(path).exists()
}
