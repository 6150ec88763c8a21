//! Identifiers: UUIDv7 (time-ordered, so newest-first keyset pagination is an index scan) shown
//! with a type prefix (`pay_0191f7…`) so an id pasted into the wrong place fails to parse instead
//! of silently naming nothing. The database stores the bare UUID.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected an id like {prefix}_<32 hex digits>")]
pub struct IdError {
    pub prefix: &'static str,
}

/// Defines a prefixed UUIDv7 id type (`pay_<32 hex>`): `new`, `from_uuid`, `as_uuid`, Display,
/// strict FromStr (only the printed form, error [`IdError`]) and serde as the printed string.
/// Exported so other crates' ids (e.g. the store's webhook ids) share one implementation.
#[macro_export]
macro_rules! prefixed_id {
    ($(#[$meta:meta])* $name:ident, $prefix:literal) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name($crate::__private::Uuid);

        impl $name {
            pub const PREFIX: &'static str = $prefix;

            /// A fresh, time-ordered (v7) id.
            pub fn new() -> Self {
                Self($crate::__private::Uuid::now_v7())
            }

            pub const fn from_uuid(uuid: $crate::__private::Uuid) -> Self {
                Self(uuid)
            }

            pub const fn as_uuid(&self) -> $crate::__private::Uuid {
                self.0
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                write!(f, "{}_{}", $prefix, self.0.simple())
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = $crate::IdError;
            /// Only the prefixed form (`pay_<32 hex>`); anything else is an error.
            fn from_str(s: &str) -> ::std::result::Result<Self, Self::Err> {
                let err = $crate::IdError { prefix: $prefix };
                let rest = s
                    .strip_prefix($prefix)
                    .and_then(|r| r.strip_prefix('_'))
                    .ok_or(err.clone())?;
                // `Uuid::parse_str` also takes hyphenated/braced/urn forms; we accept exactly the
                // form we print.
                if rest.len() != 32 || !rest.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(err);
                }
                $crate::__private::Uuid::parse_str(rest).map(Self).map_err(|_| err)
            }
        }

        impl $crate::__private::serde::Serialize for $name {
            fn serialize<S: $crate::__private::serde::Serializer>(&self, serializer: S) -> ::std::result::Result<S::Ok, S::Error> {
                serializer.collect_str(self)
            }
        }

        impl<'de> $crate::__private::serde::Deserialize<'de> for $name {
            fn deserialize<D: $crate::__private::serde::Deserializer<'de>>(deserializer: D) -> ::std::result::Result<Self, D::Error> {
                let s = <::std::borrow::Cow<'de, str> as $crate::__private::serde::Deserialize<'de>>::deserialize(deserializer)?;
                s.parse().map_err(<D::Error as $crate::__private::serde::de::Error>::custom)
            }
        }
    };
}

prefixed_id!(
    /// A merchant (tenant): `mer_…`.
    MerchantId,
    "mer"
);
prefixed_id!(
    /// An API key's id (not its secret): `key_…`.
    ApiKeyId,
    "key"
);
prefixed_id!(
    /// A quote: `quo_…`.
    QuoteId,
    "quo"
);
prefixed_id!(
    /// A payment: `pay_…`.
    PaymentId,
    "pay"
);

/// A client's `Idempotency-Key` header value: 1..=255 visible ASCII characters (Stripe's limit).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IdempotencyKey(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Idempotency-Key must be 1 to 255 visible ASCII characters")]
pub struct IdempotencyKeyError;

impl IdempotencyKey {
    pub const MAX_LEN: usize = 255;

    pub fn new(key: &str) -> Result<Self, IdempotencyKeyError> {
        let ok =
            (1..=Self::MAX_LEN).contains(&key.len()) && key.bytes().all(|b| b.is_ascii_graphic());
        if ok {
            Ok(IdempotencyKey(key.to_owned()))
        } else {
            Err(IdempotencyKeyError)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for IdempotencyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_print_and_parse_with_their_prefix() {
        let id = PaymentId::new();
        let s = id.to_string();
        assert!(s.starts_with("pay_") && s.len() == 36, "{s}");
        assert_eq!(s.parse::<PaymentId>(), Ok(id));
        assert_eq!(serde_json::to_string(&id).unwrap(), format!("\"{s}\""));
        assert_eq!(
            serde_json::from_str::<PaymentId>(&format!("\"{s}\"")).unwrap(),
            id
        );
    }

    #[test]
    fn ids_with_another_prefix_or_bare_uuids_are_rejected() {
        let quote = QuoteId::new();
        assert!(quote.to_string().parse::<PaymentId>().is_err());
        assert!(quote.as_uuid().to_string().parse::<QuoteId>().is_err());
        assert!(
            format!("quo_{}", quote.as_uuid().hyphenated())
                .parse::<QuoteId>()
                .is_err()
        );
        assert!("pay_".parse::<PaymentId>().is_err());
        assert!("pay_zz".parse::<PaymentId>().is_err());
        assert!(
            format!("pay_{}x", quote.as_uuid().simple())
                .parse::<PaymentId>()
                .is_err()
        );
    }

    #[test]
    fn ids_are_time_ordered() {
        let a = PaymentId::new();
        let b = PaymentId::new();
        assert!(a < b);
        assert_eq!(a.as_uuid().get_version_num(), 7);
    }

    #[test]
    fn idempotency_keys_are_bounded_visible_ascii() {
        assert!(IdempotencyKey::new("order-42/attempt:1").is_ok());
        assert!(IdempotencyKey::new(&"k".repeat(255)).is_ok());
        assert_eq!(
            IdempotencyKey::new(&"k".repeat(256)),
            Err(IdempotencyKeyError)
        );
        assert_eq!(IdempotencyKey::new(""), Err(IdempotencyKeyError));
        assert_eq!(IdempotencyKey::new("a b"), Err(IdempotencyKeyError));
        assert_eq!(IdempotencyKey::new("ключ"), Err(IdempotencyKeyError));
        assert_eq!(IdempotencyKey::new("a\nb"), Err(IdempotencyKeyError));
    }
}
