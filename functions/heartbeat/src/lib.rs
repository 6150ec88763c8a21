//! `heartbeat`: a timer on `%HEARTBEAT_SCHEDULE%` (an app setting, so tests can fire it every
//! second) that writes `{"fired_at", "is_past_due"}` to `heartbeats`.

use meshpay_shim::{Function, FunctionJson, OutputError, Outputs, TimerInvocation};
use serde::Serialize;
use time::OffsetDateTime;

const FUNCTION: FunctionJson = meshpay_shim::function_json!("heartbeat");

pub fn function() -> Function {
    Function::timer(FUNCTION, handle)
}

/// Output binding name in function.json.
pub const OUTPUT: &str = "out";

#[derive(Debug, Serialize)]
struct Heartbeat {
    #[serde(with = "time::serde::rfc3339")]
    fired_at: OffsetDateTime,
    is_past_due: bool,
}

pub async fn handle(invocation: TimerInvocation) -> Result<Outputs, OutputError> {
    // The host's invocation timestamp, so the message says when the host fired the timer.
    let fired_at = invocation
        .context
        .sys
        .and_then(|sys| sys.utc_now)
        .unwrap_or_else(OffsetDateTime::now_utc);
    let heartbeat = Heartbeat {
        fired_at,
        is_past_due: invocation.timer.is_past_due,
    };
    Outputs::new().message(OUTPUT, &heartbeat)
}

#[cfg(test)]
mod tests {
    use super::*;
    use meshpay_shim::{InvocationContext, Sys, TimerInfo};
    use serde_json::json;
    use time::macros::datetime;

    #[test]
    fn function_json_schedule_comes_from_an_app_setting() {
        let def = FUNCTION.parse().unwrap();
        assert_eq!(
            def.trigger().schedule.as_deref(),
            Some("%HEARTBEAT_SCHEDULE%")
        );
        assert_eq!(
            def.output(OUTPUT).unwrap().queue_name.as_deref(),
            Some("heartbeats")
        );
    }

    #[tokio::test]
    async fn heartbeat_carries_host_time_and_past_due_flag() {
        let mut context = InvocationContext::for_function("heartbeat");
        context.sys = Some(Sys {
            method_name: "heartbeat".into(),
            utc_now: Some(datetime!(2026-01-02 03:04:05 UTC)),
            rand_guid: None,
        });
        let timer = TimerInfo {
            is_past_due: true,
            ..TimerInfo::default()
        };
        let outputs = handle(TimerInvocation { timer, context }).await.unwrap();
        assert_eq!(
            outputs.queues().get(OUTPUT).unwrap(),
            &[json!({"fired_at": "2026-01-02T03:04:05Z", "is_past_due": true})]
        );
    }
}
