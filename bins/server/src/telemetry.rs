//! Logging and tracing set-up: log lines (text or JSON) on stderr, and — when
//! `CONNECTOR__OTEL__ENDPOINT` is set — OpenTelemetry traces exported over OTLP/gRPC. A
//! caller's W3C `traceparent` is continued either way; its trace ID (or the one a new trace
//! gets) is on every log line of the call (`trace_id` in JSON lines' `span`).

use std::io::IsTerminal as _;
use std::time::Duration;

use anyhow::Context as _;
use opentelemetry::propagation::Extractor;
use opentelemetry::trace::{TraceContextExt as _, TraceId, TracerProvider as _};
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use tracing_subscriber::filter::{EnvFilter, FilterExt as _, filter_fn};
use tracing_subscriber::prelude::*;

use crate::config::{LogConfig, LogFormat, OtelConfig};

/// Whether this process exports traces (set once by [`init`]).
static EXPORTING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether this process exports traces.
pub fn exporting() -> bool {
    EXPORTING.load(std::sync::atomic::Ordering::Relaxed)
}

/// Keeps the trace pipeline alive; dropping it (or [`Telemetry::shutdown`]) exports what is
/// buffered and stops it.
#[derive(Debug, Default)]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Whether traces are exported.
    pub fn exporting(&self) -> bool {
        self.provider.is_some()
    }

    /// Exports every finished span now.
    pub fn flush(&self) {
        if let Some(p) = &self.provider
            && let Err(e) = p.force_flush()
        {
            tracing::warn!(error = %e, "exporting traces failed");
        }
    }

    /// Exports what is buffered (waiting at most 5 s) and stops exporting.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        if let Some(p) = self.provider.take()
            && let Err(e) = p.shutdown_with_timeout(Duration::from_secs(5))
        {
            eprintln!("connector-server: exporting the last traces failed: {e}");
        }
    }
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Installs the global subscriber: log lines filtered by `RUST_LOG` if set, else the
/// configured filter; and, when an OTLP endpoint is configured, spans of this program's
/// crates at INFO and above exported in batches. Must be called within a tokio runtime (the
/// exporter's gRPC client runs on it). Calling it twice keeps the first subscriber.
pub fn init(log: &LogConfig, otel: Option<&OtelConfig>) -> anyhow::Result<Telemetry> {
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    let provider = match otel {
        None => None,
        Some(otel) => {
            let exporter = opentelemetry_otlp::SpanExporter::builder()
                .with_tonic()
                .with_endpoint(otel.endpoint.clone())
                .with_timeout(Duration::from_secs(10))
                .build()
                .context("cannot set up the OTLP exporter (CONNECTOR__OTEL__ENDPOINT)")?;
            Some(
                SdkTracerProvider::builder()
                    .with_batch_exporter(exporter)
                    .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
                        otel.sample_ratio,
                    ))))
                    .with_resource(
                        opentelemetry_sdk::Resource::builder()
                            .with_service_name(otel.service_name.clone())
                            .build(),
                    )
                    .build(),
            )
        }
    };
    let otel_layer = provider.as_ref().map(|p| {
        tracing_opentelemetry::layer()
            .with_tracer(p.tracer("connector-server"))
            .with_filter(filter_fn(|meta| {
                meta.target().starts_with("connector") && *meta.level() <= tracing::Level::INFO
            }))
    });
    let installed = match otel_layer {
        Some(otel) => tracing_subscriber::registry()
            .with(log_layer(log))
            .with(otel)
            .try_init()
            .is_ok(),
        // Without traces the log filter is global: callsites it turns off are never evaluated
        // again, where a per-layer filter is asked at every span (measured: docs/performance.md).
        None => {
            let (filter, lines) = log_filter_and_lines(log);
            tracing_subscriber::registry()
                .with(filter)
                .with(filter_fn(keep_in_logs))
                .with(lines)
                .try_init()
                .is_ok()
        }
    };
    if installed && provider.is_some() {
        EXPORTING.store(true, std::sync::atomic::Ordering::Relaxed);
    }
    if let Some(otel) = otel {
        tracing::info!(endpoint = otel.endpoint, "exporting traces over OTLP/gRPC");
    }
    Ok(Telemetry { provider })
}

/// Whether log lines carry this span or event: not the per-call spans of the stores and
/// Slack (`connector_instrumentation`), since the request's span already puts the method and
/// trace ID on each line, and leaving them out means that with traces off they are never built.
fn keep_in_logs(meta: &tracing::Metadata<'_>) -> bool {
    !(meta.is_span() && meta.target() == "connector_instrumentation")
}

/// The log filter (`RUST_LOG`, else the configured one) and the layer writing the lines.
fn log_filter_and_lines<S>(
    log: &LogConfig,
) -> (
    EnvFilter,
    Box<dyn tracing_subscriber::Layer<S> + Send + Sync>,
)
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&log.filter))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let lines = match log.format {
        LogFormat::Json => layer.json().flatten_event(true).boxed(),
        LogFormat::Text => layer.boxed(),
    };
    (filter, lines)
}

/// The layer writing log lines, filtered on its own (beside the OpenTelemetry layer, whose
/// filter differs): see [`keep_in_logs`].
pub fn log_layer<S>(log: &LogConfig) -> Box<dyn tracing_subscriber::Layer<S> + Send + Sync>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    let (filter, lines) = log_filter_and_lines(log);
    lines
        .with_filter(filter.and(filter_fn(keep_in_logs)))
        .boxed()
}

/// Reads a propagation header from an HTTP request's headers.
struct Headers<'a>(&'a axum::http::HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }
    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

/// Makes `span` continue the trace `headers` carry (a W3C `traceparent`), and records on it
/// the trace ID it belongs to, so log lines carry it whether or not traces are exported.
pub fn continue_trace(span: &tracing::Span, headers: &axum::http::HeaderMap) {
    let parent = opentelemetry::global::get_text_map_propagator(|p| p.extract(&Headers(headers)));
    let remote = parent.span().span_context().trace_id();
    // Fails only when no OpenTelemetry layer is installed (traces off) or the span is off.
    let _ = span.set_parent(parent);
    let mut trace_id = span.context().span().span_context().trace_id();
    if trace_id == TraceId::INVALID {
        trace_id = remote;
    }
    if trace_id != TraceId::INVALID {
        span.record("trace_id", tracing::field::display(trace_id));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Request headers carrying a caller's W3C `traceparent` (trace 4bf92f35…).
    fn with_traceparent() -> axum::http::HeaderMap {
        let mut headers = axum::http::HeaderMap::new();
        headers.insert(
            "traceparent",
            axum::http::HeaderValue::from_static(
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            ),
        );
        headers
    }

    #[test]
    fn a_traceparent_is_read_from_the_headers() {
        opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
        let headers = with_traceparent();
        let cx = opentelemetry::global::get_text_map_propagator(|p| p.extract(&Headers(&headers)));
        assert_eq!(
            cx.span().span_context().trace_id().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        let none = opentelemetry::global::get_text_map_propagator(|p| {
            p.extract(&Headers(&axum::http::HeaderMap::new()))
        });
        assert_eq!(none.span().span_context().trace_id(), TraceId::INVALID);
    }

    /// The log lines of the test's own subscriber.
    #[derive(Clone, Default)]
    struct Lines(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Lines {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn the_callers_trace_id_is_on_the_json_log_lines_of_its_call_with_traces_off() {
        opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
        let lines = Lines::default();
        let writer = lines.clone();
        // JSON lines as the server writes them (`log_layer`), into the test's buffer.
        let subscriber = tracing_subscriber::registry().with(
            tracing_subscriber::fmt::layer()
                .json()
                .flatten_event(true)
                .with_writer(move || writer.clone()),
        );
        let headers = with_traceparent();
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!(
                "grpc",
                rpc.method = "connector.v1.ConnectorService/GetConnector",
                trace_id = tracing::field::Empty
            );
            continue_trace(&span, &headers);
            span.in_scope(|| tracing::info!("inside the call"));
        });
        let text = String::from_utf8(lines.0.lock().unwrap_or_else(|p| p.into_inner()).clone())
            .unwrap_or_default();
        let line = text
            .lines()
            .find(|l| l.contains("inside the call"))
            .unwrap_or_else(|| panic!("no log line: {text}"));
        let json: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert_eq!(
            json["span"]["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736",
            "{line}"
        );
    }
}
