//! What ends a running confirm chain's pause early, so it checks the chain at once instead of
//! waiting out its cadence: a hint that the payment's transaction was mined (a verified chain
//! webhook, on this instance or another: [`Wakers`]), or the chain's head reaching the block
//! that would make the transaction final ([`HeadWatch`]).
//!
//! A wake only brings the next check forward. What a check reads (receipt, head, finality) and
//! decides is the same whatever woke it, and nothing a hint says is used: a forged, duplicated
//! or early hint costs one check, which finds what the chain says. Wakes are bounded: a check
//! answers every hint that arrived before it started, hints that arrive together cost one
//! check, and a hint is honoured no sooner than [`HINT_GAP`] after the previous check (a flood
//! of hints cannot make a chain read the node in a tight loop); a head wake needs the head to
//! rise past where the reader saw it when the previous check started, so at most one check per
//! new block (a node behind the reader cannot cause a loop), and for a transaction not yet
//! mined no sooner than the cadence floor after the previous check.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use meshpay_chain::rpc::ConfirmRpc;
use meshpay_domain::PaymentId;
use tokio::sync::watch;
use tokio::time::Instant;

/// Shortest time between a check and the next one a hint asks for.
pub const HINT_GAP: Duration = Duration::from_millis(50);

/// Why a pause ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Woken {
    /// The cadence's pause ran out.
    Cadence,
    /// A hint named the payment.
    Hint,
    /// The head reached the block the chain waits for.
    Head,
}

impl Woken {
    pub const fn as_str(self) -> &'static str {
        match self {
            Woken::Cadence => "cadence",
            Woken::Hint => "hint",
            Woken::Head => "head",
        }
    }
}

/// The running chains of this process, by payment: a hint wakes the one of its payment.
#[derive(Debug, Default)]
pub struct Wakers {
    /// Per running chain, a count of the hints for it.
    chains: Mutex<HashMap<PaymentId, Arc<watch::Sender<u64>>>>,
}

impl Wakers {
    /// Registers a running chain of `payment` until the returned registration is dropped.
    pub fn register(self: &Arc<Self>, payment: PaymentId) -> Registration {
        let hints = Arc::new(watch::Sender::new(0));
        let receiver = hints.subscribe();
        self.chains
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(payment, hints.clone());
        Registration {
            wakers: self.clone(),
            payment,
            hints,
            receiver,
        }
    }

    /// Wakes the chain of `payment` if one runs in this process; `true` if one did.
    pub fn wake(&self, payment: PaymentId) -> bool {
        let chains = self.chains.lock().unwrap_or_else(PoisonError::into_inner);
        match chains.get(&payment) {
            Some(hints) => {
                hints.send_modify(|count| *count = count.wrapping_add(1));
                true
            }
            None => false,
        }
    }

    /// How many chains run in this process.
    pub fn running(&self) -> usize {
        self.chains
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

/// A chain's place in [`Wakers`]; removed when dropped (however the invocation ends).
#[derive(Debug)]
pub struct Registration {
    wakers: Arc<Wakers>,
    payment: PaymentId,
    hints: Arc<watch::Sender<u64>>,
    receiver: watch::Receiver<u64>,
}

impl Registration {
    /// A check starts: it answers every hint received so far.
    pub fn checking(&mut self) {
        self.receiver.borrow_and_update();
    }

    /// Resolves on a hint received since the last check started (at once if there is one).
    pub async fn hinted(&mut self) {
        // The sender lives in `self`: `changed` cannot fail while this registration exists.
        let _ = self.receiver.changed().await;
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut chains = self
            .wakers
            .chains
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        // A newer chain of the same payment may have registered since: leave it.
        if chains
            .get(&self.payment)
            .is_some_and(|hints| Arc::ptr_eq(hints, &self.hints))
        {
            chains.remove(&self.payment);
        }
    }
}

/// One reader of a chain's head per process, shared by every chain waiting on it: it reads
/// `eth_blockNumber` while at least one chain waits, and stops when none does. The highest
/// block seen is published; a failed read publishes nothing (the cadence still bounds every
/// pause). Reads are paced to the chain's own block time ([`read_pause`]): about
/// [`READS_PER_BLOCK`] per block, never more often than `interval`, so a 12 s chain costs the
/// RPC provider a read every 1.5 s, not ten a second, and a new block is still seen within an
/// eighth of a block.
pub struct HeadWatch {
    rpc: Arc<dyn ConfirmRpc>,
    interval: Duration,
    highest: watch::Sender<u64>,
    running: Mutex<bool>,
}

impl std::fmt::Debug for HeadWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HeadWatch")
            .field("interval", &self.interval)
            .field("highest", &*self.highest.borrow())
            .finish_non_exhaustive()
    }
}

impl HeadWatch {
    pub fn new(rpc: Arc<dyn ConfirmRpc>, interval: Duration) -> Arc<Self> {
        Arc::new(HeadWatch {
            rpc,
            interval,
            highest: watch::Sender::new(0),
            running: Mutex::new(false),
        })
    }

    /// A view of the head from now on; the reader runs while any view exists.
    pub fn subscribe(self: &Arc<Self>) -> HeadView {
        let receiver = self.highest.subscribe();
        let mut running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
        if !*running {
            *running = true;
            tokio::spawn(self.clone().read_heads());
        }
        HeadView { receiver }
    }

    async fn read_heads(self: Arc<Self>) {
        let mut pace = BlockPace::default();
        loop {
            {
                let mut running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
                if self.highest.receiver_count() == 0 {
                    *running = false;
                    return;
                }
            }
            if let Ok(head) = self.rpc.head(false).await {
                pace.saw(head.latest, Instant::now());
                self.highest.send_if_modified(|highest| {
                    let higher = head.latest > *highest;
                    if higher {
                        *highest = head.latest;
                    }
                    higher
                });
            }
            tokio::time::sleep(read_pause(self.interval, pace.block_time)).await;
        }
    }
}

/// Head reads per block time once the reader has measured it.
pub const READS_PER_BLOCK: u32 = 8;
/// The longest pause between head reads, however slow the chain.
const MAX_READ_PAUSE: Duration = Duration::from_secs(2);

/// The pause before the next head read: an [`READS_PER_BLOCK`]th of the measured block time,
/// at least `floor` (the setting) and at most [`MAX_READ_PAUSE`] (or `floor` if higher);
/// `floor` until a block time is measured.
pub fn read_pause(floor: Duration, block_time: Option<Duration>) -> Duration {
    match block_time {
        Some(block) => (block / READS_PER_BLOCK).clamp(floor, MAX_READ_PAUSE.max(floor)),
        None => floor,
    }
}

/// The chain's block time as the head reader sees it: the time between two head changes
/// divided by the blocks between them, smoothed (a quarter weight to each new sample) so one
/// late block or a burst after a stall does not swing the pace.
#[derive(Debug, Default)]
struct BlockPace {
    last: Option<(u64, Instant)>,
    block_time: Option<Duration>,
}

impl BlockPace {
    fn saw(&mut self, head: u64, at: Instant) {
        match self.last {
            Some((previous, since)) if head > previous => {
                let blocks = u32::try_from(head - previous).unwrap_or(u32::MAX);
                let sample = at.duration_since(since) / blocks;
                self.block_time = Some(match self.block_time {
                    Some(smoothed) => (smoothed * 3 + sample) / 4,
                    None => sample,
                });
                self.last = Some((head, at));
            }
            Some(_) => {}
            None => self.last = Some((head, at)),
        }
    }
}

/// One chain's view of [`HeadWatch`].
#[derive(Debug)]
pub struct HeadView {
    receiver: watch::Receiver<u64>,
}

impl HeadView {
    /// The highest block seen so far (0 before the first read).
    pub fn now(&self) -> u64 {
        *self.receiver.borrow()
    }

    /// Resolves once the head is above `above` and at least `target`; never if the reader
    /// is gone.
    pub async fn rises(&mut self, above: u64, target: u64) {
        let reader_gone = self
            .receiver
            .wait_for(|head| *head > above && *head >= target)
            .await
            .is_err();
        if reader_gone {
            std::future::pending::<()>().await;
        }
    }
}

/// A pause's wait for the head.
pub struct HeadWake<'a> {
    pub view: &'a mut HeadView,
    /// The head the reader had seen when the previous check started: only a higher one wakes.
    pub above: u64,
    /// The block the chain waits for: the inclusion block plus the depth when the transaction
    /// is mined; `None` (any new block) while it is not.
    pub target: Option<u64>,
}

/// What a pause waits for besides its cadence.
pub struct PauseWakes<'a> {
    pub hint: Option<&'a mut Registration>,
    pub head: Option<HeadWake<'a>>,
    /// The cadence floor: a head wake of a transaction not yet mined waits this long after the
    /// previous check.
    pub floor: Duration,
}

/// Pauses up to `pause` after a check that ended at `checked`; returns what ended the pause.
pub async fn pause(checked: Instant, pause: Duration, wakes: PauseWakes<'_>) -> Woken {
    let PauseWakes { hint, head, floor } = wakes;
    let hinted = async {
        match hint {
            Some(registration) => {
                registration.hinted().await;
                tokio::time::sleep_until(checked + HINT_GAP).await;
            }
            None => std::future::pending().await,
        }
    };
    let head_rose = async {
        match head {
            Some(HeadWake {
                view,
                above,
                target: Some(target),
            }) => view.rises(above, target).await,
            Some(HeadWake {
                view,
                above,
                target: None,
            }) => {
                view.rises(above, 0).await;
                tokio::time::sleep_until(checked + floor).await;
            }
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        () = tokio::time::sleep_until(checked + pause) => Woken::Cadence,
        () = hinted => Woken::Hint,
        () = head_rose => Woken::Head,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_hint_wakes_only_its_own_payments_chain() {
        let wakers = Arc::new(Wakers::default());
        let (mine, other) = (PaymentId::new(), PaymentId::new());
        let mut registration = wakers.register(mine);
        registration.checking();
        assert!(!wakers.wake(other));
        assert!(wakers.wake(mine));
        // Kept until the chain waits: the wait returns at once.
        tokio::time::timeout(Duration::from_secs(5), registration.hinted())
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn hints_received_before_a_check_started_are_answered_by_it() {
        let wakers = Arc::new(Wakers::default());
        let id = PaymentId::new();
        let mut registration = wakers.register(id);
        for _ in 0..5 {
            wakers.wake(id);
        }
        registration.checking();
        let again = tokio::time::timeout(Duration::from_millis(50), registration.hinted()).await;
        assert!(
            again.is_err(),
            "hints answered by a check woke the chain again"
        );
        wakers.wake(id);
        tokio::time::timeout(Duration::from_secs(5), registration.hinted())
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn a_finished_chain_leaves_the_registry_but_not_a_newer_one() {
        let wakers = Arc::new(Wakers::default());
        let id = PaymentId::new();
        let old = wakers.register(id);
        let new = wakers.register(id);
        drop(old);
        assert_eq!(wakers.running(), 1);
        assert!(wakers.wake(id));
        drop(new);
        assert_eq!(wakers.running(), 0);
        assert!(!wakers.wake(id));
    }

    #[tokio::test]
    async fn a_pause_without_wakes_lasts_its_cadence() {
        let woken = pause(
            Instant::now(),
            Duration::from_millis(30),
            PauseWakes {
                hint: None,
                head: None,
                floor: Duration::from_millis(250),
            },
        )
        .await;
        assert_eq!(woken, Woken::Cadence);
    }

    #[tokio::test]
    async fn a_hint_right_after_a_check_waits_for_the_hint_gap() {
        let wakers = Arc::new(Wakers::default());
        let id = PaymentId::new();
        let mut registration = wakers.register(id);
        registration.checking();
        wakers.wake(id);
        let checked = Instant::now();
        let woken = pause(
            checked,
            Duration::from_secs(2),
            PauseWakes {
                hint: Some(&mut registration),
                head: None,
                floor: Duration::from_millis(250),
            },
        )
        .await;
        assert_eq!(woken, Woken::Hint);
        assert!(checked.elapsed() >= HINT_GAP);
    }

    /// A node whose head the test sets.
    struct Head(std::sync::atomic::AtomicU64);

    #[async_trait::async_trait]
    impl ConfirmRpc for Head {
        async fn receipt(
            &self,
            _: meshpay_domain::B256,
        ) -> Result<Option<crate::receipt::ReceiptFacts>, meshpay_chain::rpc::RpcFailure> {
            Ok(None)
        }
        async fn head(
            &self,
            _: bool,
        ) -> Result<meshpay_chain::rpc::ChainHead, meshpay_chain::rpc::RpcFailure> {
            Ok(meshpay_chain::rpc::ChainHead {
                latest: self.0.load(std::sync::atomic::Ordering::SeqCst),
                finalized: None,
            })
        }
        async fn block_hash(
            &self,
            _: u64,
        ) -> Result<Option<meshpay_domain::B256>, meshpay_chain::rpc::RpcFailure> {
            Ok(None)
        }
        async fn transaction_known(
            &self,
            _: meshpay_domain::B256,
        ) -> Result<bool, meshpay_chain::rpc::RpcFailure> {
            Ok(true)
        }
        async fn send_raw(
            &self,
            _: &[u8],
        ) -> Result<meshpay_domain::B256, meshpay_chain::rpc::RpcFailure> {
            Ok(meshpay_domain::B256::ZERO)
        }
    }

    async fn reader_at(block: u64) -> (Arc<Head>, HeadView) {
        let node = Arc::new(Head(std::sync::atomic::AtomicU64::new(block)));
        let watch = HeadWatch::new(node.clone(), Duration::from_millis(5));
        let mut view = watch.subscribe();
        view.rises(0, block).await;
        (node, view)
    }

    #[test]
    fn head_reads_follow_the_chains_block_time_within_their_bounds() {
        let floor = Duration::from_millis(100);
        assert_eq!(read_pause(floor, None), floor);
        // Ethereum (12 s): every 1.5 s; Base (2 s): every 250 ms; anvil (1 s): 125 ms.
        assert_eq!(
            read_pause(floor, Some(Duration::from_secs(12))),
            Duration::from_millis(1500)
        );
        assert_eq!(
            read_pause(floor, Some(Duration::from_secs(2))),
            Duration::from_millis(250)
        );
        // Never faster than the setting, never slower than 2 s (unless the setting says so).
        assert_eq!(read_pause(floor, Some(Duration::from_millis(200))), floor);
        assert_eq!(
            read_pause(floor, Some(Duration::from_secs(60))),
            Duration::from_secs(2)
        );
        let slow = Duration::from_secs(5);
        assert_eq!(read_pause(slow, Some(Duration::from_secs(60))), slow);
    }

    #[test]
    fn the_block_time_is_measured_between_head_changes_and_smoothed() {
        let start = Instant::now();
        let mut pace = BlockPace::default();
        pace.saw(10, start);
        pace.saw(10, start + Duration::from_millis(500));
        assert_eq!(pace.block_time, None, "no change seen yet");
        pace.saw(12, start + Duration::from_secs(4));
        assert_eq!(
            pace.block_time,
            Some(Duration::from_secs(2)),
            "2 blocks in 4 s"
        );
        // One late block moves the estimate a quarter of the way.
        pace.saw(13, start + Duration::from_secs(10));
        assert_eq!(pace.block_time, Some(Duration::from_secs(3)));
        // A head that goes back (another node behind a load balancer) is ignored.
        pace.saw(11, start + Duration::from_secs(11));
        assert_eq!(pace.block_time, Some(Duration::from_secs(3)));
    }

    #[tokio::test]
    async fn a_final_block_that_appeared_during_the_check_wakes_at_once() {
        let (_node, mut view) = reader_at(10).await;
        let wakes = PauseWakes {
            hint: None,
            head: Some(HeadWake {
                view: &mut view,
                above: 9,
                target: Some(10),
            }),
            floor: Duration::from_millis(250),
        };
        let woken = pause(Instant::now(), Duration::from_secs(30), wakes).await;
        assert_eq!(woken, Woken::Head);
    }

    #[tokio::test]
    async fn a_check_behind_the_reader_waits_for_the_next_block_not_a_loop() {
        let (node, mut view) = reader_at(10).await;
        let early = tokio::time::timeout(Duration::from_millis(100), view.rises(10, 10)).await;
        assert!(early.is_err(), "woke without a new block");
        node.0.store(11, std::sync::atomic::Ordering::SeqCst);
        tokio::time::timeout(Duration::from_secs(5), view.rises(10, 10))
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn the_head_reader_stops_when_no_chain_waits_and_starts_again_for_the_next() {
        let node = Arc::new(Head(std::sync::atomic::AtomicU64::new(3)));
        let watch = HeadWatch::new(node, Duration::from_millis(5));
        let reading = || *watch.running.lock().unwrap();
        let view = watch.subscribe();
        assert!(reading());
        drop(view);
        tokio::time::timeout(Duration::from_secs(5), async {
            while reading() {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
        .expect("the reader kept reading with nobody waiting");
        let mut view = watch.subscribe();
        assert!(reading());
        tokio::time::timeout(Duration::from_secs(5), view.rises(0, 3))
            .await
            .unwrap();
    }
}
