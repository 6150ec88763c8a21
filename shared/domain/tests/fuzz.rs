//! Property tests of the money parsers on hostile input: never a panic, oversize input refused
//! before any work, and every accepted decimal is exactly the base units it spells.
//! `PROPTEST_CASES` sets the number of cases (`make fuzz` runs many more than `make test`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use meshpay_domain::U256;
use meshpay_domain::money::{Amount, AmountError, MAX_DECIMALS};
use proptest::prelude::*;

/// Inputs the parsers see from the API: mostly short, sometimes up to 64 KiB.
fn any_text() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => any::<String>(),
        8 => "[0-9.+eE_ -]{0,120}",
        1 => proptest::collection::vec(any::<char>(), 0..=65_536)
            .prop_map(|chars| chars.into_iter().collect::<String>()),
    ]
}

/// `PROPTEST_CASES` cases (256 unless set); a failure prints its shrunk input instead of
/// writing a regressions file into the source tree.
fn config() -> ProptestConfig {
    ProptestConfig {
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// 10^exp as a U256 (exp <= 77).
fn pow10(exp: usize) -> U256 {
    U256::from(10u8).pow(U256::from(exp))
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn decimal_parsers_never_panic_on_any_text(text in any_text(), decimals in any::<u8>()) {
        let _ = Amount::parse_decimal(&text, decimals);
        let _ = Amount::parse_positive_decimal(&text, decimals);
        let _ = Amount::parse_base_units(&text);
        let _ = serde_json::from_value::<Amount>(serde_json::Value::String(text));
    }

    #[test]
    fn input_over_one_hundred_bytes_is_refused_as_too_large(
        digits in "[0-9]{101,400}",
        decimals in 0..=MAX_DECIMALS,
    ) {
        prop_assert_eq!(Amount::parse_decimal(&digits, decimals), Err(AmountError::Overflow));
        prop_assert_eq!(Amount::parse_base_units(&digits), Err(AmountError::Overflow));
    }

    #[test]
    fn a_well_formed_decimal_is_its_exact_base_units(
        int_part in 0u128..=u128::MAX,
        frac in "[0-9]{0,18}",
        decimals in 18u8..=MAX_DECIMALS,
    ) {
        let text = if frac.is_empty() { int_part.to_string() } else { format!("{int_part}.{frac}") };
        let frac_units = if frac.is_empty() { U256::ZERO } else { U256::from_str_radix(&frac, 10).unwrap() };
        let d = usize::from(decimals);
        let expected = U256::from(int_part)
            .checked_mul(pow10(d))
            .and_then(|units| units.checked_add(frac_units * pow10(d - frac.len())));
        let parsed = Amount::parse_decimal(&text, decimals).map(Amount::base_units);
        prop_assert_eq!(parsed, expected.ok_or(AmountError::Overflow));
    }

    #[test]
    fn formatting_then_parsing_gives_back_the_same_amount(
        limbs in any::<[u64; 4]>(),
        decimals in 0..=MAX_DECIMALS,
    ) {
        let amount = Amount::from_base_units(U256::from_limbs(limbs));
        let text = amount.format_decimal(decimals);
        prop_assert_eq!(Amount::parse_decimal(&text, decimals), Ok(amount));
        prop_assert_eq!(Amount::parse_base_units(&amount.to_string()), Ok(amount));
    }

    #[test]
    fn more_fractional_digits_than_the_asset_has_are_refused(
        int_part in any::<u64>(),
        decimals in 0u8..=18,
        extra in "[0-9]{1,5}",
    ) {
        let frac = format!("{}{extra}", "0".repeat(usize::from(decimals)));
        let text = format!("{int_part}.{frac}");
        prop_assert_eq!(
            Amount::parse_decimal(&text, decimals),
            Err(AmountError::TooPrecise { max_decimals: decimals })
        );
    }
}
