//! `meshpay migrate`: applies the embedded PostgreSQL migrations (idempotent; safe to run from
//! several deploy steps at once: sqlx serializes runners on an advisory lock).

use clap::Args;
use meshpay_store::{MIGRATOR, Store};

use crate::settings;

#[derive(Debug, Clone, Args)]
pub struct MigrateArgs {
    /// PostgreSQL connection string; default: the `DATABASE_URL` setting (with
    /// MESHPAY_DB_AUTH=entra and MESHPAY_DB_CREDENTIAL=azure-cli: without password, an Entra
    /// token from `az login` is used).
    #[arg(long)]
    pub database_url: Option<String>,
}

pub async fn run(args: MigrateArgs) -> anyhow::Result<()> {
    let db =
        settings::database(args.database_url.as_deref(), settings::env)?.with_max_connections(2);
    let store = Store::connect_with(&db).await?;
    store.migrate().await?;
    let versions: Vec<i64> = MIGRATOR.iter().map(|m| m.version).collect();
    println!(
        "{}",
        serde_json::json!({ "migrated": true, "versions": versions })
    );
    Ok(())
}
