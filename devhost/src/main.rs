//! devhost: a local stand-in for the Azure Functions host, speaking the custom-handler
//! protocol. Reads host.json and functions/*/function.json, runs the handler executable,
//! serves HTTP triggers on 127.0.0.1:7071, polls Storage queues, fires timers.
//!
//! ```text
//! devhost --app-root . [--port 7071] [--executable target/debug/meshpay]
//!         [--host-json other.json] [--host-set extensions.queues.maxDequeueCount=2]...
//! ```

mod config;
mod host;
mod http_server;
mod invoke;
mod outputs;
mod queue_listener;
mod queues;
mod routes;
mod shutdown;
mod timer;
mod wire;
mod worker;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use tokio::sync::watch;

use crate::config::functions::{self, FunctionDef, Trigger};
use crate::config::host::HostConfig;
use crate::config::settings::Settings;
use crate::host::Host;
use crate::invoke::Invoker;
use crate::queues::QueueRegistry;
use crate::worker::WorkerSpec;

/// Local stand-in for the Azure Functions host (custom handlers).
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// The function app root (host.json, local.settings.json, functions/).
    #[arg(long, default_value = ".")]
    app_root: PathBuf,
    /// Folder of function folders, relative to the app root (falls back to the app root).
    #[arg(long, default_value = "functions")]
    functions_dir: String,
    /// HTTP port on 127.0.0.1 (0 = any free port; the chosen one is logged).
    #[arg(long, default_value_t = 7071)]
    port: u16,
    /// Handler executable instead of host.json's defaultExecutablePath.
    #[arg(long, env = "DEVHOST_EXECUTABLE")]
    executable: Option<PathBuf>,
    /// Read this file instead of <app-root>/host.json.
    #[arg(long)]
    host_json: Option<PathBuf>,
    /// Override a host.json value, e.g. `extensions.queues.maxDequeueCount=2` (repeatable).
    #[arg(long = "host-set", value_name = "PATH=VALUE")]
    host_set: Vec<String>,
    /// Shut down when stdin reaches end of file (for supervisors such as tests: devhost and
    /// its handler then never outlive the parent holding the pipe).
    #[arg(long)]
    stop_on_stdin_eof: bool,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let filter = tracing_subscriber::EnvFilter::try_from_env("DEVHOST_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colours only on a terminal: tests and `make dev` capture the output to files.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr)
        .init();
    match run(Args::parse()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("devhost stopped: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    let app_root = args
        .app_root
        .canonicalize()
        .with_context(|| format!("app root {}", args.app_root.display()))?;
    let settings = Settings::load(&app_root)?;
    let host_json = args
        .host_json
        .clone()
        .unwrap_or_else(|| app_root.join("host.json"));
    let config = HostConfig::load(&host_json, &args.host_set)?;
    let functions = index_functions(&app_root, &args.functions_dir, &settings, &config)?;

    let (shutdown_tx, shutdown) = watch::channel(false);
    let (ready_tx, worker_state) = watch::channel(None);
    let spec = worker_spec(&args, &app_root, &settings, &config)?;
    let (restart_tx, restart_rx) = tokio::sync::mpsc::unbounded_channel();
    let supervisor = tokio::spawn(worker::supervise(
        spec,
        ready_tx,
        restart_rx,
        shutdown.clone(),
    ));

    let invoker = Invoker::new(
        worker_state,
        restart_tx,
        config.initialization_timeout,
        config.function_timeout,
    )?;
    let queues = Arc::new(QueueRegistry::new(settings, config.queues.message_encoding));
    let host = Host { invoker, queues };

    let listener = tokio::net::TcpListener::bind(("127.0.0.1", args.port))
        .await
        .with_context(|| format!("binding 127.0.0.1:{}", args.port))?;
    let port = listener.local_addr()?.port();
    let app = Arc::new(http_server::HttpApp {
        host: host.clone(),
        prefix: config.route_prefix.clone(),
        functions: functions.clone(),
    });
    let mut server_shutdown = shutdown.clone();
    let server = tokio::spawn(async move {
        axum::serve(listener, http_server::router(app))
            .with_graceful_shutdown(async move {
                crate::shutdown::shutdown_requested(&mut server_shutdown).await;
            })
            .await
    });
    announce(&host, port, &config, &functions);
    let triggers = start_triggers(&host, &functions, &config, &shutdown);

    let outcome = tokio::select! {
        r = supervisor => r.context("handler supervisor")?,
        r = shutdown_signal(args.stop_on_stdin_eof) => r,
    };
    shutdown_tx.send_replace(true);
    // In-flight messages are handed back; give them a moment.
    let drain = async {
        for t in triggers {
            let _ = t.await;
        }
        let _ = server.await;
    };
    let _ = tokio::time::timeout(Duration::from_secs(5), drain).await;
    outcome
}

fn index_functions(
    app_root: &Path,
    functions_dir: &str,
    settings: &Settings,
    config: &HostConfig,
) -> anyhow::Result<Vec<Arc<FunctionDef>>> {
    let root = functions::functions_root(app_root, functions_dir);
    let (functions, errors) = functions::load_all(&root, settings, config.forward_http)?;
    for e in &errors {
        tracing::error!("function not indexed: {e}");
    }
    if functions.is_empty() {
        tracing::warn!(root = %root.display(), "no functions found");
    }
    Ok(functions.into_iter().map(Arc::new).collect())
}

fn worker_spec(
    args: &Args,
    app_root: &Path,
    settings: &Settings,
    config: &HostConfig,
) -> anyhow::Result<WorkerSpec> {
    let program = match &args.executable {
        Some(p) => p
            .canonicalize()
            .with_context(|| format!("--executable {}", p.display()))?,
        None => {
            // As the host: relative to the app root when that file exists, else a command on PATH.
            let candidate = app_root.join(&config.executable);
            if candidate.is_file() {
                candidate
            } else {
                PathBuf::from(&config.executable)
            }
        }
    };
    let cwd = config
        .working_directory
        .as_ref()
        .map_or_else(|| app_root.to_path_buf(), |d| app_root.join(d));
    Ok(WorkerSpec {
        program,
        args: config
            .arguments
            .iter()
            .map(|a| settings.expand_lenient(a))
            .filter(|a| !a.is_empty())
            .collect(),
        cwd,
        env: settings.local_values_not_in_env(),
        app_root: app_root.to_path_buf(),
        init_timeout: config.initialization_timeout,
    })
}

/// Lists the functions like Core Tools does, and says when the host is ready.
fn announce(host: &Host, port: u16, config: &HostConfig, functions: &[Arc<FunctionDef>]) {
    let base = if config.route_prefix.is_empty() {
        format!("http://127.0.0.1:{port}")
    } else {
        format!("http://127.0.0.1:{port}/{}", config.route_prefix)
    };
    for f in functions {
        match &f.trigger {
            Trigger::Http(h) => {
                let methods = h
                    .methods
                    .as_ref()
                    .map_or_else(|| "*".to_owned(), |m| m.join(","));
                let mode = if h.forwarded { "forwarded" } else { "envelope" };
                tracing::info!(
                    "function {}: [{methods}] {base}/{} ({mode})",
                    f.name,
                    h.route.as_str()
                );
            }
            Trigger::Queue(q) => {
                tracing::info!("function {}: queueTrigger `{}`", f.name, q.queue_name)
            }
            Trigger::Timer(t) => {
                tracing::info!("function {}: timerTrigger `{}`", f.name, t.schedule)
            }
        }
    }
    let invoker = host.invoker.clone();
    tokio::spawn(async move {
        if invoker.port().await.is_ok() {
            tracing::info!("devhost ready at {base}");
        }
    });
}

fn start_triggers(
    host: &Host,
    functions: &[Arc<FunctionDef>],
    config: &HostConfig,
    shutdown: &watch::Receiver<bool>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let mut tasks = Vec::new();
    for f in functions {
        match &f.trigger {
            Trigger::Queue(q) => {
                let listener = queue_listener::QueueListener::new(
                    host.clone(),
                    f.clone(),
                    q.clone(),
                    config.queues.clone(),
                    config.function_timeout,
                    shutdown.clone(),
                );
                tasks.push(tokio::spawn(listener.run()));
            }
            Trigger::Timer(t) => {
                tasks.push(tokio::spawn(timer::run(
                    host.clone(),
                    f.clone(),
                    t.clone(),
                    shutdown.clone(),
                )));
            }
            Trigger::Http(_) => {}
        }
    }
    tasks
}

async fn shutdown_signal(stop_on_stdin_eof: bool) -> anyhow::Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let stdin_closed = async {
        if !stop_on_stdin_eof {
            return std::future::pending::<()>().await;
        }
        // A plain thread: tokio's stdin would make runtime shutdown wait for the read.
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink());
            let _ = tx.send(());
        });
        let _ = rx.await;
    };
    tokio::select! {
        r = tokio::signal::ctrl_c() => r?,
        _ = term.recv() => {}
        () = stdin_closed => tracing::info!("stdin closed"),
    }
    tracing::info!("shutting down");
    Ok(())
}
