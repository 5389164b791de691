//! `GET /metrics` end to end, in a process of its own (the metrics recorder is per process):
//! every call moves its counter by exactly one, under bounded labels, and the page is
//! Prometheus text exposition.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;

use connector_grpc_api::pb::{GetConnectorRequest, SendMessageRequest};
use slack_double::{Fault, OAuthApp};

mod common;

use test_support::stack::{TestStack, Workspace};

const TOKEN: &str = "xoxb-metrics-0000-token";

/// A Secrets Manager client of the test's own, to make the connector's token a rotating one.
fn secrets_client() -> aws_sdk_secretsmanager::Client {
    use aws_sdk_secretsmanager::config::{BehaviorVersion, Credentials, Region};
    aws_sdk_secretsmanager::Client::from_conf(
        aws_sdk_secretsmanager::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .endpoint_url(test_support::localstack_endpoint())
            .credentials_provider(Credentials::new("test", "test", None, None, "metrics"))
            .build(),
    )
}

/// `name{labels} value` lines by name and labels (in the order rendered), with their values.
fn samples(page: &str) -> HashMap<String, f64> {
    let mut out = HashMap::new();
    for line in page.lines() {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("not a sample: {line}"));
        let name_end = series.find('{').unwrap_or(series.len());
        let name = &series[..name_end];
        assert!(
            !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "bad metric name in {line}"
        );
        if name_end < series.len() {
            assert!(series.ends_with('}'), "unterminated labels in {line}");
        }
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("not a number in {line}"));
        out.insert(series.to_owned(), value);
    }
    out
}

fn value(samples: &HashMap<String, f64>, name: &str, labels: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|(series, _)| {
            (series.as_str() == name || series.starts_with(&format!("{name}{{")))
                && labels
                    .iter()
                    .all(|(k, v)| series.contains(&format!("{k}=\"{v}\"")))
        })
        .map(|(_, v)| *v)
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_call_moves_its_counter_by_exactly_one() {
    let services = TestStack::start(&Workspace::new("T0METRICS1", TOKEN), "metrics")
        .await
        .unwrap();
    services.double.state().set_oauth_app(OAuthApp {
        client_id: "111.222".into(),
        client_secret: "app-secret".into(),
        team_id: "T0METRICS1".into(),
        rotation: true,
        deny: false,
    });
    let mut server = common::Running::start(common::config(
        services.server_env(),
        &[
            ("CONNECTOR__SLACK__CLIENT_ID", "111.222"),
            ("CONNECTOR__SLACK__CLIENT_SECRET", "app-secret"),
            (
                "CONNECTOR__SLACK__REDIRECT_URL",
                "http://127.0.0.1:9/slack/oauth/callback",
            ),
            // The background refresh looks for due tokens every second.
            ("CONNECTOR__TOKEN_REFRESH__INTERVAL_SECS", "1"),
            // The gauges that need the database are refreshed every second, not per scrape.
            ("CONNECTOR__ADMIN__GAUGE_REFRESH_SECS", "1"),
        ],
    ))
    .await;
    let (http, double, db) = (server.admin, &services.double, &services.db);
    let scrape = || async {
        let page = reqwest::get(format!("http://{http}/metrics"))
            .await
            .unwrap();
        assert!(
            page.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/plain; version=0.0.4")
        );
        samples(&page.text().await.unwrap())
    };
    let before = scrape().await;
    let created = server.create(TOKEN).await;
    let client = &mut server.client;
    client
        .get_connector(GetConnectorRequest {
            tenant_id: "acme".into(),
            id: created.id.clone(),
        })
        .await
        .unwrap();
    for _ in 0..2 {
        client
            .get_connector(GetConnectorRequest {
                tenant_id: "acme".into(),
                id: "0192f5e4-8f4c-7a8e-9c3d-5b2a1e0f9d7c".into(),
            })
            .await
            .unwrap_err();
    }
    // A send Slack rate-limits once: waited out (Retry-After: 1), then posted.
    double.state().inject(
        "chat.postMessage",
        Fault::RateLimited {
            retry_after_secs: 1,
        },
        1,
    );
    client
        .send_message(SendMessageRequest {
            tenant_id: "acme".into(),
            connector_id: created.id.clone(),
            text: "counted".into(),
            ..Default::default()
        })
        .await
        .unwrap();

    // The connector's token becomes a rotating one that expired, with a refresh token Slack
    // never issued: the background refresh is refused and the connector needs
    // re-authorisation.
    let secret = services.secret_name("acme", &created.id);
    let expired = chrono::Utc::now().timestamp() - 10;
    secrets_client()
        .put_secret_value()
        .secret_id(&secret)
        .secret_string(
            serde_json::json!({
                "bot_token": TOKEN,
                "refresh_token": "xoxe-1-never-issued",
                "expires_at": expired,
            })
            .to_string(),
        )
        .send()
        .await
        .unwrap();
    db.execute(&format!(
        "UPDATE connectors SET token_expires_at = to_timestamp({expired}) WHERE id = '{}'",
        created.id
    ))
    .await
    .unwrap();
    let refused = [("outcome", "refused")];
    let mut after = scrape().await;
    let reauthorise = [
        ("state", "active"),
        ("auth_status", "needs_reauthorization"),
    ];
    for _ in 0..100 {
        if value(&after, "connector_token_refreshes_total", &refused) > 0.0
            && value(&after, "connector_connectors", &reauthorise) == 1.0
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        after = scrape().await;
    }
    let delta = |name: &str, labels: &[(&str, &str)]| {
        value(&after, name, labels) - value(&before, name, labels)
    };

    let total = "connector_grpc_requests_total";
    let create = ("method", "connector.v1.ConnectorService/CreateConnector");
    let get = ("method", "connector.v1.ConnectorService/GetConnector");
    assert_eq!(delta(total, &[create, ("code", "OK")]), 1.0);
    assert_eq!(delta(total, &[get, ("code", "OK")]), 1.0);
    assert_eq!(delta(total, &[get, ("code", "NOT_FOUND")]), 2.0);
    assert_eq!(delta(total, &[get]), 3.0, "nothing else counted");
    assert_eq!(
        delta("connector_grpc_request_duration_seconds_count", &[get]),
        3.0
    );
    assert_eq!(
        value(&after, "connector_grpc_requests_in_flight", &[get]),
        0.0
    );
    assert_eq!(
        value(
            &after,
            "connector_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))]
        ),
        1.0
    );

    // Slack: the 429 and the post after it, each attempt counted.
    let post = ("method", "chat.postMessage");
    assert_eq!(
        delta(
            "connector_slack_calls_total",
            &[post, ("outcome", "ratelimited")]
        ),
        1.0
    );
    assert_eq!(
        delta("connector_slack_calls_total", &[post, ("outcome", "ok")]),
        1.0
    );
    assert_eq!(
        delta("connector_slack_retry_after_seconds_total", &[post]),
        1.0
    );
    // The refused refresh, and nothing else of the kind.
    assert_eq!(delta("connector_token_refreshes_total", &refused), 1.0);
    assert_eq!(delta("connector_token_refreshes_total", &[]), 1.0);
    // Each store call by operation: the three Gets read the database (the two for a missing
    // connector are not cached); the send found the connector in the cache; the create wrote
    // one secret.
    let db_calls = "connector_db_calls_total";
    assert_eq!(
        delta(db_calls, &[("operation", "get_active"), ("outcome", "ok")]),
        3.0
    );
    assert_eq!(
        delta(
            "connector_connector_cache_lookups_total",
            &[("result", "hit")]
        ),
        1.0
    );
    assert_eq!(delta(db_calls, &[("operation", "insert_creating")]), 1.0);
    assert_eq!(
        delta(
            "connector_secret_store_calls_total",
            &[("operation", "put"), ("outcome", "ok")]
        ),
        1.0
    );
    assert_eq!(
        delta(
            "connector_db_call_duration_seconds_count",
            &[("operation", "get_active")]
        ),
        3.0
    );
    assert_eq!(value(&after, "connector_ready", &[]), 1.0);
    assert_eq!(value(&after, "connector_change_feed_listening", &[]), 1.0);
    // Refreshed in the background: the pool, and the connectors by state and auth status.
    assert!(value(&after, "connector_db_pool_max_connections", &[]) >= 1.0);
    assert_eq!(
        value(
            &after,
            "connector_connectors",
            &[
                ("state", "active"),
                ("auth_status", "needs_reauthorization")
            ]
        ),
        1.0
    );
    assert_eq!(
        value(
            &after,
            "connector_connectors",
            &[("state", "active"), ("auth_status", "ok")]
        ),
        0.0
    );

    // Every metric on the page is documented in the operations guide's table.
    let readme = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/operations.md"
    ))
    .unwrap();
    for series in after.keys() {
        let name = &series[..series.find('{').unwrap_or(series.len())];
        let family = ["_bucket", "_count", "_sum"]
            .iter()
            .find_map(|suffix| name.strip_suffix(suffix))
            .unwrap_or(name);
        assert!(
            readme.contains(&format!("`{family}`")),
            "{family} is not documented in docs/operations.md"
        );
    }
    // No label carries a tenant or a connector.
    assert!(
        after
            .keys()
            .all(|k| !k.contains("acme") && !k.contains(&created.id))
    );

    server.stop().await;
}
