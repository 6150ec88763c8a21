//! Typed chains configuration (`chains.toml`), read once at start-up and validated as a whole so
//! a bad file stops the process before it serves a single quote.
//!
//! ```toml
//! [[chains]]
//! name = "anvil"                      # [a-z0-9-], used in the API (`"chain": "anvil"`)
//! chain_id = 31337
//! rpc_url = "http://127.0.0.1:8545"
//! confirmations = 1
//! use_finalized = false               # true: wait for the `finalized` tag instead of depth
//! max_fee_per_gas_cap_wei = 200000000000
//! hot_wallets = ["0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"]
//! deny_list = []                      # recipients we refuse to pay
//! native = { symbol = "ETH", decimals = 18 }
//! [[chains.tokens]]
//! symbol = "USDC"
//! contract = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
//! decimals = 6
//! ```

use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};

use alloy::primitives::Address;
use meshpay_domain::{Asset, AssetId, AssetKind};
use serde::Deserialize;
use url::Url;

use crate::address::{AddressError, parse_address};

/// Most decimals an asset may have: keeps `amount * 10^decimals` far inside U256 (~1.1e77).
pub const MAX_DECIMALS: u8 = 36;

/// The largest chains config accepted. A real file is a few KiB; the bound keeps a wrong path
/// (a log, a disk image) from being read whole into memory and handed to the TOML parser.
pub const MAX_CONFIG_BYTES: usize = 256 * 1024;

/// Why the chains configuration was rejected.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read chains config {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Larger than [`MAX_CONFIG_BYTES`]: refused before it is parsed.
    #[error("chains config is over {max} bytes")]
    TooLarge { max: usize },
    /// Not valid TOML, or a field is missing, unknown or of the wrong type.
    #[error("chains config is not valid: {0}")]
    Parse(#[from] toml::de::Error),
    /// No `[[chains]]` entry.
    #[error("chains config lists no chains")]
    NoChains,
    /// A `MESHPAY_RPC_URL_<CHAIN>` override is not an http(s) URL (its value is not repeated:
    /// it may hold a provider key).
    #[error("{var} is not an http(s) URL")]
    InvalidRpcUrlOverride { var: String },
    /// A `MESHPAY_FEE_CAP_WEI_<CHAIN>` override is not a positive integer number of wei.
    #[error("{var} must be a positive integer number of wei")]
    InvalidFeeCapOverride { var: String },
    /// One chain entry is inconsistent.
    #[error("chain {chain:?}: {problem}")]
    Invalid {
        chain: String,
        problem: ChainProblem,
    },
}

/// What is wrong with one chain entry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainProblem {
    #[error("name must be 1-32 characters of [a-z0-9-]")]
    InvalidName,
    #[error("name is used by another chain")]
    DuplicateName,
    #[error("chain_id must not be 0")]
    ZeroChainId,
    #[error("chain_id {0} is used by another chain")]
    DuplicateChainId(u64),
    #[error("rpc_url is not an http(s) URL")]
    InvalidRpcUrl,
    #[error("max_fee_per_gas_cap_wei must be greater than 0")]
    ZeroFeeCap,
    #[error("asset symbol {0:?} must be 1-16 characters of [A-Z0-9]")]
    InvalidSymbol(String),
    #[error("asset symbol {0:?} is configured twice")]
    DuplicateSymbol(String),
    #[error("asset {symbol}: decimals {decimals} exceed the maximum {MAX_DECIMALS}")]
    DecimalsTooLarge { symbol: String, decimals: u8 },
    #[error("token contract {0} is configured twice")]
    DuplicateContract(Address),
    #[error("{field} {value:?}: {reason}")]
    InvalidAddress {
        field: &'static str,
        value: String,
        reason: AddressError,
    },
    #[error("{field} must not be the zero address")]
    ZeroAddress { field: &'static str },
    #[error("hot_wallets must list at least one address")]
    NoHotWallets,
}

/// The validated configuration of every chain.
#[derive(Debug, Clone)]
pub struct ChainsConfig {
    chains: Vec<Chain>,
}

/// Chain id of the local dev chain (anvil). Dev-only signers and the demo merchant's free
/// funding are refused on every other chain.
pub const DEV_CHAIN_ID: u64 = 31337;

/// One EVM chain.
#[derive(Clone)]
pub struct Chain {
    pub name: String,
    pub chain_id: u64,
    pub rpc_url: Url,
    /// Blocks on top of the inclusion block before a payment counts as confirmed.
    pub confirmations: u64,
    /// Wait for the `finalized` block tag rather than a confirmation depth.
    pub use_finalized: bool,
    /// Upper bound on `maxFeePerGas`; estimates above it are clamped (and the quote says so).
    pub max_fee_per_gas_cap_wei: u128,
    /// The gas currency (`AssetKind::Native`).
    pub native: Asset,
    /// ERC-20 tokens (`AssetKind::Erc20`).
    pub tokens: Vec<Asset>,
    pub hot_wallets: Vec<Address>,
    pub deny_list: HashSet<Address>,
    /// The `DepositFactory` (contracts/DepositFactory.sol) whose CREATE2 addresses receive
    /// invoice payments; `None`: no pay-ins on this chain.
    pub deposit_factory: Option<Address>,
    /// An OP-stack rollup (Base, OP Mainnet): every transaction also pays an L1 data fee,
    /// quoted through the GasPriceOracle predeploy and read from the receipt's `l1Fee`.
    pub op_stack: bool,
    /// Every chain's hot wallets and token contracts, refused as recipients on this chain
    /// (filled in when the whole file is validated).
    pub own_addresses: std::collections::HashMap<Address, OwnAddress>,
}

/// Why an address of meshpay's own configuration is never a recipient.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OwnAddress {
    HotWallet,
    TokenContract,
}

/// The hot wallet the template chain files under `infra/chains/` carry: it stands for "your
/// wallet here". `serve` refuses to start with it; `chains check` reports it.
pub const PLACEHOLDER_HOT_WALLET: Address =
    alloy::primitives::address!("0x00000000000000000000000000000000DeaDBeef");

// RPC URLs of hosted providers carry API keys in the path or query: print the origin only.
impl fmt::Debug for Chain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Chain")
            .field("name", &self.name)
            .field("chain_id", &self.chain_id)
            .field("rpc_origin", &self.rpc_url.origin().ascii_serialization())
            .field("confirmations", &self.confirmations)
            .field("use_finalized", &self.use_finalized)
            .field("max_fee_per_gas_cap_wei", &self.max_fee_per_gas_cap_wei)
            .field("native", &self.native)
            .field("tokens", &self.tokens)
            .field("hot_wallets", &self.hot_wallets)
            .field("deny_list_len", &self.deny_list.len())
            .field("deposit_factory", &self.deposit_factory)
            .field("op_stack", &self.op_stack)
            .finish()
    }
}

impl ChainsConfig {
    /// Applies `MESHPAY_FEE_CAP_WEI_<CHAIN>` overrides looked up through `lookup` (name
    /// upper-cased, `-` as `_`), so operators can raise a cap during a fee spike with an app
    /// setting instead of a redeploy (a cap that cannot be raised strands transactions: OZ
    /// relayer #808).
    pub fn apply_fee_cap_overrides(
        &mut self,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<(), ConfigError> {
        for chain in &mut self.chains {
            let var = fee_cap_override_var(&chain.name);
            let Some(value) = lookup(&var) else { continue };
            match value.trim().parse::<u128>() {
                Ok(cap) if cap > 0 => chain.max_fee_per_gas_cap_wei = cap,
                _ => return Err(ConfigError::InvalidFeeCapOverride { var }),
            }
        }
        Ok(())
    }

    /// Applies `MESHPAY_RPC_URL_<CHAIN>` overrides (in Azure: Key Vault references, so a
    /// provider URL with its key is never in the package or the chains file).
    pub fn apply_rpc_url_overrides(
        &mut self,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<(), ConfigError> {
        for chain in &mut self.chains {
            let var = rpc_url_override_var(&chain.name);
            let Some(value) = lookup(&var).filter(|v| !v.trim().is_empty()) else {
                continue;
            };
            match Url::parse(value.trim()) {
                Ok(url) if matches!(url.scheme(), "http" | "https") => chain.rpc_url = url,
                _ => return Err(ConfigError::InvalidRpcUrlOverride { var }),
            }
        }
        Ok(())
    }

    /// `(chain, problem)` for every template value still in the file (the placeholder hot
    /// wallet): fine for `chains check` of a template, fatal for `serve`.
    pub fn placeholders(&self) -> Vec<(String, String)> {
        self.chains
            .iter()
            .filter(|c| c.hot_wallets.contains(&PLACEHOLDER_HOT_WALLET))
            .map(|c| {
                (
                    c.name.clone(),
                    format!(
                        "hot_wallets lists the template placeholder {PLACEHOLDER_HOT_WALLET}: \
                         put your hot wallet addresses there"
                    ),
                )
            })
            .collect()
    }

    /// Loads and validates a TOML file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let read_error = |source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        };
        let file = std::fs::File::open(path).map_err(read_error)?;
        // One byte past the bound is enough to tell an oversize file.
        let mut text = String::new();
        std::io::Read::read_to_string(
            &mut std::io::Read::take(file, MAX_CONFIG_BYTES as u64 + 1),
            &mut text,
        )
        .map_err(read_error)?;
        Self::from_toml_str(&text)
    }

    /// Parses and validates TOML text (at most [`MAX_CONFIG_BYTES`]).
    pub fn from_toml_str(text: &str) -> Result<Self, ConfigError> {
        if text.len() > MAX_CONFIG_BYTES {
            return Err(ConfigError::TooLarge {
                max: MAX_CONFIG_BYTES,
            });
        }
        let raw: RawFile = toml::from_str(text)?;
        Self::validate(raw)
    }

    /// Every configured chain, in file order.
    pub fn chains(&self) -> &[Chain] {
        &self.chains
    }

    /// The chain with this API name.
    pub fn chain(&self, name: &str) -> Option<&Chain> {
        self.chains.iter().find(|c| c.name == name)
    }

    fn validate(raw: RawFile) -> Result<Self, ConfigError> {
        if raw.chains.is_empty() {
            return Err(ConfigError::NoChains);
        }
        let mut chains: Vec<Chain> = Vec::with_capacity(raw.chains.len());
        for entry in raw.chains {
            let name = entry.name.clone();
            let invalid = |problem| ConfigError::Invalid {
                chain: name.clone(),
                problem,
            };
            if chains.iter().any(|c| c.name == entry.name) {
                return Err(invalid(ChainProblem::DuplicateName));
            }
            if chains.iter().any(|c| c.chain_id == entry.chain_id) {
                return Err(invalid(ChainProblem::DuplicateChainId(entry.chain_id)));
            }
            chains.push(entry.into_chain().map_err(invalid)?);
        }
        let mut own = std::collections::HashMap::new();
        for chain in &chains {
            for token in &chain.tokens {
                if let AssetKind::Erc20 { contract } = token.kind() {
                    own.insert(contract, OwnAddress::TokenContract);
                }
            }
        }
        for chain in &chains {
            for wallet in &chain.hot_wallets {
                own.entry(*wallet).or_insert(OwnAddress::HotWallet);
            }
        }
        for chain in &mut chains {
            chain.own_addresses = own.clone();
        }
        Ok(Self { chains })
    }
}

/// `MESHPAY_FEE_CAP_WEI_<CHAIN>` for a chain name (`base-sepolia` → `MESHPAY_FEE_CAP_WEI_BASE_SEPOLIA`).
pub fn fee_cap_override_var(chain: &str) -> String {
    format!(
        "MESHPAY_FEE_CAP_WEI_{}",
        chain.to_ascii_uppercase().replace('-', "_")
    )
}

/// `MESHPAY_RPC_URL_<CHAIN>` for a chain name (`base-sepolia` → `MESHPAY_RPC_URL_BASE_SEPOLIA`).
pub fn rpc_url_override_var(chain: &str) -> String {
    format!(
        "MESHPAY_RPC_URL_{}",
        chain.to_ascii_uppercase().replace('-', "_")
    )
}

impl Chain {
    /// Resolves an asset symbol (exact, case-sensitive: symbols are configured upper-case).
    pub fn asset(&self, symbol: &str) -> Option<&Asset> {
        self.assets().find(|a| a.id().symbol() == symbol)
    }

    /// Every asset of this chain, native first.
    pub fn assets(&self) -> impl Iterator<Item = &Asset> {
        std::iter::once(&self.native).chain(self.tokens.iter())
    }

    /// Symbols of every asset of this chain, native first (for error messages and docs).
    pub fn asset_symbols(&self) -> Vec<&str> {
        self.assets().map(|a| a.id().symbol()).collect()
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    chains: Vec<RawChain>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawChain {
    name: String,
    chain_id: u64,
    rpc_url: String,
    confirmations: u64,
    #[serde(default)]
    use_finalized: bool,
    max_fee_per_gas_cap_wei: u64,
    native: RawNative,
    #[serde(default)]
    tokens: Vec<RawToken>,
    hot_wallets: Vec<String>,
    #[serde(default)]
    deny_list: Vec<String>,
    #[serde(default)]
    deposit_factory: Option<String>,
    #[serde(default)]
    op_stack: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNative {
    symbol: String,
    decimals: u8,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawToken {
    symbol: String,
    contract: String,
    decimals: u8,
}

impl RawChain {
    fn into_chain(self) -> Result<Chain, ChainProblem> {
        if !valid_name(&self.name) {
            return Err(ChainProblem::InvalidName);
        }
        if self.chain_id == 0 {
            return Err(ChainProblem::ZeroChainId);
        }
        let rpc_url = Url::parse(&self.rpc_url).map_err(|_| ChainProblem::InvalidRpcUrl)?;
        if !matches!(rpc_url.scheme(), "http" | "https") {
            return Err(ChainProblem::InvalidRpcUrl);
        }
        if self.max_fee_per_gas_cap_wei == 0 {
            return Err(ChainProblem::ZeroFeeCap);
        }
        let native = build_asset(
            &self.name,
            &self.native.symbol,
            self.native.decimals,
            AssetKind::Native,
        )?;
        let mut tokens: Vec<Asset> = Vec::with_capacity(self.tokens.len());
        for token in &self.tokens {
            let contract = config_address("tokens.contract", &token.contract)?;
            let asset = build_asset(
                &self.name,
                &token.symbol,
                token.decimals,
                AssetKind::Erc20 { contract },
            )?;
            if std::iter::once(&native)
                .chain(tokens.iter())
                .any(|a| a.id() == asset.id())
            {
                return Err(ChainProblem::DuplicateSymbol(token.symbol.clone()));
            }
            if tokens.iter().any(|t| t.kind() == asset.kind()) {
                return Err(ChainProblem::DuplicateContract(contract));
            }
            tokens.push(asset);
        }
        let hot_wallets = self
            .hot_wallets
            .iter()
            .map(|a| config_address("hot_wallets", a))
            .collect::<Result<Vec<_>, _>>()?;
        if hot_wallets.is_empty() {
            return Err(ChainProblem::NoHotWallets);
        }
        let deny_list = self
            .deny_list
            .iter()
            .map(|a| config_address("deny_list", a))
            .collect::<Result<HashSet<_>, _>>()?;
        let deposit_factory = self
            .deposit_factory
            .as_deref()
            .map(|a| config_address("deposit_factory", a))
            .transpose()?;
        Ok(Chain {
            name: self.name,
            chain_id: self.chain_id,
            rpc_url,
            confirmations: self.confirmations,
            use_finalized: self.use_finalized,
            max_fee_per_gas_cap_wei: u128::from(self.max_fee_per_gas_cap_wei),
            native,
            tokens,
            hot_wallets,
            deny_list,
            deposit_factory,
            op_stack: self.op_stack,
            own_addresses: std::collections::HashMap::new(),
        })
    }
}

fn valid_name(name: &str) -> bool {
    (1..=32).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

fn build_asset(
    chain: &str,
    symbol: &str,
    decimals: u8,
    kind: AssetKind,
) -> Result<Asset, ChainProblem> {
    let valid = (1..=16).contains(&symbol.len())
        && symbol
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
    if !valid {
        return Err(ChainProblem::InvalidSymbol(symbol.to_owned()));
    }
    if decimals > MAX_DECIMALS {
        return Err(ChainProblem::DecimalsTooLarge {
            symbol: symbol.to_owned(),
            decimals,
        });
    }
    // Both parts were validated above (and the chain name before), so these cannot fail; the
    // domain's own checks stay authoritative.
    let id =
        AssetId::new(chain, symbol).map_err(|_| ChainProblem::InvalidSymbol(symbol.to_owned()))?;
    Asset::new(id, decimals, kind).map_err(|_| ChainProblem::DecimalsTooLarge {
        symbol: symbol.to_owned(),
        decimals,
    })
}

fn config_address(field: &'static str, value: &str) -> Result<Address, ChainProblem> {
    let address = parse_address(value).map_err(|reason| ChainProblem::InvalidAddress {
        field,
        value: value.to_owned(),
        reason,
    })?;
    if address.is_zero() {
        return Err(ChainProblem::ZeroAddress { field });
    }
    Ok(address)
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &str = r#"
        [[chains]]
        name = "anvil"
        chain_id = 31337
        rpc_url = "http://127.0.0.1:8545"
        confirmations = 1
        max_fee_per_gas_cap_wei = 200000000000
        hot_wallets = ["0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"]
        deny_list = ["0x000000000000000000000000000000000000dEaD"]
        native = { symbol = "ETH", decimals = 18 }
        [[chains.tokens]]
        symbol = "USDC"
        contract = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
        decimals = 6
    "#;

    fn problem(text: &str) -> ChainProblem {
        match ChainsConfig::from_toml_str(text) {
            Err(ConfigError::Invalid { problem, .. }) => problem,
            other => panic!("expected an invalid chain, got {other:?}"),
        }
    }

    #[test]
    fn fee_cap_override_replaces_the_file_cap_and_rejects_bad_values() {
        let mut config = ChainsConfig::from_toml_str(VALID).unwrap();
        config
            .apply_fee_cap_overrides(|var| {
                (var == "MESHPAY_FEE_CAP_WEI_ANVIL").then(|| "500000000000".to_owned())
            })
            .unwrap();
        assert_eq!(
            config.chain("anvil").unwrap().max_fee_per_gas_cap_wei,
            500_000_000_000
        );
        for bad in ["0", "-1", "1.5", "lots"] {
            let error = config
                .apply_fee_cap_overrides(|_| Some(bad.to_owned()))
                .unwrap_err();
            assert!(
                matches!(error, ConfigError::InvalidFeeCapOverride { .. }),
                "{bad}"
            );
        }
        assert_eq!(
            fee_cap_override_var("base-sepolia"),
            "MESHPAY_FEE_CAP_WEI_BASE_SEPOLIA"
        );
    }

    #[test]
    fn valid_config_resolves_native_and_token_assets() {
        let config = ChainsConfig::from_toml_str(VALID).unwrap();
        let anvil = config.chain("anvil").unwrap();
        assert_eq!(anvil.chain_id, 31337);
        assert_eq!(anvil.max_fee_per_gas_cap_wei, 200_000_000_000);
        assert!(!anvil.use_finalized);
        assert_eq!(anvil.asset("ETH").unwrap().kind(), AssetKind::Native);
        let usdc = anvil.asset("USDC").unwrap();
        assert_eq!(usdc.decimals(), 6);
        assert_eq!(usdc.id().to_string(), "anvil:USDC");
        assert!(matches!(usdc.kind(), AssetKind::Erc20 { .. }));
        assert_eq!(anvil.asset("usdc"), None);
        assert_eq!(anvil.asset_symbols(), vec!["ETH", "USDC"]);
        assert_eq!(anvil.deny_list.len(), 1);
        assert!(config.chain("mainnet").is_none());
    }

    #[test]
    fn unknown_fields_are_rejected() {
        let text = VALID.replace("confirmations = 1", "confirmations = 1\nconfirmatons = 2");
        assert!(matches!(
            ChainsConfig::from_toml_str(&text),
            Err(ConfigError::Parse(_))
        ));
    }

    #[test]
    fn empty_file_has_no_chains() {
        assert!(matches!(
            ChainsConfig::from_toml_str(""),
            Err(ConfigError::NoChains)
        ));
    }

    #[test]
    fn each_inconsistency_is_a_typed_problem() {
        assert_eq!(
            problem(&VALID.replace("chain_id = 31337", "chain_id = 0")),
            ChainProblem::ZeroChainId
        );
        assert_eq!(
            problem(&VALID.replace("name = \"anvil\"", "name = \"Anvil\"")),
            ChainProblem::InvalidName
        );
        assert_eq!(
            problem(&VALID.replace("http://127.0.0.1:8545", "ws://127.0.0.1:8545")),
            ChainProblem::InvalidRpcUrl
        );
        assert_eq!(
            problem(&VALID.replace("= 200000000000", "= 0")),
            ChainProblem::ZeroFeeCap
        );
        assert_eq!(
            problem(&VALID.replace("symbol = \"USDC\"", "symbol = \"ETH\"")),
            ChainProblem::DuplicateSymbol("ETH".into())
        );
        assert_eq!(
            problem(&VALID.replace("decimals = 6", "decimals = 77")),
            ChainProblem::DecimalsTooLarge {
                symbol: "USDC".into(),
                decimals: 77
            }
        );
        assert!(matches!(
            problem(&VALID.replace(
                "0x5FbDB2315678afecb367f032d93F642f64180aa3",
                "0x5fbDB2315678afecb367f032d93F642f64180aa3"
            )),
            ChainProblem::InvalidAddress {
                field: "tokens.contract",
                reason: AddressError::Checksum,
                ..
            }
        ));
        assert_eq!(
            problem(&VALID.replace(
                "hot_wallets = [\"0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266\"]",
                "hot_wallets = []"
            )),
            ChainProblem::NoHotWallets
        );
        assert_eq!(
            problem(&VALID.replace(
                "0x000000000000000000000000000000000000dEaD",
                "0x0000000000000000000000000000000000000000"
            )),
            ChainProblem::ZeroAddress { field: "deny_list" }
        );
    }

    #[test]
    fn duplicate_chain_names_and_ids_are_rejected() {
        let twice = format!("{VALID}\n{VALID}");
        assert_eq!(problem(&twice), ChainProblem::DuplicateName);
        let same_id = format!("{VALID}\n{}", VALID.replace("\"anvil\"", "\"other\""));
        assert_eq!(problem(&same_id), ChainProblem::DuplicateChainId(31337));
    }

    #[test]
    fn debug_output_hides_the_rpc_path_and_query() {
        let text = VALID.replace(
            "http://127.0.0.1:8545",
            "https://eth.example.com/v2/SECRETKEY?apikey=SECRET2",
        );
        let config = ChainsConfig::from_toml_str(&text).unwrap();
        let debug = format!("{config:?}");
        assert!(debug.contains("https://eth.example.com"));
        assert!(!debug.contains("SECRET"));
    }
}
