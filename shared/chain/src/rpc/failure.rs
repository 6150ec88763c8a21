//! A failed JSON-RPC call, reduced to what classification and logs need: the variant says
//! whether the node answered, and the texts are truncated and free of URLs (an RPC endpoint's
//! URL carries the provider's API key, and these texts are logged and stored).

use std::fmt;

use alloy::transports::{RpcError, TransportError, TransportErrorKind};

use crate::redact::redact_urls;

/// A failed JSON-RPC call, reduced to what classification and logs need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RpcFailure {
    /// No answer within the RPC timeout.
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

impl RpcFailure {
    /// The failure's kind as a metric label.
    pub fn kind(&self) -> &'static str {
        match self {
            RpcFailure::Timeout { .. } => "timeout",
            RpcFailure::Transport { .. } => "transport",
            RpcFailure::Http { status: 429, .. } => "throttled",
            RpcFailure::Http { .. } => "http",
            RpcFailure::Rpc { .. } => "rpc",
            RpcFailure::Decode { .. } => "decode",
        }
    }
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

/// A JSON-RPC error answer to `eth_sendRawTransaction` (tests of this module and of
/// [`super::classify`]).
#[cfg(test)]
pub(super) fn rpc(code: i64, message: &str) -> RpcFailure {
    RpcFailure::Rpc {
        method: "eth_sendRawTransaction",
        code,
        message: message.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
