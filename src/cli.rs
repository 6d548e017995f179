//! The command line: `auscult [serve]`, `auscult config check`,
//! `auscult users add|list|disable` and `auscult health`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::app::App;
use crate::config::Config;
use crate::telemetry;

#[derive(Debug, Parser)]
#[command(
    name = "auscult",
    version,
    about = "Real-time streaming transcription server"
)]
struct Cli {
    /// TOML configuration file (also AUSCULT_CONFIG); environment variables override it.
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server (the default).
    Serve,
    /// Configuration tools.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Accounts that log in to the web page (in the configured database).
    Users {
        #[command(subcommand)]
        command: UsersCommand,
    },
    /// Exit 0 when the server configured here answers 200 on `/health` (on
    /// loopback when it listens on every address), 1 otherwise: the
    /// container image's health check.
    Health {
        /// Seconds to wait for the connection and for each read and write.
        #[arg(long, default_value_t = 3)]
        timeout_secs: u64,
    },
}

#[derive(Debug, Subcommand)]
enum UsersCommand {
    /// Add a user; the password (at least 10 characters) is asked for twice.
    Add {
        /// The username: letters, digits and . _ @ - (it becomes the user id in storage).
        name: String,
        /// Read the password from the first line of standard input instead.
        #[arg(long)]
        password_stdin: bool,
    },
    /// List users: name, disabled, created.
    List,
    /// Disable a user: it can no longer log in, its logins end, and its
    /// recordings in progress end (their audio is stored).
    Disable { name: String },
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Load and validate the configuration, print it with secrets redacted.
    Check,
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match Config::load(cli.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("auscult: {e}");
            return ExitCode::from(2);
        }
    };
    match cli.command.unwrap_or(Command::Serve) {
        Command::Config {
            command: ConfigCommand::Check,
        } => config_check(&config),
        Command::Serve => serve(config),
        Command::Users { command } => users(config, command),
        Command::Health { timeout_secs } => health(&config, timeout_secs),
    }
}

fn health(config: &Config, timeout_secs: u64) -> ExitCode {
    let addr = crate::probe::local_addr(config.listen);
    let timeout = std::time::Duration::from_secs(timeout_secs.max(1));
    match crate::probe::check(addr, "/health", timeout) {
        Ok(()) => {
            println!("healthy: {addr}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("auscult: unhealthy: {e}");
            ExitCode::FAILURE
        }
    }
}

fn config_check(config: &Config) -> ExitCode {
    print!("{}", config.redacted_summary());
    if config.needs_accounts() {
        // Whether accounts exist is known only to the database, which this
        // check does not open: the server itself refuses to start without them.
        eprintln!(
            "auscult: warning: no AUSCULT_API_TOKENS and {} is not a loopback address: \
             only login accounts authenticate, and the server refuses to start until one \
             exists (`auscult users add NAME`)",
            config.listen
        );
    }
    println!("configuration OK");
    ExitCode::SUCCESS
}

fn serve(config: Config) -> ExitCode {
    telemetry::init_logging(config.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("auscult: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(event = "startup_failed", error = %e);
            eprintln!("auscult: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(config: Config) -> Result<(), Box<dyn std::error::Error>> {
    if config.allows_local_user() {
        tracing::warn!(
            event = "auth_disabled",
            listen = %config.listen,
            "no API tokens configured: every client on this machine is the user \"local\" (loopback only) until a user account exists (auscult users add)"
        );
    }
    let listen = config.listen;
    let app = App::build(config).await?;
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    tracing::info!(event = "listening", %addr);
    app.run(listener, shutdown_signal()).await?;
    Ok(())
}

/// Resolves on SIGTERM (ECS stop) or SIGINT (Ctrl-C).
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => tracing::info!(event = "signal", signal = "SIGTERM"),
        _ = tokio::signal::ctrl_c() => tracing::info!(event = "signal", signal = "SIGINT"),
    }
}

fn users(config: Config, command: UsersCommand) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("auscult: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run_users(config, command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("auscult: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run_users(config: Config, command: UsersCommand) -> anyhow::Result<()> {
    use anyhow::Context as _;

    use crate::accounts::{AccountError, Accounts, Disabled};

    if let UsersCommand::Add { name, .. } = &command {
        crate::storage::keys::validate_id(name).map_err(AccountError::from)?;
    }
    // The same database, migrated the same way, as the server.
    let store = crate::storage::meta::open(&config.database_url, &config.database_pool)
        .await
        .context("opening the database")?;
    let accounts = Accounts::new(store, config.login_idle);
    match command {
        UsersCommand::Add {
            name,
            password_stdin,
        } => {
            if accounts.store().credentials(&name).await?.is_some() {
                return Err(AccountError::Exists(name).into());
            }
            let password = read_password(&name, password_stdin)?;
            accounts.add_user(&name, password, "cli").await?;
            println!("added user {name}");
        }
        UsersCommand::List => {
            let users = accounts.list_users().await?;
            print!("{}", users_table(&users));
        }
        UsersCommand::Disable { name } => match accounts.disable_user(&name, "cli").await? {
            Disabled::Now => println!("disabled user {name}"),
            Disabled::Already => println!("user {name} was already disabled"),
        },
    }
    Ok(())
}

/// The password from stdin's first line, or asked twice on the terminal without echo.
fn read_password(name: &str, from_stdin: bool) -> anyhow::Result<secrecy::SecretString> {
    use anyhow::Context as _;

    if from_stdin {
        let mut line = String::new();
        std::io::stdin()
            .read_line(&mut line)
            .context("reading the password from standard input")?;
        while line.ends_with(['\n', '\r']) {
            line.pop();
        }
        return Ok(line.into());
    }
    let no_tty = "cannot ask for the password (no terminal?): use --password-stdin";
    let first = rpassword::prompt_password(format!("Password for {name}: ")).context(no_tty)?;
    let again =
        secrecy::SecretString::from(rpassword::prompt_password("Repeat it: ").context(no_tty)?);
    let first = secrecy::SecretString::from(first);
    use secrecy::ExposeSecret as _;
    if first.expose_secret() != again.expose_secret() {
        anyhow::bail!("the two passwords differ");
    }
    Ok(first)
}

fn users_table(users: &[crate::storage::meta::User]) -> String {
    let width = users
        .iter()
        .map(|u| u.username.len())
        .chain([4])
        .max()
        .unwrap_or(4);
    let mut out = format!("{:width$}  DISABLED  CREATED\n", "NAME");
    for u in users {
        let created = time::OffsetDateTime::from_unix_timestamp(u.created_at_ms.div_euclid(1000))
            .ok()
            .and_then(|t| {
                t.format(&time::format_description::well_known::Rfc3339)
                    .ok()
            })
            .unwrap_or_else(|| u.created_at_ms.to_string());
        let disabled = if u.disabled { "yes" } else { "no" };
        out.push_str(&format!("{:width$}  {disabled:8}  {created}\n", u.username));
    }
    out
}
