//! What every trigger shares: the invoker, the queues, and "invoke, log, write outputs".

use std::sync::Arc;
use std::time::Instant;

use serde_json::Value;

use crate::config::functions::FunctionDef;
use crate::invoke::Invoker;
use crate::outputs::InvocationResult;
use crate::queues::QueueRegistry;

/// Shared state of the running host.
#[derive(Clone)]
pub struct Host {
    /// Calls into the handler.
    pub invoker: Invoker,
    /// Queue clients.
    pub queues: Arc<QueueRegistry>,
}

impl Host {
    /// Invokes `function` with `payload` (envelope form), logs its `Logs`, writes its queue
    /// outputs. An error means the invocation failed (nothing may have been written).
    pub async fn invoke(
        &self,
        function: &FunctionDef,
        invocation_id: &str,
        payload: &Value,
    ) -> Result<InvocationResult, String> {
        let started = Instant::now();
        tracing::debug!(function = %function.name, invocation_id, "executing");
        let result = match self
            .invoker
            .invoke(&function.name, invocation_id, payload)
            .await
        {
            Ok(result) => result,
            Err(e) => {
                tracing::warn!(function = %function.name, invocation_id, "failed: {e}");
                return Err(e.to_string());
            }
        };
        for line in &result.logs {
            tracing::info!(function = %function.name, invocation_id, "{line}");
        }
        let written = self
            .queues
            .write_outputs(function, &result, invocation_id)
            .await
            .inspect_err(|e| {
                tracing::warn!(function = %function.name, invocation_id, "failed: {e}");
            })?;
        tracing::info!(
            function = %function.name, invocation_id, queue_messages = written,
            duration_ms = started.elapsed().as_millis() as u64, "succeeded"
        );
        Ok(result)
    }
}

/// A fresh invocation id.
pub fn invocation_id() -> String {
    uuid::Uuid::new_v4().to_string()
}
