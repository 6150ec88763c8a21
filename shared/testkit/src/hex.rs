//! JSON-RPC quantities (`"0x…"` strings) as integers.

use serde_json::Value;

pub fn hex_u64(v: &Value) -> u64 {
    u64::from_str_radix(quantity(v), 16).unwrap_or_else(|e| panic!("{v} as u64: {e}"))
}

pub fn hex_u128(v: &Value) -> u128 {
    u128::from_str_radix(quantity(v), 16).unwrap_or_else(|e| panic!("{v} as u128: {e}"))
}

fn quantity(v: &Value) -> &str {
    v.as_str()
        .unwrap_or_else(|| panic!("not a hex quantity: {v}"))
        .trim_start_matches("0x")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn quantities_parse_with_or_without_the_prefix() {
        assert_eq!(hex_u64(&json!("0x1f")), 31);
        assert_eq!(hex_u128(&json!("ff")), 255);
    }
}
