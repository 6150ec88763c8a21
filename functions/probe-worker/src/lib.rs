//! `probe-worker`: consumes `probes` and echoes each message, with its dequeue count, to
//! `probe-results`. A message with `"fail": true` makes it fail on purpose, so tests can
//! watch the host retry it and finally move it to `probes-poison`.

use meshpay_shim::{Function, FunctionJson, OutputError, Outputs, QueueInvocation};
use serde::Serialize;
use serde_json::Value;

const FUNCTION: FunctionJson = meshpay_shim::function_json!("probe-worker");

pub fn function() -> Function {
    Function::queue(FUNCTION, handle)
}

/// Output binding name in function.json.
pub const OUTPUT: &str = "out";

#[derive(Debug, thiserror::Error)]
pub enum ProbeWorkerError {
    #[error("probe message asked to fail (dequeue count {dequeue_count:?})")]
    RequestedFailure { dequeue_count: Option<u64> },
    #[error(transparent)]
    Output(#[from] OutputError),
}

/// What lands on `probe-results`.
#[derive(Debug, Serialize)]
struct ProbeResult<'a> {
    message: &'a Value,
    dequeue_count: Option<u64>,
}

pub async fn handle(invocation: QueueInvocation<Value>) -> Result<Outputs, ProbeWorkerError> {
    let dequeue_count = invocation.metadata.dequeue_count;
    if invocation.message.get("fail").and_then(Value::as_bool) == Some(true) {
        return Err(ProbeWorkerError::RequestedFailure { dequeue_count });
    }
    let result = ProbeResult {
        message: &invocation.message,
        dequeue_count,
    };
    Ok(Outputs::new().message(OUTPUT, &result)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use meshpay_shim::{InvocationContext, QueueMetadata};
    use serde_json::json;

    fn invocation(message: Value, dequeue_count: u64) -> QueueInvocation<Value> {
        QueueInvocation {
            message,
            metadata: QueueMetadata {
                dequeue_count: Some(dequeue_count),
                ..QueueMetadata::default()
            },
            context: InvocationContext::for_function("probe-worker"),
        }
    }

    #[test]
    fn function_json_consumes_probes_and_writes_probe_results() {
        let def = FUNCTION.parse().unwrap();
        assert_eq!(def.trigger().name, "message");
        assert_eq!(def.trigger().queue_name.as_deref(), Some("probes"));
        assert_eq!(
            def.output(OUTPUT).unwrap().queue_name.as_deref(),
            Some("probe-results")
        );
    }

    #[tokio::test]
    async fn message_is_echoed_with_its_dequeue_count() {
        let outputs = handle(invocation(json!({"n": 1}), 2)).await.unwrap();
        let sent = outputs.queues().get(OUTPUT).unwrap();
        assert_eq!(sent, &[json!({"message": {"n": 1}, "dequeue_count": 2})]);
    }

    #[tokio::test]
    async fn fail_flag_makes_the_invocation_fail() {
        let error = handle(invocation(json!({"fail": true}), 3))
            .await
            .unwrap_err();
        assert!(matches!(
            error,
            ProbeWorkerError::RequestedFailure {
                dequeue_count: Some(3)
            }
        ));
    }

    #[tokio::test]
    async fn fail_false_or_non_bool_is_echoed() {
        for message in [
            json!({"fail": false}),
            json!({"fail": "true"}),
            json!("text"),
        ] {
            assert!(handle(invocation(message, 1)).await.is_ok());
        }
    }
}
