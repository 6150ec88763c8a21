//! What a quote costs the merchant.
//!
//! - `amount`: what the recipient receives, in the payment asset.
//! - `service_fee`: `amount × service_fee_bps / 10 000`, rounded up, in the payment asset.
//! - `network_fee`: the worst-case gas cost (`gas_limit × max_fee_per_gas`), always in the
//!   chain's **native** asset, since that is what the hot wallet spends. It is charged as quoted
//!   (the quote is a price; a cheaper actual fee is the house's margin, never a surprise debit).
//! - `total_debit`: everything debited in the payment asset: amount + service fee, plus the
//!   network fee when the payment asset *is* the native asset. For a token payment the network
//!   fee is a second debit, from the merchant's native balance: see [`Charges::debits`].

use serde::Serialize;

use crate::asset::AssetId;
use crate::money::{Amount, AmountError, FeeBps};

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
