//! What goes on chain for a payment: a native value transfer or an ERC-20 `transfer`, with
//! exactly the quoted amount, signed as an EIP-1559 transaction.

use alloy::consensus::{SignableTransaction, TxEip1559, TxEnvelope};
use alloy::eips::eip2718::Encodable2718;
use alloy::network::TxSigner;
use alloy::primitives::{Address, B256, Bytes, Signature, TxKind, U256};
use alloy::rpc::types::TransactionRequest;
use alloy::sol_types::SolCall;
use meshpay_domain::{Amount, AssetKind};

use crate::error::RelayError;

alloy::sol! {
    /// ERC-20 `transfer(address,uint256)`.
    function transfer(address to, uint256 amount) external returns (bool);
}

/// The call a payment makes: `to`, `value` and `input` of the transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransferCall {
    pub to: Address,
    pub value_wei: U256,
    pub input: Bytes,
}

impl TransferCall {
    /// Native: `amount` wei to the recipient. ERC-20: `transfer(recipient, amount)` on the
    /// token contract, no value.
    pub fn new(kind: AssetKind, recipient: Address, amount: Amount) -> Self {
        match kind {
            AssetKind::Native => TransferCall {
                to: recipient,
                value_wei: amount.base_units(),
                input: Bytes::new(),
            },
            AssetKind::Erc20 { contract } => TransferCall {
                to: contract,
                value_wei: U256::ZERO,
                input: transferCall {
                    to: recipient,
                    amount: amount.base_units(),
                }
                .abi_encode()
                .into(),
            },
        }
    }

    /// The `eth_estimateGas` request for sending this call from `from`.
    pub fn estimate_request(&self, from: Address) -> TransactionRequest {
        TransactionRequest::default()
            .from(from)
            .to(self.to)
            .value(self.value_wei)
            .input(self.input.clone().into())
    }
}

/// Everything signed besides the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxParams {
    pub chain_id: u64,
    pub nonce: u64,
    pub gas_limit: u64,
    pub max_fee_per_gas_wei: u128,
    pub max_priority_fee_per_gas_wei: u128,
}

/// A signed transaction ready to store and send.
#[derive(Clone, PartialEq, Eq)]
pub struct SignedTransfer {
    pub hash: B256,
    /// EIP-2718 bytes for `eth_sendRawTransaction`.
    pub raw: Vec<u8>,
}

impl std::fmt::Debug for SignedTransfer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignedTransfer")
            .field("hash", &self.hash)
            .field("raw_len", &self.raw.len())
            .finish()
    }
}

/// Signs `call` with `params` and checks the signature recovers to `from`: a transaction that
/// would be sent from another account (a misconfigured key) is never stored.
pub async fn sign(
    signer: &(dyn TxSigner<Signature> + Send + Sync),
    from: Address,
    call: &TransferCall,
    params: TxParams,
) -> Result<SignedTransfer, RelayError> {
    let mut tx = TxEip1559 {
        chain_id: params.chain_id,
        nonce: params.nonce,
        gas_limit: params.gas_limit,
        max_fee_per_gas: params.max_fee_per_gas_wei,
        max_priority_fee_per_gas: params.max_priority_fee_per_gas_wei,
        to: TxKind::Call(call.to),
        value: call.value_wei,
        access_list: Default::default(),
        input: call.input.clone(),
    };
    let signature = signer
        .sign_transaction(&mut tx)
        .await
        .map_err(RelayError::Sign)?;
    let signed = tx.into_signed(signature);
    let recovered = signed
        .signature()
        .recover_address_from_prehash(&signed.signature_hash())
        .map_err(|_| RelayError::SignatureMismatch {
            expected: from,
            recovered: None,
        })?;
    if recovered != from {
        return Err(RelayError::SignatureMismatch {
            expected: from,
            recovered: Some(recovered),
        });
    }
    let envelope = TxEnvelope::Eip1559(signed);
    Ok(SignedTransfer {
        hash: *envelope.tx_hash(),
        raw: envelope.encoded_2718(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy::consensus::Transaction as _;
    use alloy::eips::eip2718::Decodable2718;
    use alloy::primitives::address;
    use alloy::signers::local::PrivateKeySigner;

    const RECIPIENT: Address = address!("0x1111111111111111111111111111111111111111");
    const TOKEN: Address = address!("0x5FbDB2315678afecb367f032d93F642f64180aa3");

    fn params() -> TxParams {
        TxParams {
            chain_id: 31337,
            nonce: 7,
            gas_limit: 60_000,
            max_fee_per_gas_wei: 3_000_000_000,
            max_priority_fee_per_gas_wei: 1_000_000_000,
        }
    }

    #[test]
    fn native_transfer_sends_the_amount_as_value() {
        let call = TransferCall::new(AssetKind::Native, RECIPIENT, Amount::from_u128(1234));
        assert_eq!(call.to, RECIPIENT);
        assert_eq!(call.value_wei, U256::from(1234));
        assert!(call.input.is_empty());
    }

    #[test]
    fn erc20_transfer_encodes_recipient_and_amount_for_the_token() {
        let amount = Amount::from_u128(250_000_000);
        let call = TransferCall::new(AssetKind::Erc20 { contract: TOKEN }, RECIPIENT, amount);
        assert_eq!(call.to, TOKEN);
        assert_eq!(call.value_wei, U256::ZERO);
        assert_eq!(&call.input[..4], &[0xa9, 0x05, 0x9c, 0xbb]);
        let decoded = transferCall::abi_decode(&call.input).unwrap();
        assert_eq!(decoded.to, RECIPIENT);
        assert_eq!(decoded.amount, U256::from(250_000_000u64));
    }

    #[tokio::test]
    async fn signed_bytes_decode_to_the_requested_transaction_from_the_wallet() {
        let signer = PrivateKeySigner::random();
        let from = signer.address();
        let call = TransferCall::new(AssetKind::Native, RECIPIENT, Amount::from_u128(5));
        let signed = sign(&signer, from, &call, params()).await.unwrap();
        let envelope = TxEnvelope::decode_2718(&mut signed.raw.as_slice()).unwrap();
        assert_eq!(*envelope.tx_hash(), signed.hash);
        assert_eq!(envelope.nonce(), 7);
        assert_eq!(envelope.chain_id(), Some(31337));
        assert_eq!(envelope.value(), U256::from(5));
        assert_eq!(envelope.max_fee_per_gas(), 3_000_000_000);
        let tx = envelope.as_eip1559().unwrap();
        assert_eq!(
            tx.signature()
                .recover_address_from_prehash(&tx.signature_hash())
                .unwrap(),
            from
        );
    }

    #[tokio::test]
    async fn a_key_for_another_address_is_refused() {
        let signer = PrivateKeySigner::random();
        let call = TransferCall::new(AssetKind::Native, RECIPIENT, Amount::from_u128(5));
        let error = sign(&signer, RECIPIENT, &call, params()).await.unwrap_err();
        assert!(
            matches!(error, RelayError::SignatureMismatch { .. }),
            "{error}"
        );
    }
}
