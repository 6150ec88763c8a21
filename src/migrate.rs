//! `meshpay migrate`: applies the embedded PostgreSQL migrations (idempotent; safe to run from
//! several deploy steps at once: sqlx serializes runners on an advisory lock).

use clap::Args;
use meshpay_store::{MIGRATOR, Store};

#[derive(Debug, Clone, Args)]
pub struct MigrateArgs {
    /// PostgreSQL connection string.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: String,
}

pub async fn run(args: MigrateArgs) -> anyhow::Result<()> {
    let store = Store::connect(&args.database_url, 2).await?;
    store.migrate().await?;
    let versions: Vec<i64> = MIGRATOR.iter().map(|m| m.version).collect();
    println!(
        "{}",
        serde_json::json!({ "migrated": true, "versions": versions })
    );
    Ok(())
}
