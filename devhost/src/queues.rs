//! Queue access shared by listeners and output bindings: one service per connection
//! setting, output queues created on first write, and a wake-up signal per queue so a
//! listener polls at once when devhost itself wrote to its queue (the host's
//! `SharedQueueWatcher` does the same).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};

use meshpay_queue::{
    DEFAULT_CONNECTION, MessageEncoding, Queue, QueueError, QueueService, SendOptions,
};
use tokio::sync::Notify;

use crate::config::functions::FunctionDef;
use crate::config::settings::Settings;
use crate::outputs::{InvocationResult, queue_messages};

/// Queue clients and wake-ups.
pub struct QueueRegistry {
    settings: Settings,
    encoding: MessageEncoding,
    services: Mutex<HashMap<String, QueueService>>,
    created: Mutex<HashSet<(String, String)>>,
    watchers: Mutex<HashMap<String, Arc<Notify>>>,
}

fn connection_key(connection: &str) -> String {
    if connection.trim().is_empty() {
        DEFAULT_CONNECTION.to_owned()
    } else {
        connection.trim().to_owned()
    }
}

impl QueueRegistry {
    /// A registry resolving connections from `settings`, storing messages with `encoding`.
    pub fn new(settings: Settings, encoding: MessageEncoding) -> Self {
        Self {
            settings,
            encoding,
            services: Mutex::new(HashMap::new()),
            created: Mutex::new(HashSet::new()),
            watchers: Mutex::new(HashMap::new()),
        }
    }

    /// host.json messageEncoding.
    pub fn encoding(&self) -> MessageEncoding {
        self.encoding
    }

    /// The service behind connection setting `connection` (empty = AzureWebJobsStorage).
    pub fn service(&self, connection: &str) -> Result<QueueService, QueueError> {
        let key = connection_key(connection);
        let mut services = self.services.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(s) = services.get(&key) {
            return Ok(s.clone());
        }
        let service = QueueService::from_settings(&key, |k| self.settings.get(k))?;
        services.insert(key, service.clone());
        Ok(service)
    }

    /// Queue `name` on `connection`.
    pub fn queue(&self, connection: &str, name: &str) -> Result<Queue, QueueError> {
        self.service(connection)?.queue(name)
    }

    /// Creates the queue once per devhost run (the output binding creates missing queues).
    pub async fn ensure_created(&self, connection: &str, queue: &Queue) -> Result<(), QueueError> {
        let key = (connection_key(connection), queue.name().to_owned());
        if self
            .created
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(&key)
        {
            return Ok(());
        }
        queue.create_if_not_exists().await?;
        self.created
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(key);
        Ok(())
    }

    /// Writes one message (text before encoding) and wakes the queue's listener.
    pub async fn send(
        &self,
        connection: &str,
        queue_name: &str,
        text: &str,
    ) -> Result<(), QueueError> {
        let queue = self.queue(connection, queue_name)?;
        self.ensure_created(connection, &queue).await?;
        queue
            .send(text.as_bytes(), self.encoding, SendOptions::default())
            .await?;
        self.watcher(queue_name).notify_one();
        Ok(())
    }

    /// The wake-up signal of `queue_name`.
    pub fn watcher(&self, queue_name: &str) -> Arc<Notify> {
        let mut watchers = self.watchers.lock().unwrap_or_else(PoisonError::into_inner);
        watchers
            .entry(queue_name.to_owned())
            .or_insert_with(|| Arc::new(Notify::new()))
            .clone()
    }

    /// Writes every queue output binding of `function` found in `result`; returns the count.
    /// Stops at the first failure (the invocation then counts as failed, as in the host).
    pub async fn write_outputs(
        &self,
        function: &FunctionDef,
        result: &InvocationResult,
        invocation_id: &str,
    ) -> Result<usize, String> {
        let mut written = 0;
        for output in &function.queue_outputs {
            let Some(value) = result.output(&output.binding) else {
                if let Some(other) = result.output_in_other_case(&output.binding) {
                    tracing::warn!(
                        function = %function.name, invocation_id, binding = %output.binding,
                        "output `{other}` ignored: binding names are case-sensitive in the Functions host"
                    );
                }
                continue;
            };
            for message in queue_messages(value) {
                if message.base64_pitfall {
                    tracing::warn!(
                        function = %function.name, invocation_id, binding = %output.binding,
                        "queue output `{}` is a plain string that is valid base64: the real Functions \
                         host writes the DECODED bytes instead; send a JSON object or non-base64 text",
                        message.text
                    );
                }
                self.send(&output.connection, &output.queue_name, &message.text)
                    .await
                    .map_err(|e| format!("writing to queue `{}`: {e}", output.queue_name))?;
                written += 1;
            }
        }
        Ok(written)
    }
}
