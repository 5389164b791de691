//! What a connector server (or the sender) runs on in a test: a fresh database, LocalStack, a
//! Slack double with one workspace and a secret prefix of its own, and the `CONNECTOR__…`
//! variables that point a server at them. Every harness that starts a server builds on this:
//! the in-process servers of `bins/server`'s tests, the sender's rig, the chaos suite's
//! replicas (child processes, given the same variables).

use slack_double::{Channel, SlackDouble};

use crate::TestDatabase;

/// One Slack workspace of the double, with a bot token it accepts.
#[derive(Debug, Clone)]
pub struct Workspace {
    /// The team ID.
    pub team: &'static str,
    /// The bot token.
    pub token: &'static str,
    /// Channels generated before the named ones (many of them: more than one
    /// `conversations.list` page).
    pub generated_channels: usize,
    /// The named channels.
    pub channels: Vec<Channel>,
}

impl Workspace {
    /// Workspace `team` whose bot token is `token`, with two generated channels and `#alerts`
    /// (`C0ALERTS01`).
    pub fn new(team: &'static str, token: &'static str) -> Self {
        Self {
            team,
            token,
            generated_channels: 2,
            channels: vec![Channel::public("C0ALERTS01", "alerts")],
        }
    }

    /// With `n` generated channels.
    pub fn with_generated_channels(mut self, n: usize) -> Self {
        self.generated_channels = n;
        self
    }

    /// With these named channels instead.
    pub fn with_channels(mut self, channels: Vec<Channel>) -> Self {
        self.channels = channels;
        self
    }

    /// Adds the workspace and its token to `double`.
    pub fn seed(&self, double: &SlackDouble) {
        double.state().add_generated_workspace(
            self.team,
            self.generated_channels,
            self.channels.clone(),
        );
        double.state().add_token(self.token, self.team);
    }
}

/// Where a server's dependencies answer.
#[derive(Debug, Clone)]
pub struct Endpoints {
    /// The PostgreSQL URL.
    pub database_url: String,
    /// Secrets Manager (LocalStack, or a proxy in front of it).
    pub aws_endpoint: String,
    /// The prefix of every secret name.
    pub secret_prefix: String,
    /// Slack's Web API (the double).
    pub slack_api_base_url: String,
}

impl Endpoints {
    /// The `CONNECTOR__…` variables that point a server at these endpoints (with LocalStack's
    /// test credentials), and nothing else.
    pub fn dependency_env(&self) -> Vec<(String, String)> {
        [
            ("CONNECTOR__DATABASE__URL", self.database_url.as_str()),
            ("CONNECTOR__AWS__ENDPOINT_URL", &self.aws_endpoint),
            ("CONNECTOR__AWS__ACCESS_KEY_ID", "test"),
            ("CONNECTOR__AWS__SECRET_ACCESS_KEY", "test"),
            ("CONNECTOR__SECRETS__PREFIX", &self.secret_prefix),
            ("CONNECTOR__SLACK__API_BASE_URL", &self.slack_api_base_url),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    }

    /// The variables of an in-process test server: [`Endpoints::dependency_env`], then
    /// [`QUIET_SERVER`].
    pub fn server_env(&self) -> Vec<(String, String)> {
        let mut env = self.dependency_env();
        env.extend(
            QUIET_SERVER
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        env
    }
}

/// What every test server shares whatever it stores in: ephemeral ports, a quick Slack
/// deadline, and no periodic job.
pub const QUIET_SERVER: &[(&str, &str)] = &[
    ("CONNECTOR__GRPC__LISTEN_ADDR", "127.0.0.1:0"),
    ("CONNECTOR__HTTP__LISTEN_ADDR", "127.0.0.1:0"),
    ("CONNECTOR__ADMIN__LISTEN_ADDR", "127.0.0.1:0"),
    ("CONNECTOR__SLACK__DEADLINE_SECS", "5"),
    ("CONNECTOR__RECONCILER__INTERVAL_SECS", "0"),
    ("CONNECTOR__TOKEN_REFRESH__INTERVAL_SECS", "0"),
    ("CONNECTOR__OAUTH_STATE_PURGE__INTERVAL_SECS", "0"),
];

/// A fresh database, LocalStack (required to answer), a Slack double with `workspace`, and a
/// secret prefix no other test uses.
#[derive(Debug)]
pub struct TestStack {
    /// The database (dropped with the stack).
    pub db: TestDatabase,
    /// The Slack double.
    pub double: SlackDouble,
    /// Secrets Manager's endpoint.
    pub aws_endpoint: String,
    /// The prefix of this stack's secret names (`{tag}-{uuid}/`).
    pub prefix: String,
}

impl TestStack {
    /// Starts a double with `workspace`; `tag` starts the secret prefix.
    pub async fn start(workspace: &Workspace, tag: &str) -> anyhow::Result<Self> {
        Self::on_double(SlackDouble::start().await?, workspace, tag).await
    }

    /// Like [`TestStack::start`], on a double the caller started (to know its address
    /// first).
    pub async fn on_double(
        double: SlackDouble,
        workspace: &Workspace,
        tag: &str,
    ) -> anyhow::Result<Self> {
        let aws_endpoint = crate::require_localstack().await?;
        let db = TestDatabase::create().await?;
        workspace.seed(&double);
        Ok(Self {
            db,
            double,
            aws_endpoint,
            prefix: format!("{tag}-{}/", uuid::Uuid::new_v4().simple()),
        })
    }

    /// Where this stack's services answer.
    pub fn endpoints(&self) -> Endpoints {
        Endpoints {
            database_url: self.db.url().to_owned(),
            aws_endpoint: self.aws_endpoint.clone(),
            secret_prefix: self.prefix.clone(),
            slack_api_base_url: self.double.api_base_url(),
        }
    }

    /// The `CONNECTOR__…` variables of a server on this stack ([`Endpoints::server_env`]).
    pub fn server_env(&self) -> Vec<(String, String)> {
        self.endpoints().server_env()
    }

    /// The name connector `id` of `tenant`'s secret has.
    pub fn secret_name(&self, tenant: &str, id: &str) -> String {
        format!("{}{tenant}/{id}", self.prefix)
    }
}
