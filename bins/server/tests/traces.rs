//! Traces end to end, in a process of its own (the tracing subscriber and the OpenTelemetry
//! pipeline are per process): the server exports over OTLP/gRPC to a receiver in this test,
//! one trace per RPC, continuing the caller's `traceparent`, with the use case, each store call
//! and each Slack call as child spans, and never a token or message text on a span.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use connector_grpc_api::pb::{GetConnectorRequest, SendMessageRequest};
use connector_server::telemetry;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::trace::v1::Span;

mod common;

use test_support::stack::{TestStack, Workspace};

const TOKEN: &str = "xoxb-traces-0000-token";
const TEXT: &str = "a message text no span may carry";

/// An OTLP/gRPC trace receiver keeping every span it is sent.
#[derive(Clone, Default)]
struct Receiver {
    spans: Arc<Mutex<Vec<Span>>>,
}

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut kept = self.spans.lock().unwrap();
        for resource in request.into_inner().resource_spans {
            let service = resource
                .resource
                .iter()
                .flat_map(|r| &r.attributes)
                .find(|a| a.key == "service.name")
                .and_then(|a| a.value.as_ref())
                .and_then(|v| v.value.clone());
            assert_eq!(
                service,
                Some(Value::StringValue("connector-traces-test".into()))
            );
            for scope in resource.scope_spans {
                kept.extend(scope.spans);
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn attribute(span: &Span, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|a| a.key == key)
        .and_then(|a| a.value.as_ref())
        .and_then(|v| match &v.value {
            Some(Value::StringValue(s)) => Some(s.clone()),
            Some(Value::IntValue(n)) => Some(n.to_string()),
            _ => None,
        })
}

/// The spans of trace `trace_id`, and whether each one's parent is in the trace (or is
/// `remote_parent`, for the server's span).
fn trace(spans: &[Span], trace_id: &str) -> Vec<Span> {
    spans
        .iter()
        .filter(|s| hex(&s.trace_id) == trace_id)
        .cloned()
        .collect()
}

/// Asserts the spans form one tree under the server span, whose parent is `remote_parent`.
fn assert_one_tree(spans: &[Span], rpc: &str, remote_parent: Option<&str>) {
    let roots: Vec<&Span> = spans.iter().filter(|s| s.name == rpc).collect();
    assert_eq!(roots.len(), 1, "one server span {rpc}: {:?}", names(spans));
    let root = roots[0];
    match remote_parent {
        Some(parent) => assert_eq!(hex(&root.parent_span_id), parent),
        None => assert!(root.parent_span_id.is_empty()),
    }
    let ids: Vec<String> = spans.iter().map(|s| hex(&s.span_id)).collect();
    for span in spans.iter().filter(|s| s.name != rpc) {
        assert!(
            ids.contains(&hex(&span.parent_span_id)),
            "{} has a parent outside the trace",
            span.name
        );
    }
}

fn names(spans: &[Span]) -> Vec<String> {
    let mut n: Vec<String> = spans.iter().map(|s| s.name.clone()).collect();
    n.sort();
    n
}

fn with_traceparent<T>(message: T, trace_id: &str, span_id: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert(
        "traceparent",
        format!("00-{trace_id}-{span_id}-01").parse().unwrap(),
    );
    request
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_rpc_is_one_trace_continuing_the_callers_traceparent() {
    let receiver = Receiver::default();
    let otlp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let otlp_addr = otlp.local_addr().unwrap();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(receiver.clone()))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(otlp)),
    );

    let services = TestStack::start(&Workspace::new("T0TRACES01", TOKEN), "traces")
        .await
        .unwrap();
    let otel_endpoint = format!("http://{otlp_addr}");
    let settings = common::config(
        services.server_env(),
        &[
            ("CONNECTOR__OTEL__ENDPOINT", &otel_endpoint),
            ("CONNECTOR__OTEL__SERVICE_NAME", "connector-traces-test"),
        ],
    );
    let telemetry = telemetry::init(&settings.log, settings.otel.as_ref()).unwrap();
    assert!(telemetry.exporting());
    let mut server = common::Running::start(settings).await;
    // A create without a traceparent starts a trace of its own.
    let created = server.create(TOKEN).await;
    let client = &mut server.client;
    // A get and a send, each continuing the caller's trace.
    let (get_trace, get_parent) = ("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7");
    client
        .get_connector(with_traceparent(
            GetConnectorRequest {
                tenant_id: "acme".into(),
                id: created.id.clone(),
            },
            get_trace,
            get_parent,
        ))
        .await
        .unwrap();
    let (send_trace, send_parent) = ("0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331");
    client
        .send_message(with_traceparent(
            SendMessageRequest {
                tenant_id: "acme".into(),
                connector_id: created.id.clone(),
                text: TEXT.into(),
                ..Default::default()
            },
            send_trace,
            send_parent,
        ))
        .await
        .unwrap();

    // Spans end when their call's response is sent; wait for them, then export.
    let complete = |spans: &[Span]| {
        ["usecase connectors.create", "slack post_message"]
            .iter()
            .all(|n| spans.iter().any(|s| s.name == *n))
            && spans
                .iter()
                .filter(|s| s.name.starts_with("connector.v1."))
                .count()
                >= 3
    };
    let mut spans = Vec::new();
    for _ in 0..100 {
        telemetry.flush();
        spans = receiver.spans.lock().unwrap().clone();
        if complete(&spans) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(complete(&spans), "spans exported: {:?}", names(&spans));

    // GetConnector: the caller's trace, one tree, the use case and its database read.
    let get = trace(&spans, get_trace);
    assert_one_tree(
        &get,
        "connector.v1.ConnectorService/GetConnector",
        Some(get_parent),
    );
    assert_eq!(
        names(&get),
        vec![
            "connector.v1.ConnectorService/GetConnector",
            "db get_active",
            "usecase connectors.get",
        ]
    );
    let server_span = get
        .iter()
        .find(|s| s.name.starts_with("connector.v1."))
        .unwrap();
    assert_eq!(
        attribute(server_span, "rpc.system").as_deref(),
        Some("grpc")
    );
    assert_eq!(
        attribute(server_span, "rpc.grpc.status_code").as_deref(),
        Some("0")
    );
    let db_span = get.iter().find(|s| s.name == "db get_active").unwrap();
    assert_eq!(attribute(db_span, "outcome").as_deref(), Some("ok"));

    // SendMessage: the caller's trace, through the use case to Slack.
    let send = trace(&spans, send_trace);
    assert_one_tree(
        &send,
        "connector.v1.ConnectorService/SendMessage",
        Some(send_parent),
    );
    let send_names = names(&send);
    // The connector's row comes from the cache the Get filled; its token from the store.
    for expected in ["usecase messages.send", "secrets get", "slack post_message"] {
        assert!(
            send_names.iter().any(|n| n == expected),
            "{expected} missing from {send_names:?}"
        );
    }

    // CreateConnector: a trace of its own, with Slack's checks and the secret written.
    let create_root = spans
        .iter()
        .find(|s| s.name == "connector.v1.ConnectorService/CreateConnector")
        .unwrap();
    let create_trace = hex(&create_root.trace_id);
    assert!(create_trace != get_trace && create_trace != send_trace);
    let create = trace(&spans, &create_trace);
    assert_one_tree(
        &create,
        "connector.v1.ConnectorService/CreateConnector",
        None,
    );
    let create_names = names(&create);
    for expected in [
        "usecase connectors.create",
        "slack auth_test",
        "secrets put",
        "db insert_creating",
        "db mark_active",
    ] {
        assert!(
            create_names.iter().any(|n| n == expected),
            "{expected} missing from {create_names:?}"
        );
    }

    // Nothing secret or caller-written on any span.
    let everything = format!("{spans:?}");
    assert!(!everything.contains(TOKEN), "a token on a span");
    assert!(!everything.contains(TEXT), "message text on a span");

    server.stop().await;
    telemetry.shutdown();
}
