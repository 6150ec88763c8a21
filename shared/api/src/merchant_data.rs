//! The merchant's own `reference` and `metadata` on payments and invoices: stored and returned
//! as given, within bounds the database columns also check.

use serde_json::{Map, Value};

use crate::error::ApiError;

/// Longest `reference`, in characters (what the columns' checks count).
pub const MAX_REFERENCE_CHARS: usize = 255;
/// Largest `metadata` object, serialized.
pub const MAX_METADATA_BYTES: usize = 4 * 1024;

/// A `reference` is 1 to [`MAX_REFERENCE_CHARS`] characters without control characters;
/// `metadata` serializes to at most [`MAX_METADATA_BYTES`].
pub fn validate(
    reference: Option<&str>,
    metadata: Option<&Map<String, Value>>,
) -> Result<(), ApiError> {
    let bad_reference = reference.is_some_and(|reference| {
        reference.is_empty()
            || reference.chars().count() > MAX_REFERENCE_CHARS
            || reference.chars().any(char::is_control)
    });
    if bad_reference {
        return Err(ApiError::validation(format!(
            "reference must be 1 to {MAX_REFERENCE_CHARS} characters without control characters"
        )));
    }
    if let Some(metadata) = metadata {
        // Re-serializing a just-parsed value cannot fail; a failure would count as too large.
        let size = serde_json::to_vec(metadata).map_or(usize::MAX, |b| b.len());
        if size > MAX_METADATA_BYTES {
            return Err(ApiError::validation(format!(
                "metadata must be at most {MAX_METADATA_BYTES} bytes of JSON"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;
    use serde_json::json;

    fn metadata_of(bytes: usize) -> Map<String, Value> {
        // `{"k":"…"}` is 8 bytes around the string.
        let Value::Object(map) = json!({ "k": "x".repeat(bytes - 8) }) else {
            unreachable!()
        };
        map
    }

    #[test]
    fn reference_within_bounds_passes_and_empty_long_or_control_fails() {
        assert!(validate(None, None).is_ok());
        assert!(validate(Some("order-1 ünïcode"), None).is_ok());
        assert!(validate(Some(&"é".repeat(MAX_REFERENCE_CHARS)), None).is_ok());
        let too_long = "a".repeat(MAX_REFERENCE_CHARS + 1);
        for bad in ["", "tab\there", "nul\0", too_long.as_str()] {
            let err = validate(Some(bad), None).unwrap_err();
            assert_eq!(err.code(), ErrorCode::ValidationFailed, "{bad:?}");
            assert!(err.detail().starts_with("reference"), "{bad:?}");
        }
    }

    #[test]
    fn metadata_up_to_four_kib_passes_and_larger_fails() {
        assert!(validate(None, Some(&metadata_of(MAX_METADATA_BYTES))).is_ok());
        let err = validate(None, Some(&metadata_of(MAX_METADATA_BYTES + 1))).unwrap_err();
        assert_eq!(err.code(), ErrorCode::ValidationFailed);
        assert!(err.detail().starts_with("metadata"));
    }
}
