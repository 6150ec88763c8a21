//! JSON-RPC failures and what they mean for a payment: classified once, here.
//!
//! Error *messages* are the only portable signal (codes differ between geth, reth, anvil,
//! Nethermind and hosted providers, and -32000/-32003/-32603 are all used for the same thing),
//! so classification matches lower-cased substrings, and an HTTP error body is searched for a
//! JSON-RPC message too (some providers answer 4xx/5xx with a JSON-RPC error inside; a provider
//! changing that format clogged Defender's queue in 2022). OpenZeppelin relayer #681 is the
//! anti-pattern we avoid: treating "nonce too low" as retryable deadlocked the relayer.
//!
//! The rule behind every row: a payment is failed after signing (hold released, nonce handed
//! back) only when none of its signed bytes can ever be mined: the node refused them outright,
//! no earlier send may have put them in a pool (`exposed_at` unset: bytes once public can be
//! submitted again by anyone until their nonce is used), and the node knows none of the
//! payment's transactions. Otherwise the payment stays `broadcast` with its nonce: it is
//! retried, or parked for an operator with the reason (see `broadcast.rs`).
//!
//! | class | examples | what the broadcast step does |
//! |---|---|---|
//! | [`SendClass::AlreadyKnown`] | `already known`, `known transaction` | success: the node has our bytes |
//! | [`SendClass::NonceTooLow`] | `nonce too low` | success if our hash is known to the chain; else the nonce went to another transaction and the payment gets a fresh nonce (unless another of its transactions is known: parked) |
//! | [`SendClass::NonceInUse`] | `replacement transaction underpriced`, `future transaction tries to replace pending`, `transaction underpriced` | another transaction with this nonce is (or may be) in the pool, possibly the payment's own: one of its transactions known → sent; else retried, and parked on the last delivery. Never fails the payment, never hands the nonce back |
//! | [`SendClass::Rejected`] (transient) | `insufficient funds`, `txpool is full`, fee cap below base fee, `nonce too high` | the node refused *for now*: retry (message redelivered); on the last delivery fail the payment and hand the nonce back, if the rule above allows (else parked) |
//! | [`SendClass::Invalid`] | `intrinsic gas too low`, `invalid sender`, wrong chain id, tip above fee cap | these bytes can never be valid: fail the payment now and hand the nonce back, if the rule above allows (else parked) |
//! | [`SendClass::Unknown`] | timeouts, connection errors, HTTP 5xx/429, unrecognized errors | the node may or may not have the transaction (the bytes count as exposed): retry, never fail the payment |

use std::fmt;

use alloy::transports::{RpcError, TransportError, TransportErrorKind};
use meshpay_chain::redact_urls;

/// A failed JSON-RPC call, reduced to what classification and logs need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RpcFailure {
    /// No answer within the relay's RPC timeout.
    Timeout { method: &'static str },
    /// Connection refused, reset, TLS, ... (the request may or may not have arrived).
    Transport {
        method: &'static str,
        message: String,
    },
    /// A non-2xx HTTP answer (`body` truncated).
    Http {
        method: &'static str,
        status: u16,
        body: String,
    },
    /// A JSON-RPC error object.
    Rpc {
        method: &'static str,
        code: i64,
        message: String,
    },
    /// An answer we could not read.
    Decode {
        method: &'static str,
        message: String,
    },
}

/// Longest error text kept (bodies can be whole HTML pages).
const MAX_TEXT: usize = 500;

/// A remote text made fit to store: at most [`MAX_TEXT`] bytes, and U+0000 (which PostgreSQL
/// `text` cannot hold; a node or proxy can answer anything) replaced by U+FFFD.
fn truncate(text: String) -> String {
    let mut text = if text.contains('\0') {
        text.replace('\0', "\u{FFFD}")
    } else {
        text
    };
    if text.len() > MAX_TEXT {
        let mut cut = MAX_TEXT;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push('…');
    }
    text
}

impl RpcFailure {
    pub fn from_transport(method: &'static str, error: TransportError) -> Self {
        match error {
            RpcError::ErrorResp(payload) => RpcFailure::Rpc {
                method,
                code: payload.code,
                message: truncate(payload.message.into_owned()),
            },
            RpcError::Transport(TransportErrorKind::HttpError(http)) => RpcFailure::Http {
                method,
                status: http.status,
                body: truncate(http.body),
            },
            // HTTP client errors quote the request URL, which may carry the provider's API key;
            // these texts are logged and stored with the payment's attempts.
            RpcError::Transport(kind) => RpcFailure::Transport {
                method,
                message: truncate(redact_urls(&kind.to_string())),
            },
            RpcError::NullResp => RpcFailure::Decode {
                method,
                message: "null response".into(),
            },
            other => RpcFailure::Decode {
                method,
                message: truncate(redact_urls(&other.to_string())),
            },
        }
    }

    pub fn method(&self) -> &'static str {
        match self {
            RpcFailure::Timeout { method }
            | RpcFailure::Transport { method, .. }
            | RpcFailure::Http { method, .. }
            | RpcFailure::Rpc { method, .. }
            | RpcFailure::Decode { method, .. } => method,
        }
    }

    /// The node's own words: the JSON-RPC message, also when it came inside an HTTP error body.
    pub fn node_message(&self) -> Option<String> {
        match self {
            RpcFailure::Rpc { message, .. } => Some(message.clone()),
            RpcFailure::Http { body, .. } => serde_json::from_str::<serde_json::Value>(body)
                .ok()
                .and_then(|v| v.pointer("/error/message")?.as_str().map(str::to_owned)),
            _ => None,
        }
    }

    /// Whether `eth_call`/`eth_estimateGas` reported that the call reverts (EIP-1474 code 3 or
    /// the geth/anvil message).
    pub fn is_revert(&self) -> bool {
        match self {
            RpcFailure::Rpc { code: 3, .. } => true,
            _ => self
                .node_message()
                .is_some_and(|m| m.to_ascii_lowercase().contains("revert")),
        }
    }
}

impl fmt::Display for RpcFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RpcFailure::Timeout { method } => write!(f, "{method}: timed out"),
            RpcFailure::Transport { method, message } => {
                write!(f, "{method}: transport: {message}")
            }
            RpcFailure::Http {
                method,
                status,
                body,
            } => write!(f, "{method}: HTTP {status}: {body}"),
            RpcFailure::Rpc {
                method,
                code,
                message,
            } => write!(f, "{method}: error {code}: {message}"),
            RpcFailure::Decode { method, message } => write!(f, "{method}: bad answer: {message}"),
        }
    }
}

impl std::error::Error for RpcFailure {}

/// What an `eth_sendRawTransaction` failure means (see the module table).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendClass {
    AlreadyKnown,
    NonceTooLow,
    /// Refused because another transaction of the wallet with this nonce is (or may be) in
    /// the pool: maybe one of the payment's own, maybe another sender's.
    NonceInUse,
    /// Refused now, may be accepted later (funds, pool state, fees).
    Rejected,
    /// Refused for good: these signed bytes can never be valid.
    Invalid,
    /// Outcome unknown.
    Unknown,
}

impl SendClass {
    pub const fn as_str(self) -> &'static str {
        match self {
            SendClass::AlreadyKnown => "already_known",
            SendClass::NonceTooLow => "nonce_too_low",
            SendClass::NonceInUse => "nonce_in_use",
            SendClass::Rejected => "rejected",
            SendClass::Invalid => "invalid",
            SendClass::Unknown => "unknown",
        }
    }
}

impl fmt::Display for SendClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

const ALREADY_KNOWN: &[&str] = &[
    "already known",
    "known transaction",
    "already imported",
    "already exists",
    "already in the pool",
    "already in mempool",
    "alreadyknown",
];

const NONCE_TOO_LOW: &[&str] = &[
    "nonce too low",
    "nonce is too low",
    "nonce has already been used",
    "oldnonce",
];

/// Properties of the bytes themselves. Checked before the lists below: a tip above the fee cap
/// is a property of the bytes, not a price problem.
const INVALID: &[&str] = &[
    "intrinsic gas too low",
    "exceeds block gas limit",
    "invalid sender",
    "invalid signature",
    "invalid chain id",
    "chain id mismatch",
    "incorrect chain id",
    "only replay-protected",
    "transaction type not supported",
    "tx type not supported",
    "oversized data",
    "gas uint64 overflow",
    "negative value",
    "tip higher than fee cap",
    "max priority fee per gas higher than max fee per gas",
    "priority fee is more",
    "rlp",
    "failed to decode",
];

/// geth/reth/erigon: `replacement transaction underpriced` (same nonce in the pool, fees not
/// bumped by 10 %), `future transaction tries to replace pending`. `transaction underpriced`
/// and bare `underpriced` usually mean a tip below the pool's minimum or a full pool, but some
/// clients answer them for a same-nonce replacement too; since failing a payment whose nonce is
/// held by a pooled transaction could double spend, they are read the cautious way.
const NONCE_IN_USE: &[&str] = &[
    "replacement transaction underpriced",
    "replacement underpriced",
    "future transaction tries to replace pending",
    "transaction underpriced",
    "underpriced",
];

const REJECTED: &[&str] = &[
    "insufficient funds",
    "txpool is full",
    "transaction pool is full",
    "pool is full",
    "account limit exceeded",
    "fee cap less than block base fee",
    "max fee per gas less than block base fee",
    "less than block base fee",
    "nonce too high",
    "nonce gap",
    // geth's block gas pool: the block is full, not a property of the bytes.
    "gas limit reached",
];

fn matches_any(message: &str, needles: &[&str]) -> bool {
    needles.iter().any(|n| message.contains(n))
}

/// Classifies a failed `eth_sendRawTransaction`.
pub fn classify_send(failure: &RpcFailure) -> SendClass {
    let Some(message) = failure.node_message() else {
        // Timeouts, transport errors, unreadable answers, HTTP errors without a JSON-RPC body.
        return SendClass::Unknown;
    };
    let message = message.to_ascii_lowercase();
    if matches_any(&message, ALREADY_KNOWN) {
        SendClass::AlreadyKnown
    } else if matches_any(&message, NONCE_TOO_LOW) {
        SendClass::NonceTooLow
    } else if matches_any(&message, INVALID) {
        SendClass::Invalid
    } else if matches_any(&message, NONCE_IN_USE) {
        SendClass::NonceInUse
    } else if matches_any(&message, REJECTED) {
        SendClass::Rejected
    } else {
        SendClass::Unknown
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rpc(code: i64, message: &str) -> RpcFailure {
        RpcFailure::Rpc {
            method: "eth_sendRawTransaction",
            code,
            message: message.into(),
        }
    }

    #[test]
    fn duplicates_are_success_whatever_the_client_says() {
        for m in [
            "already known",
            "known transaction: 0xabc",
            "Transaction already imported",
            "ALREADY_EXISTS: already known",
        ] {
            assert_eq!(
                classify_send(&rpc(-32000, m)),
                SendClass::AlreadyKnown,
                "{m}"
            );
        }
    }

    #[test]
    fn nonce_too_low_is_its_own_class_not_a_retry() {
        // OpenZeppelin relayer #681: -32603 "nonce too low" misread as retryable.
        assert_eq!(
            classify_send(&rpc(-32603, "nonce too low")),
            SendClass::NonceTooLow
        );
        assert_eq!(
            classify_send(&rpc(-32000, "nonce too low: next nonce 5, tx nonce 3")),
            SendClass::NonceTooLow
        );
        assert_eq!(
            classify_send(&rpc(-32003, "Nonce has already been used")),
            SendClass::NonceTooLow
        );
    }

    #[test]
    fn refusals_that_may_pass_later_are_rejected_not_invalid() {
        for m in [
            "insufficient funds for gas * price + value: have 0 want 21000",
            "txpool is full",
            "max fee per gas less than block base fee",
            "gas limit reached",
            "nonce too high",
        ] {
            assert_eq!(classify_send(&rpc(-32000, m)), SendClass::Rejected, "{m}");
        }
    }

    #[test]
    fn a_pooled_transaction_on_our_nonce_is_never_an_ordinary_refusal() {
        // Failing on these would release the hold while a transaction with the payment's
        // nonce (maybe its own) can still be mined.
        for m in [
            "replacement transaction underpriced",
            "ReplacementUnderpriced: replacement underpriced",
            "future transaction tries to replace pending",
            "transaction underpriced: tip needed 1, tip permitted 0",
            "transaction underpriced",
            "underpriced",
        ] {
            assert_eq!(classify_send(&rpc(-32000, m)), SendClass::NonceInUse, "{m}");
        }
    }

    #[test]
    fn bytes_that_can_never_be_valid_are_invalid() {
        for m in [
            "intrinsic gas too low: have 20000, want 21000",
            "exceeds block gas limit",
            "invalid sender",
            "invalid chain id for signer",
            "only replay-protected (EIP-155) transactions allowed over RPC",
            "max priority fee per gas higher than max fee per gas",
        ] {
            assert_eq!(classify_send(&rpc(-32000, m)), SendClass::Invalid, "{m}");
        }
    }

    #[test]
    fn unknown_outcomes_are_never_terminal() {
        let method = "eth_sendRawTransaction";
        for failure in [
            RpcFailure::Timeout { method },
            RpcFailure::Transport {
                method,
                message: "connection refused".into(),
            },
            RpcFailure::Http {
                method,
                status: 502,
                body: "<html>bad gateway</html>".into(),
            },
            RpcFailure::Http {
                method,
                status: 429,
                body: "rate limited".into(),
            },
            rpc(-32603, "internal error"),
            RpcFailure::Decode {
                method,
                message: "expected value".into(),
            },
        ] {
            assert_eq!(classify_send(&failure), SendClass::Unknown, "{failure}");
        }
    }

    #[test]
    fn json_rpc_error_inside_an_http_error_body_is_classified() {
        let failure = RpcFailure::Http {
            method: "eth_sendRawTransaction",
            status: 400,
            body: r#"{"jsonrpc":"2.0","id":1,"error":{"code":-32000,"message":"already known"}}"#
                .into(),
        };
        assert_eq!(classify_send(&failure), SendClass::AlreadyKnown);
    }

    #[test]
    fn reverts_are_recognised_by_code_or_message() {
        assert!(
            rpc(
                3,
                "execution reverted: ERC20: transfer amount exceeds balance"
            )
            .is_revert()
        );
        assert!(rpc(-32000, "execution reverted").is_revert());
        assert!(!rpc(-32000, "insufficient funds").is_revert());
    }

    #[test]
    fn long_bodies_are_truncated_on_a_char_boundary() {
        let text = truncate("é".repeat(400));
        assert!(text.len() <= MAX_TEXT + '…'.len_utf8());
        assert!(text.ends_with('…'));
    }

    #[test]
    fn remote_texts_with_nul_become_storable() {
        let failure = RpcFailure::from_transport(
            "eth_sendRawTransaction",
            RpcError::Transport(TransportErrorKind::HttpError(
                alloy::transports::HttpError {
                    status: 502,
                    body: "bad\0thing".into(),
                },
            )),
        );
        let text = failure.to_string();
        assert!(!text.contains('\0'), "{text}");
        assert!(text.contains("bad\u{FFFD}thing"), "{text}");
        assert_eq!(
            truncate(format!("{}\0", "a".repeat(600)))
                .matches('\0')
                .count(),
            0
        );
    }
}
