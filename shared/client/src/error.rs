//! [`ClientError`]: why a request got no usable answer.

use meshpay_api::{ErrorCode, Problem};

/// An error of one API request; `request` names it ("POST /quotes").
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("the API key is empty")]
    EmptyKey,
    #[error("building the HTTP client")]
    Build(#[source] reqwest::Error),
    /// No answer: connection refused, timeout, reset.
    #[error("{request}: cannot reach meshpay at {base}")]
    Unreachable {
        request: String,
        base: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("{request}: reading the response")]
    Read {
        request: String,
        #[source]
        source: reqwest::Error,
    },
    /// The API refused the request with a problem+json body.
    #[error("{request}: HTTP {status} {}: {}", problem.code.as_str(), problem.detail)]
    Problem {
        request: String,
        status: u16,
        problem: Box<Problem>,
    },
    /// A non-2xx answer that is not problem+json (a proxy's page, a host error).
    #[error("{request}: HTTP {status}: {}", excerpt(body))]
    Status {
        request: String,
        status: u16,
        body: String,
    },
    /// A 2xx answer that is not the expected shape.
    #[error("{request}: unexpected response: {}", excerpt(body))]
    Decode {
        request: String,
        body: String,
        #[source]
        source: serde_json::Error,
    },
}

impl ClientError {
    /// The problem `code` of an API refusal.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            ClientError::Problem { problem, .. } => Some(problem.code),
            _ => None,
        }
    }

    /// The HTTP status of a non-2xx answer.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Problem { status, .. } | ClientError::Status { status, .. } => {
                Some(*status)
            }
            _ => None,
        }
    }

    /// True when the same read is worth repeating: no answer, or a server-side error (meshpay
    /// restarting, the host busy).
    pub fn is_retryable(&self) -> bool {
        match self {
            ClientError::Unreachable { .. } | ClientError::Read { .. } => true,
            ClientError::Problem { status, .. } | ClientError::Status { status, .. } => {
                *status >= 500
            }
            ClientError::EmptyKey | ClientError::Build(_) | ClientError::Decode { .. } => false,
        }
    }
}

/// The start of a body, for messages.
fn excerpt(text: &str) -> String {
    const MAX: usize = 300;
    let text = text.trim();
    match text.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_bodies_are_cut_in_messages() {
        let error = ClientError::Status {
            request: "GET /balances".into(),
            status: 502,
            body: "é".repeat(400),
        };
        let message = error.to_string();
        assert!(
            message.starts_with("GET /balances: HTTP 502: éé"),
            "{message}"
        );
        assert!(message.ends_with("é…"), "{message}");
        assert_eq!(message.matches('é').count(), 300);
    }
}
