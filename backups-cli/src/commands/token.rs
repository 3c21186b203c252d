//! `backups token generate`: a bearer token for `backups serve`.

use backups_server::{Role, generate_token, token_line};

use crate::failure::{CliResult, Failure, OTHER};
use crate::output::out;

/// Examples and notes after `backups token --help`.
pub const AFTER_HELP: &str = "\
Examples:
  backups token generate --name controller-0 --role append
  backups token generate --name ops --role operator

Prints two lines: the token (256 random bits; it is shown only this once:
put it in a file for the client's --remote-token-file), then the line to
append to the server's --tokens-file (the token's SHA-256, its name and its
role; the server never stores the token itself). Roles: read (list, show,
download, the status page), append (read, plus create, upload, verify,
label, notes; never remove, forget or restore), operator (everything).";

/// `backups token`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub command: TokenCommand,
}

/// The token subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum TokenCommand {
    /// Make a token: prints it once, and the line for the tokens file.
    Generate(GenerateArgs),
}

/// `backups token generate`.
#[derive(Debug, clap::Args)]
pub struct GenerateArgs {
    /// The token's name, as the server's log shows it ([A-Za-z0-9._-], at most 64).
    #[arg(long, value_parser = parse_name)]
    pub name: String,
    /// What the token may do: read, append or operator.
    #[arg(long, value_parser = clap::builder::PossibleValuesParser::new(["read", "append", "operator"]))]
    pub role: String,
}

fn parse_name(s: &str) -> Result<String, String> {
    let ok = !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(s.to_string())
    } else {
        Err(format!(
            "{s:?}: a token name is 1 to 64 of A-Z, a-z, 0-9, '.', '_' and '-'"
        ))
    }
}

/// Prints a new token and its tokens-file line.
pub fn run(quiet: bool, args: Args) -> CliResult {
    let TokenCommand::Generate(args) = args.command;
    let role: Role = args.role.parse().map_err(Failure::usage)?;
    let token = generate_token().map_err(|e| Failure {
        message: format!("cannot get random bytes for a token: {e}"),
        code: OTHER,
    })?;
    out(&format!(
        "{token}\n{}\n",
        token_line(&token, &args.name, role)
    ))?;
    crate::output::say(
        quiet,
        "The first line is the token, shown only now (keep it in a file for --remote-token-file); append the second line to the server's --tokens-file.",
    );
    Ok(())
}
