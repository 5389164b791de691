//! `connector-server`: serves `connector.v1.ConnectorService`.
//!
//! ```text
//! connector-server [--config FILE] [serve]   # apply migrations, then serve (the default)
//! connector-server [--config FILE] migrate   # apply migrations and exit
//! connector-server [--config FILE] rotate-key  # embedded mode: re-encrypt secrets under a new key
//! connector-server [--config FILE] api-key create (--tenant T | --all-tenants) --scope S… [--name N]
//! connector-server [--config FILE] api-key list
//! connector-server [--config FILE] api-key revoke ID
//! ```

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use connector_app::config::SecretsStore;
use connector_app::{Migrate, Services, storage};
use connector_domain::{ApiKeyId, Scopes};
use connector_server::{Application, ServerConfig, startup, telemetry};
use connector_usecases::NewApiKey;

/// mimalloc instead of glibc's malloc: with tokio's worker threads freeing what others
/// allocated, glibc's arena locks put a futex wait on the hot paths (docs/performance.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    /// Manage the static API keys callers authenticate with (CONNECTOR__AUTH__MODE=api_key).
    #[command(subcommand)]
    ApiKey(ApiKeyCommand),
}

#[derive(Subcommand, Debug)]
enum ApiKeyCommand {
    /// Create a key and print it (it is shown only this once; only its hash is stored).
    Create {
        /// The tenant the key acts for.
        #[arg(
            long,
            conflicts_with = "all_tenants",
            required_unless_present = "all_tenants"
        )]
        tenant: Option<String>,
        /// The key acts for every tenant; each request must then name its tenant_id.
        #[arg(long)]
        all_tenants: bool,
        /// A scope the key grants: connectors:read, connectors:write, messages:send,
        /// messages:manage (repeat for several).
        #[arg(long = "scope", required = true, value_name = "SCOPE")]
        scopes: Vec<String>,
        /// A label for operators.
        #[arg(long, default_value = "")]
        name: String,
    },
    /// List the keys: ID, tenant, scopes, name, created, revoked (never the key).
    List,
    /// Revoke a key by its ID; it stops working at once.
    Revoke {
        /// The key's ID (the 32 hex digits after `ck_`).
        id: String,
    },
    /// Add scopes to a key (a key made before `messages:manage` existed gets it only so).
    Grant {
        /// The key's ID (the 32 hex digits after `ck_`).
        id: String,
        /// A scope to add (repeat for several).
        #[arg(long = "scope", required = true, value_name = "SCOPE")]
        scopes: Vec<String>,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match ServerConfig::load(cli.config.as_deref()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("connector-server: {e}");
            return ExitCode::from(2);
        }
    };
    let telemetry = match telemetry::init(&config.log, config.otel.as_ref()) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("connector-server: {e:#}");
            return ExitCode::from(2);
        }
    };
    let result = match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(config).await,
        Command::Migrate => migrate(config).await,
        Command::RotateKey => rotate(config).await,
        Command::ApiKey(command) => api_key(config, command).await,
    };
    // The last spans are exported before the process ends.
    telemetry.shutdown();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "connector-server failed");
            eprintln!("connector-server: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(config: ServerConfig) -> anyhow::Result<()> {
    let app = Application::build(config).await?;
    app.run_until_stopped(startup::shutdown_signal()).await
}

async fn migrate(config: ServerConfig) -> anyhow::Result<()> {
    let applied = storage::migrate(&config.core.storage.metadata).await?;
    tracing::info!(count = applied.len(), ?applied, "migrations applied");
    Ok(())
}

async fn rotate(config: ServerConfig) -> anyhow::Result<()> {
    let SecretsStore::Local { dir, key } = &config.core.storage.secrets else {
        anyhow::bail!(
            "rotate-key rotates the local secret store's key; this configuration keeps secrets in AWS Secrets Manager, which manages its own encryption keys"
        );
    };
    let store = storage::open_local_secrets(dir, key)?;
    let report = storage::rotate_key(&store).await?;
    tracing::info!(new_key_id = %report.new_key_id, reencrypted = report.reencrypted,
        retired = ?report.retired, "key rotated");
    Ok(())
}

#[allow(clippy::print_stdout)]
async fn api_key(config: ServerConfig, command: ApiKeyCommand) -> anyhow::Result<()> {
    let keys = Services::open(&config.core, Migrate::Apply).await?.api_keys;
    match command {
        ApiKeyCommand::Create {
            tenant,
            all_tenants: _,
            scopes,
            name,
        } => {
            let key = NewApiKey::parse(tenant.as_deref(), &scopes, &name)?;
            let created = keys.create(key).await.map_err(|e| anyhow::anyhow!("{e}"))?;
            let r = &created.record;
            tracing::info!(target: "audit", action = "api_key.create", key_id = %r.id,
                tenant_id = %r.tenants, scopes = %r.scopes, "API key created");
            eprintln!(
                "API key {} for tenant {} with scopes {:?} created; it is shown only this once:",
                r.id,
                r.tenants,
                r.scopes.to_string()
            );
            println!("{}", secrecy::ExposeSecret::expose_secret(&created.key));
        }
        ApiKeyCommand::List => {
            println!("ID\tTENANT\tSCOPES\tNAME\tCREATED\tREVOKED");
            for r in keys.list().await.map_err(|e| anyhow::anyhow!("{e}"))? {
                println!(
                    "{}\t{}\t{}\t{}\t{}\t{}",
                    r.id,
                    r.tenants,
                    r.scopes,
                    r.name,
                    r.created_at
                        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                    r.revoked_at
                        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
                        .unwrap_or_else(|| "-".into())
                );
            }
        }
        ApiKeyCommand::Revoke { id } => {
            let id = ApiKeyId::parse("id", &id)?;
            keys.revoke(id).await.map_err(|e| anyhow::anyhow!("{e}"))?;
            tracing::info!(target: "audit", action = "api_key.revoke", key_id = %id, "API key revoked");
            eprintln!("API key {id} revoked");
        }
        ApiKeyCommand::Grant { id, scopes } => {
            let id = ApiKeyId::parse("id", &id)?;
            let scopes = Scopes::parse_names("scope", scopes.iter().map(String::as_str))?;
            let now = keys
                .grant(id, scopes)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            tracing::info!(target: "audit", action = "api_key.grant", key_id = %id,
                granted = %scopes, scopes = %now, "API key granted scopes");
            eprintln!("API key {id} now has: {now}");
        }
    }
    Ok(())
}
