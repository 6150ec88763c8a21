//! Keyset pagination: `?limit=&cursor=`. The cursor is opaque to clients (base64url of the
//! position's JSON), so the key it carries can change without breaking them; a cursor that does
//! not decode is a 422, never a silent first page. Listings parse their query with
//! [`PageRequest::parse`] and [`filter`], so every listing answers bad input alike.

use std::str::FromStr;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

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

/// The page a listing asks for: `limit` checked, `cursor` decoded into a keyset position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRequest<K> {
    pub limit: u32,
    /// Where the previous page ended; `None` for the first page.
    pub before: Option<K>,
}

impl<K: DeserializeOwned> PageRequest<K> {
    /// Validates a listing's `limit` and `cursor` query parameters.
    pub fn parse(limit: Option<u32>, cursor: Option<&str>) -> Result<Self, ApiError> {
        Ok(Self {
            limit: page_limit(limit)?,
            before: cursor.map(decode_cursor).transpose()?,
        })
    }
}

/// Parses an optional query filter. `name` and `expected` make the 422's detail:
/// "status `x` is not a payment status".
pub fn filter<T: FromStr>(
    name: &str,
    value: Option<&str>,
    expected: &str,
) -> Result<Option<T>, ApiError> {
    value
        .map(|v| {
            v.parse::<T>()
                .map_err(|_| ApiError::validation(format!("{name} `{v}` is not {expected}")))
        })
        .transpose()
}

/// A `(created_at, id)` keyset position; its cursor carries `[unix nanoseconds, id]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimeKey<I>(
    #[serde(with = "time::serde::timestamp::nanoseconds")] pub OffsetDateTime,
    pub I,
);

impl<I> From<(OffsetDateTime, I)> for TimeKey<I> {
    fn from((at, id): (OffsetDateTime, I)) -> Self {
        Self(at, id)
    }
}

impl<I> From<TimeKey<I>> for (OffsetDateTime, I) {
    fn from(TimeKey(at, id): TimeKey<I>) -> Self {
        (at, id)
    }
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

    #[test]
    fn page_request_checks_limit_and_cursor() {
        let first = PageRequest::<u32>::parse(None, None).unwrap();
        assert_eq!(
            first,
            PageRequest {
                limit: 20,
                before: None
            }
        );
        let next = PageRequest::<u32>::parse(Some(5), Some(&encode_cursor(&7u32))).unwrap();
        assert_eq!(
            next,
            PageRequest {
                limit: 5,
                before: Some(7)
            }
        );
        for (limit, cursor) in [(Some(0), None), (None, Some("!!!"))] {
            let err = PageRequest::<u32>::parse(limit, cursor).unwrap_err();
            assert_eq!(err.code(), ErrorCode::ValidationFailed);
        }
    }

    #[test]
    fn filter_names_the_parameter_and_what_it_expects() {
        assert_eq!(filter::<u8>("status", None, "a number").unwrap(), None);
        assert_eq!(
            filter::<u8>("status", Some("7"), "a number").unwrap(),
            Some(7)
        );
        let err = filter::<u8>("status", Some("x"), "a number").unwrap_err();
        assert_eq!(err.code(), ErrorCode::ValidationFailed);
        assert_eq!(err.detail(), "status `x` is not a number");
    }

    #[test]
    fn time_key_cursor_is_nanoseconds_and_id_and_refuses_out_of_range_times() {
        let at = OffsetDateTime::from_unix_timestamp_nanos(1_700_000_000_123_456_789).unwrap();
        let cursor = encode_cursor(&TimeKey(at, 9u32));
        assert_eq!(
            cursor,
            encode_cursor(&(1_700_000_000_123_456_789i128, 9u32))
        );
        assert_eq!(
            decode_cursor::<TimeKey<u32>>(&cursor).unwrap(),
            TimeKey(at, 9)
        );
        let far = encode_cursor(&(i128::MAX, 9u32));
        assert!(decode_cursor::<TimeKey<u32>>(&far).is_err());
    }
}
