//! What a run does, decided up front from the seed: each payment's asset, amount, recipient,
//! whether it is canceled or preceded by a bad request, and which fault fires when which payment
//! starts. The same seed and N give the same plan (the timing of a live stack still varies).

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use alloy::primitives::{Address, keccak256};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// The payment's asset on the dev chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Asset {
    Eth,
    Usdc,
}

impl Asset {
    pub fn symbol(self) -> &'static str {
        match self {
            Asset::Eth => "ETH",
            Asset::Usdc => "USDC",
        }
    }
}

/// A request the API must refuse with a problem+json 4xx (never a 5xx, never a payment).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadRequest {
    /// `POST /quotes` with an address that is not one.
    MalformedRecipient,
    /// `POST /quotes` with a negative amount.
    NegativeAmount,
    /// `POST /payments` for a quote that does not exist.
    UnknownQuote,
    /// `POST /payments` without an `Idempotency-Key`.
    MissingIdempotencyKey,
}

/// One payment of the traffic.
#[derive(Debug, Clone)]
pub struct PaymentPlan {
    pub index: usize,
    pub asset: Asset,
    /// Decimal in the asset's units.
    pub amount: String,
    /// A fresh address derived from the seed and the index: nobody else pays it, so its
    /// balance on chain is exactly what this payment delivered.
    pub recipient: Address,
    /// Cancel right after authorizing, `cancel_after` later.
    pub cancel_after: Option<Duration>,
    pub bad_request: Option<BadRequest>,
}

/// A fault the injector applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// SIGKILL the handler `delay` after the payment starts; devhost restarts it.
    KillHandler { delay: Duration },
    /// Send a copy of every visible message of the pipeline queues (a second delivery).
    DuplicateDeliveries,
    /// The RPC proxy misbehaves (`mode`) for `window`.
    Rpc { mode: RpcMode, window: Duration },
    /// `pg_terminate_backend` on every connection to the run's database.
    DropDbConnections,
    /// Azurite stopped and started again on its data (messages persist).
    RestartAzurite,
    /// `anvil_reorg` of `depth` blocks (its transactions leave the chain).
    Reorg { depth: u64 },
}

/// RPC proxy modes for a fault window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RpcMode {
    Errors,
    Timeouts,
    DroppedSendReplies,
    StaleReads,
    LaggingBlocks,
    LoadBalancer,
}

const RPC_MODES: [RpcMode; 6] = [
    RpcMode::Errors,
    RpcMode::Timeouts,
    RpcMode::DroppedSendReplies,
    RpcMode::StaleReads,
    RpcMode::LaggingBlocks,
    RpcMode::LoadBalancer,
];

impl Fault {
    /// The name faults are counted under.
    pub fn kind(&self) -> &'static str {
        match self {
            Fault::KillHandler { .. } => "handler_sigkill",
            Fault::DuplicateDeliveries => "duplicate_deliveries",
            Fault::Rpc { mode, .. } => match mode {
                RpcMode::Errors => "rpc_window_errors",
                RpcMode::Timeouts => "rpc_window_timeouts",
                RpcMode::DroppedSendReplies => "rpc_window_dropped_send_replies",
                RpcMode::StaleReads => "rpc_window_stale_reads",
                RpcMode::LaggingBlocks => "rpc_window_lagging_blocks",
                RpcMode::LoadBalancer => "rpc_window_load_balancer",
            },
            Fault::DropDbConnections => "pg_connections_dropped",
            Fault::RestartAzurite => "azurite_restart",
            Fault::Reorg { .. } => "anvil_reorg",
        }
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::KillHandler { delay } => write!(f, "SIGKILL handler after {delay:?}"),
            Fault::DuplicateDeliveries => f.write_str("duplicate visible pipeline messages"),
            Fault::Rpc { mode, window } => write!(f, "RPC {mode:?} for {window:?}"),
            Fault::DropDbConnections => f.write_str("terminate the database's connections"),
            Fault::RestartAzurite => f.write_str("restart Azurite"),
            Fault::Reorg { depth } => write!(f, "anvil_reorg depth {depth}"),
        }
    }
}

/// Which fault kinds a run injects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FaultSet {
    pub kills: bool,
    pub duplicates: bool,
    pub rpc: bool,
    pub db: bool,
    pub azurite: bool,
    pub reorg: bool,
}

impl FaultSet {
    pub const ALL: FaultSet = FaultSet {
        kills: true,
        duplicates: true,
        rpc: true,
        db: true,
        azurite: true,
        reorg: true,
    };
    pub const NONE: FaultSet = FaultSet {
        kills: false,
        duplicates: false,
        rpc: false,
        db: false,
        azurite: false,
        reorg: false,
    };

    /// `all`, `none`, or a comma list of `kill,dup,rpc,db,azurite,reorg`; `-kill` removes one.
    pub fn parse(text: &str) -> Result<FaultSet, String> {
        let mut set = FaultSet::NONE;
        for word in text.split(',').map(str::trim).filter(|w| !w.is_empty()) {
            let (on, name) = match word.strip_prefix('-') {
                Some(name) => (false, name),
                None => (true, word),
            };
            match name {
                "all" => set = if on { FaultSet::ALL } else { FaultSet::NONE },
                "none" => set = FaultSet::NONE,
                "kill" => set.kills = on,
                "dup" => set.duplicates = on,
                "rpc" => set.rpc = on,
                "db" => set.db = on,
                "azurite" => set.azurite = on,
                "reorg" => set.reorg = on,
                other => {
                    return Err(format!(
                        "unknown fault `{other}` (all, none, kill, dup, rpc, db, azurite, reorg)"
                    ));
                }
            }
        }
        Ok(set)
    }
}

/// Knobs of the plan.
#[derive(Debug, Clone, Copy)]
pub struct PlanOptions {
    pub payments: usize,
    pub faults: FaultSet,
    /// On average one fault per this many payments.
    pub fault_every: usize,
    /// At most this many handler kills (the host recycles with a growing backoff from the
    /// third failure within 30 minutes on, so many kills measure that backoff, not recovery).
    pub max_kills: usize,
    /// At most this many Azurite restarts.
    pub max_azurite_restarts: usize,
}

/// The whole run, derived from the seed.
#[derive(Debug, Clone)]
pub struct Plan {
    pub payments: Vec<PaymentPlan>,
    /// Payment index → the fault that fires as that payment starts.
    pub faults: BTreeMap<usize, Fault>,
}

impl Plan {
    pub fn new(seed: u64, options: PlanOptions) -> Plan {
        let mut rng = StdRng::seed_from_u64(seed);
        let payments = (0..options.payments)
            .map(|index| payment(&mut rng, seed, index))
            .collect();
        let faults = faults(&mut rng, options);
        Plan { payments, faults }
    }

    /// Planned faults by kind.
    pub fn counts(&self) -> BTreeMap<&'static str, usize> {
        let mut counts = BTreeMap::new();
        for fault in self.faults.values() {
            *counts.entry(fault.kind()).or_default() += 1;
        }
        counts
    }
}

fn payment(rng: &mut StdRng, seed: u64, index: usize) -> PaymentPlan {
    let asset = if rng.gen_range(0..10) < 4 {
        Asset::Eth
    } else {
        Asset::Usdc
    };
    let amount = match asset {
        // 0.000001 to 0.000999 ETH.
        Asset::Eth => format!("0.000{:03}", rng.gen_range(1..1000)),
        // 0.01 to 49.99 USDC.
        Asset::Usdc => format!("{}.{:02}", rng.gen_range(0..50), rng.gen_range(1..100)),
    };
    let cancel_after =
        (rng.gen_range(0..100) < 8).then(|| Duration::from_millis(rng.gen_range(0..400)));
    let bad_request = (rng.gen_range(0..100) < 5).then(|| match rng.gen_range(0..4) {
        0 => BadRequest::MalformedRecipient,
        1 => BadRequest::NegativeAmount,
        2 => BadRequest::UnknownQuote,
        _ => BadRequest::MissingIdempotencyKey,
    });
    let mut preimage = b"meshpay-chaos-recipient".to_vec();
    preimage.extend_from_slice(&seed.to_be_bytes());
    preimage.extend_from_slice(&(index as u64).to_be_bytes());
    let recipient = Address::from_slice(&keccak256(&preimage)[12..]);
    PaymentPlan {
        index,
        asset,
        amount,
        recipient,
        cancel_after,
        bad_request,
    }
}

fn faults(rng: &mut StdRng, options: PlanOptions) -> BTreeMap<usize, Fault> {
    let mut faults = BTreeMap::new();
    let n = options.payments;
    if n == 0 {
        return faults;
    }
    let set = options.faults;
    // One reorg, somewhere in the middle half of the run.
    if set.reorg {
        let at = n / 4 + rng.gen_range(0..(n / 2).max(1));
        faults.insert(
            at,
            Fault::Reorg {
                depth: rng.gen_range(1..=3),
            },
        );
    }
    let (mut kills, mut restarts) = (0, 0);
    let every = options.fault_every.max(1);
    // Nothing in the first payments: the run measures recovery, not start-up.
    for index in every.min(n)..n {
        if faults.contains_key(&index) || rng.gen_range(0..every) != 0 {
            continue;
        }
        let fault = match rng.gen_range(0..12) {
            0..=1 if set.kills && kills < options.max_kills => {
                kills += 1;
                Fault::KillHandler {
                    delay: Duration::from_millis(rng.gen_range(0..1500)),
                }
            }
            2..=4 if set.duplicates => Fault::DuplicateDeliveries,
            5..=8 if set.rpc => Fault::Rpc {
                mode: RPC_MODES[rng.gen_range(0..RPC_MODES.len())],
                window: Duration::from_millis(rng.gen_range(1000..4000)),
            },
            9..=10 if set.db => Fault::DropDbConnections,
            11 if set.azurite && restarts < options.max_azurite_restarts => {
                restarts += 1;
                Fault::RestartAzurite
            }
            _ => continue,
        };
        faults.insert(index, fault);
    }
    faults
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(payments: usize) -> PlanOptions {
        PlanOptions {
            payments,
            faults: FaultSet::ALL,
            fault_every: 10,
            max_kills: 3,
            max_azurite_restarts: 1,
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_plan_and_another_seed_another() {
        let (a, b, c) = (
            Plan::new(7, options(200)),
            Plan::new(7, options(200)),
            Plan::new(8, options(200)),
        );
        assert_eq!(a.faults, b.faults);
        assert_eq!(
            a.payments.iter().map(|p| p.recipient).collect::<Vec<_>>(),
            b.payments.iter().map(|p| p.recipient).collect::<Vec<_>>()
        );
        assert_ne!(a.payments[0].recipient, c.payments[0].recipient);
    }

    #[test]
    fn caps_kills_and_restarts_and_plans_exactly_one_reorg() {
        let plan = Plan::new(1, options(2000));
        let counts = plan.counts();
        assert_eq!(counts.get("anvil_reorg"), Some(&1));
        assert!(counts.get("handler_sigkill") <= Some(&3));
        assert!(counts.get("azurite_restart") <= Some(&1));
        assert!(counts.len() >= 5, "{counts:?}");
    }

    #[test]
    fn no_faults_when_none_are_chosen() {
        let plan = Plan::new(
            1,
            PlanOptions {
                faults: FaultSet::NONE,
                ..options(500)
            },
        );
        assert!(plan.faults.is_empty());
    }

    #[test]
    fn fault_lists_parse_with_removals() {
        let set = FaultSet::parse("all,-kill").unwrap();
        assert!(!set.kills && set.rpc && set.reorg);
        assert_eq!(FaultSet::parse("none").unwrap(), FaultSet::NONE);
        assert!(FaultSet::parse("meteor").is_err());
    }
}
