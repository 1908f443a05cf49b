//! `stpt-server user ...` and `stpt-server token ...`: administration on the configured
//! database, for the first admin and for scripts.

use std::io::{BufRead, Write};
use stpt_core::accounts::{Accounts, Role, RunnerTokenId, random_secret};
use stpt_core::{Error, Result};

use crate::settings::{Command, TokenCommand, UserCommand};

/// Runs `command` on `accounts`, writing what it did to `out`. Passwords asked with
/// `--password-stdin` are read from `input`.
pub async fn run(
    command: Command,
    accounts: &Accounts,
    input: &mut dyn BufRead,
    out: &mut dyn Write,
) -> Result<()> {
    match command {
        Command::User(command) => user(command, accounts, input, out).await,
        Command::Token(command) => token(command, accounts, out).await,
        Command::Backup { .. } => Err(Error::invalid(
            "command",
            "`backup` runs before the stores open (see `stpt_server::backup`)",
        )),
    }
}

fn write(out: &mut dyn Write, text: std::fmt::Arguments<'_>) -> Result<()> {
    out.write_fmt(text)
        .and_then(|()| out.write_all(b"\n"))
        .map_err(Error::backend)
}

/// The password from stdin's first line, or a generated one (then `generated` is true).
fn password(from_stdin: bool, input: &mut dyn BufRead) -> Result<(String, bool)> {
    if from_stdin {
        let mut line = String::new();
        input.read_line(&mut line).map_err(Error::backend)?;
        let password = line.trim_end_matches(['\r', '\n']).to_owned();
        return Ok((password, false));
    }
    // 24 url-safe characters (~143 bits): strong, and easy to paste once.
    let mut generated = random_secret()?;
    generated.truncate(24);
    Ok((generated, true))
}

async fn user(
    command: UserCommand,
    accounts: &Accounts,
    input: &mut dyn BufRead,
    out: &mut dyn Write,
) -> Result<()> {
    match command {
        UserCommand::Create {
            username,
            email,
            role,
            password_stdin,
        } => {
            let role = Role::parse(&role)
                .ok_or_else(|| Error::invalid("role", "must be `admin` or `viewer`"))?;
            let (password, generated) = password(password_stdin, input)?;
            let user = accounts
                .create_user(&username, email.as_deref(), &password, role)
                .await?;
            write(
                out,
                format_args!("created {} `{}` (id {})", user.role, user.username, user.id),
            )?;
            if generated {
                write(out, format_args!("password: {password}"))?;
            }
            Ok(())
        }
        UserCommand::ResetPassword {
            username,
            password_stdin,
        } => {
            let user = accounts
                .user_by_name(&username)
                .await?
                .ok_or_else(|| Error::invalid("username", format!("no user `{username}`")))?;
            let (password, generated) = password(password_stdin, input)?;
            accounts.set_password(user.id, &password).await?;
            write(
                out,
                format_args!("password of `{}` set; signed out everywhere", user.username),
            )?;
            if generated {
                write(out, format_args!("password: {password}"))?;
            }
            Ok(())
        }
        UserCommand::List => {
            for user in accounts.users().await? {
                write(
                    out,
                    format_args!(
                        "{}\t{}\t{}\t{}",
                        user.id,
                        user.username,
                        user.role,
                        user.email.as_deref().unwrap_or("-")
                    ),
                )?;
            }
            Ok(())
        }
    }
}

async fn token(command: TokenCommand, accounts: &Accounts, out: &mut dyn Write) -> Result<()> {
    match command {
        TokenCommand::Create { name, machines } => {
            let issued = accounts.create_runner_token(&name, &machines).await?;
            let scope = if issued.token.machines.is_empty() {
                "any machine".to_owned()
            } else {
                issued.token.machines.join(", ")
            };
            write(
                out,
                format_args!(
                    "created runner token `{}` (id {}) for {scope}; it is shown only now:",
                    issued.token.name, issued.token.id
                ),
            )?;
            write(out, format_args!("{}", issued.secret))
        }
        TokenCommand::List => {
            for token in accounts.runner_tokens().await? {
                let machines = if token.machines.is_empty() {
                    "any".to_owned()
                } else {
                    token.machines.join(",")
                };
                let state = token.revoked_at.map_or_else(
                    || "active".to_owned(),
                    |at| format!("revoked {}", at.to_rfc3339()),
                );
                write(
                    out,
                    format_args!("{}\t{}\t{machines}\t{state}", token.id, token.name),
                )?;
            }
            Ok(())
        }
        TokenCommand::Revoke { id } => {
            let token = accounts.revoke_runner_token(RunnerTokenId(id)).await?;
            write(
                out,
                format_args!("revoked runner token `{}` (id {})", token.name, token.id),
            )
        }
    }
}
