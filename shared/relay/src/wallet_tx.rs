//! Wallet transactions that belong to no payment (sweeps of deposit addresses): the relay lends
//! its chains' nodes, fee oracle and signers, and classifies sends the way it does for
//! payments. The caller stores the nonce, the signed bytes and each send's start itself
//! (`meshpay_store::sweeps`), with the same reserve → sign → store → send order.

use alloy::primitives::Address;
use alloy::rpc::types::TransactionRequest;
use meshpay_chain::Chain;
use meshpay_chain::rpc::{SendClass, classify_send};

use crate::fee_policy::{self, FeePair};
use crate::fees::Fees;
use crate::replace::is_fee_refusal;
use crate::transfer::{self, SignedTransfer, TransferCall, TxParams};
use crate::{ChainContext, Relay, RelayConfigError, RelayError};

/// How a node answered a wallet transaction's `eth_sendRawTransaction`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WalletSend {
    /// Accepted, or already known.
    Accepted,
    /// Not acknowledged. `price`: refused for its price alone (a replacement on the nonce is
    /// due); `exposed`: the outcome is unknown, so the bytes may be in a pool.
    Refused {
        message: String,
        price: bool,
        exposed: bool,
    },
}

impl Relay {
    fn context(&self, chain: &str) -> Result<&ChainContext, RelayError> {
        self.chains
            .get(chain)
            .ok_or_else(|| RelayConfigError::UnknownChain(chain.to_owned()).into())
    }

    /// The chain, when the relay signs for it.
    pub fn chain(&self, chain: &str) -> Option<&Chain> {
        self.chains.get(chain).map(|c| &c.chain)
    }

    /// The chains the relay signs for, by name.
    pub fn chain_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.chains.keys().cloned().collect();
        names.sort();
        names
    }

    /// The wallet to send a non-payment transaction from: the first of the chain's wallets that
    /// is neither halted nor stuck, else the first not halted. `None`: every one is halted.
    pub async fn wallet_for_upkeep(&self, chain: &str) -> Result<Option<Address>, RelayError> {
        let ctx = self.context(chain)?;
        let halted: Vec<Address> = self
            .store
            .halted_wallets(Some(chain))
            .await?
            .into_iter()
            .map(|h| h.address)
            .collect();
        let usable: Vec<Address> = ctx
            .wallets
            .addresses()
            .filter(|a| !halted.contains(a))
            .collect();
        Ok(usable.first().copied())
    }

    /// The chain's pending nonce of `wallet`: the floor for its next nonce.
    pub async fn pending_nonce(&self, chain: &str, wallet: Address) -> Result<u64, RelayError> {
        Ok(self.context(chain)?.rpc.pending_nonce(wallet).await?)
    }

    /// `eth_estimateGas` of `call` sent from `wallet`.
    pub async fn estimate_call(
        &self,
        chain: &str,
        wallet: Address,
        call: &TransferCall,
    ) -> Result<u64, RelayError> {
        let request: TransactionRequest = call.estimate_request(wallet);
        Ok(self.context(chain)?.rpc.estimate_gas(request).await?)
    }

    /// The fee oracle's current fees (capped by the chain's cap).
    pub async fn current_fees(&self, chain: &str) -> Result<Fees, RelayError> {
        let ctx = self.context(chain)?;
        Ok(ctx.fees.fees(ctx.rpc.as_ref()).await?)
    }

    /// Fees for a replacement of a transaction priced `previous` on the same nonce (the bump
    /// rule, the chain's cap as ceiling). `Ok(None)`: no replacement fits under the cap.
    pub async fn replacement_fees(
        &self,
        chain: &str,
        previous: FeePair,
    ) -> Result<Option<FeePair>, RelayError> {
        let ctx = self.context(chain)?;
        let fresh = ctx.fees.fees(ctx.rpc.as_ref()).await?;
        let base_fee = ctx.rpc.next_base_fee().await?;
        let fresh = FeePair {
            max_fee_per_gas_wei: fresh.max_fee_per_gas_wei,
            max_priority_fee_per_gas_wei: fresh.max_priority_fee_per_gas_wei,
        };
        Ok(
            fee_policy::replacement(previous, fresh, base_fee, ctx.chain.max_fee_per_gas_cap_wei)
                .ok(),
        )
    }

    /// The next block's base fee, when the node reports one.
    pub async fn next_base_fee(&self, chain: &str) -> Result<Option<u128>, RelayError> {
        Ok(self.context(chain)?.rpc.next_base_fee().await?)
    }

    /// Signs `call` from `wallet` with `params` (no lock is held by the relay).
    pub async fn sign_wallet_tx(
        &self,
        chain: &str,
        wallet: Address,
        call: &TransferCall,
        params: TxParams,
    ) -> Result<SignedTransfer, RelayError> {
        let ctx = self.context(chain)?;
        let signer = ctx
            .wallets
            .signer(wallet)
            .ok_or(RelayConfigError::NoSigner(wallet))?;
        transfer::sign(signer.as_ref(), wallet, call, params).await
    }

    /// Sends stored bytes once (the caller recorded the send's start first).
    pub async fn send_wallet_tx(&self, chain: &str, raw: &[u8]) -> Result<WalletSend, RelayError> {
        let ctx = self.context(chain)?;
        let Err(failure) = ctx.rpc.send_raw(raw).await else {
            return Ok(WalletSend::Accepted);
        };
        let class = classify_send(&failure);
        if class == SendClass::AlreadyKnown {
            return Ok(WalletSend::Accepted);
        }
        Ok(WalletSend::Refused {
            message: failure.to_string(),
            price: is_fee_refusal(&failure),
            exposed: class == SendClass::Unknown,
        })
    }
}
