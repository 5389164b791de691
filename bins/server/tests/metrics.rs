//! `GET /metrics` end to end, in a process of its own (the metrics recorder is per process):
//! every call moves its counter by exactly one, under bounded labels, and the page is
//! Prometheus text exposition.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;

use connector_grpc_api::pb::connector_service_client::ConnectorServiceClient;
use connector_grpc_api::pb::{CreateConnectorRequest, GetConnectorRequest, SendMessageRequest};
use connector_server::{Application, Settings};
use slack_double::{Channel, Fault, SlackDouble};
use test_support::TestDatabase;

const TOKEN: &str = "xoxb-metrics-0000-token";

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
            series.starts_with(&format!("{name}{{"))
                && labels
                    .iter()
                    .all(|(k, v)| series.contains(&format!("{k}=\"{v}\"")))
        })
        .map(|(_, v)| *v)
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_call_moves_its_counter_by_exactly_one() {
    test_support::require_localstack().await.unwrap();
    let db = TestDatabase::create().await.unwrap();
    let double = SlackDouble::start().await.unwrap();
    double.state().add_generated_workspace(
        "T0METRICS1",
        2,
        vec![Channel::public("C0ALERTS01", "alerts")],
    );
    double.state().add_token(TOKEN, "T0METRICS1");
    let endpoint = test_support::localstack_endpoint();
    let env: HashMap<String, String> = [
        ("CONNECTOR__GRPC__LISTEN_ADDR", "127.0.0.1:0"),
        ("CONNECTOR__HTTP__LISTEN_ADDR", "127.0.0.1:0"),
        ("CONNECTOR__DATABASE__URL", db.url()),
        ("CONNECTOR__AWS__ENDPOINT_URL", &endpoint),
        ("CONNECTOR__AWS__ACCESS_KEY_ID", "test"),
        ("CONNECTOR__AWS__SECRET_ACCESS_KEY", "test"),
        ("CONNECTOR__SECRETS__PREFIX", "metrics/"),
        ("CONNECTOR__SLACK__API_BASE_URL", &double.api_base_url()),
        ("CONNECTOR__RECONCILER__INTERVAL_SECS", "0"),
        ("CONNECTOR__TOKEN_REFRESH__INTERVAL_SECS", "0"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let app = Application::build(Settings::load_from(None, Some(env)).unwrap())
        .await
        .unwrap();
    let (grpc, http) = (app.grpc_addr(), app.http_addr());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until_stopped(async {
        let _ = stopped.await;
    }));
    let mut client = ConnectorServiceClient::connect(format!("http://{grpc}"))
        .await
        .unwrap();
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
    let created = client
        .create_connector(CreateConnectorRequest {
            tenant_id: "acme".into(),
            name: "prod".into(),
            slack_bot_token: TOKEN.into(),
            default_channel: "#alerts".into(),
            request_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .connector
        .unwrap();
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
    let after = scrape().await;
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
    // No label carries a tenant or a connector.
    assert!(
        after
            .keys()
            .all(|k| !k.contains("acme") && !k.contains(&created.id))
    );

    let _ = stop.send(());
    server.await.unwrap().unwrap();
}
