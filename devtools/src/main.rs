//! meshpay-dev: tools for the local stack that `make dev` starts. A separate executable, so the
//! handler deployed to Azure (`meshpay`, the only binary `scripts/package.sh` ships) carries no
//! demo code and no API client.

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
    /// Drive N payments through a stack of its own while injecting faults (handler kills,
    /// duplicate deliveries, RPC faults, dropped database connections, Azurite restarts, a
    /// reorg), then check every money invariant; ends with `N passed, M failed`.
    Chaos(chaos::ChaosArgs),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Demo(args) => demo::run(args).await,
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
