//! Command line. `serve` is the default so the host can start the bare executable.

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "meshpay",
    version,
    about,
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    #[command(subcommand)]
    command: Option<Command>,

    /// Options of `serve` when no subcommand is given.
    #[command(flatten)]
    serve: ServeArgs,

    #[arg(long, global = true, env = "MESHPAY_LOG_FORMAT", value_enum, default_value_t = LogFormat::Compact)]
    pub log_format: LogFormat,
}

impl Cli {
    pub fn command(self) -> Command {
        self.command.unwrap_or(Command::Serve(self.serve))
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve every function on 127.0.0.1 (the default).
    Serve(ServeArgs),
    /// Apply the PostgreSQL migrations (DATABASE_URL).
    Migrate(crate::migrate::MigrateArgs),
    /// Operator commands: merchants, API keys, ledger funding, parked payments, demo merchant.
    Admin(crate::admin::AdminArgs),
    /// Print each hot-wallet key's Ethereum address (to fund it), or check a signers file.
    Wallets(crate::wallets::WalletsArgs),
    /// Check a chains file (and, with `--rpc-url`, its tokens on a node).
    Chains(crate::chains::ChainsArgs),
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Port the Functions host assigned (`FUNCTIONS_CUSTOMHANDLER_PORT`).
    #[arg(long, env = meshpay_shim::PORT_ENV, default_value_t = meshpay_shim::DEFAULT_PORT)]
    pub port: u16,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Compact,
    Json,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_subcommand_means_serve() {
        let cli = Cli::try_parse_from(["meshpay", "--port", "7001"]).unwrap();
        let Command::Serve(args) = cli.command() else {
            panic!("expected serve")
        };
        assert_eq!(args.port, 7001);
    }

    #[test]
    fn the_demo_is_a_dev_tool_not_a_subcommand_of_the_handler() {
        assert!(Cli::try_parse_from(["meshpay", "demo", "--api-key", "mp_x"]).is_err());
    }

    #[test]
    fn explicit_serve_takes_its_own_port() {
        let cli = Cli::try_parse_from(["meshpay", "serve", "--port", "7002"]).unwrap();
        let Command::Serve(args) = cli.command() else {
            panic!("expected serve")
        };
        assert_eq!(args.port, 7002);
    }
}
