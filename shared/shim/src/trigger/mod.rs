//! Typed trigger payloads (pure serde) and their conversions. One module per trigger kind.

pub mod http;
pub mod queue;
pub mod timer;
