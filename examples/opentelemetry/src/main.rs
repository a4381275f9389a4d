//! The log's spans in a gateway's traces: `Log::open` (with its replay) and each compaction
//! become OpenTelemetry spans, and the log's warnings (a torn tail cut at open, a snapshot
//! skipped) become events on them, through `tracing-opentelemetry`. Nothing in the crate is
//! specific to OpenTelemetry: it reports through `tracing`, and this is the subscriber.
//!
//! ```sh
//! # To a collector (OTLP over HTTP; the endpoint from the standard variable):
//! OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4318 \
//!     cargo run --manifest-path examples/opentelemetry/Cargo.toml -- /tmp/otel-log
//! # Without one: the spans are printed.
//! cargo run --manifest-path examples/opentelemetry/Cargo.toml -- /tmp/otel-log
//! ```

use std::path::PathBuf;

use inflight::{Log, Opened, Options};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::layer::SubscriberExt;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir: PathBuf = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("inflight-example-opentelemetry"));

    let provider = tracer_provider()?;
    let subscriber = tracing_subscriber::registry()
        .with(tracing_subscriber::EnvFilter::new("inflight=info"))
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("gateway")));
    tracing::subscriber::set_global_default(subscriber)?;

    // Each of these is a span in the gateway's traces: `open` (with the replay's figures as
    // fields) and `compaction`.
    let Opened { log, report } = Log::open(&dir, Options::default())?;
    println!(
        "{}: {} run(s) were in flight at start",
        dir.display(),
        report.running.len()
    );
    for i in 0..100 {
        let run = log.begin_run(format!("agent:main:otel:c-{}", i % 10), "s", None)?;
        log.mark_completed(&run.key, run.generation)?;
    }
    let compacted = log.compact()?;
    println!("compacted through record {}", compacted.last_seq);
    log.close()?;

    // Sends (or prints) what is still batched.
    provider.shutdown()?;
    Ok(())
}

/// OTLP over HTTP when `OTEL_EXPORTER_OTLP_ENDPOINT` (or its traces variant) is set; the
/// spans printed on standard output otherwise.
fn tracer_provider() -> Result<SdkTracerProvider, Box<dyn std::error::Error>> {
    let resource = Resource::builder().with_service_name("gateway").build();
    let builder = SdkTracerProvider::builder().with_resource(resource);
    let to_collector = [
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    ]
    .iter()
    .any(|v| std::env::var_os(v).is_some());
    Ok(if to_collector {
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .build()?;
        builder.with_batch_exporter(exporter).build()
    } else {
        builder
            .with_simple_exporter(opentelemetry_stdout::SpanExporter::default())
            .build()
    })
}
