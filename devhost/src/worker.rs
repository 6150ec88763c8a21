//! The custom-handler process: started on a free port with the host's environment, polled
//! with `GET /` every 25 ms until any HTTP answer, restarted when it dies or when an
//! invocation on it times out, killed on shutdown.
//!
//! Failures never stop devhost. The host restarts a dead worker, and after repeated failures
//! recycles itself (a fresh start, with a delay between attempts) instead of exiting; devhost
//! does the same with the handler: restarts 1 and 2 within 30 minutes are immediate, each
//! later one waits [`backoff`] first (1 s, doubling, at most 2 minutes). A handler that
//! always crashes is so retried at least every 2 minutes, forever, while the rest of the
//! local stack keeps running.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use tokio::io::{AsyncBufReadExt as _, AsyncRead, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::{mpsc, watch};

/// The host's readiness poll interval.
const READY_POLL: Duration = Duration::from_millis(25);
/// From this many handler failures within [`ERROR_WINDOW`] on, the host recycles with backoff.
const MAX_ERRORS: usize = 3;
const ERROR_WINDOW: Duration = Duration::from_secs(30 * 60);
/// First and largest wait before a restart once failures reach [`MAX_ERRORS`].
const BACKOFF_MIN: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(120);

/// The wait before the next start after `failures` failures within the window: none below
/// [`MAX_ERRORS`], then 1 s, 2 s, 4 s, ... capped at [`BACKOFF_MAX`].
pub fn backoff(failures: usize) -> Duration {
    if failures < MAX_ERRORS {
        return Duration::ZERO;
    }
    let doublings = u32::try_from(failures - MAX_ERRORS)
        .unwrap_or(u32::MAX)
        .min(16);
    BACKOFF_MIN.saturating_mul(1 << doublings).min(BACKOFF_MAX)
}

/// Asks the supervisor to restart the handler listening on the given port (an invocation on
/// it timed out). Requests about a handler that is already gone are ignored.
pub type RestartRequests = mpsc::UnboundedSender<u16>;

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

/// Runs the handler until `shutdown` turns true, restarting it whenever it dies, fails to
/// start, or is asked to (`restarts`). Errors only when devhost itself cannot work (no port,
/// no HTTP client), never because the handler keeps failing.
pub async fn supervise(
    spec: WorkerSpec,
    ready: watch::Sender<Option<u16>>,
    mut restarts: mpsc::UnboundedReceiver<u16>,
    mut shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .context("building readiness client")?;
    let mut errors: VecDeque<Instant> = VecDeque::new();
    loop {
        let port = free_port()?;
        let mut child = match spawn(&spec, port) {
            Ok(child) => Some(child),
            Err(e) => {
                tracing::error!("handler failed to start: {e:#}");
                None
            }
        };
        let started = Instant::now();
        let failed = match child.as_mut() {
            None => true,
            Some(running) => {
                let outcome = tokio::select! {
                    r = wait_ready(&client, port, running, spec.init_timeout) => r,
                    _ = crate::shutdown::shutdown_requested(&mut shutdown) => {
                        return stop(child).await;
                    }
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
                        let ended =
                            run_until_exit_or_restart(running, port, &mut restarts, &mut shutdown)
                                .await;
                        ready.send_replace(None);
                        match ended {
                            Ended::Shutdown => return stop(child).await,
                            Ended::Exited => true,
                            Ended::RestartRequested => false,
                        }
                    }
                    Err(e) => {
                        tracing::error!("handler failed to start: {e:#}");
                        true
                    }
                }
            }
        };
        let _ = stop(child).await;
        // Requests about the handler just stopped are answered by this restart.
        while restarts.try_recv().is_ok() {}
        if !failed {
            continue;
        }
        let now = Instant::now();
        errors.push_back(now);
        while errors
            .front()
            .is_some_and(|t| now.duration_since(*t) > ERROR_WINDOW)
        {
            errors.pop_front();
        }
        let wait = backoff(errors.len());
        if !wait.is_zero() {
            tracing::warn!(
                failures = errors.len(),
                backoff_ms = wait.as_millis() as u64,
                "handler failed {} times within 30 minutes; recycling after {wait:?} (as the Functions host does)",
                errors.len()
            );
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                _ = crate::shutdown::shutdown_requested(&mut shutdown) => return Ok(()),
            }
        }
    }
}

enum Ended {
    Exited,
    RestartRequested,
    Shutdown,
}

/// Waits while the ready handler on `port` runs: until it exits, a restart of it is asked
/// for, or devhost shuts down.
async fn run_until_exit_or_restart(
    child: &mut Child,
    port: u16,
    restarts: &mut mpsc::UnboundedReceiver<u16>,
    shutdown: &mut watch::Receiver<bool>,
) -> Ended {
    loop {
        tokio::select! {
            status = child.wait() => {
                let status = status.map_or_else(|e| e.to_string(), |s| s.to_string());
                tracing::error!("handler exited ({status}); restarting");
                return Ended::Exited;
            }
            Some(asked) = restarts.recv() => {
                if asked == port {
                    tracing::warn!(
                        port,
                        "restarting the handler after a function timeout; its in-flight invocations fail"
                    );
                    return Ended::RestartRequested;
                }
            }
            _ = crate::shutdown::shutdown_requested(shutdown) => return Ended::Shutdown,
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
async fn stop(child: Option<Child>) -> anyhow::Result<()> {
    let Some(mut child) = child else {
        return Ok(());
    };
    if child.try_wait()?.is_none() {
        tracing::info!(pid = child.id(), "stopping handler");
        child.start_kill()?;
        child.wait().await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_failures_restart_at_once_then_backoff_doubles_up_to_two_minutes() {
        assert_eq!(backoff(1), Duration::ZERO);
        assert_eq!(backoff(2), Duration::ZERO);
        assert_eq!(backoff(3), Duration::from_secs(1));
        assert_eq!(backoff(4), Duration::from_secs(2));
        assert_eq!(backoff(5), Duration::from_secs(4));
        assert_eq!(backoff(10), Duration::from_secs(120));
        assert_eq!(backoff(usize::MAX), Duration::from_secs(120));
    }
}
