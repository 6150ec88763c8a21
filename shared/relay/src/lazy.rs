//! [`LazyRelay`]: the process's relay, built from the environment at first use.
//!
//! Built lazily so the process starts, and serves every other function, before the database or
//! the signers (Key Vault) are reached; shared so the broadcast and reconcile functions use one
//! database pool and one set of signers. A failed build is retried by the next caller.

use std::sync::Arc;

use tokio::sync::OnceCell;

use crate::{Relay, RelayError};

#[derive(Clone)]
pub struct LazyRelay {
    cell: Arc<OnceCell<Arc<Relay>>>,
    max_db_connections: u32,
}

impl std::fmt::Debug for LazyRelay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LazyRelay")
            .field("ready", &self.cell.initialized())
            .finish_non_exhaustive()
    }
}

impl LazyRelay {
    /// [`Relay::from_env`] at the first [`LazyRelay::get`].
    pub fn from_env(max_db_connections: u32) -> Self {
        LazyRelay {
            cell: Arc::new(OnceCell::new()),
            max_db_connections,
        }
    }

    /// An already built relay (tests).
    pub fn ready(relay: Arc<Relay>) -> Self {
        LazyRelay {
            cell: Arc::new(OnceCell::new_with(Some(relay))),
            max_db_connections: 0,
        }
    }

    pub async fn get(&self) -> Result<&Arc<Relay>, RelayError> {
        self.cell
            .get_or_try_init(|| async {
                let relay = Relay::from_env(self.max_db_connections).await?;
                tracing::info!(?relay, "relay ready");
                Ok(Arc::new(relay))
            })
            .await
    }
}
