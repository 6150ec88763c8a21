//! Queue triggers, with the queue extension's semantics (`QueueListener`/`QueueProcessor`):
//! batches of `batchSize`, a new batch once in-flight work drops to `newBatchThreshold`,
//! randomized exponential backoff up to `maxPollingInterval` while the queue is empty,
//! delete on success, release after `visibilityTimeout` on failure, and `<queue>-poison`
//! once `DequeueCount >= maxDequeueCount` (at once on receive when already above it).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use meshpay_queue::{Queue, ReceivedMessage, SendOptions};
use rand::Rng as _;
use time::OffsetDateTime;
use tokio::sync::{Notify, watch};

use crate::config::functions::{FunctionDef, QueueTrigger};
use crate::config::host::QueueOptions;
use crate::host::{Host, invocation_id};
use crate::wire::{self, QueueMessageData};

/// The extension's fastest polling interval.
const MIN_POLL: Duration = Duration::from_millis(100);
/// Visibility while a message is processed when there is no `functionTimeout`.
const DEFAULT_LEASE: Duration = Duration::from_secs(10 * 60);

/// One listener per queue-triggered function.
pub struct QueueListener {
    host: Host,
    function: Arc<FunctionDef>,
    trigger: QueueTrigger,
    options: QueueOptions,
    lease: Duration,
    shutdown: watch::Receiver<bool>,
}

/// Shared by a listener's message tasks.
struct Processing {
    host: Host,
    function: Arc<FunctionDef>,
    trigger: QueueTrigger,
    options: QueueOptions,
    queue: Queue,
    poison: Option<String>,
    in_flight: AtomicUsize,
    done: Notify,
    shutdown: watch::Receiver<bool>,
}

impl QueueListener {
    /// A listener; messages stay invisible for `functionTimeout` + 1 min while processed (the
    /// host renews a 10-minute lease instead; devhost does not renew).
    pub fn new(
        host: Host,
        function: Arc<FunctionDef>,
        trigger: QueueTrigger,
        options: QueueOptions,
        function_timeout: Option<Duration>,
        shutdown: watch::Receiver<bool>,
    ) -> Self {
        let lease = function_timeout.map_or(DEFAULT_LEASE, |t| t + Duration::from_secs(60));
        Self {
            host,
            function,
            trigger,
            options,
            lease,
            shutdown,
        }
    }

    /// Polls until shutdown.
    pub async fn run(self) {
        let queue = match self
            .host
            .queues
            .queue(&self.trigger.connection, &self.trigger.queue_name)
        {
            Ok(q) => q,
            Err(e) => {
                tracing::error!(function = %self.function.name, "queue trigger disabled: {e}");
                return;
            }
        };
        tracing::info!(function = %self.function.name, queue = %queue.name(), "listening");
        let watcher = self.host.queues.watcher(queue.name());
        let ctx = Arc::new(Processing {
            poison: poison_queue_name(queue.name()),
            host: self.host,
            function: self.function,
            trigger: self.trigger,
            options: self.options,
            queue,
            in_flight: AtomicUsize::new(0),
            done: Notify::new(),
            shutdown: self.shutdown.clone(),
        });
        let mut shutdown = self.shutdown;
        let mut backoff = Backoff::new(ctx.options.max_polling_interval);
        while !*shutdown.borrow() {
            while ctx.in_flight.load(Ordering::SeqCst) > ctx.options.new_batch_threshold {
                tokio::select! {
                    _ = ctx.done.notified() => {}
                    _ = shutdown.changed() => {}
                }
                if *shutdown.borrow() {
                    break;
                }
            }
            if *shutdown.borrow() {
                break;
            }
            match ctx.queue.receive(ctx.options.batch_size, self.lease).await {
                Ok(messages) if !messages.is_empty() => {
                    backoff.reset();
                    for message in messages {
                        ctx.in_flight.fetch_add(1, Ordering::SeqCst);
                        tokio::spawn(process(ctx.clone(), message));
                    }
                    continue;
                }
                Ok(_) => {}
                Err(e) if e.is_not_found() => {
                    tracing::debug!(queue = %ctx.queue.name(), "queue does not exist yet")
                }
                Err(e) => {
                    tracing::warn!(function = %ctx.function.name, queue = %ctx.queue.name(), "receive failed: {e}")
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(backoff.next()) => {}
                _ = watcher.notified() => backoff.reset(),
                _ = shutdown.changed() => {}
            }
        }
        // Let in-flight messages be handed back before the process exits.
        while ctx.in_flight.load(Ordering::SeqCst) > 0 {
            ctx.done.notified().await;
        }
    }
}

/// `<queue>-poison`, or `None` for poison queues themselves and names too long for the suffix.
pub fn poison_queue_name(queue: &str) -> Option<String> {
    let name = format!("{queue}-poison");
    (!queue.ends_with("-poison") && name.len() <= 63).then_some(name)
}

async fn process(ctx: Arc<Processing>, message: ReceivedMessage) {
    let max = ctx.options.max_dequeue_count;
    if message.dequeue_count > max {
        poison(&ctx, &message).await;
    } else {
        let mut shutdown = ctx.shutdown.clone();
        let outcome = tokio::select! {
            outcome = handle(&ctx, &message) => Some(outcome),
            _ = crate::shutdown::shutdown_requested(&mut shutdown) => None,
        };
        match outcome {
            Some(Ok(())) => {
                if let Err(e) = ctx
                    .queue
                    .delete_message(&message.id, &message.pop_receipt)
                    .await
                {
                    tracing::warn!(function = %ctx.function.name, message_id = %message.id, "delete after success failed: {e}");
                }
            }
            // The handler is being stopped with us: not the message's fault.
            Some(Err(())) if *ctx.shutdown.borrow() => {
                release(&ctx, &message, Duration::ZERO).await
            }
            Some(Err(())) if message.dequeue_count >= max => poison(&ctx, &message).await,
            Some(Err(())) => release(&ctx, &message, ctx.options.visibility_timeout).await,
            // Shutting down: hand the message back at once rather than after the lease.
            None => release(&ctx, &message, Duration::ZERO).await,
        }
    }
    ctx.in_flight.fetch_sub(1, Ordering::SeqCst);
    ctx.done.notify_one();
}

async fn handle(ctx: &Processing, message: &ReceivedMessage) -> Result<(), ()> {
    let id = invocation_id();
    let body = message.body(ctx.host.queues.encoding()).map_err(|e| {
        tracing::warn!(function = %ctx.function.name, message_id = %message.id, "cannot decode message: {e}");
    })?;
    let data = QueueMessageData {
        id: &message.id,
        pop_receipt: &message.pop_receipt,
        dequeue_count: message.dequeue_count,
        insertion_time: message.insertion_time,
        expiration_time: message.expiration_time,
        next_visible_time: message.next_visible_time,
    };
    let payload = wire::queue_payload(
        &ctx.function.name,
        &ctx.trigger.binding,
        &data,
        &body,
        ctx.trigger.binary,
        OffsetDateTime::now_utc(),
    );
    ctx.host
        .invoke(&ctx.function, &id, &payload)
        .await
        .map(|_| ())
        .map_err(|_| ())
}

async fn release(ctx: &Processing, message: &ReceivedMessage, after: Duration) {
    if let Err(e) = ctx
        .queue
        .update_visibility(&message.id, &message.pop_receipt, after)
        .await
    {
        tracing::warn!(function = %ctx.function.name, message_id = %message.id, "release failed: {e}");
    }
}

/// Copies the stored text to the poison queue (created if missing), then deletes the original.
async fn poison(ctx: &Processing, message: &ReceivedMessage) {
    let Some(poison_name) = &ctx.poison else {
        release(ctx, message, ctx.options.visibility_timeout).await;
        return;
    };
    let moved = async {
        let target = ctx
            .host
            .queues
            .queue(&ctx.trigger.connection, poison_name)?;
        ctx.host
            .queues
            .ensure_created(&ctx.trigger.connection, &target)
            .await?;
        target
            .send_text(&message.text, SendOptions::default())
            .await?;
        ctx.queue
            .delete_message(&message.id, &message.pop_receipt)
            .await
    };
    match moved.await {
        Ok(()) => {
            ctx.host.queues.watcher(poison_name).notify_one();
            tracing::warn!(
                function = %ctx.function.name, message_id = %message.id, dequeue_count = message.dequeue_count,
                "message moved to `{poison_name}` after {} attempt(s)", message.dequeue_count
            );
        }
        Err(e) => {
            tracing::error!(function = %ctx.function.name, message_id = %message.id, "moving to `{poison_name}` failed: {e}");
            release(ctx, message, ctx.options.visibility_timeout).await;
        }
    }
}

/// Randomized exponential backoff between empty polls (the extension's
/// `RandomizedExponentialBackoffStrategy`), starting at 100 ms.
struct Backoff {
    current: Duration,
    max: Duration,
}

impl Backoff {
    fn new(max: Duration) -> Self {
        Self {
            current: Duration::ZERO,
            max: max.max(MIN_POLL),
        }
    }

    fn reset(&mut self) {
        self.current = Duration::ZERO;
    }

    fn next(&mut self) -> Duration {
        let doubled = if self.current.is_zero() {
            MIN_POLL
        } else {
            self.current * 2
        };
        self.current = doubled.min(self.max);
        // Up to 20% less, so listeners on the same queue spread their polls.
        let factor = rand::thread_rng().gen_range(0.8..=1.0);
        self.current.mul_f64(factor).max(MIN_POLL.min(self.max))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poison_queue_is_named_after_the_queue() {
        assert_eq!(
            poison_queue_name("probes").as_deref(),
            Some("probes-poison")
        );
        assert_eq!(poison_queue_name("probes-poison"), None);
        assert_eq!(poison_queue_name(&"a".repeat(60)), None);
    }

    #[test]
    fn backoff_grows_to_the_maximum_and_resets() {
        let mut b = Backoff::new(Duration::from_secs(2));
        let first = b.next();
        assert!(
            first >= Duration::from_millis(80) && first <= MIN_POLL,
            "{first:?}"
        );
        let mut last = first;
        for _ in 0..10 {
            last = b.next();
        }
        assert!(
            last <= Duration::from_secs(2) && last >= Duration::from_millis(1600),
            "{last:?}"
        );
        b.reset();
        assert!(b.next() <= MIN_POLL);
    }
}
