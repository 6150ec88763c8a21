//! Deposit addresses of a `DepositFactory` (contracts/DepositFactory.sol): computed off chain
//! from a salt, exactly as the factory's `CREATE2` of an EIP-1167 clone computes them.

use alloy::primitives::{Address, B256, keccak256};
use meshpay_domain::InvoiceId;

alloy::sol! {
    /// The factory's calls meshpay makes (contracts/DepositFactory.json holds the full ABI).
    interface IDepositFactory {
        function treasury() external view returns (address);
        function implementation() external view returns (address);
        function sweepers(address sweeper) external view returns (bool);
        function predict(bytes32 salt) external view returns (address);
        function sweep(bytes32[] calldata salts, address[] calldata tokens) external;
        function setSweeper(address sweeper, bool allowed) external;
        event Deployed(bytes32 indexed salt, address forwarder);
        event Swept(bytes32 indexed salt, address forwarder);
    }

    /// The forwarder's one call; only its factory may make it.
    interface IDepositForwarder {
        function flush(address[] calldata tokens) external;
        /// Emitted by the deposit address per asset it sent (`token` zero: the native coin).
        event Flushed(address indexed token, uint256 amount);
    }
}

/// EIP-1167 minimal proxy creation code, before the implementation address.
const CLONE_PREFIX: [u8; 20] = [
    0x3d, 0x60, 0x2d, 0x80, 0x60, 0x0a, 0x3d, 0x39, 0x81, 0xf3, 0x36, 0x3d, 0x3d, 0x37, 0x3d, 0x3d,
    0x3d, 0x36, 0x3d, 0x73,
];
/// EIP-1167 minimal proxy creation code, after the implementation address.
const CLONE_SUFFIX: [u8; 15] = [
    0x5a, 0xf4, 0x3d, 0x82, 0x80, 0x3e, 0x90, 0x3d, 0x91, 0x60, 0x2b, 0x57, 0xfd, 0x5b, 0xf3,
];

/// A deployed `DepositFactory` on one chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DepositFactory {
    address: Address,
    implementation: Address,
    clone_code_hash: B256,
}

impl DepositFactory {
    /// The factory at `address`. Its forwarder implementation is the contract its constructor
    /// created, its first `CREATE` (a contract's nonce starts at 1, EIP-161), so no chain read
    /// is needed to predict addresses.
    pub fn at(address: Address) -> DepositFactory {
        let implementation = address.create(1);
        DepositFactory {
            address,
            implementation,
            clone_code_hash: keccak256(clone_init_code(implementation)),
        }
    }

    /// The factory's address.
    pub fn address(&self) -> Address {
        self.address
    }

    /// The forwarder implementation every clone delegates to.
    pub fn implementation(&self) -> Address {
        self.implementation
    }

    /// The deposit address of `salt`: the same as the factory's `predict(salt)`, deployed or not.
    pub fn deposit_address(&self, salt: B256) -> Address {
        self.address.create2(salt, self.clone_code_hash)
    }
}

/// The CREATE2 salt of an invoice's deposit address: derived from its id, so the address can
/// always be recomputed and never collides with another invoice's.
pub fn invoice_salt(invoice: InvoiceId) -> B256 {
    let mut preimage = Vec::with_capacity(32);
    preimage.extend_from_slice(b"meshpay.invoice.v1");
    preimage.extend_from_slice(invoice.as_uuid().as_bytes());
    keccak256(preimage)
}

/// The creation code of a clone delegating to `implementation`.
pub fn clone_init_code(implementation: Address) -> Vec<u8> {
    let mut code = Vec::with_capacity(CLONE_PREFIX.len() + 20 + CLONE_SUFFIX.len());
    code.extend_from_slice(&CLONE_PREFIX);
    code.extend_from_slice(implementation.as_slice());
    code.extend_from_slice(&CLONE_SUFFIX);
    code
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deposit_addresses_differ_per_salt_and_per_factory() {
        let a = DepositFactory::at(Address::repeat_byte(0x11));
        let b = DepositFactory::at(Address::repeat_byte(0x22));
        let s1 = B256::repeat_byte(1);
        let s2 = B256::repeat_byte(2);
        assert_ne!(a.deposit_address(s1), a.deposit_address(s2));
        assert_ne!(a.deposit_address(s1), b.deposit_address(s1));
        assert_eq!(a.deposit_address(s1), a.deposit_address(s1));
    }

    #[test]
    fn the_chains_flushed_reader_decodes_the_forwarders_event() {
        use alloy::sol_types::SolEvent;
        let token = Address::repeat_byte(0x33);
        let event = IDepositForwarder::Flushed {
            token,
            amount: alloy::primitives::U256::from(25_000_000u64),
        };
        let data = event.encode_log_data();
        let log = meshpay_chain::rpc::LogFacts {
            address: Address::repeat_byte(0x44),
            topics: data.topics().to_vec(),
            data: data.data.clone(),
        };
        assert_eq!(
            log.flushed(),
            Some(meshpay_chain::flushed::FlushedLog {
                deposit: Address::repeat_byte(0x44),
                token,
                amount: alloy::primitives::U256::from(25_000_000u64),
            })
        );
        let mut other = log.clone();
        other.topics[0] = IDepositFactory::Swept::SIGNATURE_HASH;
        assert_eq!(other.flushed(), None);
    }

    #[test]
    fn clone_init_code_is_the_eip1167_creation_code() {
        let code = clone_init_code(Address::repeat_byte(0xbe));
        assert_eq!(
            alloy::hex::encode(&code),
            "3d602d80600a3d3981f3363d3d373d3d3d363d73bebebebebebebebebebebebebebebebebebebebe5af43d82803e903d91602b57fd5bf3"
        );
    }
}
