//! The handler process on its own: how long a fresh `meshpay` takes from spawn to its first 200
//! (what a host restart or a scale-out costs before the first invocation), and what the shim
//! adds to a request against a bare axum route answering the same JSON.
//!
//! The spawned copies run exactly as devhost runs its handler: the program, arguments, working
//! directory and environment are read from the live handler's /proc entry (Linux), only the
//! port differs, so nothing here repeats devhost's or the stack's configuration.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use meshpay_testkit::stack::Stack;
use serde_json::{Value, json};

use super::{percentile, progress};

/// Longest wait for one spawned handler's first 200.
const SPAWN_TIMEOUT: Duration = Duration::from_secs(60);
/// Pause between two probes of a starting handler.
const PROBE_EVERY: Duration = Duration::from_millis(2);
/// The route every variant answers: the handler's `health` function (no dependency touched).
const ROUTE: &str = "/api/health";

/// Spawn → first 200 of `GET /api/health`, over `runs` fresh processes.
#[derive(Debug, Clone, Default)]
pub struct Spawn {
    pub runs: usize,
    pub p50: Duration,
    pub min: Duration,
    pub max: Duration,
}

/// One way of reaching `GET /api/health`, sequential requests on one keep-alive client.
#[derive(Debug, Clone)]
pub struct RouteLatency {
    pub name: &'static str,
    pub requests: usize,
    pub p50: Duration,
    pub p99: Duration,
}

/// How the running handler was started.
struct Launch {
    program: PathBuf,
    args: Vec<String>,
    cwd: PathBuf,
    env: Vec<(String, String)>,
}

impl Launch {
    /// Read from /proc for the handler devhost runs now.
    fn of_running(stack: &Stack) -> anyhow::Result<Launch> {
        let pid = stack
            .devhost()
            .handler_pid()
            .context("devhost has no running handler")?;
        let proc = PathBuf::from(format!("/proc/{pid}"));
        let program = std::fs::read_link(proc.join("exe")).context("handler executable")?;
        let cwd = std::fs::read_link(proc.join("cwd")).context("handler working directory")?;
        let nul_separated = |name: &str| -> anyhow::Result<Vec<String>> {
            let bytes = std::fs::read(proc.join(name)).with_context(|| format!("/proc {name}"))?;
            Ok(bytes
                .split(|b| *b == 0)
                .filter(|part| !part.is_empty())
                .map(|part| String::from_utf8_lossy(part).into_owned())
                .collect())
        };
        let args = nul_separated("cmdline")?.into_iter().skip(1).collect();
        let env = nul_separated("environ")?
            .into_iter()
            .filter_map(|pair| {
                let (key, value) = pair.split_once('=')?;
                Some((key.to_owned(), value.to_owned()))
            })
            .collect();
        Ok(Launch {
            program,
            args,
            cwd,
            env,
        })
    }

    fn spawn(&self, port: u16) -> anyhow::Result<tokio::process::Child> {
        let port = port.to_string();
        tokio::process::Command::new(&self.program)
            .args(&self.args)
            .current_dir(&self.cwd)
            .env_clear()
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .env("FUNCTIONS_CUSTOMHANDLER_PORT", &port)
            .env("FUNCTIONS_HTTPWORKER_PORT", &port)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", self.program.display()))
    }
}

fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(listener.local_addr()?.port())
}

/// Spawns `runs` copies of the running handler one after the other; each is killed after its
/// first 200.
pub async fn spawn_to_first_200(stack: &Stack, runs: usize) -> anyhow::Result<Spawn> {
    let launch = Launch::of_running(stack)?;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()?;
    let bar = progress(runs, "handler spawn → 200");
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let port = free_port()?;
        let url = format!("http://127.0.0.1:{port}{ROUTE}");
        let started = Instant::now();
        let mut child = launch.spawn(port)?;
        loop {
            if let Some(status) = child.try_wait()? {
                bail!("the spawned handler exited before answering ({status})");
            }
            match http.get(&url).send().await {
                Ok(reply) if reply.status().is_success() => break,
                _ if started.elapsed() > SPAWN_TIMEOUT => {
                    bail!("no 200 from the spawned handler within {SPAWN_TIMEOUT:?}")
                }
                _ => tokio::time::sleep(PROBE_EVERY).await,
            }
        }
        times.push(started.elapsed());
        child.kill().await.context("stopping the spawned handler")?;
        bar.inc(1);
    }
    bar.finish_and_clear();
    times.sort();
    Ok(Spawn {
        runs,
        p50: percentile(&times, 0.5),
        min: times.first().copied().unwrap_or_default(),
        max: times.last().copied().unwrap_or_default(),
    })
}

/// A bare axum server answering `GET /api/health` with the handler's JSON: the floor the shim
/// is compared to (same machine, same client, same body).
async fn bare_axum() -> anyhow::Result<(String, tokio::task::JoinHandle<()>)> {
    let body = json!({ "status": "ok", "version": env!("CARGO_PKG_VERSION") });
    let app = axum::Router::new().route(
        ROUTE,
        axum::routing::get(move || {
            let body = body.clone();
            async move { axum::Json::<Value>(body) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok((base, server))
}

async fn latency(name: &'static str, base: &str, requests: usize) -> anyhow::Result<RouteLatency> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;
    let url = format!("{base}{ROUTE}");
    // Warm the connection (and the handler's first-use paths) before measuring.
    for _ in 0..20 {
        http.get(&url).send().await?.error_for_status()?;
    }
    let mut times = Vec::with_capacity(requests);
    for _ in 0..requests {
        let started = Instant::now();
        let reply = http.get(&url).send().await?.error_for_status()?;
        reply.bytes().await?;
        times.push(started.elapsed());
    }
    times.sort();
    Ok(RouteLatency {
        name,
        requests,
        p50: percentile(&times, 0.5),
        p99: percentile(&times, 0.99),
    })
}

/// `GET /api/health` on a bare axum route, on the handler's own port (the shim's routing and
/// forwarded-request handling), and through devhost (what the host adds, not meshpay).
pub async fn shim_overhead(stack: &Stack, requests: usize) -> anyhow::Result<Vec<RouteLatency>> {
    let (bare, server) = bare_axum().await?;
    let rows = vec![
        latency("bare axum route", &bare, requests).await?,
        latency("handler (shim)", &stack.devhost().handler_url(), requests).await?,
        latency("devhost → handler", &stack.devhost().base_url(), requests).await?,
    ];
    server.abort();
    Ok(rows)
}
