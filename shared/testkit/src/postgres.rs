//! One fresh PostgreSQL database per test, on the server `DATABASE_URL` names.
//!
//! The server itself is shared (started by `scripts/postgres.sh ensure`, which `make test` runs);
//! isolation comes from a uniquely named database per [`TestDb`], so tests run in parallel.
//! Databases are dropped when the [`TestDb`] is dropped (on a background thread, best effort: a
//! test process may exit before it finishes). The first [`TestDb::create`] of each process sweeps
//! leftovers: those of processes no longer running (local servers only) and any older than two hours.

use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sqlx::migrate::Migrator;
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::{Connection, PgConnection};
use url::Url;

/// The server used when `DATABASE_URL` is unset: the one `scripts/postgres.sh` starts.
pub const DEFAULT_DATABASE_URL: &str = "postgres://meshpay:meshpay@127.0.0.1:5432/meshpay";

/// Name prefix of every database this module creates (and may sweep).
const PREFIX: &str = "mp_test_";

/// Leftover test databases older than this are dropped by the sweep.
const SWEEP_AFTER: Duration = Duration::from_secs(2 * 60 * 60);

/// Pool size per test database: small, because many tests run at once against one server.
const POOL_SIZE: u32 = 5;

/// The server's URL: `DATABASE_URL` or [`DEFAULT_DATABASE_URL`].
pub fn server_url() -> String {
    std::env::var("DATABASE_URL").unwrap_or_else(|_| DEFAULT_DATABASE_URL.to_owned())
}

/// The server's `postgres` maintenance database, where test databases are created and dropped:
/// not the database `DATABASE_URL` names, which `make dev` drops and recreates (`WITH FORCE`)
/// while tests may be running beside it.
pub fn maintenance_url() -> String {
    with_database(&server_url(), "postgres")
}

/// A fresh, empty database that exists for the lifetime of this value.
pub struct TestDb {
    name: String,
    url: String,
    admin_url: String,
    pool: PgPool,
}

impl TestDb {
    /// Creates a uniquely named empty database and a pool on it. Panics with a hint when the
    /// server is unreachable.
    pub async fn create() -> TestDb {
        let admin_url = maintenance_url();
        let mut admin = PgConnection::connect(&admin_url).await.unwrap_or_else(|e| {
            panic!(
                "cannot connect to PostgreSQL at {} ({e}); start it with `scripts/postgres.sh ensure` \
                 (make test does) or set DATABASE_URL",
                redact(&admin_url)
            )
        });
        sweep_once(&mut admin, &admin_url).await;

        let name = unique_name();
        sqlx::query(&format!(r#"CREATE DATABASE "{name}""#))
            .execute(&mut admin)
            .await
            .unwrap_or_else(|e| {
                panic!("CREATE DATABASE {name}: {e} (does the role have CREATEDB?)")
            });
        let _ = admin.close().await;

        let url = with_database(&admin_url, &name);
        let pool = PgPoolOptions::new()
            .max_connections(POOL_SIZE)
            .acquire_timeout(Duration::from_secs(30))
            .connect(&url)
            .await
            .unwrap_or_else(|e| panic!("connect to test database {name}: {e}"));
        TestDb {
            name,
            url,
            admin_url,
            pool,
        }
    }

    /// Creates a fresh database and applies `migrator` to it (e.g. a `sqlx::migrate!` static).
    pub async fn create_migrated(migrator: &Migrator) -> TestDb {
        let db = TestDb::create().await;
        migrator
            .run(&db.pool)
            .await
            .unwrap_or_else(|e| panic!("migrations on {}: {e}", db.name));
        db
    }

    /// The database's URL (for a child process's `DATABASE_URL`).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A pool on the database (cheap to clone).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// A new pool of `max_connections` on the database, for tests that run many transactions
    /// at once.
    pub async fn pool_of(&self, max_connections: u32) -> PgPool {
        PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(60))
            .connect(&self.url)
            .await
            .unwrap_or_else(|e| panic!("connect to test database {}: {e}", self.name))
    }

    /// Drops the database now and waits for it; use where a test wants to check cleanup.
    pub async fn drop_now(self) {
        self.pool.close().await;
        drop_database(&self.admin_url, &self.name).await;
        // Drop still runs; its DROP ... IF EXISTS is then a no-op.
    }
}

impl Drop for TestDb {
    /// Drops the database on a thread of its own, so a test's runtime never blocks here and no
    /// runtime is needed. `WITH (FORCE)` ends connections still open in the pool.
    fn drop(&mut self) {
        let admin_url = self.admin_url.clone();
        let name = self.name.clone();
        let _ = std::thread::Builder::new()
            .name(format!("drop-{name}"))
            .spawn(move || {
                if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    rt.block_on(drop_database(&admin_url, &name));
                }
            });
    }
}

impl std::fmt::Debug for TestDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestDb")
            .field("name", &self.name)
            .field("url", &redact(&self.url))
            .finish()
    }
}

async fn drop_database(admin_url: &str, name: &str) {
    if let Ok(mut admin) = PgConnection::connect(admin_url).await {
        let _ = sqlx::query(&format!(r#"DROP DATABASE IF EXISTS "{name}" WITH (FORCE)"#))
            .execute(&mut admin)
            .await;
        let _ = admin.close().await;
    }
}

/// `mp_test_<unix seconds>_<pid>_<random>`: time and pid let the sweep find leftovers.
fn unique_name() -> String {
    let rand = uuid::Uuid::new_v4().simple().to_string();
    format!(
        "{PREFIX}{}_{}_{}",
        unix_now(),
        std::process::id(),
        &rand[..12]
    )
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Creation time and creating pid encoded in a test database's name.
fn parse_name(name: &str) -> Option<(u64, u32)> {
    let mut parts = name.strip_prefix(PREFIX)?.split('_');
    let secs = parts.next()?.parse().ok()?;
    let pid = parts.next()?.parse().ok()?;
    Some((secs, pid))
}

/// Whether a leftover database may be dropped: old, or (when the server runs on this machine,
/// so pids are ours) its creating process is gone.
fn is_stale(name: &str, now: u64, server_is_local: bool) -> bool {
    let Some((secs, pid)) = parse_name(name) else {
        return false;
    };
    let old = now.saturating_sub(secs) > SWEEP_AFTER.as_secs();
    let orphaned = server_is_local
        && pid != std::process::id()
        && !std::path::Path::new(&format!("/proc/{pid}")).exists();
    old || orphaned
}

/// Once per process: drops test databases older than [`SWEEP_AFTER`] (left by killed runs).
async fn sweep_once(admin: &mut PgConnection, admin_url: &str) {
    static SWEPT: OnceLock<()> = OnceLock::new();
    if SWEPT.set(()).is_err() {
        return;
    }
    let now = unix_now();
    let server_is_local = Url::parse(admin_url).is_ok_and(|u| {
        matches!(
            u.host_str(),
            Some("127.0.0.1" | "localhost" | "::1" | "[::1]")
        )
    }) && std::path::Path::new("/proc/self").exists();
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT datname FROM pg_database WHERE datname LIKE 'mp\\_test\\_%' AND datistemplate = false",
    )
    .fetch_all(&mut *admin)
    .await
    .unwrap_or_default();
    for name in names {
        if is_stale(&name, now, server_is_local) {
            let _ = sqlx::query(&format!(r#"DROP DATABASE IF EXISTS "{name}" WITH (FORCE)"#))
                .execute(&mut *admin)
                .await;
        }
    }
}

/// `url` with its path (the database name) replaced by `name`.
fn with_database(url: &str, name: &str) -> String {
    let mut parsed = Url::parse(url)
        .unwrap_or_else(|e| panic!("DATABASE_URL is not a URL ({e}): {}", redact(url)));
    parsed.set_path(&format!("/{name}"));
    parsed.to_string()
}

/// The URL without its password, for messages.
fn redact(url: &str) -> String {
    match Url::parse(url) {
        Ok(mut u) => {
            if u.password().is_some() {
                let _ = u.set_password(Some("***"));
            }
            u.to_string()
        }
        Err(_) => "<unparsable DATABASE_URL>".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn with_database_replaces_only_the_database_name() {
        let url = with_database(
            "postgres://u:p@127.0.0.1:5432/meshpay?sslmode=disable",
            "mp_test_1_a",
        );
        assert_eq!(
            url,
            "postgres://u:p@127.0.0.1:5432/mp_test_1_a?sslmode=disable"
        );
    }

    #[test]
    fn unique_names_carry_their_creation_time_and_pid() {
        let name = unique_name();
        let (t, pid) = parse_name(&name).expect("time and pid in name");
        assert!(t > 1_600_000_000, "{name}");
        assert_eq!(pid, std::process::id());
        assert_ne!(unique_name(), name);
    }

    #[test]
    fn only_old_or_orphaned_test_databases_are_stale() {
        let now = unix_now();
        let me = std::process::id();
        // Ours and fresh: kept.
        assert!(!is_stale(&format!("mp_test_{now}_{me}_abc"), now, true));
        // Fresh, from a pid that cannot exist (above pid_max): orphaned on a local server only.
        assert!(is_stale(
            &format!("mp_test_{now}_4294967295_abc"),
            now,
            true
        ));
        assert!(!is_stale(
            &format!("mp_test_{now}_4294967295_abc"),
            now,
            false
        ));
        // Old: stale anywhere.
        assert!(is_stale(
            &format!("mp_test_{}_{me}_abc", now - 3 * 3600),
            now,
            false
        ));
        // Not ours: never.
        assert!(!is_stale("meshpay", now, true));
        assert!(!is_stale("mp_test_garbage", now, true));
    }

    #[test]
    fn redact_hides_the_password() {
        assert_eq!(redact("postgres://u:secret@h/db"), "postgres://u:***@h/db");
    }
}
