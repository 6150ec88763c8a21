//! The `payments-confirm` message. The broadcast step (and webhooks, reconcile) write the plain
//! [`meshpay_domain::PaymentMessage`] shape `{"v":1,"payment_id":…}`, which asks for a check;
//! the confirm step's own re-enqueued messages add the polling chain they belong to
//! (`poller`, `seq`; see `meshpay_store::confirmations`).

use meshpay_domain::{PaymentId, Version};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Any version but 1 does not deserialize, so the shim refuses it before the step runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfirmMessage {
    pub v: Version<1>,
    pub payment_id: PaymentId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub poller: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<i32>,
}

impl ConfirmMessage {
    pub const VERSION: u8 = 1;

    /// A request to check the payment (starts a polling chain if none is active).
    pub fn new(payment_id: PaymentId) -> Self {
        ConfirmMessage {
            v: Version,
            payment_id,
            poller: None,
            seq: None,
        }
    }

    /// The next message of a polling chain.
    pub fn chained(payment_id: PaymentId, poller: Uuid, seq: i32) -> Self {
        ConfirmMessage {
            poller: Some(poller),
            seq: Some(seq),
            ..ConfirmMessage::new(payment_id)
        }
    }

    /// The chain this message continues; both fields or none (a half-set pair only asks).
    pub fn chain(&self) -> Option<(Uuid, i32)> {
        self.poller.zip(self.seq)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use meshpay_domain::PaymentMessage;

    #[test]
    fn the_broadcast_steps_plain_message_is_a_confirm_request() {
        let plain = PaymentMessage::new(PaymentId::new());
        let json = serde_json::to_string(&plain).unwrap();
        let message: ConfirmMessage = serde_json::from_str(&json).unwrap();
        assert_eq!(message, ConfirmMessage::new(plain.payment_id));
        assert_eq!(message.chain(), None);
        // And a plain request serializes back to the plain shape.
        assert_eq!(serde_json::to_string(&message).unwrap(), json);
    }

    #[test]
    fn chained_messages_round_trip_and_unknown_fields_are_rejected() {
        let m = ConfirmMessage::chained(PaymentId::new(), Uuid::new_v4(), 3);
        let json = serde_json::to_string(&m).unwrap();
        assert_eq!(serde_json::from_str::<ConfirmMessage>(&json).unwrap(), m);
        assert_eq!(m.chain().map(|(_, seq)| seq), Some(3));
        let extra = json.replace('}', r#","amount":"1"}"#);
        assert!(serde_json::from_str::<ConfirmMessage>(&extra).is_err());
    }

    #[test]
    fn a_message_of_another_version_does_not_decode() {
        let id = PaymentId::new();
        let v2 = format!(r#"{{"v":2,"payment_id":"{id}"}}"#);
        let error = serde_json::from_str::<ConfirmMessage>(&v2).unwrap_err();
        assert!(error.to_string().contains("version"), "{error}");
        let v1 = format!(r#"{{"v":1,"payment_id":"{id}"}}"#);
        assert_eq!(
            serde_json::from_str::<ConfirmMessage>(&v1).unwrap(),
            ConfirmMessage::new(id)
        );
    }
}
