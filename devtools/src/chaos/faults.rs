//! The fault injector: owns the stack while the traffic runs and applies the planned fault as
//! each payment starts. Every fault applied is printed with its time and counted by kind.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use indicatif::ProgressBar;
use meshpay_queue::{MessageEncoding, SendOptions};
use meshpay_testkit::rpc_proxy::Faults;
use meshpay_testkit::stack::Stack;
use sqlx::Connection as _;
use tokio::sync::mpsc;

use super::chain::Chain;
use super::plan::{Fault, RpcMode};

/// The queues whose messages are delivered twice.
const PIPELINE_QUEUES: [&str; 3] = ["payments-broadcast", "payments-confirm", "payments-settle"];

pub struct Injector {
    pub stack: Stack,
    pub chain: Arc<Chain>,
    pub plan: BTreeMap<usize, Fault>,
    pub progress: ProgressBar,
    pub started: Instant,
}

/// What the injector did.
#[derive(Debug, Default)]
pub struct Injected {
    /// Faults applied by kind.
    pub by_kind: BTreeMap<&'static str, u64>,
    /// Faults that could not be applied (no handler to kill, ...), with why.
    pub skipped: Vec<String>,
    /// Messages delivered a second time.
    pub duplicated_messages: u64,
}

impl Injector {
    /// Applies faults until `starts` closes; returns the stack and what was injected.
    pub async fn run(mut self, mut starts: mpsc::UnboundedReceiver<usize>) -> (Stack, Injected) {
        let mut injected = Injected::default();
        let mut window_end: Option<tokio::time::Instant> = None;
        loop {
            let window = async {
                match window_end {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                next = starts.recv() => {
                    let Some(index) = next else { break };
                    let Some(fault) = self.plan.get(&index).copied() else { continue };
                    match self.apply(fault, &mut injected).await {
                        Ok(detail) => {
                            *injected.by_kind.entry(fault.kind()).or_default() += 1;
                            if let Fault::Rpc { window, .. } = fault {
                                window_end = Some(tokio::time::Instant::now() + window);
                            }
                            self.say(format!("payment {index}: {fault}{detail}"));
                        }
                        Err(why) => {
                            injected.skipped.push(format!("payment {index}: {fault}: {why:#}"));
                            self.say(format!("payment {index}: {fault} NOT applied: {why:#}"));
                        }
                    }
                }
                () = window => {
                    self.stack.rpc_proxy().set_faults(Faults::none());
                    window_end = None;
                }
            }
        }
        self.stack.rpc_proxy().set_faults(Faults::none());
        (self.stack, injected)
    }

    fn say(&self, line: String) {
        let at = self.started.elapsed().as_secs_f64();
        self.progress.suspend(|| println!("  [{at:7.1}s] {line}"));
    }

    async fn apply(&mut self, fault: Fault, injected: &mut Injected) -> anyhow::Result<String> {
        match fault {
            Fault::KillHandler { delay } => {
                tokio::time::sleep(delay).await;
                match self.stack.devhost().kill_handler() {
                    Some(pid) => Ok(format!(" (pid {pid})")),
                    None => anyhow::bail!("no handler running (restarting)"),
                }
            }
            Fault::DuplicateDeliveries => {
                let mut copies = 0;
                for name in PIPELINE_QUEUES {
                    let queue = self.stack.azurite.queue(name).await;
                    for message in queue.peek(32).await? {
                        let body = message.body(MessageEncoding::Base64)?;
                        queue
                            .send(&body, MessageEncoding::Base64, SendOptions::default())
                            .await?;
                        copies += 1;
                    }
                }
                injected.duplicated_messages += copies;
                Ok(format!(" ({copies} messages)"))
            }
            Fault::Rpc { mode, .. } => {
                self.stack.rpc_proxy().set_faults(rpc_faults(mode));
                Ok(String::new())
            }
            Fault::DropDbConnections => {
                let mut conn = sqlx::PgConnection::connect(self.stack.db.url()).await?;
                let (dropped,): (i64,) = sqlx::query_as(
                    "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                      WHERE datname = current_database() AND pid <> pg_backend_pid()) t",
                )
                .fetch_one(&mut conn)
                .await?;
                Ok(format!(" ({dropped} connections)"))
            }
            Fault::RestartAzurite => {
                let begun = Instant::now();
                self.stack.azurite.restart().await;
                Ok(format!(" (down {} ms)", begun.elapsed().as_millis()))
            }
            Fault::Reorg { depth } => {
                let head = self.chain.block_number().await?;
                self.chain
                    .rpc("anvil_reorg", serde_json::json!([depth, []]))
                    .await?;
                Ok(format!(" (at block {head})"))
            }
        }
    }
}

/// The proxy's behaviour during a fault window: high rates, so a short window bites.
fn rpc_faults(mode: RpcMode) -> Faults {
    let none = Faults::none();
    match mode {
        RpcMode::Errors => Faults { error: 300, ..none },
        RpcMode::Timeouts => Faults {
            timeout: 150,
            hang: Duration::from_secs(8),
            ..none
        },
        RpcMode::DroppedSendReplies => Faults {
            drop_send_reply: 500,
            ..none
        },
        RpcMode::StaleReads => Faults {
            stale_read: 500,
            hide_first_reads: 1,
            ..none
        },
        RpcMode::LaggingBlocks => Faults {
            lagging_block: 500,
            ..none
        },
        RpcMode::LoadBalancer => Faults {
            load_balancer: Some(2),
            ..none
        },
    }
}
