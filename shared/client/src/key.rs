//! [`ApiKey`]: the merchant's key, never printed.

use std::fmt;
use std::str::FromStr;

use crate::ClientError;

/// An API key (`Authorization: Bearer <key>`). `Debug` redacts it.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    /// The key itself, for the `Authorization` header.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(<redacted>)")
    }
}

impl FromStr for ApiKey {
    type Err = ClientError;

    /// Surrounding whitespace is dropped (keys pasted from a terminal); an empty key is refused.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s.is_empty() {
            return Err(ClientError::EmptyKey);
        }
        Ok(ApiKey(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_api_key_is_never_in_debug_output() {
        let key: ApiKey = " mp_secret ".parse().unwrap();
        assert!(!format!("{key:?}").contains("mp_secret"));
        assert_eq!(key.expose(), "mp_secret");
        assert!(" ".parse::<ApiKey>().is_err());
    }
}
