//! The command line: `auscult [serve]` and `auscult config check`.

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
    }
}

fn config_check(config: &Config) -> ExitCode {
    print!("{}", config.redacted_summary());
    match config.validate_for_serve() {
        Ok(()) => {
            println!("configuration OK");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("auscult: {e}");
            ExitCode::from(2)
        }
    }
}

fn serve(config: Config) -> ExitCode {
    telemetry::init_logging(config.log_format);
    if let Err(e) = config.validate_for_serve() {
        tracing::error!(event = "startup_failed", error = %e);
        eprintln!("auscult: {e}");
        return ExitCode::from(2);
    }
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
            "no API tokens configured: every client on this machine is the user \"local\" (loopback only)"
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
