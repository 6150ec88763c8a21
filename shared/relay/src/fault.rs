//! Fault injection for crash tests: `MESHPAY_FAULT=after_persist_before_send` makes the first
//! delivery of a broadcast message stop between storing the signed transaction and sending it,
//! the window in which a crash must not lead to a second transaction.
//!
//! - `after_persist_before_send`: abort the process (a real crash: the host restarts it and
//!   redelivers the message).
//! - `after_persist_before_send:error`: fail the invocation instead (in-process tests).
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

/// Where a fault fires; only one point exists today.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fault {
    pub mode: FaultMode,
}

impl Fault {
    pub const AFTER_PERSIST_BEFORE_SEND: &'static str = "after_persist_before_send";

    /// Parses the variable's value (`None` for anything unrecognized).
    pub fn parse(value: &str) -> Option<Fault> {
        match value.trim() {
            "after_persist_before_send" => Some(Fault {
                mode: FaultMode::Abort,
            }),
            "after_persist_before_send:error" => Some(Fault {
                mode: FaultMode::Error,
            }),
            _ => None,
        }
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
                mode: FaultMode::Abort
            })
        );
        assert_eq!(
            Fault::parse("after_persist_before_send:error"),
            Some(Fault {
                mode: FaultMode::Error
            })
        );
        assert_eq!(Fault::parse("before_send"), None);
    }
}
