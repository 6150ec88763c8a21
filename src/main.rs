//! meshpay: the one custom-handler executable serving every Azure Functions function.
//! `meshpay` or `meshpay serve` runs the handler; other subcommands are operator tools.

mod admin;
mod chains;
mod cli;
mod migrate;
mod serve;
mod settings;
mod wallets;

use std::time::Instant;

use clap::Parser as _;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::writer::BoxMakeWriter;

use crate::cli::{Cli, Command, LogFormat};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // Start-to-ready is reported from here (the runtime is already up: it takes microseconds).
    let started = Instant::now();
    let cli = Cli::parse();
    let log_format = cli.log_format;
    let command = cli.command();
    // The Functions host records a handler's stderr as errors, so the handler logs to stdout;
    // operator subcommands print their JSON result on stdout and log to stderr.
    init_logging(log_format, matches!(command, Command::Serve(_)));
    match command {
        Command::Serve(args) => {
            let settings = settings::Settings::from_env()?;
            let telemetry = meshpay_telemetry::export::start(&settings.telemetry)?;
            let served = serve::run(args, settings, started).await;
            if let Some(telemetry) = telemetry {
                // Flushing blocks on the exporters' HTTP calls: off the async workers.
                let flushed = tokio::task::spawn_blocking(move || telemetry.shutdown()).await;
                if let Err(error) = flushed {
                    tracing::warn!(%error, "telemetry flush did not finish");
                }
            }
            served
        }
        Command::Migrate(args) => migrate::run(args).await,
        Command::Admin(args) => admin::run(args).await,
        Command::Wallets(args) => wallets::run(args).await,
        Command::Chains(args) => chains::run(args).await,
    }
}

/// Level from `RUST_LOG`, default info.
fn init_logging(format: LogFormat, to_stdout: bool) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let writer = if to_stdout {
        BoxMakeWriter::new(std::io::stdout)
    } else {
        BoxMakeWriter::new(std::io::stderr)
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Compact => builder.compact().with_ansi(false).init(),
    }
}
