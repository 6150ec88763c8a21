//! Assets: which chain, which symbol, how many decimals, native coin or ERC-20 token.

use std::fmt;
use std::str::FromStr;

use alloy::primitives::Address;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::money::{Amount, AmountError, MAX_DECIMALS};

/// An asset's identity: `chain:SYMBOL`, e.g. `anvil:USDC`, `anvil:ETH`. This string is the
/// asset's key everywhere (database rows, ledger accounts, CLI flags); decimals and contract come
/// from configuration ([`Asset`]).
///
/// Chain: 1..=32 of `[a-z0-9-]`. Symbol: 1..=16 of `[A-Za-z0-9]`. Case matters in symbols.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AssetId {
    chain: String,
    symbol: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("asset must look like chain:SYMBOL (e.g. anvil:USDC), got {0:?}")]
pub struct AssetIdError(pub String);

impl AssetId {
    pub fn new(chain: &str, symbol: &str) -> Result<Self, AssetIdError> {
        let chain_ok = (1..=32).contains(&chain.len())
            && chain
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        let symbol_ok =
            (1..=16).contains(&symbol.len()) && symbol.bytes().all(|b| b.is_ascii_alphanumeric());
        if chain_ok && symbol_ok {
            Ok(AssetId {
                chain: chain.to_owned(),
                symbol: symbol.to_owned(),
            })
        } else {
            Err(AssetIdError(format!("{chain}:{symbol}")))
        }
    }

    pub fn chain(&self) -> &str {
        &self.chain
    }

    pub fn symbol(&self) -> &str {
        &self.symbol
    }
}

impl fmt::Display for AssetId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.chain, self.symbol)
    }
}

impl FromStr for AssetId {
    type Err = AssetIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (chain, symbol) = s
            .split_once(':')
            .ok_or_else(|| AssetIdError(s.to_owned()))?;
        AssetId::new(chain, symbol).map_err(|_| AssetIdError(s.to_owned()))
    }
}

impl Serialize for AssetId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for AssetId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// How an asset moves on chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum AssetKind {
    /// The chain's native coin (ETH): a plain value transfer.
    Native,
    /// An ERC-20 token: `transfer(to, amount)` on `contract`.
    Erc20 { contract: Address },
}

/// A configured asset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Asset {
    id: AssetId,
    decimals: u8,
    kind: AssetKind,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("asset {asset} has {decimals} decimals; at most {MAX_DECIMALS} are supported")]
pub struct DecimalsError {
    pub asset: AssetId,
    pub decimals: u8,
}

impl Asset {
    pub fn new(id: AssetId, decimals: u8, kind: AssetKind) -> Result<Self, DecimalsError> {
        if decimals > MAX_DECIMALS {
            return Err(DecimalsError {
                asset: id,
                decimals,
            });
        }
        Ok(Asset { id, decimals, kind })
    }

    pub fn id(&self) -> &AssetId {
        &self.id
    }

    pub fn decimals(&self) -> u8 {
        self.decimals
    }

    pub fn kind(&self) -> AssetKind {
        self.kind
    }

    pub fn is_native(&self) -> bool {
        matches!(self.kind, AssetKind::Native)
    }

    /// A positive amount in this asset's units ("250.00") → base units.
    pub fn parse_amount(&self, s: &str) -> Result<Amount, AmountError> {
        Amount::parse_positive_decimal(s, self.decimals)
    }

    /// Base units → this asset's units ("250.00").
    pub fn format_amount(&self, amount: Amount) -> String {
        amount.format_decimal(self.decimals)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn asset_id_round_trips_through_its_string_form() {
        let id: AssetId = "anvil:USDC".parse().unwrap();
        assert_eq!(id.chain(), "anvil");
        assert_eq!(id.symbol(), "USDC");
        assert_eq!(id.to_string(), "anvil:USDC");
        assert_eq!(serde_json::to_string(&id).unwrap(), "\"anvil:USDC\"");
        assert_eq!(
            serde_json::from_str::<AssetId>("\"anvil:ETH\"")
                .unwrap()
                .symbol(),
            "ETH"
        );
    }

    #[test]
    fn asset_id_rejects_malformed_strings() {
        for s in [
            "",
            "anvil",
            ":USDC",
            "anvil:",
            "Anvil:USDC",
            "anvil:US DC",
            "anvil:USDC:x",
            "anvil:US-DC",
            "anvil:ABCDEFGHIJKLMNOPQ",
            "an vil:USDC",
        ] {
            assert!(s.parse::<AssetId>().is_err(), "{s:?} accepted");
        }
    }

    #[test]
    fn asset_parses_and_formats_with_its_own_decimals() {
        let usdc = Asset::new("anvil:USDC".parse().unwrap(), 6, AssetKind::Native).unwrap();
        assert_eq!(
            usdc.parse_amount("250.00"),
            Ok(Amount::from_u128(250_000_000))
        );
        assert_eq!(usdc.parse_amount("0"), Err(AmountError::Zero));
        assert_eq!(usdc.format_amount(Amount::from_u128(250_000_000)), "250.00");
    }

    #[test]
    fn asset_rejects_more_decimals_than_u256_can_scale() {
        let id: AssetId = "anvil:X".parse().unwrap();
        assert!(Asset::new(id.clone(), 77, AssetKind::Native).is_ok());
        assert!(Asset::new(id, 78, AssetKind::Native).is_err());
    }

    #[test]
    fn asset_kind_json_is_tagged() {
        let kind = AssetKind::Erc20 {
            contract: Address::ZERO,
        };
        let json = serde_json::to_value(kind).unwrap();
        assert_eq!(json["type"], "erc20");
        assert_eq!(
            serde_json::to_value(AssetKind::Native).unwrap()["type"],
            "native"
        );
    }
}
