//! What a receipt proves. Pure functions over plain facts (no RPC types), so every rule is unit
//! tested with hand-built receipts.
//!
//! A receipt with status 1 is not proof of an ERC-20 payment: some tokens return `false`
//! instead of reverting (ZRX, BAT, EURS) and USDT returns nothing. So a token payment needs a
//! `Transfer(address,address,uint256)` log *emitted by the token contract* with exactly three
//! topics (ERC-721 indexes the token id: four) whose `from`, `to` and amount are the payment's.
//! Native transfers have no log: the transaction hash commits to recipient and value, and
//! [`check_signed_bytes`] verifies the stored bytes we sent say exactly that.

use alloy::consensus::{Transaction as _, TxEnvelope};
use alloy::eips::eip2718::Decodable2718;
use alloy::primitives::{Address, B256, Bytes, U256, b256};
use alloy::sol_types::SolCall;
use meshpay_domain::AssetKind;

alloy::sol! {
    /// ERC-20 `transfer(address,uint256)`: what a token payment's input must be.
    function transfer(address to, uint256 amount) external returns (bool);
}

/// `keccak256("Transfer(address,address,uint256)")`.
pub const TRANSFER_TOPIC: B256 =
    b256!("ddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef");

/// The receipt as the RPC layer reads it.
pub use meshpay_chain::rpc::{LogFacts, ReceiptFacts};

/// What the payment's transaction must have done on chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpectedTransfer {
    Native {
        from: Address,
        to: Address,
        amount: U256,
    },
    Erc20 {
        token: Address,
        from: Address,
        to: Address,
        amount: U256,
    },
}

impl ExpectedTransfer {
    /// The transfer of `amount` from the hot wallet `from` to `recipient` in an asset of `kind`.
    pub fn new(kind: AssetKind, from: Address, recipient: Address, amount: U256) -> Self {
        match kind {
            AssetKind::Native => ExpectedTransfer::Native {
                from,
                to: recipient,
                amount,
            },
            AssetKind::Erc20 { contract } => ExpectedTransfer::Erc20 {
                token: contract,
                from,
                to: recipient,
                amount,
            },
        }
    }

    const fn from(&self) -> Address {
        match self {
            ExpectedTransfer::Native { from, .. } | ExpectedTransfer::Erc20 { from, .. } => *from,
        }
    }

    /// The transaction's `to`: the recipient, or the token contract.
    const fn tx_to(&self) -> Address {
        match self {
            ExpectedTransfer::Native { to, .. } => *to,
            ExpectedTransfer::Erc20 { token, .. } => *token,
        }
    }
}

/// What a final (deep enough) receipt means for the payment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The transfer happened exactly as expected: confirm.
    Transferred,
    /// Status 0: nothing moved; fail the payment and release its hold.
    Reverted,
    /// Status 1 but the token emitted no `Transfer` at all (a token that returns `false`):
    /// nothing moved; fail the payment.
    NoTransfer(String),
    /// Status 1 and *something* happened that is not our transfer (other amount, other
    /// parties, malformed event): neither settle nor release automatically; an operator decides.
    Mismatch(String),
}

/// Decides a final receipt against the expected transfer.
pub fn verify_receipt(expected: &ExpectedTransfer, receipt: &ReceiptFacts) -> Verdict {
    if !receipt.success {
        return Verdict::Reverted;
    }
    if receipt.from != expected.from() {
        return Verdict::Mismatch(format!(
            "receipt is from {}, expected the hot wallet {}",
            receipt.from,
            expected.from()
        ));
    }
    if receipt.to != Some(expected.tx_to()) {
        return Verdict::Mismatch(format!(
            "receipt is to {:?}, expected {}",
            receipt.to,
            expected.tx_to()
        ));
    }
    match *expected {
        ExpectedTransfer::Native { .. } => Verdict::Transferred,
        ExpectedTransfer::Erc20 {
            token,
            from,
            to,
            amount,
        } => verify_token_transfer(receipt, token, from, to, amount),
    }
}

fn verify_token_transfer(
    receipt: &ReceiptFacts,
    token: Address,
    from: Address,
    to: Address,
    amount: U256,
) -> Verdict {
    let transfers: Vec<&LogFacts> = receipt
        .logs
        .iter()
        .filter(|log| log.address == token && log.topics.first() == Some(&TRANSFER_TOPIC))
        .collect();
    if transfers.is_empty() {
        return Verdict::NoTransfer(format!(
            "token {token} reported success without a Transfer event"
        ));
    }
    let matching = transfers
        .iter()
        .filter(|log| is_exact_transfer(log, from, to, amount))
        .count();
    match matching {
        1 => Verdict::Transferred,
        0 => Verdict::Mismatch(format!(
            "no Transfer({from} -> {to}, {amount}) among {} Transfer event(s) of {token}",
            transfers.len()
        )),
        n => Verdict::Mismatch(format!("{n} identical Transfer events of {token}")),
    }
}

/// Exactly three topics (ERC-20, not ERC-721), matching parties, a 32-byte amount.
fn is_exact_transfer(log: &LogFacts, from: Address, to: Address, amount: U256) -> bool {
    log.topics.len() == 3
        && log.topics[1] == from.into_word()
        && log.topics[2] == to.into_word()
        && log.data.len() == 32
        && U256::from_be_slice(&log.data) == amount
}

/// Checks that the stored signed bytes are the transaction `tx_hash` and say exactly the
/// payment's transfer (recipient or token, value, calldata): a receipt for this hash then
/// proves what the bytes say. `Err` describes the first difference.
pub fn check_signed_bytes(
    raw: &[u8],
    tx_hash: B256,
    expected: &ExpectedTransfer,
) -> Result<(), String> {
    let envelope = TxEnvelope::decode_2718(&mut &raw[..])
        .map_err(|e| format!("stored transaction does not decode: {e}"))?;
    if *envelope.tx_hash() != tx_hash {
        return Err(format!(
            "stored bytes hash to {}, not {tx_hash}",
            envelope.tx_hash()
        ));
    }
    let (value, input) = match *expected {
        ExpectedTransfer::Native { amount, .. } => (amount, Bytes::new()),
        ExpectedTransfer::Erc20 { to, amount, .. } => (
            U256::ZERO,
            Bytes::from(transferCall { to, amount }.abi_encode()),
        ),
    };
    if envelope.to() != Some(expected.tx_to()) {
        return Err(format!(
            "transaction is to {:?}, expected {}",
            envelope.to(),
            expected.tx_to()
        ));
    }
    if envelope.value() != value {
        return Err(format!(
            "transaction value is {}, expected {value}",
            envelope.value()
        ));
    }
    if envelope.input() != &input {
        return Err("transaction calldata is not the payment's transfer".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy::primitives::address;

    const TOKEN: Address = address!("5FbDB2315678afecb367f032d93F642f64180aa3");
    const WALLET: Address = address!("70997970C51812dc3A010C7d01b50e0d17dc79C8");
    const RECIPIENT: Address = address!("976EA74026E726554dB657fA54763abd0C3a0aa9");
    const AMOUNT: u64 = 250_000_000;

    fn erc20() -> ExpectedTransfer {
        ExpectedTransfer::Erc20 {
            token: TOKEN,
            from: WALLET,
            to: RECIPIENT,
            amount: U256::from(AMOUNT),
        }
    }

    fn transfer_log(address: Address, from: Address, to: Address, amount: u64) -> LogFacts {
        LogFacts {
            address,
            topics: vec![TRANSFER_TOPIC, from.into_word(), to.into_word()],
            data: Bytes::from(U256::from(amount).to_be_bytes::<32>().to_vec()),
        }
    }

    fn receipt(to: Address, logs: Vec<LogFacts>) -> ReceiptFacts {
        ReceiptFacts {
            tx_hash: B256::repeat_byte(1),
            success: true,
            block_number: 10,
            block_hash: B256::repeat_byte(2),
            from: WALLET,
            to: Some(to),
            gas_used: 50_000,
            effective_gas_price_wei: 1_000_000_000,
            l1_fee_wei: 0,
            logs,
        }
    }

    #[test]
    fn the_transfer_topic_is_keccak_of_the_event_signature() {
        assert_eq!(
            TRANSFER_TOPIC,
            alloy::primitives::keccak256("Transfer(address,address,uint256)")
        );
    }

    #[test]
    fn token_payment_with_the_exact_transfer_log_is_transferred() {
        let r = receipt(TOKEN, vec![transfer_log(TOKEN, WALLET, RECIPIENT, AMOUNT)]);
        assert_eq!(verify_receipt(&erc20(), &r), Verdict::Transferred);
    }

    #[test]
    fn reverted_receipt_is_reverted_whatever_its_logs() {
        let mut r = receipt(TOKEN, vec![transfer_log(TOKEN, WALLET, RECIPIENT, AMOUNT)]);
        r.success = false;
        assert_eq!(verify_receipt(&erc20(), &r), Verdict::Reverted);
    }

    #[test]
    fn status_one_without_any_token_transfer_event_moved_nothing() {
        // A token that returns false instead of reverting.
        let r = receipt(TOKEN, vec![]);
        assert!(matches!(
            verify_receipt(&erc20(), &r),
            Verdict::NoTransfer(_)
        ));
        // A Transfer from another contract proves nothing about our token.
        let other = address!("0000000000000000000000000000000000000001");
        let r = receipt(TOKEN, vec![transfer_log(other, WALLET, RECIPIENT, AMOUNT)]);
        assert!(matches!(
            verify_receipt(&erc20(), &r),
            Verdict::NoTransfer(_)
        ));
    }

    #[test]
    fn wrong_amount_recipient_or_sender_needs_review() {
        for log in [
            transfer_log(TOKEN, WALLET, RECIPIENT, AMOUNT - 1),
            transfer_log(TOKEN, WALLET, WALLET, AMOUNT),
            transfer_log(TOKEN, RECIPIENT, RECIPIENT, AMOUNT),
        ] {
            let r = receipt(TOKEN, vec![log]);
            assert!(matches!(verify_receipt(&erc20(), &r), Verdict::Mismatch(_)));
        }
    }

    #[test]
    fn a_transfer_with_four_topics_is_not_an_erc20_transfer() {
        let mut log = transfer_log(TOKEN, WALLET, RECIPIENT, AMOUNT);
        log.topics.push(B256::from(U256::from(AMOUNT)));
        log.data = Bytes::new();
        let r = receipt(TOKEN, vec![log]);
        assert!(matches!(verify_receipt(&erc20(), &r), Verdict::Mismatch(_)));
    }

    #[test]
    fn malformed_amount_data_is_not_a_match() {
        let mut log = transfer_log(TOKEN, WALLET, RECIPIENT, AMOUNT);
        log.data = Bytes::from(vec![0u8; 31]);
        let r = receipt(TOKEN, vec![log]);
        assert!(matches!(verify_receipt(&erc20(), &r), Verdict::Mismatch(_)));
    }

    #[test]
    fn the_exact_transfer_among_other_logs_is_found_once() {
        let approval = LogFacts {
            address: TOKEN,
            topics: vec![
                B256::repeat_byte(9),
                WALLET.into_word(),
                RECIPIENT.into_word(),
            ],
            data: Bytes::new(),
        };
        let r = receipt(
            TOKEN,
            vec![approval, transfer_log(TOKEN, WALLET, RECIPIENT, AMOUNT)],
        );
        assert_eq!(verify_receipt(&erc20(), &r), Verdict::Transferred);
        let twice = receipt(
            TOKEN,
            vec![
                transfer_log(TOKEN, WALLET, RECIPIENT, AMOUNT),
                transfer_log(TOKEN, WALLET, RECIPIENT, AMOUNT),
            ],
        );
        assert!(matches!(
            verify_receipt(&erc20(), &twice),
            Verdict::Mismatch(_)
        ));
    }

    #[test]
    fn receipt_from_another_sender_or_to_another_contract_needs_review() {
        let mut r = receipt(TOKEN, vec![transfer_log(TOKEN, WALLET, RECIPIENT, AMOUNT)]);
        r.from = RECIPIENT;
        assert!(matches!(verify_receipt(&erc20(), &r), Verdict::Mismatch(_)));
        let r = receipt(
            RECIPIENT,
            vec![transfer_log(TOKEN, WALLET, RECIPIENT, AMOUNT)],
        );
        assert!(matches!(verify_receipt(&erc20(), &r), Verdict::Mismatch(_)));
    }

    #[test]
    fn native_payment_is_proven_by_status_sender_and_recipient() {
        let native = ExpectedTransfer::Native {
            from: WALLET,
            to: RECIPIENT,
            amount: U256::from(5u64),
        };
        assert_eq!(
            verify_receipt(&native, &receipt(RECIPIENT, vec![])),
            Verdict::Transferred
        );
        assert!(matches!(
            verify_receipt(&native, &receipt(TOKEN, vec![])),
            Verdict::Mismatch(_)
        ));
    }

    mod signed_bytes {
        use super::*;
        use alloy::consensus::{SignableTransaction, TxEip1559};
        use alloy::eips::eip2718::Encodable2718;
        use alloy::primitives::TxKind;
        use alloy::signers::SignerSync;
        use alloy::signers::local::PrivateKeySigner;

        fn signed(to: Address, value: U256, input: Bytes) -> (Vec<u8>, B256) {
            let key = PrivateKeySigner::from_slice(&[7u8; 32]).unwrap();
            let tx = TxEip1559 {
                chain_id: 31337,
                nonce: 0,
                gas_limit: 65_000,
                max_fee_per_gas: 2,
                max_priority_fee_per_gas: 1,
                to: TxKind::Call(to),
                value,
                access_list: Default::default(),
                input,
            };
            let signature = key.sign_hash_sync(&tx.signature_hash()).unwrap();
            let envelope = TxEnvelope::from(tx.into_signed(signature));
            (envelope.encoded_2718(), *envelope.tx_hash())
        }

        #[test]
        fn bytes_of_the_payments_transfer_pass() {
            let input = Bytes::from(
                transferCall {
                    to: RECIPIENT,
                    amount: U256::from(AMOUNT),
                }
                .abi_encode(),
            );
            let (raw, hash) = signed(TOKEN, U256::ZERO, input);
            assert_eq!(check_signed_bytes(&raw, hash, &erc20()), Ok(()));
        }

        #[test]
        fn bytes_with_another_amount_hash_or_target_fail() {
            let input = Bytes::from(
                transferCall {
                    to: RECIPIENT,
                    amount: U256::from(AMOUNT + 1),
                }
                .abi_encode(),
            );
            let (raw, hash) = signed(TOKEN, U256::ZERO, input);
            assert!(check_signed_bytes(&raw, hash, &erc20()).is_err());
            let (raw, hash) = signed(RECIPIENT, U256::from(AMOUNT), Bytes::new());
            assert!(check_signed_bytes(&raw, hash, &erc20()).is_err());
            let native = ExpectedTransfer::Native {
                from: WALLET,
                to: RECIPIENT,
                amount: U256::from(AMOUNT),
            };
            assert_eq!(check_signed_bytes(&raw, hash, &native), Ok(()));
            assert!(check_signed_bytes(&raw, B256::ZERO, &native).is_err());
            assert!(check_signed_bytes(&[1, 2, 3], hash, &native).is_err());
        }
    }
}
