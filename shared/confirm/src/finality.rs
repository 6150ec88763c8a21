//! When a mined transaction counts as final, per chain: a depth in blocks on top of the
//! inclusion block (`confirmations`), or at/below the chain's `finalized` block
//! (`use_finalized`, for chains where depth alone is not irreversibility).

use meshpay_chain::Chain;

/// A chain's finality rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FinalityPolicy {
    /// Blocks on top of the inclusion block (0: the inclusion block itself is enough).
    pub confirmations: u64,
    /// Wait for the `finalized` block tag instead of a depth.
    pub use_finalized: bool,
}

impl FinalityPolicy {
    pub fn of(chain: &Chain) -> Self {
        FinalityPolicy {
            confirmations: chain.confirmations,
            use_finalized: chain.use_finalized,
        }
    }
}

/// The chain head as the RPC layer reads it.
pub use meshpay_chain::rpc::ChainHead;

/// How far a mined transaction is from final.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Depth {
    Final,
    /// `blocks_on_top` so far of `needed` (depth rule).
    Shallow {
        blocks_on_top: u64,
        needed: u64,
    },
    /// Above the `finalized` block (or no finalized block yet).
    NotFinalized {
        finalized: Option<u64>,
    },
}

impl Depth {
    pub fn is_final(self) -> bool {
        self == Depth::Final
    }
}

impl FinalityPolicy {
    /// Where a transaction mined in block `inclusion` stands against `head`. A head below the
    /// inclusion block (a load-balanced node behind the one that served the receipt) is
    /// simply not final yet.
    pub fn depth(&self, inclusion: u64, head: ChainHead) -> Depth {
        if self.use_finalized {
            return match head.finalized {
                Some(finalized) if inclusion <= finalized => Depth::Final,
                finalized => Depth::NotFinalized { finalized },
            };
        }
        let blocks_on_top = head.latest.saturating_sub(inclusion);
        if head.latest >= inclusion && blocks_on_top >= self.confirmations {
            Depth::Final
        } else {
            Depth::Shallow {
                blocks_on_top,
                needed: self.confirmations,
            }
        }
    }
}

impl std::fmt::Display for Depth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Depth::Final => f.write_str("final"),
            Depth::Shallow {
                blocks_on_top,
                needed,
            } => write!(f, "{blocks_on_top} of {needed} blocks on top"),
            Depth::NotFinalized { finalized: Some(n) } => {
                write!(f, "above the finalized block {n}")
            }
            Depth::NotFinalized { finalized: None } => f.write_str("no finalized block yet"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn depth_rule(confirmations: u64) -> FinalityPolicy {
        FinalityPolicy {
            confirmations,
            use_finalized: false,
        }
    }

    fn head(latest: u64, finalized: Option<u64>) -> ChainHead {
        ChainHead { latest, finalized }
    }

    #[test]
    fn depth_counts_blocks_on_top_of_the_inclusion_block() {
        let p = depth_rule(3);
        assert_eq!(
            p.depth(100, head(102, None)),
            Depth::Shallow {
                blocks_on_top: 2,
                needed: 3
            }
        );
        assert_eq!(p.depth(100, head(103, None)), Depth::Final);
        assert_eq!(p.depth(100, head(500, None)), Depth::Final);
    }

    #[test]
    fn zero_confirmations_accepts_the_inclusion_block_itself() {
        assert!(depth_rule(0).depth(7, head(7, None)).is_final());
    }

    #[test]
    fn a_head_behind_the_receipt_is_not_final_even_with_zero_confirmations() {
        assert!(!depth_rule(0).depth(8, head(7, None)).is_final());
        assert!(!depth_rule(1).depth(8, head(7, None)).is_final());
    }

    #[test]
    fn finalized_rule_ignores_depth_and_needs_the_finalized_tag() {
        let p = FinalityPolicy {
            confirmations: 1,
            use_finalized: true,
        };
        assert_eq!(
            p.depth(100, head(1_000, None)),
            Depth::NotFinalized { finalized: None }
        );
        assert_eq!(
            p.depth(100, head(1_000, Some(99))),
            Depth::NotFinalized {
                finalized: Some(99)
            }
        );
        assert_eq!(p.depth(100, head(1_000, Some(100))), Depth::Final);
        assert_eq!(p.depth(100, head(101, Some(150))), Depth::Final);
    }
}
