//! [`LazyRelay`]: the process's relay, built from its [`RelaySetup`] at first use.
//!
//! Built lazily so the process starts, and serves every other function, before the database or
//! the signers (Key Vault) are reached; shared so the broadcast and reconcile functions use one
//! set of signers, on the process's one database pool. A failed build is retried by the next
//! caller.

use std::sync::Arc;

use meshpay_chain::ChainsConfig;
use meshpay_signer::SignerSecrets;
use meshpay_store::Store;
use tokio::sync::OnceCell;

use crate::{Relay, RelayConfig, RelayError, SignersFile};

/// What the relay is built from: the process's store (its pool is shared with the other
/// functions), the chains, the parsed signers file and the secret settings it names. Building
/// it reaches the signers.
#[derive(Debug, Clone)]
pub struct RelaySetup {
    pub store: Store,
    pub chains: Arc<ChainsConfig>,
    pub signers: SignersFile,
    pub secrets: SignerSecrets,
    pub config: RelayConfig,
}

impl RelaySetup {
    pub async fn build(&self) -> Result<Relay, RelayError> {
        Relay::from_config(
            self.store.clone(),
            &self.chains,
            &self.signers,
            &self.secrets,
            self.config.clone(),
        )
        .await
    }
}

#[derive(Clone)]
pub struct LazyRelay(Inner);

#[derive(Clone)]
enum Inner {
    Ready(Arc<Relay>),
    Lazy {
        cell: Arc<OnceCell<Arc<Relay>>>,
        setup: Arc<RelaySetup>,
    },
}

impl std::fmt::Debug for LazyRelay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ready = match &self.0 {
            Inner::Ready(_) => true,
            Inner::Lazy { cell, .. } => cell.initialized(),
        };
        f.debug_struct("LazyRelay")
            .field("ready", &ready)
            .finish_non_exhaustive()
    }
}

impl LazyRelay {
    /// `setup` is built at the first [`LazyRelay::get`].
    pub fn new(setup: RelaySetup) -> Self {
        LazyRelay(Inner::Lazy {
            cell: Arc::new(OnceCell::new()),
            setup: Arc::new(setup),
        })
    }

    /// An already built relay (tests).
    pub fn ready(relay: Arc<Relay>) -> Self {
        LazyRelay(Inner::Ready(relay))
    }

    pub async fn get(&self) -> Result<&Arc<Relay>, RelayError> {
        match &self.0 {
            Inner::Ready(relay) => Ok(relay),
            Inner::Lazy { cell, setup } => {
                cell.get_or_try_init(|| async {
                    let relay = setup.build().await?;
                    tracing::info!(?relay, "relay ready");
                    Ok(Arc::new(relay))
                })
                .await
            }
        }
    }
}
