//! A [`ChainRpc`] in front of the real anvil that can lie: scripted send failures (answered
//! without forwarding, so the node never sees the bytes), a gas estimate override, and hashes
//! it answers "unknown" for (a lagging backend).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use alloy::eips::eip1559::Eip1559Estimation;
use alloy::primitives::{Address, B256};
use alloy::rpc::types::TransactionRequest;
use meshpay_chain::rpc::{ChainHead, TxRef};
use meshpay_relay::{AlloyRpc, ChainRpc, RpcFailure};

#[derive(Default)]
struct Script {
    send_failures: VecDeque<RpcFailure>,
    gas: Option<u64>,
    sends_forwarded: u32,
    /// Hashes a lagging backend answers "unknown" for.
    forgotten: Vec<B256>,
}

pub struct FaultyRpc {
    inner: Arc<AlloyRpc>,
    script: Mutex<Script>,
}

impl FaultyRpc {
    pub fn new(inner: Arc<AlloyRpc>) -> Arc<FaultyRpc> {
        Arc::new(FaultyRpc {
            inner,
            script: Mutex::new(Script::default()),
        })
    }

    /// The next send answers `failure` instead of reaching the node.
    pub fn fail_next_send(&self, failure: RpcFailure) {
        self.script.lock().unwrap().send_failures.push_back(failure);
    }

    /// `eth_estimateGas` answers `gas` from now on.
    pub fn override_gas(&self, gas: u64) {
        self.script.lock().unwrap().gas = Some(gas);
    }

    /// From now on the node answers "unknown" for `hash` (a lagging backend behind a load
    /// balancer), whether or not it is mined.
    pub fn forget(&self, hash: B256) {
        self.script.lock().unwrap().forgotten.push(hash);
    }

    pub fn sends_forwarded(&self) -> u32 {
        self.script.lock().unwrap().sends_forwarded
    }
}

pub fn rpc_error(message: &str) -> RpcFailure {
    RpcFailure::Rpc {
        method: "eth_sendRawTransaction",
        code: -32000,
        message: message.into(),
    }
}

#[async_trait::async_trait]
impl ChainRpc for FaultyRpc {
    async fn pending_nonce(&self, address: Address) -> Result<u64, RpcFailure> {
        self.inner.pending_nonce(address).await
    }

    async fn estimate_gas(&self, request: TransactionRequest) -> Result<u64, RpcFailure> {
        let gas = self.script.lock().unwrap().gas;
        match gas {
            Some(gas) => Ok(gas),
            None => self.inner.estimate_gas(request).await,
        }
    }

    async fn eip1559_fees(&self) -> Result<Eip1559Estimation, RpcFailure> {
        self.inner.eip1559_fees().await
    }

    async fn send_raw(&self, raw: &[u8]) -> Result<B256, RpcFailure> {
        let scripted = {
            let mut script = self.script.lock().unwrap();
            let next = script.send_failures.pop_front();
            if next.is_none() {
                script.sends_forwarded += 1;
            }
            next
        };
        match scripted {
            Some(failure) => Err(failure),
            None => self.inner.send_raw(raw).await,
        }
    }

    async fn transaction_known(&self, hash: B256) -> Result<bool, RpcFailure> {
        if self.script.lock().unwrap().forgotten.contains(&hash) {
            return Ok(false);
        }
        self.inner.transaction_known(hash).await
    }

    async fn head(&self, finalized: bool) -> Result<ChainHead, RpcFailure> {
        ChainRpc::head(self.inner.as_ref(), finalized).await
    }

    async fn nonce_at(&self, address: Address, number: u64) -> Result<u64, RpcFailure> {
        self.inner.nonce_at(address, number).await
    }

    async fn block_transactions(&self, number: u64) -> Result<Option<Vec<TxRef>>, RpcFailure> {
        self.inner.block_transactions(number).await
    }
}
