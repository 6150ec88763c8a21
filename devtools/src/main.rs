//! meshpay-dev: tools for the local stack that `make dev` starts. A separate executable, so the
//! handler deployed to Azure (`meshpay`, the only binary `scripts/package.sh` ships) carries no
//! demo code and no API client.

mod bench;
mod chaos;
mod demo;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "meshpay-dev", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Make one payment through a running stack (quote → settled), printing each step with
    /// timings, then check it against the chain's receipt (what `make dev` runs).
    Demo(demo::DemoArgs),
    /// Start a local stack of its own and measure the API, the pipeline and its limits
    /// (`make bench`; build with --release first). Prints a table, writes JSON.
    Bench(bench::BenchArgs),
    /// Drive N payments through a stack of its own while injecting faults (handler kills,
    /// duplicate deliveries, RPC faults, dropped database connections, Azurite restarts, a
    /// reorg), then check every money invariant; ends with `N passed, M failed`.
    Chaos(chaos::ChaosArgs),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Demo(args) => demo::run(args).await,
        Command::Bench(args) => bench::run(args).await,
        Command::Chaos(args) => {
            if chaos::run(args).await? {
                Ok(())
            } else {
                anyhow::bail!("the chaos run found violations (report above)")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bench_defaults_to_a_short_run_and_takes_handler_settings() {
        let cli = Cli::try_parse_from([
            "meshpay-dev",
            "bench",
            "--set",
            "MESHPAY_CONFIRM_POLL_MIN_MS=2000",
        ])
        .unwrap();
        let Command::Bench(args) = cli.command else {
            panic!("not the bench command");
        };
        assert_eq!((args.payments, args.concurrency), (300, 32));
        assert_eq!(
            args.settings,
            vec![("MESHPAY_CONFIRM_POLL_MIN_MS".to_owned(), "2000".to_owned())]
        );
        assert!(Cli::try_parse_from(["meshpay-dev", "bench", "--set", "novalue"]).is_err());
    }

    #[test]
    fn demo_takes_the_key_from_the_flag_and_defaults_to_usdc_on_the_local_stack() {
        let cli = Cli::try_parse_from(["meshpay-dev", "demo", "--api-key", "mp_x"]).unwrap();
        let Command::Demo(args) = cli.command else {
            panic!("not the demo command");
        };
        assert_eq!(args.api, "http://127.0.0.1:7071/api");
        assert_eq!(args.rpc, "http://127.0.0.1:8545");
        assert_eq!(
            (args.asset.as_str(), args.amount.as_str()),
            ("USDC", "25.00")
        );
        assert_eq!(args.api_key.expose(), "mp_x");
    }
}
