//! `connector-send`: posts a message through a connector from the shell.
//!
//! ```text
//! connector-send [--config FILE] [--channel CHANNEL] [--thread-ts TS] [--reply-broadcast]
//!                [--blocks-json JSON] [--file PATH]... [--request-id KEY] <CONNECTOR_ID> <MESSAGE>
//! connector-send update [--config FILE] [--blocks-json JSON] <CONNECTOR_ID> <CHANNEL_ID> <TS> <MESSAGE>
//! connector-send delete [--config FILE] <CONNECTOR_ID> <CHANNEL_ID> <TS>
//! connector-send schedule [--config FILE] [--channel CHANNEL] <CONNECTOR_ID> <POST_AT> <MESSAGE>
//! connector-send cancel [--config FILE] <CONNECTOR_ID> <CHANNEL_ID> <SCHEDULED_MESSAGE_ID>
//! ```
//! `schedule` posts the message at `POST_AT` (RFC 3339, e.g. `2026-12-01T09:00:00Z`) and prints
//! the channel ID and Slack's scheduled message ID, which `cancel` takes.
//! `update` replaces the text of a message the connector posted (`chat.update`), `delete`
//! removes it (`chat.delete`); both name it by the channel ID and `ts` a send printed.
//! Configuration comes from the same `CONNECTOR__…` variables as `connector-server` (and
//! `--config FILE`). On success it prints the channel ID and the message `ts`, separated by a
//! space; the `ts` of thread continuations and the IDs of uploaded files follow on their own
//! lines. Exit codes: 0 sent; 1 failed; 2 bad usage or configuration; 3 connector (or, for update and delete, message) not found;
//! 4 rate-limited, the same --request-id still in progress, or its lost answer not yet
//! checkable in the channel's history (retry later); 5 a dependency is
//! unavailable, or Slack's answer was lost (retry with the same --request-id: it never posts
//! twice); 6 partly delivered; 7 an earlier send with this --request-id may have been posted,
//! so it was not posted again.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use connector_sender::{
    ChannelId, ChannelRef, Error, FileAttachment, Message, MessageEdit, RequestId, SendError,
    Sender, SenderConfig,
};

/// Posts a message to a connector's default Slack channel.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// The connector's ID (a UUID).
    connector_id: String,
    /// The message text (Slack mrkdwn). Longer than 40,000 characters continues in its thread.
    message: String,
    /// Post here instead of the default channel: a name (#alerts) or an ID (C…).
    #[arg(long, value_name = "CHANNEL")]
    channel: Option<String>,
    /// Reply in this thread (a parent message's ts).
    #[arg(long, value_name = "TS")]
    thread_ts: Option<String>,
    /// With --thread-ts: also show the reply in the channel.
    #[arg(long, requires = "thread_ts")]
    reply_broadcast: bool,
    /// Block Kit blocks: a JSON array, or @PATH to read it from a file.
    #[arg(long, value_name = "JSON")]
    blocks_json: Option<String>,
    /// Upload this file to the same channel (repeatable).
    #[arg(long = "file", value_name = "PATH")]
    files: Vec<PathBuf>,
    /// Idempotency key (1-128 printable ASCII characters): the same connector and key within
    /// 24 hours posts once, so a retried command never posts twice.
    #[arg(long, value_name = "KEY")]
    request_id: Option<String>,
    /// A TOML configuration file laid out like the server's; CONNECTOR__… variables win.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
}

/// Replaces the text of a message the connector posted.
#[derive(Parser, Debug)]
#[command(name = "connector-send update")]
struct UpdateArgs {
    /// The connector's ID (a UUID).
    connector_id: String,
    /// The message's channel ID, as a send printed it.
    channel_id: String,
    /// The message's ts, as a send printed it.
    ts: String,
    /// The new text (Slack mrkdwn).
    message: String,
    /// New Block Kit blocks: a JSON array, or @PATH to read it from a file.
    #[arg(long, value_name = "JSON")]
    blocks_json: Option<String>,
    /// A TOML configuration file laid out like the server's; CONNECTOR__… variables win.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
}

/// Deletes a message the connector posted.
#[derive(Parser, Debug)]
#[command(name = "connector-send delete")]
struct DeleteArgs {
    /// The connector's ID (a UUID).
    connector_id: String,
    /// The message's channel ID, as a send printed it.
    channel_id: String,
    /// The message's ts, as a send printed it.
    ts: String,
    /// A TOML configuration file laid out like the server's; CONNECTOR__… variables win.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
}

/// Schedules a message.
#[derive(Parser, Debug)]
#[command(name = "connector-send schedule")]
struct ScheduleArgs {
    /// The connector's ID (a UUID).
    connector_id: String,
    /// When to post it: RFC 3339 (2026-12-01T09:00:00Z), at most 120 days ahead.
    post_at: String,
    /// The message text (Slack mrkdwn), at most 40,000 characters.
    message: String,
    /// Post there instead of the default channel: a name (#alerts) or an ID (C…).
    #[arg(long, value_name = "CHANNEL")]
    channel: Option<String>,
    /// A TOML configuration file laid out like the server's; CONNECTOR__… variables win.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
}

/// Cancels a scheduled message.
#[derive(Parser, Debug)]
#[command(name = "connector-send cancel")]
struct CancelArgs {
    /// The connector's ID (a UUID).
    connector_id: String,
    /// The channel ID `schedule` printed.
    channel_id: String,
    /// The scheduled message ID `schedule` printed (Q…).
    scheduled_message_id: String,
    /// A TOML configuration file laid out like the server's; CONNECTOR__… variables win.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
}

/// What the command line asks for: a send (the first form, kept as it always was), or an
/// operation on a posted or scheduled message.
enum Command {
    Send(Args),
    Update(UpdateArgs),
    Delete(DeleteArgs),
    Schedule(ScheduleArgs),
    Cancel(CancelArgs),
}

fn command() -> Command {
    let mut argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    match argv.get(1).and_then(|a| a.to_str()) {
        Some("update") => {
            argv.remove(1);
            Command::Update(UpdateArgs::parse_from(argv))
        }
        Some("delete") => {
            argv.remove(1);
            Command::Delete(DeleteArgs::parse_from(argv))
        }
        Some("schedule") => {
            argv.remove(1);
            Command::Schedule(ScheduleArgs::parse_from(argv))
        }
        Some("cancel") => {
            argv.remove(1);
            Command::Cancel(CancelArgs::parse_from(argv))
        }
        _ => Command::Send(Args::parse_from(argv)),
    }
}

fn load_config(path: Option<&PathBuf>) -> Result<SenderConfig, (u8, String)> {
    match path {
        Some(path) => SenderConfig::from_file(path),
        None => SenderConfig::from_env(),
    }
    .map_err(|e| (2, e.to_string()))
}

async fn read_blocks(blocks: Option<String>) -> Result<Option<String>, (u8, String)> {
    let Some(blocks) = blocks else {
        return Ok(None);
    };
    Ok(Some(match blocks.strip_prefix('@') {
        Some(path) => tokio::fs::read_to_string(path)
            .await
            .map_err(|e| (2, format!("--blocks-json: cannot read {path}: {e}")))?,
        None => blocks,
    }))
}

async fn update(args: UpdateArgs) -> Result<Vec<String>, (u8, String)> {
    let config = load_config(args.config.as_ref())?;
    let edit = MessageEdit {
        channel: ChannelId::new(args.channel_id),
        ts: args.ts,
        text: args.message,
        blocks_json: read_blocks(args.blocks_json).await?,
    };
    let sender = Sender::connect(&config)
        .await
        .map_err(|e| (exit_code(&e), e.to_string()))?;
    let updated = sender
        .update(&args.connector_id, edit)
        .await
        .map_err(|e| (exit_code(&e), e.to_string()))?;
    Ok(vec![format!("{} {}", updated.channel, updated.ts)])
}

async fn delete(args: DeleteArgs) -> Result<Vec<String>, (u8, String)> {
    let config = load_config(args.config.as_ref())?;
    let sender = Sender::connect(&config)
        .await
        .map_err(|e| (exit_code(&e), e.to_string()))?;
    sender
        .delete(&args.connector_id, &args.channel_id, &args.ts)
        .await
        .map_err(|e| (exit_code(&e), e.to_string()))?;
    Ok(Vec::new())
}

async fn schedule(args: ScheduleArgs) -> Result<Vec<String>, (u8, String)> {
    let config = load_config(args.config.as_ref())?;
    let at = chrono::DateTime::parse_from_rfc3339(&args.post_at)
        .map_err(|e| {
            (
                2,
                format!("POST_AT: not an RFC 3339 time ({e}): {}", args.post_at),
            )
        })?
        .with_timezone(&chrono::Utc);
    let mut message = Message::from(args.message).post_at(at);
    if let Some(channel) = &args.channel {
        message.channel = Some(
            ChannelRef::parse("channel", channel).map_err(|e| (2, format!("--channel: {e}")))?,
        );
    }
    let sent = connector_sender::send_message(&config, &args.connector_id, message)
        .await
        .map_err(|e| (exit_code(&e), e.to_string()))?;
    Ok(vec![format!(
        "{} {}",
        sent.channel,
        sent.scheduled_message_id.unwrap_or_default()
    )])
}

async fn cancel(args: CancelArgs) -> Result<Vec<String>, (u8, String)> {
    let config = load_config(args.config.as_ref())?;
    let sender = Sender::connect(&config)
        .await
        .map_err(|e| (exit_code(&e), e.to_string()))?;
    sender
        .cancel_scheduled(
            &args.connector_id,
            &args.channel_id,
            &args.scheduled_message_id,
        )
        .await
        .map_err(|e| (exit_code(&e), e.to_string()))?;
    Ok(Vec::new())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let result = match command() {
        Command::Send(args) => run(args).await,
        Command::Update(args) => update(args).await,
        Command::Delete(args) => delete(args).await,
        Command::Schedule(args) => schedule(args).await,
        Command::Cancel(args) => cancel(args).await,
    };
    match result {
        #[allow(clippy::print_stdout)] // printing the result is this program's job
        Ok(lines) => {
            for line in lines {
                println!("{line}");
            }
            ExitCode::SUCCESS
        }
        Err((code, message)) => {
            eprintln!("connector-send: {message}");
            ExitCode::from(code)
        }
    }
}

async fn run(args: Args) -> Result<Vec<String>, (u8, String)> {
    let config = load_config(args.config.as_ref())?;

    let mut message = Message::from(args.message);
    if let Some(key) = &args.request_id {
        message.request_id = Some(
            RequestId::parse("request_id", key).map_err(|e| (2, format!("--request-id: {e}")))?,
        );
    }
    message.thread_ts = args.thread_ts;
    message.reply_broadcast = args.reply_broadcast;
    message.blocks_json = read_blocks(args.blocks_json).await?;
    if let Some(channel) = &args.channel {
        message.channel = Some(
            ChannelRef::parse("channel", channel).map_err(|e| (2, format!("--channel: {e}")))?,
        );
    }
    for path in args.files {
        let content = tokio::fs::read(&path)
            .await
            .map_err(|e| (2, format!("--file: cannot read {}: {e}", path.display())))?;
        let filename = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "file".into());
        message.files.push(FileAttachment {
            filename,
            title: None,
            content,
        });
    }

    let sent = connector_sender::send_message(&config, &args.connector_id, message)
        .await
        .map_err(|e| (exit_code(&e), e.to_string()))?;
    let mut lines = vec![format!("{} {}", sent.channel, sent.ts)];
    lines.extend(
        sent.continuation_ts
            .iter()
            .map(|ts| format!("continued {ts}")),
    );
    lines.extend(sent.file_ids.iter().map(|id| format!("file {id}")));
    Ok(lines)
}

fn exit_code(e: &Error) -> u8 {
    match e {
        Error::Config { .. }
        | Error::Send(SendError::Invalid(_) | SendError::RequestIdReused { .. }) => 2,
        Error::Send(SendError::ConnectorNotFound { .. } | SendError::MessageNotFound { .. }) => 3,
        Error::Send(
            SendError::RateLimited { .. }
            | SendError::ChannelPaced { .. }
            | SendError::TooManyInFlight { .. }
            | SendError::SendInProgress { .. }
            | SendError::EarlierOutcomeUnsettled { .. },
        ) => 4,
        Error::Send(SendError::Unavailable { .. } | SendError::OutcomeUnknown { .. }) => 5,
        Error::Send(SendError::PartiallySent { .. }) => 6,
        Error::Send(
            SendError::EarlierOutcomeUnknown { .. }
            | SendError::EarlierPartiallySent { .. }
            | SendError::QueuedEarlier { .. },
        ) => 7,
        Error::Send(_) => 1,
    }
}
