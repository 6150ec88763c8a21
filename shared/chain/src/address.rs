//! Address parsing with the EIP-55 rules the API promises: all-lower and all-upper hex are
//! accepted as they carry no checksum, mixed case must match the checksum exactly.

use alloy::primitives::Address;

/// Why a string is not an acceptable address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    /// The `0x` prefix is missing.
    #[error("address must start with 0x")]
    MissingPrefix,
    /// Not 40 hex digits after the prefix.
    #[error("address must have 40 hex digits after 0x")]
    Length,
    /// A character outside `[0-9a-fA-F]`.
    #[error("address contains a non-hex character")]
    NotHex,
    /// Mixed case that is not the EIP-55 checksum of the address (a typo or a corrupted copy).
    #[error("address has mixed case but does not match its EIP-55 checksum")]
    Checksum,
}

/// Parses `0x` + 40 hex digits. Mixed case must be the EIP-55 checksum (EIP-1191 chain-specific
/// checksums are not accepted: wallets on the chains we serve emit plain EIP-55).
pub fn parse_address(input: &str) -> Result<Address, AddressError> {
    let hex = input
        .strip_prefix("0x")
        .ok_or(AddressError::MissingPrefix)?;
    if hex.len() != 40 {
        return Err(AddressError::Length);
    }
    if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(AddressError::NotHex);
    }
    let has_lower = hex.bytes().any(|b| b.is_ascii_lowercase());
    let has_upper = hex.bytes().any(|b| b.is_ascii_uppercase());
    if has_lower && has_upper {
        return Address::parse_checksummed(input, None).map_err(|_| AddressError::Checksum);
    }
    // All digits are hex (checked above), so parsing cannot fail; map defensively anyway.
    input.parse::<Address>().map_err(|_| AddressError::NotHex)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHECKSUMMED: &str = "0xd8dA6BF26964aF9D7eEd9e03E53415D37aA96045";

    #[test]
    fn checksummed_mixed_case_is_accepted() {
        let address = parse_address(CHECKSUMMED).unwrap();
        assert_eq!(address.to_checksum(None), CHECKSUMMED);
    }

    #[test]
    fn all_lower_and_all_upper_are_accepted_without_checksum() {
        let lower = format!("0x{}", &CHECKSUMMED[2..].to_ascii_lowercase());
        let upper = format!("0x{}", &CHECKSUMMED[2..].to_ascii_uppercase());
        assert_eq!(
            parse_address(&lower).unwrap(),
            parse_address(&upper).unwrap()
        );
    }

    #[test]
    fn mixed_case_with_one_flipped_letter_is_a_checksum_error() {
        // flip the case of the first letter ('d' -> 'D')
        let broken = CHECKSUMMED.replacen("0xd8", "0xD8", 1);
        assert_eq!(parse_address(&broken), Err(AddressError::Checksum));
    }

    #[test]
    fn malformed_inputs_name_their_problem() {
        assert_eq!(
            parse_address(&CHECKSUMMED[2..]),
            Err(AddressError::MissingPrefix)
        );
        assert_eq!(parse_address("0x1234"), Err(AddressError::Length));
        assert_eq!(
            parse_address(&format!("0x{}", "g".repeat(40))),
            Err(AddressError::NotHex)
        );
        assert_eq!(parse_address(""), Err(AddressError::MissingPrefix));
        // 40 bytes but multi-byte characters must not slip through as hex
        assert_eq!(
            parse_address(&format!("0x{}", "é".repeat(20))),
            Err(AddressError::NotHex)
        );
    }
}
