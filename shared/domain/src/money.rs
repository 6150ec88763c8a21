//! Money: integer amounts in an asset's base units, decimal strings at the edges, fees in basis
//! points. Never floats.
//!
//! Decimal strings ("250.00") are parsed strictly: ASCII digits, at most one `.`, with digits on
//! both sides of it; no sign, exponent, whitespace or thousands separator; at most as many
//! fractional digits as the asset has decimals (over-precision is rejected even when the extra
//! digits are zeros, so what a client sends is exactly what is charged).

use std::fmt;
use std::str::FromStr;

use alloy::primitives::U256;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The longest decimal string accepted (U256::MAX has 78 digits; the rest is point and margin).
/// Bounds parsing work on hostile input.
const MAX_DECIMAL_LEN: usize = 100;

/// The largest `decimals` an asset may have: 10^77 still fits a U256.
pub const MAX_DECIMALS: u8 = 77;

/// An amount of some asset in its base units (wei, USDC's 10^-6, ...). Which asset is the
/// caller's context; arithmetic is checked, never wrapping.
///
/// JSON: a string of base-unit digits (`"250000000"`), never a number (JS loses precision).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Amount(U256);

/// Why a string is not an acceptable amount.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AmountError {
    #[error("amount is empty")]
    Empty,
    #[error("amount must not be negative")]
    Negative,
    #[error("amount must be greater than zero")]
    Zero,
    #[error("amount has more than {max_decimals} decimal places")]
    TooPrecise { max_decimals: u8 },
    #[error("amount must be a decimal number like \"250.00\"")]
    Malformed,
    #[error("amount is too large")]
    Overflow,
}

impl Amount {
    pub const ZERO: Amount = Amount(U256::ZERO);

    pub const fn from_base_units(units: U256) -> Self {
        Amount(units)
    }

    pub fn from_u128(units: u128) -> Self {
        Amount(U256::from(units))
    }

    pub const fn base_units(self) -> U256 {
        self.0
    }

    pub fn is_zero(self) -> bool {
        self.0.is_zero()
    }

    pub fn checked_add(self, other: Amount) -> Option<Amount> {
        self.0.checked_add(other.0).map(Amount)
    }

    pub fn checked_sub(self, other: Amount) -> Option<Amount> {
        self.0.checked_sub(other.0).map(Amount)
    }

    /// Parses base units: ASCII digits only (no sign, no `0x`, no point).
    pub fn parse_base_units(s: &str) -> Result<Amount, AmountError> {
        check_len(s)?;
        if s.starts_with('-') {
            return Err(AmountError::Negative);
        }
        if !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(AmountError::Malformed);
        }
        digits_to_u256(s).map(Amount)
    }

    /// Parses a decimal string in the asset's units ("250.00") into base units. Zero is allowed;
    /// use [`Amount::parse_positive_decimal`] where it is not.
    pub fn parse_decimal(s: &str, decimals: u8) -> Result<Amount, AmountError> {
        check_len(s)?;
        if s.starts_with('-') {
            return Err(AmountError::Negative);
        }
        let (int_part, frac_part) = match s.split_once('.') {
            Some((i, f)) => (i, f),
            None => (s, ""),
        };
        let well_formed = !int_part.is_empty()
            && int_part.bytes().all(|b| b.is_ascii_digit())
            && frac_part.bytes().all(|b| b.is_ascii_digit())
            && (!s.contains('.') || !frac_part.is_empty());
        if !well_formed {
            return Err(AmountError::Malformed);
        }
        if frac_part.len() > usize::from(decimals) {
            return Err(AmountError::TooPrecise {
                max_decimals: decimals,
            });
        }
        // "12.5" with 6 decimals = "12" ++ "5" ++ "00000" base units.
        let padding = usize::from(decimals) - frac_part.len();
        let mut digits = String::with_capacity(int_part.len() + usize::from(decimals));
        digits.push_str(int_part);
        digits.push_str(frac_part);
        digits.extend(std::iter::repeat_n('0', padding));
        digits_to_u256(&digits).map(Amount)
    }

    /// [`Amount::parse_decimal`], rejecting zero (payment and funding amounts).
    pub fn parse_positive_decimal(s: &str, decimals: u8) -> Result<Amount, AmountError> {
        let amount = Self::parse_decimal(s, decimals)?;
        if amount.is_zero() {
            return Err(AmountError::Zero);
        }
        Ok(amount)
    }

    /// Formats in the asset's units, exact: trailing fractional zeros are trimmed but at least
    /// two fractional digits are kept when the asset has them ("250.00", "0.001", "1.50").
    /// `parse_decimal(format_decimal(x, d), d) == x` for every `x`.
    pub fn format_decimal(self, decimals: u8) -> String {
        let digits = self.0.to_string();
        let decimals = usize::from(decimals);
        if decimals == 0 {
            return digits;
        }
        let padded = if digits.len() <= decimals {
            format!("{}{}", "0".repeat(decimals + 1 - digits.len()), digits)
        } else {
            digits
        };
        let (int_part, frac_part) = padded.split_at(padded.len() - decimals);
        let keep = frac_part.trim_end_matches('0').len().max(2.min(decimals));
        format!("{int_part}.{}", &frac_part[..keep])
    }

    /// The fee of `bps` basis points on this amount, rounded **up** to the next base unit: a
    /// fractional base unit is never given away, so the rounding is always in the house's favour
    /// and a non-zero fee rate never yields a zero fee on a non-zero amount.
    pub fn fee(self, bps: FeeBps) -> Result<Amount, AmountError> {
        let product = self
            .0
            .checked_mul(U256::from(bps.get()))
            .ok_or(AmountError::Overflow)?;
        Ok(Amount(product.div_ceil(U256::from(FeeBps::DENOMINATOR))))
    }
}

fn check_len(s: &str) -> Result<(), AmountError> {
    if s.is_empty() {
        return Err(AmountError::Empty);
    }
    if s.len() > MAX_DECIMAL_LEN {
        return Err(AmountError::Overflow);
    }
    Ok(())
}

/// `digits` is non-empty ASCII digits (checked by callers).
fn digits_to_u256(digits: &str) -> Result<U256, AmountError> {
    U256::from_str_radix(digits, 10).map_err(|_| AmountError::Overflow)
}

impl fmt::Display for Amount {
    /// Base units, decimal.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl FromStr for Amount {
    type Err = AmountError;
    /// Base units (see [`Amount::parse_base_units`]).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Amount::parse_base_units(s)
    }
}

impl From<u64> for Amount {
    fn from(units: u64) -> Self {
        Amount(U256::from(units))
    }
}

impl Serialize for Amount {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Amount {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Amount::parse_base_units(&s).map_err(serde::de::Error::custom)
    }
}

/// A fee rate in basis points (1 bps = 0.01 %), 0..=10 000.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize)]
#[serde(transparent)]
pub struct FeeBps(u16);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("fee must be between 0 and 10000 basis points, got {0}")]
pub struct FeeBpsError(pub u32);

impl FeeBps {
    pub const DENOMINATOR: u16 = 10_000;
    pub const ZERO: FeeBps = FeeBps(0);

    pub fn new(bps: u32) -> Result<Self, FeeBpsError> {
        match u16::try_from(bps) {
            Ok(v) if v <= Self::DENOMINATOR => Ok(FeeBps(v)),
            _ => Err(FeeBpsError(bps)),
        }
    }

    pub const fn get(self) -> u16 {
        self.0
    }
}

impl<'de> Deserialize<'de> for FeeBps {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        FeeBps::new(u32::deserialize(deserializer)?).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn amt(units: u128) -> Amount {
        Amount::from_u128(units)
    }

    #[test]
    fn parses_decimal_strings_into_base_units() {
        assert_eq!(Amount::parse_decimal("250.00", 6), Ok(amt(250_000_000)));
        assert_eq!(Amount::parse_decimal("250", 6), Ok(amt(250_000_000)));
        assert_eq!(Amount::parse_decimal("0.000001", 6), Ok(amt(1)));
        assert_eq!(
            Amount::parse_decimal("1.5", 18),
            Ok(amt(1_500_000_000_000_000_000))
        );
        assert_eq!(Amount::parse_decimal("007.10", 2), Ok(amt(710)));
        assert_eq!(Amount::parse_decimal("42", 0), Ok(amt(42)));
        assert_eq!(Amount::parse_decimal("0", 6), Ok(Amount::ZERO));
    }

    #[test]
    fn rejects_negative_amounts() {
        assert_eq!(Amount::parse_decimal("-1", 6), Err(AmountError::Negative));
        assert_eq!(Amount::parse_decimal("-0.5", 6), Err(AmountError::Negative));
        assert_eq!(Amount::parse_base_units("-5"), Err(AmountError::Negative));
    }

    #[test]
    fn rejects_zero_where_a_positive_amount_is_required() {
        assert_eq!(
            Amount::parse_positive_decimal("0", 6),
            Err(AmountError::Zero)
        );
        assert_eq!(
            Amount::parse_positive_decimal("0.000000", 6),
            Err(AmountError::Zero)
        );
        assert_eq!(Amount::parse_positive_decimal("0.000001", 6), Ok(amt(1)));
    }

    #[test]
    fn rejects_more_decimal_places_than_the_asset_has() {
        let err = AmountError::TooPrecise { max_decimals: 6 };
        assert_eq!(Amount::parse_decimal("1.0000001", 6), Err(err.clone()));
        // Even trailing zeros: the client must send what is charged, exactly.
        assert_eq!(Amount::parse_decimal("1.0000000", 6), Err(err));
        assert_eq!(
            Amount::parse_decimal("1.0", 0),
            Err(AmountError::TooPrecise { max_decimals: 0 })
        );
    }

    #[test]
    fn rejects_garbage() {
        for s in [
            "abc", "1.2.3", ".5", "5.", ".", "+1", " 1", "1 ", "1e6", "1_000", "1,000", "0x10",
            "NaN", "inf", "١٢", "1.-5", "--1",
        ] {
            let result = Amount::parse_decimal(s, 6);
            assert!(
                matches!(result, Err(AmountError::Malformed | AmountError::Negative)),
                "{s:?} gave {result:?}"
            );
        }
        assert_eq!(Amount::parse_decimal("", 6), Err(AmountError::Empty));
        assert_eq!(
            Amount::parse_base_units("0x10"),
            Err(AmountError::Malformed)
        );
        assert_eq!(Amount::parse_base_units("1.0"), Err(AmountError::Malformed));
        assert_eq!(Amount::parse_base_units(""), Err(AmountError::Empty));
    }

    #[test]
    fn rejects_amounts_beyond_u256() {
        let max = U256::MAX.to_string();
        assert_eq!(Amount::parse_base_units(&max), Ok(Amount(U256::MAX)));
        assert_eq!(
            Amount::parse_base_units(&format!("{max}0")),
            Err(AmountError::Overflow)
        );
        assert_eq!(Amount::parse_decimal(&max, 1), Err(AmountError::Overflow));
        assert_eq!(
            Amount::parse_decimal(&"9".repeat(200), 0),
            Err(AmountError::Overflow)
        );
    }

    #[test]
    fn formats_base_units_as_decimal_strings() {
        assert_eq!(amt(250_000_000).format_decimal(6), "250.00");
        assert_eq!(amt(1).format_decimal(6), "0.000001");
        assert_eq!(amt(1_500_000).format_decimal(6), "1.50");
        assert_eq!(amt(1_000_000_000_000_000).format_decimal(18), "0.001");
        assert_eq!(Amount::ZERO.format_decimal(6), "0.00");
        assert_eq!(amt(5).format_decimal(1), "0.5");
        assert_eq!(amt(50).format_decimal(1), "5.0");
        assert_eq!(amt(42).format_decimal(0), "42");
    }

    #[test]
    fn format_then_parse_round_trips() {
        let values = [
            0u128,
            1,
            9,
            10,
            99,
            100,
            123_456_789,
            10u128.pow(18),
            u128::MAX,
        ];
        for decimals in [0u8, 1, 2, 6, 18, 30] {
            for v in values {
                let s = amt(v).format_decimal(decimals);
                assert_eq!(
                    Amount::parse_decimal(&s, decimals),
                    Ok(amt(v)),
                    "{s} @ {decimals}"
                );
            }
        }
        let max = Amount(U256::MAX);
        assert_eq!(Amount::parse_decimal(&max.format_decimal(18), 18), Ok(max));
    }

    #[test]
    fn fee_rounds_up_in_the_house_favour() {
        let bps = |b| FeeBps::new(b).unwrap();
        assert_eq!(amt(10_000).fee(bps(30)), Ok(amt(30)));
        // 1 base unit at 0.3 %: 0.003 of a unit rounds up to 1, never down to 0.
        assert_eq!(amt(1).fee(bps(30)), Ok(amt(1)));
        assert_eq!(amt(10_001).fee(bps(30)), Ok(amt(31)));
        assert_eq!(amt(250_000_000).fee(bps(25)), Ok(amt(625_000)));
        assert_eq!(amt(12_345).fee(FeeBps::ZERO), Ok(Amount::ZERO));
        assert_eq!(amt(12_345).fee(bps(10_000)), Ok(amt(12_345)));
        assert_eq!(Amount::ZERO.fee(bps(100)), Ok(Amount::ZERO));
    }

    #[test]
    fn fee_on_huge_amounts_reports_overflow_instead_of_wrapping() {
        assert_eq!(
            Amount(U256::MAX).fee(FeeBps::new(2).unwrap()),
            Err(AmountError::Overflow)
        );
    }

    #[test]
    fn fee_bps_is_bounded_to_one_hundred_percent() {
        assert!(FeeBps::new(10_000).is_ok());
        assert_eq!(FeeBps::new(10_001), Err(FeeBpsError(10_001)));
        assert_eq!(FeeBps::new(70_000), Err(FeeBpsError(70_000)));
        assert!(serde_json::from_str::<FeeBps>("10001").is_err());
        assert_eq!(serde_json::from_str::<FeeBps>("25").unwrap(), FeeBps(25));
    }

    #[test]
    fn amount_json_is_a_string_of_base_units() {
        assert_eq!(serde_json::to_string(&amt(1_500)).unwrap(), "\"1500\"");
        assert_eq!(
            serde_json::from_str::<Amount>("\"1500\"").unwrap(),
            amt(1_500)
        );
        assert!(serde_json::from_str::<Amount>("1500").is_err());
        assert!(serde_json::from_str::<Amount>("\"-1\"").is_err());
        assert!(serde_json::from_str::<Amount>("\"1.5\"").is_err());
    }

    #[test]
    fn checked_arithmetic_never_wraps() {
        assert_eq!(amt(1).checked_sub(amt(2)), None);
        assert_eq!(Amount(U256::MAX).checked_add(amt(1)), None);
        assert_eq!(amt(5).checked_add(amt(2)), Some(amt(7)));
    }
}
