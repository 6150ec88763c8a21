//! Fault injection for crash tests: `MESHPAY_FAULT=<point>[:error]` makes the first delivery of
//! a broadcast message stop at `point`:
//!
//! - `after_reserve_before_sign`: the nonce is reserved (committed), nothing is signed yet;
//! - `after_sign_before_store`: the transaction is signed, its bytes are not stored yet: the
//!   next delivery signs the reserved nonce again;
//! - `after_persist_before_send`: between storing the signed transaction and sending it, the
//!   window in which a crash must not lead to a second transaction.
//! - `after_send_before_record`: after the node got the bytes, before its answer is recorded,
//!   the window in which a crash must not let the payment fail while the bytes can land.
//!
//! Without `:error` the process aborts (a real crash: the host restarts it and redelivers the
//! message); with it the invocation fails instead (in-process tests).
//!
//! Only honoured in builds with debug assertions (dev and test builds); a release build ignores
//! the variable and says so once.

/// Environment variable naming the fault.
pub const FAULT_ENV: &str = "MESHPAY_FAULT";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultMode {
    Abort,
    Error,
}

/// Where in the broadcast step a fault fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FaultPoint {
    AfterReserveBeforeSign,
    AfterSignBeforeStore,
    #[default]
    AfterPersistBeforeSend,
    AfterSendBeforeRecord,
}

impl FaultPoint {
    pub const fn as_str(self) -> &'static str {
        match self {
            FaultPoint::AfterReserveBeforeSign => Fault::AFTER_RESERVE_BEFORE_SIGN,
            FaultPoint::AfterSignBeforeStore => Fault::AFTER_SIGN_BEFORE_STORE,
            FaultPoint::AfterPersistBeforeSend => Fault::AFTER_PERSIST_BEFORE_SEND,
            FaultPoint::AfterSendBeforeRecord => Fault::AFTER_SEND_BEFORE_RECORD,
        }
    }
}

/// An armed fault: where it fires and how.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fault {
    pub point: FaultPoint,
    pub mode: FaultMode,
}

impl Fault {
    pub const AFTER_RESERVE_BEFORE_SIGN: &'static str = "after_reserve_before_sign";
    pub const AFTER_SIGN_BEFORE_STORE: &'static str = "after_sign_before_store";
    pub const AFTER_PERSIST_BEFORE_SEND: &'static str = "after_persist_before_send";
    pub const AFTER_SEND_BEFORE_RECORD: &'static str = "after_send_before_record";

    /// Parses the variable's value (`None` for anything unrecognized).
    pub fn parse(value: &str) -> Option<Fault> {
        let value = value.trim();
        let (point, mode) = match value.strip_suffix(":error") {
            Some(point) => (point, FaultMode::Error),
            None => (value, FaultMode::Abort),
        };
        let point = match point {
            Fault::AFTER_RESERVE_BEFORE_SIGN => FaultPoint::AfterReserveBeforeSign,
            Fault::AFTER_SIGN_BEFORE_STORE => FaultPoint::AfterSignBeforeStore,
            Fault::AFTER_PERSIST_BEFORE_SEND => FaultPoint::AfterPersistBeforeSend,
            Fault::AFTER_SEND_BEFORE_RECORD => FaultPoint::AfterSendBeforeRecord,
            _ => return None,
        };
        Some(Fault { point, mode })
    }

    /// The fault [`FAULT_ENV`] (read through `get`) arms, in dev/test builds only.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Option<Fault> {
        let value = get(FAULT_ENV)?;
        if !cfg!(debug_assertions) {
            tracing::warn!("{FAULT_ENV} is ignored in release builds");
            return None;
        }
        let fault = Fault::parse(&value);
        match fault {
            Some(fault) => tracing::warn!(?fault, "fault injection armed"),
            None => tracing::warn!(value, "{FAULT_ENV} not recognized; ignored"),
        }
        fault
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values_parse_and_others_do_not() {
        assert_eq!(
            Fault::parse("after_persist_before_send"),
            Some(Fault {
                point: FaultPoint::AfterPersistBeforeSend,
                mode: FaultMode::Abort
            })
        );
        assert_eq!(
            Fault::parse("after_persist_before_send:error"),
            Some(Fault {
                point: FaultPoint::AfterPersistBeforeSend,
                mode: FaultMode::Error
            })
        );
        assert_eq!(
            Fault::parse("after_send_before_record:error"),
            Some(Fault {
                point: FaultPoint::AfterSendBeforeRecord,
                mode: FaultMode::Error
            })
        );
        assert_eq!(Fault::parse("before_send"), None);
        assert_eq!(Fault::parse("after_send_before_record:maybe"), None);
    }
}
