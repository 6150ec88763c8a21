//! API key scopes: what a key may do. A key holds a set; each endpoint requires one scope.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scope {
    /// Create and read quotes.
    QuotesWrite,
    /// Authorize and cancel payments.
    PaymentsWrite,
    /// Read payments and balances.
    PaymentsRead,
    /// Manage webhook endpoints and read webhook deliveries.
    WebhooksWrite,
    /// Create and cancel invoices (pay-ins).
    InvoicesWrite,
    /// Read invoices.
    InvoicesRead,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown scope {0:?} (known: quotes:write, payments:write, payments:read, webhooks:write, invoices:write, invoices:read)"
)]
pub struct ScopeError(pub String);

impl Scope {
    pub const ALL: [Scope; 6] = [
        Scope::QuotesWrite,
        Scope::PaymentsWrite,
        Scope::PaymentsRead,
        Scope::WebhooksWrite,
        Scope::InvoicesWrite,
        Scope::InvoicesRead,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Scope::QuotesWrite => "quotes:write",
            Scope::PaymentsWrite => "payments:write",
            Scope::PaymentsRead => "payments:read",
            Scope::WebhooksWrite => "webhooks:write",
            Scope::InvoicesWrite => "invoices:write",
            Scope::InvoicesRead => "invoices:read",
        }
    }

    const fn bit(self) -> u8 {
        match self {
            Scope::QuotesWrite => 1,
            Scope::PaymentsWrite => 2,
            Scope::PaymentsRead => 4,
            Scope::WebhooksWrite => 8,
            Scope::InvoicesWrite => 16,
            Scope::InvoicesRead => 32,
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Scope {
    type Err = ScopeError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Scope::ALL
            .into_iter()
            .find(|scope| scope.as_str() == s)
            .ok_or_else(|| ScopeError(s.to_owned()))
    }
}

impl Serialize for Scope {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Scope {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A set of scopes (a bit set: checking a request's scope is a mask test).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct Scopes(u8);

impl Scopes {
    pub const NONE: Scopes = Scopes(0);

    pub fn all() -> Scopes {
        Scope::ALL.into_iter().collect()
    }

    pub fn contains(self, scope: Scope) -> bool {
        self.0 & scope.bit() != 0
    }

    pub fn insert(&mut self, scope: Scope) {
        self.0 |= scope.bit();
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// In [`Scope::ALL`] order.
    pub fn iter(self) -> impl Iterator<Item = Scope> {
        Scope::ALL.into_iter().filter(move |s| self.contains(*s))
    }

    /// Parses a comma-separated list (`quotes:write,payments:read`); blanks around items ignored.
    pub fn parse_list(list: &str) -> Result<Scopes, ScopeError> {
        list.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::parse::<Scope>)
            .collect()
    }
}

impl FromIterator<Scope> for Scopes {
    fn from_iter<I: IntoIterator<Item = Scope>>(iter: I) -> Self {
        let mut scopes = Scopes::NONE;
        for scope in iter {
            scopes.insert(scope);
        }
        scopes
    }
}

impl Serialize for Scopes {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.iter())
    }
}

impl<'de> Deserialize<'de> for Scopes {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(Vec::<Scope>::deserialize(deserializer)?
            .into_iter()
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_parse_from_their_wire_names_only() {
        for scope in Scope::ALL {
            assert_eq!(scope.as_str().parse::<Scope>(), Ok(scope));
        }
        assert!("payments:admin".parse::<Scope>().is_err());
        assert!("Payments:Read".parse::<Scope>().is_err());
    }

    #[test]
    fn scope_set_contains_exactly_what_was_granted() {
        let scopes = Scopes::parse_list("quotes:write, payments:read").unwrap();
        assert!(scopes.contains(Scope::QuotesWrite));
        assert!(scopes.contains(Scope::PaymentsRead));
        assert!(!scopes.contains(Scope::PaymentsWrite));
        assert!(Scopes::NONE.is_empty());
        assert!(Scope::ALL.iter().all(|s| Scopes::all().contains(*s)));
        assert!(Scopes::parse_list("quotes:write,bogus").is_err());
    }

    #[test]
    fn scope_set_json_is_a_list_of_names() {
        let scopes: Scopes = [Scope::PaymentsRead, Scope::QuotesWrite]
            .into_iter()
            .collect();
        let json = serde_json::to_string(&scopes).unwrap();
        assert_eq!(json, r#"["quotes:write","payments:read"]"#);
        assert_eq!(serde_json::from_str::<Scopes>(&json).unwrap(), scopes);
    }
}
