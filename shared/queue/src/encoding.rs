//! host.json `extensions.queues.messageEncoding`: how message bytes are stored as text.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

/// `base64` (the host's default) or `none`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum MessageEncoding {
    /// Message text is the base64 of the body (the Functions queue extension's default).
    #[default]
    Base64,
    /// Message text is the body itself (must then be valid UTF-8 XML text).
    None,
}

impl MessageEncoding {
    /// Parses host.json's value (case-insensitive); `None` for anything unknown.
    pub fn from_setting(value: &str) -> Option<Self> {
        match value.trim().to_ascii_lowercase().as_str() {
            "base64" => Some(Self::Base64),
            "none" => Some(Self::None),
            _ => None,
        }
    }

    /// The text stored in the queue for `body`.
    pub fn encode(self, body: &[u8]) -> String {
        match self {
            Self::Base64 => BASE64.encode(body),
            Self::None => String::from_utf8_lossy(body).into_owned(),
        }
    }

    /// The body for a stored message text; `None` if it is not valid for this encoding.
    pub fn decode(self, text: &str) -> Option<Vec<u8>> {
        match self {
            Self::Base64 => BASE64.decode(text.trim()).ok(),
            Self::None => Some(text.as_bytes().to_vec()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trips_json_text() {
        let text = MessageEncoding::Base64.encode(br#"{"fail":true}"#);
        assert_eq!(text, "eyJmYWlsIjp0cnVlfQ==");
        assert_eq!(
            MessageEncoding::Base64.decode(&text).unwrap(),
            br#"{"fail":true}"#
        );
    }

    #[test]
    fn base64_rejects_plain_text() {
        assert!(MessageEncoding::Base64.decode("{not base64}").is_none());
    }

    #[test]
    fn setting_names_are_case_insensitive() {
        assert_eq!(
            MessageEncoding::from_setting("Base64"),
            Some(MessageEncoding::Base64)
        );
        assert_eq!(
            MessageEncoding::from_setting("NONE"),
            Some(MessageEncoding::None)
        );
        assert_eq!(MessageEncoding::from_setting("utf8"), None);
    }
}
