//! The custom-handler process: started on a free port with the host's environment, polled
//! with `GET /` every 25 ms until any HTTP answer, restarted when it dies, killed on shutdown.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use tokio::io::{AsyncBufReadExt as _, AsyncRead, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::watch;

/// The host's readiness poll interval.
const READY_POLL: Duration = Duration::from_millis(25);
/// The host stops the app after this many handler failures within [`ERROR_WINDOW`].
const MAX_ERRORS: usize = 3;
const ERROR_WINDOW: Duration = Duration::from_secs(30 * 60);

/// How to start the handler.
#[derive(Clone, Debug)]
pub struct WorkerSpec {
    /// Program to run.
    pub program: PathBuf,
    /// Its arguments.
    pub args: Vec<String>,
    /// Working directory.
    pub cwd: PathBuf,
    /// Extra environment (local settings); the process environment is inherited.
    pub env: Vec<(String, String)>,
    /// `FUNCTIONS_APP_ROOT_PATH`.
    pub app_root: PathBuf,
    /// Time allowed from spawn to the first HTTP answer.
    pub init_timeout: Duration,
}

/// Where the ready handler listens; `None` while starting or restarting.
pub type WorkerState = watch::Receiver<Option<u16>>;

/// Waits until the handler is ready (up to `timeout`); its port.
pub async fn ready_port(state: &WorkerState, timeout: Duration) -> Option<u16> {
    let mut state = state.clone();
    let wait = state.wait_for(Option::is_some);
    match tokio::time::timeout(timeout, wait).await {
        Ok(Ok(port)) => *port,
        _ => None,
    }
}

/// Runs the handler until `shutdown` turns true; errors when it keeps failing.
pub async fn supervise(
    spec: WorkerSpec,
    ready: watch::Sender<Option<u16>>,
    mut shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .context("building readiness client")?;
    let mut errors: VecDeque<Instant> = VecDeque::new();
    loop {
        let port = free_port()?;
        let mut child = spawn(&spec, port)?;
        let started = Instant::now();
        let outcome = tokio::select! {
            r = wait_ready(&client, port, &mut child, spec.init_timeout) => r,
            _ = crate::shutdown::shutdown_requested(&mut shutdown) => return stop(child).await,
        };
        match outcome {
            Ok(()) => {
                let ms = started.elapsed().as_millis();
                tracing::info!(
                    port,
                    startup_ms = ms as u64,
                    "handler ready: start-to-ready {ms} ms"
                );
                ready.send_replace(Some(port));
                tokio::select! {
                    status = child.wait() => {
                        ready.send_replace(None);
                        let status = status.map_or_else(|e| e.to_string(), |s| s.to_string());
                        tracing::error!("handler exited ({status}); restarting");
                    }
                    _ = crate::shutdown::shutdown_requested(&mut shutdown) => {
                        ready.send_replace(None);
                        return stop(child).await;
                    }
                }
            }
            Err(e) => {
                tracing::error!("handler failed to start: {e:#}");
                let _ = stop(child).await;
            }
        }
        let now = Instant::now();
        errors.push_back(now);
        while errors
            .front()
            .is_some_and(|t| now.duration_since(*t) > ERROR_WINDOW)
        {
            errors.pop_front();
        }
        if errors.len() >= MAX_ERRORS {
            bail!(
                "handler failed {MAX_ERRORS} times within 30 minutes; stopping (as the Functions host does)"
            );
        }
    }
}

fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(listener.local_addr()?.port())
}

fn spawn(spec: &WorkerSpec, port: u16) -> anyhow::Result<Child> {
    let worker_id = uuid::Uuid::new_v4().to_string();
    let mut cmd = Command::new(&spec.program);
    cmd.args(&spec.args)
        .current_dir(&spec.cwd)
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .env("FUNCTIONS_CUSTOMHANDLER_PORT", port.to_string())
        .env("FUNCTIONS_HTTPWORKER_PORT", port.to_string())
        .env("FUNCTIONS_CUSTOMHANDLER_WORKER_ID", &worker_id)
        .env("FUNCTIONS_HTTPWORKER_ID", &worker_id)
        .env("FUNCTIONS_APP_ROOT_PATH", &spec.app_root)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd
        .spawn()
        .with_context(|| format!("starting {}", spec.program.display()))?;
    tracing::info!(program = %spec.program.display(), port, pid = child.id(), "handler started");
    if let Some(out) = child.stdout.take() {
        tokio::spawn(forward_lines(out, false));
    }
    if let Some(err) = child.stderr.take() {
        tokio::spawn(forward_lines(err, true));
    }
    Ok(child)
}

/// Passes the handler's output through unchanged (its own log format), line by line.
async fn forward_lines(stream: impl AsyncRead + Unpin, to_stderr: bool) {
    let mut lines = BufReader::new(stream).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if to_stderr {
            eprintln!("{line}");
        } else {
            println!("{line}");
        }
    }
}

/// Polls `GET /` until any HTTP response (even 404); socket errors mean "not yet".
async fn wait_ready(
    client: &reqwest::Client,
    port: u16,
    child: &mut Child,
    timeout: Duration,
) -> anyhow::Result<()> {
    let url = format!("http://127.0.0.1:{port}/");
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait()? {
            bail!("exited during start-up ({status})");
        }
        if client.get(&url).send().await.is_ok() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!("no HTTP answer on port {port} within {timeout:?} (initializationTimeout)");
        }
        tokio::time::sleep(READY_POLL).await;
    }
}

/// Kills the handler (the host kills its worker process on shutdown) and reaps it.
async fn stop(mut child: Child) -> anyhow::Result<()> {
    if child.try_wait()?.is_none() {
        tracing::info!(pid = child.id(), "stopping handler");
        child.start_kill()?;
        child.wait().await?;
    }
    Ok(())
}
