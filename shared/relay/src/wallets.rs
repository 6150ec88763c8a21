//! A chain's pool of hot wallets and how a payment picks one.
//!
//! Spreading: hash-based on the payment id (its UUIDv7's random tail), so concurrent payments
//! split evenly across wallets without reading shared state, each wallet's nonce sequence is
//! its own (one wallet's sequence is not the ceiling), and the wallet row locks of concurrent
//! broadcasts mostly differ. A payment authorized with an explicit `hot_wallet` uses that one.

use std::sync::Arc;

use alloy::network::TxSigner;
use alloy::primitives::{Address, Signature};
use meshpay_domain::PaymentId;

/// A hot wallet's signer (Key Vault, local key, or anything implementing alloy's `TxSigner`).
pub type DynTxSigner = Arc<dyn TxSigner<Signature> + Send + Sync>;

#[derive(Clone)]
pub struct WalletPool {
    /// Sorted by address: the pick depends on the set of wallets, not on configuration order.
    wallets: Vec<(Address, DynTxSigner)>,
}

impl std::fmt::Debug for WalletPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.wallets.iter().map(|(a, _)| a))
            .finish()
    }
}

impl WalletPool {
    /// A pool of the signers' addresses (duplicates collapse); `None` when empty.
    pub fn new(signers: impl IntoIterator<Item = DynTxSigner>) -> Option<WalletPool> {
        let mut wallets: Vec<(Address, DynTxSigner)> = signers
            .into_iter()
            .map(|s| (TxSigner::address(s.as_ref()), s))
            .collect();
        wallets.sort_by_key(|(a, _)| *a);
        wallets.dedup_by_key(|(a, _)| *a);
        (!wallets.is_empty()).then_some(WalletPool { wallets })
    }

    pub fn addresses(&self) -> impl Iterator<Item = Address> + '_ {
        self.wallets.iter().map(|(a, _)| *a)
    }

    pub fn len(&self) -> usize {
        self.wallets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.wallets.is_empty()
    }

    pub fn signer(&self, address: Address) -> Option<&DynTxSigner> {
        self.wallets
            .iter()
            .find(|(a, _)| *a == address)
            .map(|(_, s)| s)
    }

    /// The wallet for a payment that was not assigned one at authorization.
    pub fn pick(&self, payment: PaymentId) -> Address {
        self.pick_excluding(payment, &[])
            .unwrap_or(self.wallets[0].0)
    }

    /// [`WalletPool::pick`] among the healthy wallets (neither `halted` nor `stuck`); while
    /// none is, among those not halted (a stuck wallet still moves eventually, a halted one
    /// does not). `None` when every wallet is halted.
    pub fn pick_healthy(
        &self,
        payment: PaymentId,
        halted: &[Address],
        stuck: &[Address],
    ) -> Option<Address> {
        let avoid: Vec<Address> = halted.iter().chain(stuck).copied().collect();
        self.pick_excluding(payment, &avoid)
            .or_else(|| self.pick_excluding(payment, halted))
    }

    /// [`WalletPool::pick`] among the wallets not in `halted`; `None` when every wallet is.
    pub fn pick_excluding(&self, payment: PaymentId, halted: &[Address]) -> Option<Address> {
        let usable: Vec<Address> = self
            .addresses()
            .filter(|address| !halted.contains(address))
            .collect();
        let bytes = payment.as_uuid().into_bytes();
        let mut tail = [0u8; 8];
        tail.copy_from_slice(&bytes[8..]);
        let len = u64::try_from(usable.len()).ok().filter(|&len| len > 0)?;
        let slot = usize::try_from(u64::from_be_bytes(tail) % len).ok()?;
        usable.get(slot).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy::signers::local::PrivateKeySigner;

    fn pool(n: usize) -> WalletPool {
        WalletPool::new((0..n).map(|_| Arc::new(PrivateKeySigner::random()) as DynTxSigner))
            .unwrap()
    }

    #[test]
    fn payments_spread_evenly_across_wallets() {
        let pool = pool(2);
        let mut counts = std::collections::HashMap::new();
        for _ in 0..2_000 {
            *counts.entry(pool.pick(PaymentId::new())).or_insert(0) += 1;
        }
        assert_eq!(counts.len(), 2);
        for count in counts.values() {
            assert!((800..=1_200).contains(count), "{counts:?}");
        }
    }

    #[test]
    fn the_same_payment_always_gets_the_same_wallet() {
        let pool = pool(3);
        let payment = PaymentId::new();
        assert_eq!(pool.pick(payment), pool.pick(payment));
    }

    #[test]
    fn halted_wallets_are_never_picked() {
        let pool = pool(3);
        let halted: Vec<Address> = pool.addresses().take(2).collect();
        let open = pool.addresses().nth(2).unwrap();
        for _ in 0..100 {
            assert_eq!(pool.pick_excluding(PaymentId::new(), &halted), Some(open));
        }
        let all: Vec<Address> = pool.addresses().collect();
        assert_eq!(pool.pick_excluding(PaymentId::new(), &all), None);
    }

    #[test]
    fn stuck_wallets_are_avoided_while_another_is_healthy() {
        let pool = pool(3);
        let all: Vec<Address> = pool.addresses().collect();
        let (stuck, halted) = (&all[..1], &all[1..2]);
        for _ in 0..100 {
            assert_eq!(
                pool.pick_healthy(PaymentId::new(), halted, stuck),
                Some(all[2])
            );
        }
        // Nothing healthy: the spread goes on over the wallets that are not halted.
        let picks: std::collections::HashSet<Address> = (0..200)
            .map(|_| pool.pick_healthy(PaymentId::new(), halted, &all).unwrap())
            .collect();
        assert_eq!(picks.len(), 2);
        assert!(!picks.contains(&all[1]), "a halted wallet is never picked");
        assert_eq!(pool.pick_healthy(PaymentId::new(), &all, &[]), None);
    }

    #[test]
    fn empty_pool_is_refused_and_duplicates_collapse() {
        assert!(WalletPool::new(Vec::new()).is_none());
        let signer: DynTxSigner = Arc::new(PrivateKeySigner::random());
        let pool = WalletPool::new([signer.clone(), signer]).unwrap();
        assert_eq!(pool.len(), 1);
    }
}
