//! What a quote costs the merchant, and where the held funds go when the payment ends.
//!
//! - `amount`: what the recipient receives, in the payment asset.
//! - `service_fee`: `amount × service_fee_bps / 10 000`, rounded up, in the payment asset.
//! - `network_fee`: the worst-case gas cost (`gas_limit × max_fee_per_gas`), always in the
//!   chain's **native** asset, since that is what the hot wallet spends. It is *held* at this
//!   maximum; once the transaction is mined the merchant pays what the chain actually charged
//!   (receipt `gasUsed × effectiveGasPrice`) and the unused rest is released
//!   ([`Charges::settle`], [`Charges::charge_network_fee`]).
//! - `total_debit`: everything held in the payment asset: amount + service fee, plus the
//!   network fee when the payment asset *is* the native asset. For a token payment the network
//!   fee is a second hold, on the merchant's native balance: see [`Charges::debits`].

use std::collections::BTreeMap;

use serde::Serialize;

use crate::asset::AssetId;
use crate::money::{Amount, AmountError, FeeBps};

/// Where captured funds go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CaptureTo {
    /// The payment's amount, sent on chain (the asset's outflow account).
    Recipient,
    ServiceFee,
    /// What the chain charged for the transaction.
    NetworkFee,
}

/// One part of a hold that leaves the merchant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capture {
    pub to: CaptureTo,
    pub asset: AssetId,
    pub amount: Amount,
}

/// How a payment's holds end: per asset, the held amount ([`Charges::debits`]) is split
/// exactly into what is captured and what is released back to the merchant's available balance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HoldResolution {
    /// Never a zero amount.
    pub captured: Vec<Capture>,
    /// Per asset, sorted, never a zero amount.
    pub released: Vec<(AssetId, Amount)>,
}

/// A hold cannot pay for what it is asked to.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    /// The chain charged more than the held maximum (the transaction was priced above the
    /// quote). Never taken from the merchant's other funds: an operator decides.
    #[error("the chain charged a network fee of {charged}, more than the {held} held for it")]
    NetworkFeeExceedsHold { charged: Amount, held: Amount },
    /// The charges' totals do not add up (a corrupt row: `compute` never builds these).
    #[error("charges do not add up in {0}")]
    Inconsistent(AssetId),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Charges {
    pub asset: AssetId,
    pub amount: Amount,
    pub service_fee_bps: FeeBps,
    pub service_fee: Amount,
    pub network_fee_asset: AssetId,
    pub network_fee: Amount,
    pub total_debit: Amount,
}

impl Charges {
    /// Computes the fees and totals. `amount` must be positive (callers parse it with
    /// [`Amount::parse_positive_decimal`]); zero is rejected here too.
    pub fn compute(
        asset: AssetId,
        amount: Amount,
        service_fee_bps: FeeBps,
        network_fee_asset: AssetId,
        network_fee: Amount,
    ) -> Result<Charges, AmountError> {
        if amount.is_zero() {
            return Err(AmountError::Zero);
        }
        let service_fee = amount.fee(service_fee_bps)?;
        let mut total_debit = amount
            .checked_add(service_fee)
            .ok_or(AmountError::Overflow)?;
        if network_fee_asset == asset {
            total_debit = total_debit
                .checked_add(network_fee)
                .ok_or(AmountError::Overflow)?;
        }
        Ok(Charges {
            asset,
            amount,
            service_fee_bps,
            service_fee,
            network_fee_asset,
            network_fee,
            total_debit,
        })
    }

    /// The worst-case network fee of a transaction: `gas_limit × max_fee_per_gas` (cannot
    /// overflow a U256).
    pub fn network_fee_for(gas_limit: u64, max_fee_per_gas: u128) -> Amount {
        let fee = alloy::primitives::U256::from(gas_limit)
            * alloy::primitives::U256::from(max_fee_per_gas);
        Amount::from_base_units(fee)
    }

    /// Every asset the merchant is debited, with the amount: one entry for a native payment, two
    /// for a token payment with a non-zero network fee. Sorted by asset (the order the store
    /// locks balances in), never with a zero amount.
    pub fn debits(&self) -> Vec<(AssetId, Amount)> {
        let mut debits = vec![(self.asset.clone(), self.total_debit)];
        if self.network_fee_asset != self.asset && !self.network_fee.is_zero() {
            debits.push((self.network_fee_asset.clone(), self.network_fee));
        }
        debits.sort();
        debits
    }
}

impl Charges {
    /// What the chain charged for a mined transaction: receipt `gasUsed × effectiveGasPrice`, in
    /// the native asset's base units (cannot overflow a U256).
    pub fn network_fee_charged(gas_used: u64, effective_gas_price_wei: u128) -> Amount {
        Self::network_fee_for(gas_used, effective_gas_price_wei)
    }

    /// Nothing was spent on chain (cancelled, or failed before anything was mined): every hold
    /// goes back to available.
    pub fn release_all(&self) -> HoldResolution {
        HoldResolution {
            captured: Vec::new(),
            released: self.debits(),
        }
    }

    /// Settlement: the amount goes to the recipient, the service fee to its account, the
    /// network fee the chain `charged` to the network-fee account; the unused rest of the held
    /// network fee is released.
    pub fn settle(&self, charged: Amount) -> Result<HoldResolution, ResolveError> {
        self.resolve(vec![
            (CaptureTo::Recipient, &self.asset, self.amount),
            (CaptureTo::ServiceFee, &self.asset, self.service_fee),
            (CaptureTo::NetworkFee, &self.network_fee_asset, charged),
        ])
    }

    /// A mined transaction that did not transfer (reverted): the gas was really spent, so the
    /// network fee the chain `charged` is captured and everything else released.
    pub fn charge_network_fee(&self, charged: Amount) -> Result<HoldResolution, ResolveError> {
        self.resolve(vec![(
            CaptureTo::NetworkFee,
            &self.network_fee_asset,
            charged,
        )])
    }

    fn resolve(
        &self,
        parts: Vec<(CaptureTo, &AssetId, Amount)>,
    ) -> Result<HoldResolution, ResolveError> {
        let mut held: BTreeMap<AssetId, Amount> = self.debits().into_iter().collect();
        let mut captured = Vec::with_capacity(parts.len());
        for (to, asset, amount) in parts {
            if amount.is_zero() {
                continue;
            }
            if to == CaptureTo::NetworkFee && amount > self.network_fee {
                return Err(ResolveError::NetworkFeeExceedsHold {
                    charged: amount,
                    held: self.network_fee,
                });
            }
            let rest = held
                .get_mut(asset)
                .ok_or_else(|| ResolveError::Inconsistent(asset.clone()))?;
            *rest = rest
                .checked_sub(amount)
                .ok_or_else(|| ResolveError::Inconsistent(asset.clone()))?;
            captured.push(Capture {
                to,
                asset: asset.clone(),
                amount,
            });
        }
        let released = held.into_iter().filter(|(_, n)| !n.is_zero()).collect();
        Ok(HoldResolution { captured, released })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> AssetId {
        s.parse().unwrap()
    }

    #[test]
    fn token_payment_debits_the_network_fee_from_the_native_balance() {
        let c = Charges::compute(
            id("anvil:USDC"),
            Amount::from_u128(250_000_000),
            FeeBps::new(25).unwrap(),
            id("anvil:ETH"),
            Amount::from_u128(65_000 * 2_000_000_000),
        )
        .unwrap();
        assert_eq!(c.service_fee, Amount::from_u128(625_000));
        assert_eq!(c.total_debit, Amount::from_u128(250_625_000));
        assert_eq!(
            c.debits(),
            vec![
                (id("anvil:ETH"), Amount::from_u128(130_000_000_000_000)),
                (id("anvil:USDC"), Amount::from_u128(250_625_000)),
            ]
        );
    }

    #[test]
    fn native_payment_includes_the_network_fee_in_one_debit() {
        let c = Charges::compute(
            id("anvil:ETH"),
            Amount::from_u128(1_000_000),
            FeeBps::new(100).unwrap(),
            id("anvil:ETH"),
            Amount::from_u128(21_000),
        )
        .unwrap();
        assert_eq!(c.service_fee, Amount::from_u128(10_000));
        assert_eq!(c.total_debit, Amount::from_u128(1_031_000));
        assert_eq!(
            c.debits(),
            vec![(id("anvil:ETH"), Amount::from_u128(1_031_000))]
        );
    }

    #[test]
    fn zero_amount_is_rejected() {
        let r = Charges::compute(
            id("anvil:ETH"),
            Amount::ZERO,
            FeeBps::ZERO,
            id("anvil:ETH"),
            Amount::ZERO,
        );
        assert_eq!(r, Err(AmountError::Zero));
    }

    /// USDC 250 at 25 bps, network fee held: 156 918 821 046 240 wei.
    fn usdc_payment() -> Charges {
        Charges::compute(
            id("anvil:USDC"),
            Amount::from_u128(250_000_000),
            FeeBps::new(25).unwrap(),
            id("anvil:ETH"),
            Amount::from_u128(156_918_821_046_240),
        )
        .unwrap()
    }

    fn eth_payment() -> Charges {
        Charges::compute(
            id("anvil:ETH"),
            Amount::from_u128(1_000_000),
            FeeBps::new(100).unwrap(),
            id("anvil:ETH"),
            Amount::from_u128(21_000),
        )
        .unwrap()
    }

    fn capture(to: CaptureTo, asset: &str, amount: u128) -> Capture {
        Capture {
            to,
            asset: id(asset),
            amount: Amount::from_u128(amount),
        }
    }

    /// Per asset, captured + released is exactly what was held.
    fn assert_splits_the_hold_exactly(c: &Charges, r: &HoldResolution) {
        let mut out: BTreeMap<AssetId, Amount> = BTreeMap::new();
        let parts = r
            .captured
            .iter()
            .map(|cap| (&cap.asset, cap.amount))
            .chain(r.released.iter().map(|(a, n)| (a, *n)));
        for (asset, amount) in parts {
            assert!(!amount.is_zero(), "zero part in {r:?}");
            let sum = out.entry(asset.clone()).or_default();
            *sum = sum.checked_add(amount).unwrap();
        }
        let held: BTreeMap<AssetId, Amount> = c.debits().into_iter().collect();
        assert_eq!(out, held, "{r:?}");
    }

    #[test]
    fn settling_charges_the_actual_network_fee_and_releases_the_unused_part() {
        let c = usdc_payment();
        let r = c.settle(Amount::from_u128(86_207_104_363_380)).unwrap();
        assert_eq!(
            r.captured,
            vec![
                capture(CaptureTo::Recipient, "anvil:USDC", 250_000_000),
                capture(CaptureTo::ServiceFee, "anvil:USDC", 625_000),
                capture(CaptureTo::NetworkFee, "anvil:ETH", 86_207_104_363_380),
            ]
        );
        assert_eq!(
            r.released,
            vec![(
                id("anvil:ETH"),
                Amount::from_u128(156_918_821_046_240 - 86_207_104_363_380)
            )]
        );
        assert_splits_the_hold_exactly(&c, &r);
    }

    #[test]
    fn settling_at_the_quoted_maximum_releases_nothing() {
        let c = usdc_payment();
        let r = c.settle(c.network_fee).unwrap();
        assert!(r.released.is_empty(), "{r:?}");
        assert_splits_the_hold_exactly(&c, &r);
    }

    #[test]
    fn a_native_payment_releases_the_unused_fee_from_its_single_hold() {
        let c = eth_payment();
        let r = c.settle(Amount::from_u128(15_000)).unwrap();
        assert_eq!(
            r.released,
            vec![(id("anvil:ETH"), Amount::from_u128(6_000))]
        );
        assert_splits_the_hold_exactly(&c, &r);
        let r = c.charge_network_fee(Amount::from_u128(15_000)).unwrap();
        assert_eq!(
            r.captured,
            vec![capture(CaptureTo::NetworkFee, "anvil:ETH", 15_000)]
        );
        assert_eq!(
            r.released,
            vec![(id("anvil:ETH"), Amount::from_u128(1_031_000 - 15_000))]
        );
        assert_splits_the_hold_exactly(&c, &r);
    }

    #[test]
    fn a_reverted_transaction_pays_only_its_network_fee() {
        let c = usdc_payment();
        let r = c.charge_network_fee(Amount::from_u128(30_000_000)).unwrap();
        assert_eq!(
            r.captured,
            vec![capture(CaptureTo::NetworkFee, "anvil:ETH", 30_000_000)]
        );
        assert_eq!(
            r.released,
            vec![
                (
                    id("anvil:ETH"),
                    Amount::from_u128(156_918_821_046_240 - 30_000_000)
                ),
                (id("anvil:USDC"), Amount::from_u128(250_625_000)),
            ]
        );
        assert_splits_the_hold_exactly(&c, &r);
    }

    #[test]
    fn releasing_everything_returns_every_hold() {
        let c = usdc_payment();
        let r = c.release_all();
        assert!(r.captured.is_empty());
        assert_eq!(r.released, c.debits());
        assert_splits_the_hold_exactly(&c, &r);
    }

    #[test]
    fn a_network_fee_above_the_hold_is_refused_not_taken() {
        let c = usdc_payment();
        let more = c.network_fee.checked_add(Amount::from_u128(1)).unwrap();
        let expected = Err(ResolveError::NetworkFeeExceedsHold {
            charged: more,
            held: c.network_fee,
        });
        assert_eq!(c.settle(more), expected);
        assert_eq!(c.charge_network_fee(more), expected);
        // Native payments too, though the single hold could cover it.
        let n = eth_payment();
        assert!(n.settle(Amount::from_u128(21_001)).is_err());
    }

    #[test]
    fn charges_that_do_not_add_up_are_refused() {
        let mut c = usdc_payment();
        c.total_debit = Amount::from_u128(1);
        assert_eq!(
            c.settle(Amount::ZERO),
            Err(ResolveError::Inconsistent(id("anvil:USDC")))
        );
    }

    #[test]
    fn the_charged_fee_is_gas_used_times_effective_price() {
        assert_eq!(
            Charges::network_fee_charged(43_127, 2_000_000_007),
            Amount::from_u128(43_127 * 2_000_000_007)
        );
    }

    #[test]
    fn network_fee_is_gas_limit_times_max_fee_without_overflow() {
        assert_eq!(
            Charges::network_fee_for(21_000, 3),
            Amount::from_u128(63_000)
        );
        let max = Charges::network_fee_for(u64::MAX, u128::MAX);
        assert!(max > Amount::from_u128(u128::MAX));
    }
}
