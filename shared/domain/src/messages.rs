//! Queue messages between pipeline steps (`payments-broadcast`, `payments-confirm`,
//! `payments-settle`). One versioned envelope: a step only needs the payment id and reads the
//! rest from the database, so a duplicated or stale message cannot carry stale state.

use serde::{Deserialize, Serialize};

use crate::ids::PaymentId;

/// `{"v":1,"payment_id":"pay_…"}`. Unknown fields are rejected so a malformed message is
/// poisoned rather than half-understood.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PaymentMessage {
    pub v: u8,
    pub payment_id: PaymentId,
}

impl PaymentMessage {
    pub const VERSION: u8 = 1;

    pub fn new(payment_id: PaymentId) -> Self {
        PaymentMessage {
            v: Self::VERSION,
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
}
