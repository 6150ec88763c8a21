//! Chain webhooks: signature verification (Alchemy's `X-Alchemy-Signature` and the Standard
//! Webhooks headers) and the transaction hashes a payload hints at. A webhook is never proof:
//! the hashes only tell the confirm step where to look; amounts in a payload are ignored.

mod key;
mod payload;
mod signature;

pub use key::WebhookKey;
pub use payload::{Hint, PayloadError, alchemy_hint, standard_hint};
pub use signature::{
    ALCHEMY_SIGNATURE_HEADER, STANDARD_ID_HEADER, STANDARD_SIGNATURE_HEADER,
    STANDARD_TIMESTAMP_HEADER, SignatureError, StandardHeaders, sign_alchemy, sign_standard,
    verify_alchemy, verify_standard,
};
