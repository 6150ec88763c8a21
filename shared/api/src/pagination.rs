//! Keyset pagination: `?limit=&cursor=`. The cursor is opaque to clients (base64url of the
//! position's JSON), so the key it carries can change without breaking them; a cursor that does
//! not decode is a 422, never a silent first page.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// Page size when the client sends none.
pub const DEFAULT_PAGE_LIMIT: u32 = 20;
/// Largest page a client may ask for.
pub const MAX_PAGE_LIMIT: u32 = 100;
/// Longest cursor accepted (bounds decoding work on hostile input).
const MAX_CURSOR_LEN: usize = 512;

/// Validates `limit` (1..=100, default 20).
pub fn page_limit(limit: Option<u32>) -> Result<u32, ApiError> {
    match limit {
        None => Ok(DEFAULT_PAGE_LIMIT),
        Some(n) if (1..=MAX_PAGE_LIMIT).contains(&n) => Ok(n),
        Some(n) => Err(ApiError::validation(format!(
            "limit must be between 1 and {MAX_PAGE_LIMIT}, got {n}"
        ))),
    }
}

/// Encodes a keyset position as an opaque cursor.
pub fn encode_cursor<K: Serialize>(position: &K) -> String {
    // Serializing plain data (ids, timestamps) to JSON cannot fail; an empty cursor would
    // only restart the listing, never skip items.
    let json = serde_json::to_vec(position).unwrap_or_default();
    URL_SAFE_NO_PAD.encode(json)
}

/// Decodes a cursor made by [`encode_cursor`].
pub fn decode_cursor<K: DeserializeOwned>(cursor: &str) -> Result<K, ApiError> {
    let invalid =
        || ApiError::validation("cursor is not valid; use next_cursor from a previous page");
    if cursor.is_empty() || cursor.len() > MAX_CURSOR_LEN {
        return Err(invalid());
    }
    let json = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| invalid())?;
    serde_json::from_slice(&json).map_err(|_| invalid())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;

    #[test]
    fn limit_defaults_and_is_bounded() {
        assert_eq!(page_limit(None).unwrap(), 20);
        assert_eq!(page_limit(Some(1)).unwrap(), 1);
        assert_eq!(page_limit(Some(100)).unwrap(), 100);
        assert_eq!(
            page_limit(Some(0)).unwrap_err().code(),
            ErrorCode::ValidationFailed
        );
        assert_eq!(
            page_limit(Some(101)).unwrap_err().code(),
            ErrorCode::ValidationFailed
        );
    }

    #[test]
    fn cursor_round_trips_and_rejects_tampering() {
        let cursor = encode_cursor(&("2025-01-01T00:00:00Z", 42));
        let back: (String, u32) = decode_cursor(&cursor).unwrap();
        assert_eq!(back, ("2025-01-01T00:00:00Z".to_owned(), 42));
        for bad in ["", "!!!", "e30", &"A".repeat(600)] {
            // "e30" is `{}`: valid base64 and JSON but not the position type
            assert!(decode_cursor::<(String, u32)>(bad).is_err(), "{bad}");
        }
    }
}
