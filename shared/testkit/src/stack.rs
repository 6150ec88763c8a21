//! The whole local stack for end-to-end tests and benchmarks: a fresh migrated PostgreSQL
//! database, anvil with DevUSDC and the DepositFactory deployed, Azurite, and (optionally) devhost running `meshpay`
//! on this repo's functions with the handler settings a test chooses.

use std::path::PathBuf;
use std::str::FromStr;
use std::time::{Duration, Instant};

use meshpay_domain::{Amount, AssetId, MerchantId, Scope, Scopes};
use meshpay_store::{AssetLimit, Store};
use serde_json::json;

use crate::anvil::{Anvil, HOT_WALLET_ACCOUNTS};
use crate::api;
use crate::assets::decimals;
use crate::azurite::Azurite;
use crate::chains::ChainsFile;
use crate::devhost::{Devhost, DevhostBuilder};
use crate::merchant::{Merchant, MerchantSetup, api_key};
use crate::postgres::TestDb;
use crate::rpc_proxy::RpcProxy;

/// Functions downstream of the API.
pub const PIPELINE_FUNCTIONS: [&str; 5] = ["broadcast", "confirm", "settle", "reconcile", "notify"];

/// The chain a stack runs.
#[derive(Debug, Clone)]
pub struct ChainSetup {
    /// DevUSDC minted to each hot wallet (anvil accounts 1 and 2), base units.
    pub hot_wallet_usdc: u128,
    /// `false`: blocks are mined only when the test mines them.
    pub automine: bool,
}

impl Default for ChainSetup {
    fn default() -> Self {
        ChainSetup {
            hot_wallet_usdc: 0,
            automine: true,
        }
    }
}

/// Settings for the handler devhost runs, on top of the ones the stack sets itself
/// (`DATABASE_URL`, `AzureWebJobsStorage`, `MESHPAY_CHAINS_CONFIG`).
#[derive(Debug, Clone, Default)]
pub struct HandlerSettings {
    env: Vec<(String, String)>,
    host: Vec<(String, String)>,
    executable: Option<PathBuf>,
}

impl HandlerSettings {
    /// An app setting (environment variable of devhost and the handler).
    pub fn env(mut self, key: &str, value: impl Into<String>) -> Self {
        self.env.push((key.to_owned(), value.into()));
        self
    }

    /// A host.json setting (`extensions.queues.visibilityTimeout`, ...).
    pub fn host_set(mut self, path: &str, value: &str) -> Self {
        self.host.push((path.to_owned(), value.to_owned()));
        self
    }

    /// The handler executable (the benchmark passes the release build).
    pub fn executable(mut self, path: impl Into<PathBuf>) -> Self {
        self.executable = Some(path.into());
        self
    }

    /// The dev signers (signers.dev.toml: local keys of the hot wallets).
    pub fn dev_signers(self) -> Self {
        let path = crate::ports::repo_root().join("signers.dev.toml");
        self.env("MESHPAY_SIGNERS_CONFIG", path.display().to_string())
    }

    /// Switches `functions` off (app setting `AzureWebJobs.<name>.Disabled`, as on the real host).
    pub fn disabled(self, functions: &[&str]) -> Self {
        functions.iter().fold(self, |settings, function| {
            settings.env(&format!("AzureWebJobs.{function}.Disabled"), "true")
        })
    }

    /// The API's own stage only: the pipeline after it ([`PIPELINE_FUNCTIONS`]) is switched
    /// off, so the broadcast queue keeps what authorize writes (and no signers are needed).
    pub fn api_only(self) -> Self {
        self.disabled(&PIPELINE_FUNCTIONS)
    }

    /// Failed queue messages come back at once (visibility timeout 0, polling every 100 ms),
    /// so retries and the poison path take moments; host.json's maxDequeueCount is kept.
    pub fn fast_retries(self) -> Self {
        self.host_set("extensions.queues.visibilityTimeout", "00:00:00")
            .host_set("extensions.queues.maxPollingInterval", "00:00:00.100")
    }
}

/// How to start a [`Stack`]: by default database + anvil + Azurite, no devhost.
#[derive(Debug, Clone)]
pub struct StackBuilder {
    chain: Option<ChainSetup>,
    devhost: Option<HandlerSettings>,
    rpc_proxy: Option<u64>,
}

impl StackBuilder {
    pub fn chain(mut self, chain: ChainSetup) -> Self {
        self.chain = Some(chain);
        self
    }

    /// No anvil: the handler gets chains.dev.toml as it is (for tests that never reach a chain).
    pub fn without_chain(mut self) -> Self {
        self.chain = None;
        self
    }

    /// The handler reaches the chain through an [`RpcProxy`] seeded with `seed` (no faults until
    /// the test sets them, [`Stack::rpc_proxy`]); the test's own reads go to anvil directly.
    pub fn rpc_proxy(mut self, seed: u64) -> Self {
        self.rpc_proxy = Some(seed);
        self
    }

    /// Runs devhost + `meshpay` with `settings`.
    pub fn devhost(mut self, settings: HandlerSettings) -> Self {
        self.devhost = Some(settings);
        self
    }

    pub async fn start(self) -> Stack {
        let chain = async {
            match &self.chain {
                Some(setup) => Some(start_chain(setup, self.rpc_proxy).await),
                None => None,
            }
        };
        let (db, chain, azurite) = tokio::join!(
            TestDb::create_migrated(&meshpay_store::MIGRATOR),
            chain,
            Azurite::start()
        );
        let (anvil, chains_file, rpc_proxy) = match chain {
            Some((anvil, file, proxy)) => (Some(anvil), Some(file), proxy),
            None => (None, None, None),
        };
        let mut stack = Stack {
            rpc_proxy,
            store: Store::from_pool(db.pool().clone()),
            db,
            anvil,
            azurite,
            chains_file,
            devhost: None,
            http: reqwest::Client::new(),
        };
        if let Some(settings) = self.devhost {
            stack.restart_devhost(settings).await;
        }
        stack
    }
}

async fn start_chain(
    setup: &ChainSetup,
    proxy_seed: Option<u64>,
) -> (Anvil, ChainsFile, Option<RpcProxy>) {
    let anvil = Anvil::start().await;
    anvil
        .deploy_dev_usdc_to(&HOT_WALLET_ACCOUNTS, setup.hot_wallet_usdc)
        .await;
    anvil.deploy_deposit_factory().await;
    if !setup.automine {
        anvil.rpc("evm_setAutomine", json!([false])).await;
    }
    let proxy = match proxy_seed {
        Some(seed) => Some(RpcProxy::start(anvil.url(), seed).await),
        None => None,
    };
    let file = ChainsFile::dev(proxy.as_ref().map_or(anvil.url(), RpcProxy::url));
    (anvil, file, proxy)
}

/// A running stack. Dropping it stops every process and drops the database.
pub struct Stack {
    pub db: TestDb,
    pub store: Store,
    pub azurite: Azurite,
    anvil: Option<Anvil>,
    chains_file: Option<ChainsFile>,
    devhost: Option<Devhost>,
    rpc_proxy: Option<RpcProxy>,
    http: reqwest::Client,
}

impl Stack {
    pub fn builder() -> StackBuilder {
        StackBuilder {
            chain: Some(ChainSetup::default()),
            devhost: None,
            rpc_proxy: None,
        }
    }

    /// (Re)starts devhost + `meshpay` with `settings` on the same database, queues and chain.
    pub async fn restart_devhost(&mut self, settings: HandlerSettings) {
        // The old one goes first: two hosts would compete for the queues.
        drop(self.devhost.take());
        let chains = match &self.chains_file {
            Some(file) => file.path().to_path_buf(),
            None => crate::ports::repo_root().join("chains.dev.toml"),
        };
        let mut builder: DevhostBuilder = Devhost::builder()
            .env("DATABASE_URL", self.db.url())
            .env("MESHPAY_CHAINS_CONFIG", chains.display().to_string())
            .env("AzureWebJobsStorage", self.azurite.connection_string());
        for (key, value) in settings.env {
            builder = builder.env(&key, value);
        }
        for (path, value) in settings.host {
            builder = builder.host_set(&path, &value);
        }
        if let Some(executable) = settings.executable {
            builder = builder.executable(executable);
        }
        self.devhost = Some(builder.start().await);
    }

    /// The chain; panics when the stack was started without one.
    pub fn anvil(&self) -> &Anvil {
        self.anvil.as_ref().expect("stack started without a chain")
    }

    /// The chains config file the handler reads (the dev one without a chain).
    pub fn chains_path(&self) -> PathBuf {
        match &self.chains_file {
            Some(file) => file.path().to_path_buf(),
            None => crate::ports::repo_root().join("chains.dev.toml"),
        }
    }

    /// The RPC fault proxy between the handler and anvil; panics when the stack was started
    /// without one ([`StackBuilder::rpc_proxy`]).
    pub fn rpc_proxy(&self) -> &RpcProxy {
        self.rpc_proxy
            .as_ref()
            .expect("stack started without an RPC proxy")
    }

    /// devhost, mutable (to restart its handler or read its process); panics without it.
    pub fn devhost_mut(&mut self) -> &mut Devhost {
        self.devhost
            .as_mut()
            .expect("stack started without devhost")
    }

    /// devhost; panics when the stack was started without it.
    pub fn devhost(&self) -> &Devhost {
        self.devhost
            .as_ref()
            .expect("stack started without devhost")
    }

    /// The API through devhost.
    pub fn api(&self) -> api::Client {
        api::Client::new(self.http.clone(), self.devhost().api_url(""))
    }

    /// The API on the handler's own address, bypassing devhost (forwarded form, no queue
    /// writes).
    pub fn handler_api(&self) -> api::Client {
        let base = format!("{}/api", self.devhost().handler_url());
        api::Client::new(self.http.clone(), base)
    }

    /// The last `lines` lines of devhost's log (empty without devhost).
    pub fn log_tail(&self, lines: usize) -> String {
        self.devhost
            .as_ref()
            .map(|d| d.log_tail(lines))
            .unwrap_or_default()
    }

    /// A merchant with every scope, the test fee rate, no limits, no funds, and its key.
    pub async fn merchant(&self) -> Merchant {
        MerchantSetup::default().create_with_key(&self.store).await
    }

    /// A merchant with a key of `scopes` and `limits` (no funds).
    pub async fn merchant_with(&self, scopes: Scopes, limits: Vec<AssetLimit>) -> Merchant {
        MerchantSetup::default()
            .scopes(scopes)
            .limits(limits)
            .create_with_key(&self.store)
            .await
    }

    /// An extra key for `merchant` with only `scopes`.
    pub async fn key_with(&self, merchant: MerchantId, scopes: &[Scope]) -> String {
        api_key(&self.store, merchant, scopes.iter().copied().collect()).await
    }

    /// Funds `merchant` with `amount` (decimal, asset units) of `asset` (`anvil:USDC`).
    pub async fn fund(&self, merchant: MerchantId, asset: &str, amount: &str) {
        let id = AssetId::from_str(asset).unwrap();
        let amount = Amount::parse_positive_decimal(amount, decimals(id.symbol())).unwrap();
        let reference = format!("test-{}", uuid::Uuid::new_v4());
        self.store
            .fund(merchant, &id, amount, &reference)
            .await
            .unwrap();
    }

    /// The single number `sql` selects (test-only SQL: "nothing written" checks).
    pub async fn count(&self, sql: &str) -> i64 {
        let (n,): (i64,) = sqlx::query_as(sql)
            .fetch_one(self.db.pool())
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        n
    }

    /// Waits until `queue` is empty, in-flight (invisible) messages included: every delivery
    /// was processed and completed.
    pub async fn drained(&self, queue: &str, wait: Duration) {
        let q = self.azurite.queue(queue).await;
        let deadline = Instant::now() + wait;
        while q.approximate_count().await.unwrap() > 0 {
            assert!(
                Instant::now() < deadline,
                "{queue} not drained\n{}",
                self.log_tail(60)
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The ledger invariants (every asset sums to zero, no negative balance, holds match):
    /// every test that moves money ends here.
    pub async fn assert_ledger_invariants(&self) {
        if let Err(error) = self.store.check_ledger_invariants().await {
            panic!("ledger invariants violated: {error}\n{}", self.log_tail(40));
        }
    }
}
