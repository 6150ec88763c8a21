//! Queue messages between pipeline steps (`payments-broadcast`, `payments-confirm`,
//! `payments-settle`). One versioned envelope: a step only needs the payment id and reads the
//! rest from the database, so a duplicated or stale message cannot carry stale state.

use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

use crate::ids::PaymentId;

/// A queue message's version field `v`, fixed by the type: it is written as `N` and a message
/// with any other value does not deserialize. A step therefore never acts on a message of a
/// version it does not understand; the shim refuses it (retried, then poisoned) before the
/// handler runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Version<const N: u8>;

impl<const N: u8> Version<N> {
    pub const NUMBER: u8 = N;
}

impl<const N: u8> Serialize for Version<N> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u8(N)
    }
}

impl<'de, const N: u8> Deserialize<'de> for Version<N> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Expected<const N: u8>;
        impl<const N: u8> Visitor<'_> for Expected<N> {
            type Value = Version<N>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "message version {N}")
            }

            fn visit_u64<E: de::Error>(self, found: u64) -> Result<Self::Value, E> {
                if found == u64::from(N) {
                    Ok(Version)
                } else {
                    Err(E::custom(format!(
                        "unsupported message version {found} (expected {N})"
                    )))
                }
            }

            fn visit_i64<E: de::Error>(self, found: i64) -> Result<Self::Value, E> {
                match u64::try_from(found) {
                    Ok(found) => self.visit_u64(found),
                    Err(_) => Err(E::custom(format!(
                        "unsupported message version {found} (expected {N})"
                    ))),
                }
            }
        }
        deserializer.deserialize_u64(Expected::<N>)
    }
}

/// `{"v":1,"payment_id":"pay_…"}`. Unknown fields are rejected so a malformed message is
/// poisoned rather than half-understood; so is any version but 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PaymentMessage {
    pub v: Version<1>,
    pub payment_id: PaymentId,
}

impl PaymentMessage {
    pub const VERSION: u8 = 1;

    pub fn new(payment_id: PaymentId) -> Self {
        PaymentMessage {
            v: Version,
            payment_id,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payment_message_round_trips_and_rejects_unknown_fields() {
        let msg = PaymentMessage::new(PaymentId::new());
        let json = serde_json::to_string(&msg).unwrap();
        assert_eq!(serde_json::from_str::<PaymentMessage>(&json).unwrap(), msg);
        let extra = json.replace('}', r#","x":1}"#);
        assert!(serde_json::from_str::<PaymentMessage>(&extra).is_err());
    }

    #[test]
    fn payment_message_is_written_with_v_1() {
        let id = PaymentId::new();
        let json = serde_json::to_value(PaymentMessage::new(id)).unwrap();
        assert_eq!(json["v"], 1);
    }

    #[test]
    fn payment_message_of_another_version_does_not_decode() {
        let id = PaymentId::new();
        for v in ["2", "0", "-1", "256", "\"1\"", "null"] {
            let json = format!(r#"{{"v":{v},"payment_id":"{id}"}}"#);
            let error = serde_json::from_str::<PaymentMessage>(&json).unwrap_err();
            assert!(error.to_string().contains("version"), "v={v}: {error}");
        }
        let missing = format!(r#"{{"payment_id":"{id}"}}"#);
        assert!(serde_json::from_str::<PaymentMessage>(&missing).is_err());
    }
}
