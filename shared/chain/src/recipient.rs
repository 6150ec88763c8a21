//! Recipient checks done before quoting: a payment to a mistyped, burned or sanctioned address
//! cannot be recalled, so it must never be quoted.

use alloy::primitives::Address;

use crate::address::{AddressError, parse_address};
use crate::config::{Chain, OwnAddress};

/// Why a recipient is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RecipientError {
    #[error("recipient is not a valid address: {0}")]
    Invalid(#[from] AddressError),
    #[error("recipient must not be the zero address")]
    ZeroAddress,
    #[error("recipient is on the deny list of this chain")]
    Denied,
    /// One of meshpay's own hot wallets (on any configured chain): paying it moves nothing
    /// and hides the payout in the wallet's balance.
    #[error("recipient is one of this service's own hot wallets")]
    OwnWallet,
    /// A configured token contract (on any chain): tokens sent to a token contract are lost.
    #[error("recipient is a token contract; tokens sent there cannot be recovered")]
    TokenContract,
}

impl Chain {
    /// Parses the recipient (EIP-55 rules) and checks it against the zero address, the
    /// chain's deny list, and the addresses every chain's configuration makes unpayable: the
    /// hot wallets and the token contracts of all configured chains (`own_addresses`).
    pub fn validate_recipient(&self, input: &str) -> Result<Address, RecipientError> {
        let address = parse_address(input)?;
        if address.is_zero() {
            return Err(RecipientError::ZeroAddress);
        }
        if self.deny_list.contains(&address) {
            return Err(RecipientError::Denied);
        }
        match self.own_addresses.get(&address) {
            Some(OwnAddress::HotWallet) => Err(RecipientError::OwnWallet),
            Some(OwnAddress::TokenContract) => Err(RecipientError::TokenContract),
            None => Ok(address),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ChainsConfig;

    fn chain() -> Chain {
        let text = r#"
            [[chains]]
            name = "anvil"
            chain_id = 31337
            rpc_url = "http://127.0.0.1:8545"
            confirmations = 1
            max_fee_per_gas_cap_wei = 1000
            hot_wallets = ["0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"]
            deny_list = ["0x000000000000000000000000000000000000dEaD"]
            native = { symbol = "ETH", decimals = 18 }
        "#;
        ChainsConfig::from_toml_str(text).unwrap().chains()[0].clone()
    }

    #[test]
    fn denied_address_is_refused_in_any_letter_case() {
        let chain = chain();
        for input in [
            "0x000000000000000000000000000000000000dEaD",
            "0x000000000000000000000000000000000000dead",
            "0x000000000000000000000000000000000000DEAD",
        ] {
            assert_eq!(chain.validate_recipient(input), Err(RecipientError::Denied));
        }
    }

    #[test]
    fn own_hot_wallets_and_token_contracts_of_every_chain_are_refused() {
        let text = r#"
            [[chains]]
            name = "anvil"
            chain_id = 31337
            rpc_url = "http://127.0.0.1:8545"
            confirmations = 1
            max_fee_per_gas_cap_wei = 1000
            hot_wallets = ["0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"]
            native = { symbol = "ETH", decimals = 18 }
            [[chains.tokens]]
            symbol = "USDC"
            contract = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
            decimals = 6
            [[chains]]
            name = "other"
            chain_id = 1
            rpc_url = "http://127.0.0.1:8546"
            confirmations = 1
            max_fee_per_gas_cap_wei = 1000
            hot_wallets = ["0x70997970C51812dc3A010C7d01b50e0d17dc79C8"]
            native = { symbol = "ETH", decimals = 18 }
        "#;
        let config = ChainsConfig::from_toml_str(text).unwrap();
        for chain in config.chains() {
            for (input, refused) in [
                (
                    "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266",
                    RecipientError::OwnWallet,
                ),
                (
                    "0x70997970c51812dc3a010c7d01b50e0d17dc79c8",
                    RecipientError::OwnWallet,
                ),
                (
                    "0x5FbDB2315678afecb367f032d93F642f64180aa3",
                    RecipientError::TokenContract,
                ),
            ] {
                assert_eq!(
                    chain.validate_recipient(input),
                    Err(refused),
                    "{}: {input}",
                    chain.name
                );
            }
            assert!(
                chain
                    .validate_recipient("0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC")
                    .is_ok()
            );
        }
    }

    #[test]
    fn zero_address_is_refused() {
        let zero = format!("0x{}", "0".repeat(40));
        assert_eq!(
            chain().validate_recipient(&zero),
            Err(RecipientError::ZeroAddress)
        );
    }

    #[test]
    fn valid_recipient_is_returned_parsed() {
        let address = chain()
            .validate_recipient("0x70997970C51812dc3A010C7d01b50e0d17dc79C8")
            .unwrap();
        assert_eq!(
            address.to_checksum(None),
            "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
        );
    }

    #[test]
    fn bad_checksum_is_an_invalid_address() {
        assert_eq!(
            chain().validate_recipient("0x70997970c51812dc3A010C7d01b50e0d17dc79C8"),
            Err(RecipientError::Invalid(AddressError::Checksum))
        );
    }
}
