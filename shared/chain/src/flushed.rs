//! The `Flushed(address indexed token, uint256 amount)` event a deposit forwarder emits per
//! asset it sends on (token zero: the native coin): what a sweep moved, read from its receipt
//! by the sweep step and again by the books when a reorg moves the sweep to another block.

use alloy::primitives::{Address, U256};
use alloy::sol_types::SolEvent;

use crate::rpc::LogFacts;

mod abi {
    alloy::sol! {
        event Flushed(address indexed token, uint256 amount);
    }
}

/// One `Flushed` log: `deposit` is the address that emitted it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlushedLog {
    pub deposit: Address,
    pub token: Address,
    pub amount: U256,
}

impl LogFacts {
    /// This log as a forwarder's `Flushed`, when it has that shape. Whether the emitter is one
    /// of the sweep's deposit addresses is the caller's to check: any contract can emit a
    /// look-alike event.
    pub fn flushed(&self) -> Option<FlushedLog> {
        if self.topics.len() != 2
            || self.topics[0] != abi::Flushed::SIGNATURE_HASH
            || self.data.len() != 32
        {
            return None;
        }
        Some(FlushedLog {
            deposit: self.address,
            token: Address::from_word(self.topics[1]),
            amount: U256::from_be_slice(&self.data),
        })
    }
}
