//! `connector-server`: serves `connector.v1.ConnectorService`.
//!
//! ```text
//! connector-server [--config FILE] [serve]   # apply migrations, then serve (the default)
//! connector-server [--config FILE] migrate   # apply migrations and exit
//! connector-server [--config FILE] rotate-key  # embedded mode: re-encrypt secrets under a new key
//! ```

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use connector_app::{Settings, storage};
use connector_server::{Application, startup, telemetry};

/// Manages Slack connectors over gRPC.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Cli {
    /// A TOML configuration file, read after the defaults and before `CONNECTOR__…` variables.
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Apply pending migrations, then serve gRPC until SIGINT or SIGTERM (the default).
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Local secret store: add a new key to the key file, re-encrypt every secret under it and
    /// retire the keys nothing uses. Safe while servers run.
    RotateKey,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let settings = match Settings::load(cli.config.as_deref()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("connector-server: {e}");
            return ExitCode::from(2);
        }
    };
    telemetry::init(&settings.log);
    let result = match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(settings).await,
        Command::Migrate => migrate(settings).await,
        Command::RotateKey => rotate(settings).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "connector-server failed");
            eprintln!("connector-server: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    let app = Application::build(settings).await?;
    app.run_until_stopped(startup::shutdown_signal()).await
}

async fn migrate(settings: Settings) -> anyhow::Result<()> {
    let applied = storage::migrate(&settings).await?;
    tracing::info!(count = applied.len(), ?applied, "migrations applied");
    Ok(())
}

async fn rotate(settings: Settings) -> anyhow::Result<()> {
    if !settings.local_secrets()? {
        anyhow::bail!(
            "rotate-key rotates the local secret store's key; this configuration keeps secrets in AWS Secrets Manager, which manages its own encryption keys"
        );
    }
    let store = storage::open_local_secrets(&settings)?;
    let report = storage::rotate_key(&store).await?;
    tracing::info!(new_key_id = %report.new_key_id, reencrypted = report.reencrypted,
        retired = ?report.retired, "key rotated");
    Ok(())
}
