//! [`SignerSecrets`]: the secret values a signers configuration refers to by name (a local key's
//! hex key or keystore password variable), read once by the binary and handed to
//! [`crate::SignerConfig::build`]: this crate never reads the process environment.

use std::collections::HashMap;
use std::fmt;

use zeroize::Zeroizing;

/// Secret values by setting name. Zeroized on drop; `Debug` shows the names only.
#[derive(Clone, Default)]
pub struct SignerSecrets {
    values: HashMap<String, Zeroizing<String>>,
}

impl SignerSecrets {
    /// The settings `names` that `get` has a value for (the others stay unset: the signer that
    /// needs one reports it missing when it is built).
    pub fn read<'a>(
        names: impl IntoIterator<Item = &'a str>,
        get: impl Fn(&str) -> Option<String>,
    ) -> Self {
        let values = names
            .into_iter()
            .filter_map(|name| Some((name.to_owned(), Zeroizing::new(get(name)?))))
            .collect();
        SignerSecrets { values }
    }

    pub fn get(&self, name: &str) -> Option<String> {
        self.values.get(name).map(|value| value.as_str().to_owned())
    }
}

impl fmt::Debug for SignerSecrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut names: Vec<&str> = self.values.keys().map(String::as_str).collect();
        names.sort_unstable();
        f.debug_struct("SignerSecrets")
            .field("names", &names)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_named_settings_are_kept_and_debug_shows_no_value() {
        let get = |name: &str| Some(format!("value-of-{name}"));
        let secrets = SignerSecrets::read(["HOT_KEY"], get);
        assert_eq!(secrets.get("HOT_KEY").as_deref(), Some("value-of-HOT_KEY"));
        assert_eq!(secrets.get("OTHER"), None);
        let debug = format!("{secrets:?}");
        assert!(debug.contains("HOT_KEY"), "{debug}");
        assert!(!debug.contains("value-of"), "{debug}");
    }
}
