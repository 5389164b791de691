use std::sync::Arc;

use connector_adapters_aws::{AwsSecretStore, AwsSettings, StaticCredentials};
use connector_adapters_postgres::PgConnectorRepository;
use connector_adapters_slack::{HttpSlackApi, SlackSettings};
use connector_domain::SecretPrefix;
use connector_ports::{Connectors, RepositorySettings};
use connector_sender::SenderConfig;
use connector_usecases::{ConnectorService, CreateConnector, Ports, SystemClock};
use slack_double::{Channel, SlackDouble};
use test_support::TestDatabase;
use test_support::stack::{TestStack, Workspace};

pub(crate) const TOKEN: &str = "xoxb-5555-6666-sendertests";
pub(crate) const TEAM: &str = "T0SENDER1";

/// A [`TestStack`] with connectors, and a sender config pointing at it.
pub(crate) struct Rig {
    /// Kept so the database lives as long as the rig.
    _db: TestDatabase,
    pub(crate) double: SlackDouble,
    pub(crate) config: SenderConfig,
    pub(crate) service: ConnectorService,
    pub(crate) prefix: String,
}

impl Rig {
    pub(crate) async fn new() -> Self {
        let workspace = Workspace::new(TEAM, TOKEN)
            .with_generated_channels(5)
            .with_channels(vec![
                Channel::public("C0ALERTS01", "alerts"),
                Channel {
                    is_member: false,
                    ..Channel::public("C0OUTSIDE1", "outside")
                },
            ]);
        let TestStack {
            db,
            double,
            aws_endpoint: endpoint,
            prefix,
        } = TestStack::start(&workspace, "sender").await.unwrap();
        let config = SenderConfig::new(db.url())
            .with_aws_endpoint(endpoint.clone())
            .with_aws_credentials("test", "test")
            .with_secret_prefix(prefix.clone())
            .with_slack_api_base_url(double.api_base_url());

        let repo = PgConnectorRepository::connect(db.url(), &RepositorySettings::default())
            .await
            .unwrap();
        let secrets = AwsSecretStore::new(&AwsSettings {
            endpoint_url: Some(endpoint),
            credentials: Some(StaticCredentials {
                access_key_id: "test".into(),
                secret_access_key: "test".to_owned().into(),
            }),
            ..AwsSettings::default()
        })
        .await;
        let slack = HttpSlackApi::new(SlackSettings {
            api_base_url: double.api_base_url(),
            ..SlackSettings::default()
        })
        .unwrap();
        let service = ConnectorService::new(Ports {
            connectors: Connectors::new(Arc::new(repo)),
            secrets: Arc::new(secrets),
            slack: Arc::new(slack),
            secret_prefix: SecretPrefix::parse("p", &prefix).unwrap(),
            clock: Arc::new(SystemClock),
        });
        Self {
            _db: db,
            double,
            config,
            service,
            prefix,
        }
    }

    /// Creates a connector through the same use case as the server; returns its ID.
    pub(crate) async fn connector(&self, tenant: &str, name: &str, channel: &str) -> String {
        self.service
            .create(CreateConnector::parse(tenant, name, TOKEN, channel, "").unwrap())
            .await
            .unwrap()
            .id
            .to_string()
    }
}
