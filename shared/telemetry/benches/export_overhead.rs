//! What telemetry costs one invocation on the handler's path: the span the shim starts, the
//! attributes a step records, two metric updates and the span's end, with export off (the
//! no-op globals) and then on (Application Insights, sending to a local track endpoint that
//! answers like the service). Prints figures; asserts nothing about time.
//!
//!     cargo bench -p meshpay-telemetry --features export --bench export_overhead
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use meshpay_telemetry::export::{self, AzureMonitor, ExportConfig, Exporter};
use meshpay_telemetry::span::{self, Trigger, attr};
use meshpay_telemetry::{KeyValue, metrics};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// Invocations per round; below the batch processor's queue (2048), as a busy instance's
/// second would be.
const ROUND: usize = 1_000;
const ROUNDS: usize = 20;

fn invocation(i: usize) {
    let context = span::start_invocation(
        "broadcast",
        Trigger::Queue,
        None,
        vec![
            KeyValue::new(attr::INVOCATION_ID, "0b87d276-eb20-4601-8c2f-c13aa36a2f09"),
            KeyValue::new(attr::MESSAGE_ID, "7c5a0c1e-2b3b-4ad8-9d4a-3f3e2d1c0b0a"),
            KeyValue::new(attr::DEQUEUE_COUNT, 1i64),
        ],
    );
    span::record_on(
        &context,
        attr::PAYMENT_ID,
        "pay_01a24d73678070ef948cbe1ba514ff8c",
    );
    span::record_on(&context, attr::CHAIN_ID, 31337i64);
    span::record_on(&context, attr::NONCE, i as i64);
    span::record_on(&context, attr::OUTCOME, "broadcast");
    metrics::queue_delivery("broadcast", Some(1));
    metrics::payment_transition("authorized", "broadcast");
    span::end(&context, None);
    black_box(context);
}

/// Mean microseconds per invocation over the rounds, pausing between rounds so the export
/// thread drains as it would between bursts.
fn measure(label: &str) -> f64 {
    let mut total = Duration::ZERO;
    for round in 0..ROUNDS {
        let started = Instant::now();
        for i in 0..ROUND {
            invocation(round * ROUND + i);
        }
        total += started.elapsed();
        std::thread::sleep(Duration::from_millis(150));
    }
    let per = total.as_secs_f64() * 1e6 / (ROUND * ROUNDS) as f64;
    println!(
        "{label:>28}: {per:8.2} µs per invocation ({} invocations)",
        ROUND * ROUNDS
    );
    per
}

/// A track endpoint on 127.0.0.1 that answers every POST with an all-accepted summary.
async fn track_endpoint(items: Arc<AtomicUsize>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let items = items.clone();
            tokio::spawn(async move {
                let mut buffer = Vec::new();
                let mut chunk = [0u8; 16 * 1024];
                loop {
                    // One request: headers, then content-length bytes of body.
                    let (head_end, length) = loop {
                        if let Some(end) = find(&buffer, b"\r\n\r\n") {
                            let head = String::from_utf8_lossy(&buffer[..end]).to_ascii_lowercase();
                            let length = head
                                .lines()
                                .find_map(|l| l.strip_prefix("content-length:"))
                                .and_then(|v| v.trim().parse::<usize>().ok())
                                .unwrap_or(0);
                            break (end + 4, length);
                        }
                        match socket.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
                        }
                    };
                    while buffer.len() < head_end + length {
                        match socket.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
                        }
                    }
                    buffer.drain(..head_end + length);
                    items.fetch_add(1, Ordering::Relaxed);
                    let body = r#"{"itemsReceived":0,"itemsAccepted":0,"errors":[]}"#;
                    let response = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                        body.len()
                    );
                    if socket.write_all(response.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    format!("http://{address}/")
}

/// CPU time of the whole process (every thread: the export thread's serialization, gzip and
/// upload included), from /proc; Linux clock ticks are 1/100 s.
fn process_cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // After the command name: state is field 3, utime 14 and stime 15 (1-based).
    (ticks(11) + ticks(12)) / 100.0
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let invocations = (ROUND * ROUNDS) as f64;
    let cpu = process_cpu_seconds();
    let off = tokio::task::spawn_blocking(|| measure("export off (no-op globals)"))
        .await
        .unwrap();
    let off_cpu = (process_cpu_seconds() - cpu) * 1e6 / invocations;

    let uploads = Arc::new(AtomicUsize::new(0));
    let endpoint = track_endpoint(uploads.clone()).await;
    let connection = format!(
        "InstrumentationKey=00000000-0000-4000-8000-000000000001;IngestionEndpoint={endpoint}"
    );
    let config = ExportConfig {
        service_name: "meshpay-bench".into(),
        service_version: "0".into(),
        instance_id: None,
        exporter: Exporter::AzureMonitor(AzureMonitor::new(&connection, None).unwrap()),
        traces: true,
        metrics: true,
    };
    let cpu = process_cpu_seconds();
    let telemetry = export::start(&config).unwrap().unwrap();
    let on = tokio::task::spawn_blocking(|| measure("Application Insights export"))
        .await
        .unwrap();
    tokio::task::spawn_blocking(move || telemetry.shutdown())
        .await
        .unwrap();
    let on_cpu = (process_cpu_seconds() - cpu) * 1e6 / invocations;
    println!(
        "{:>28}: {off_cpu:8.2} µs off, {on_cpu:8.2} µs on (10 ms resolution)",
        "process CPU per invocation"
    );
    println!(
        "{:>28}: {:8.2} µs per invocation ({} uploads received)",
        "difference",
        on - off,
        uploads.load(Ordering::Relaxed)
    );
}
