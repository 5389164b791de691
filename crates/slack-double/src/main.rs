//! `slack-double`: serves the Slack Web API double for local runs.
//!
//! ```text
//! slack-double --listen 127.0.0.1:8765 --token xoxb-local-dev-token --team T0LOCAL01 \
//!     --channels general,alerts --generated-channels 2000
//! ```
//! Then point the server at it with `CONNECTOR__SLACK__API_BASE_URL=http://127.0.0.1:8765/api/`,
//! and for OAuth installs `CONNECTOR__SLACK__AUTHORIZE_URL=http://127.0.0.1:8765/oauth/v2/authorize`
//! with the client ID and secret given here (`--oauth-client-id`, `--oauth-client-secret`).

use std::net::SocketAddr;

use clap::Parser;
use slack_double::{Channel, SlackDouble, State};

/// Serves an HTTP double of Slack's Web API.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8765", env = "SLACK_DOUBLE_LISTEN")]
    listen: SocketAddr,
    /// A bot token the seeded workspace accepts (repeatable).
    #[arg(long = "token", default_value = "xoxb-local-dev-token")]
    tokens: Vec<String>,
    /// The seeded workspace's team ID.
    #[arg(long, default_value = "T0LOCAL01")]
    team: String,
    /// Named public channels of the seeded workspace (the bot is a member).
    #[arg(long, value_delimiter = ',', default_value = "general,alerts")]
    channels: Vec<String>,
    /// How many generated channels (channel-00001, …) come before the named ones.
    #[arg(long, default_value_t = 0)]
    generated_channels: usize,
    /// The client ID of the Slack app the OAuth endpoints act for.
    #[arg(long, default_value = "local-client-id")]
    oauth_client_id: String,
    /// Its client secret.
    #[arg(long, default_value = "local-client-secret")]
    oauth_client_secret: String,
    /// Issue rotating tokens (with refresh tokens) on install.
    #[arg(long)]
    oauth_rotation: bool,
    /// Deliver workspace events (`POST /_double/events`) to this request URL.
    #[arg(long)]
    events_url: Option<String>,
    /// The signing secret events are signed with.
    #[arg(long, default_value = "local-dev-signing-secret")]
    signing_secret: String,
    /// Enforce Slack's limits on chat.postMessage: posts a second per channel (unset: none;
    /// also `POST /_double/rate_limits`).
    #[arg(long)]
    channel_rate: Option<f64>,
    /// With --channel-rate: posts at once per channel.
    #[arg(long, default_value_t = 3)]
    channel_burst: u32,
    /// With --channel-rate: posts a minute per workspace.
    #[arg(long, default_value_t = 300.0)]
    workspace_rate_per_minute: f64,
    /// With --channel-rate: posts at once per workspace.
    #[arg(long, default_value_t = 10)]
    workspace_burst: u32,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let state = State::default();
    let named = args
        .channels
        .iter()
        .enumerate()
        .map(|(i, name)| Channel::public(&format!("C0NAMED{i:04}"), name))
        .collect();
    state.add_generated_workspace(&args.team, args.generated_channels, named);
    for token in &args.tokens {
        state.add_token(token, &args.team);
    }
    state.set_oauth_app(slack_double::OAuthApp {
        client_id: args.oauth_client_id.clone(),
        client_secret: args.oauth_client_secret.clone(),
        team_id: args.team.clone(),
        rotation: args.oauth_rotation,
        deny: false,
    });
    if let Some(rate) = args.channel_rate {
        state.set_rate_limits(Some(slack_double::RateLimits {
            channel_per_second: rate,
            channel_burst: args.channel_burst,
            workspace_per_minute: args.workspace_rate_per_minute,
            workspace_burst: args.workspace_burst,
        }));
    }
    let double = SlackDouble::start_on(args.listen, state).await?;
    if let Some(url) = &args.events_url {
        double.deliver_events_to(url, &args.signing_secret);
    }
    tracing::info!(api = %double.api_base_url(), team = %args.team, "slack double listening");
    tokio::signal::ctrl_c().await?;
    Ok(())
}
