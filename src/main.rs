//! meshpay: the one custom-handler executable serving every Azure Functions function.
//! `meshpay` or `meshpay serve` runs the handler; other subcommands are operator tools.

mod cli;
mod serve;

use std::time::Instant;

use clap::Parser as _;
use tracing_subscriber::EnvFilter;

use crate::cli::{Cli, Command, LogFormat};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // Start-to-ready is reported from here (the runtime is already up: it takes microseconds).
    let started = Instant::now();
    let cli = Cli::parse();
    init_logging(cli.log_format);
    match cli.command() {
        Command::Serve(args) => serve::run(args, started).await,
    }
}

/// Logs go to stderr (the host captures both streams); level from `RUST_LOG`, default info.
fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Compact => builder.compact().with_ansi(false).init(),
    }
}
