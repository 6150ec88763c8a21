//! Export: the SDK providers, installed as the globals every instrument and span reads, with
//! one of two exporters.
//!
//! * OTLP/HTTP: endpoint, protocol (`http/protobuf` or `http/json`), headers, timeout and
//!   compression come from the standard `OTEL_EXPORTER_OTLP_*` variables, which the exporter
//!   reads itself as the OpenTelemetry specification defines them.
//! * Application Insights ([`AzureMonitor`]): the envelopes of the Azure Monitor ingestion API
//!   (`opentelemetry-application-insights`), posted straight to the connection string's
//!   ingestion endpoint by [`ingestion::IngestionClient`] on the app's own runtime. Spans keep
//!   their W3C ids, so `operation_Id` is the trace id the Functions host's request telemetry
//!   also carries.
//!
//! Both run behind the SDK's batch span processor and periodic metric reader: a bounded queue
//! drained by their own thread, so a slow or unreachable endpoint drops telemetry and never
//! holds up a handler.

use opentelemetry::global;
use opentelemetry_otlp::{MetricExporter, SpanExporter};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider};
use opentelemetry_sdk::trace::SdkTracerProvider;

mod ingestion;

pub use ingestion::{AzureMonitor, AzureMonitorError};

/// Which signals to export, where to, and the resource they describe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportConfig {
    pub service_name: String,
    pub service_version: String,
    /// `service.instance.id`: which process (e.g. the Functions instance) sent the data.
    pub instance_id: Option<String>,
    pub exporter: Exporter,
    pub traces: bool,
    pub metrics: bool,
}

/// Where the signals go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exporter {
    /// OTLP/HTTP, configured by the `OTEL_EXPORTER_OTLP_*` variables.
    Otlp,
    /// Application Insights, by its connection string.
    AzureMonitor(AzureMonitor),
}

impl ExportConfig {
    /// True when nothing is exported: [`start`] then creates nothing.
    pub fn is_off(&self) -> bool {
        !self.traces && !self.metrics
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("OTLP trace exporter: {0}")]
    Traces(#[source] opentelemetry_otlp::ExporterBuildError),
    #[error("OTLP metric exporter: {0}")]
    Metrics(#[source] opentelemetry_otlp::ExporterBuildError),
    #[error("Application Insights exporter: {0}")]
    AzureMonitor(#[from] AzureMonitorError),
}

/// The installed providers; [`Telemetry::shutdown`] flushes what is buffered.
#[derive(Debug)]
pub struct Telemetry {
    tracer: Option<SdkTracerProvider>,
    meter: Option<SdkMeterProvider>,
}

/// Installs the exporters `config` asks for. `Ok(None)` when it asks for none: then no
/// exporter, thread or task exists and the globals stay OpenTelemetry's no-ops. The Application
/// Insights exporter sends on the tokio runtime this is called from.
pub fn start(config: &ExportConfig) -> Result<Option<Telemetry>, ExportError> {
    if config.is_off() {
        return Ok(None);
    }
    let resource = resource(config);
    let (tracer, meter) = match &config.exporter {
        Exporter::Otlp => {
            let tracer = config
                .traces
                .then(|| {
                    SpanExporter::builder()
                        .with_http()
                        .build()
                        .map_err(ExportError::Traces)
                })
                .transpose()?
                .map(|exporter| tracer_provider(exporter, &resource));
            let meter = config
                .metrics
                .then(|| {
                    MetricExporter::builder()
                        .with_http()
                        .build()
                        .map_err(ExportError::Metrics)
                })
                .transpose()?
                .map(|exporter| meter_provider(exporter, &resource));
            (tracer, meter)
        }
        Exporter::AzureMonitor(azure) => {
            // One client (one connection pool, one token cache) for both signals.
            let exporter = azure.exporter()?;
            let tracer = config
                .traces
                .then(|| tracer_provider(exporter.clone(), &resource));
            let meter = config.metrics.then(|| meter_provider(exporter, &resource));
            (tracer, meter)
        }
    };
    if let Some(provider) = &tracer {
        global::set_tracer_provider(provider.clone());
        crate::span::enable_tracing();
    }
    if let Some(provider) = &meter {
        global::set_meter_provider(provider.clone());
    }
    Ok(Some(Telemetry { tracer, meter }))
}

fn tracer_provider(
    exporter: impl opentelemetry_sdk::trace::SpanExporter + 'static,
    resource: &Resource,
) -> SdkTracerProvider {
    SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource.clone())
        .build()
}

fn meter_provider(
    exporter: impl opentelemetry_sdk::metrics::exporter::PushMetricExporter,
    resource: &Resource,
) -> SdkMeterProvider {
    SdkMeterProvider::builder()
        .with_reader(PeriodicReader::builder(exporter).build())
        .with_resource(resource.clone())
        .build()
}

fn resource(config: &ExportConfig) -> Resource {
    let mut builder = Resource::builder()
        .with_service_name(config.service_name.clone())
        .with_attribute(opentelemetry::KeyValue::new(
            "service.version",
            config.service_version.clone(),
        ));
    if let Some(instance) = &config.instance_id {
        builder = builder.with_attribute(opentelemetry::KeyValue::new(
            "service.instance.id",
            instance.clone(),
        ));
    }
    builder.build()
}

impl Telemetry {
    /// Exports what is buffered and stops the exporters. Blocks (up to the exporters'
    /// timeouts): call it once, at shutdown, from a blocking-tolerant place.
    pub fn shutdown(self) {
        if let Some(tracer) = self.tracer
            && let Err(error) = tracer.shutdown()
        {
            tracing::warn!(%error, "trace export shutdown");
        }
        if let Some(meter) = self.meter
            && let Err(error) = meter.shutdown()
        {
            tracing::warn!(%error, "metric export shutdown");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::{TraceContextExt as _, Tracer as _};

    #[test]
    fn no_signal_asked_creates_no_exporter_and_leaves_the_globals_inert() {
        let config = ExportConfig {
            service_name: "meshpay".into(),
            service_version: "0".into(),
            instance_id: None,
            exporter: Exporter::Otlp,
            traces: false,
            metrics: false,
        };
        assert!(start(&config).unwrap().is_none());
        assert!(!crate::span::tracing_enabled());
        let span = global::tracer("t").start("x");
        let cx = opentelemetry::Context::new().with_span(span);
        assert!(!cx.span().span_context().is_valid());
        assert_eq!(crate::traceparent_of(&cx), None);
    }
}
