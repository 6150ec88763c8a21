//! The demo's steps: each status change of the payment, with its time since the start and since
//! the previous step.

use std::fmt;
use std::time::{Duration, Instant};

use meshpay_client::{PaymentStatusView, PaymentView};
use serde::Serialize;

const HAPPY_PATH: [PaymentStatusView; 5] = [
    PaymentStatusView::Quoted,
    PaymentStatusView::Authorized,
    PaymentStatusView::Broadcast,
    PaymentStatusView::Confirmed,
    PaymentStatusView::Settled,
];

/// Position on the happy path; `None` for the ends that are not `settled`.
fn rank(status: PaymentStatusView) -> Option<usize> {
    HAPPY_PATH.iter().position(|s| *s == status)
}

/// The status as the API spells it.
pub fn status_name(status: PaymentStatusView) -> &'static str {
    match status {
        PaymentStatusView::Quoted => "quoted",
        PaymentStatusView::Authorized => "authorized",
        PaymentStatusView::Broadcast => "broadcast",
        PaymentStatusView::Stalled => "stalled",
        PaymentStatusView::Cancelling => "cancelling",
        PaymentStatusView::Confirmed => "confirmed",
        PaymentStatusView::Settled => "settled",
        PaymentStatusView::Failed => "failed",
        PaymentStatusView::Expired => "expired",
        PaymentStatusView::Cancelled => "cancelled",
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Step {
    step: &'static str,
    at_ms: u128,
    since_previous_ms: u128,
    detail: String,
}

/// Prints each step as it happens (unless the output is JSON) and keeps them for the summary.
pub struct Steps {
    start: Instant,
    previous_ms: u128,
    steps: Vec<Step>,
    print: bool,
}

impl Steps {
    pub fn new(print: bool) -> Self {
        Steps {
            start: Instant::now(),
            previous_ms: 0,
            steps: Vec::new(),
            print,
        }
    }

    pub fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }

    pub fn steps(&self) -> &[Step] {
        &self.steps
    }

    pub fn record(&mut self, step: &'static str, detail: String) {
        let at_ms = self.start.elapsed().as_millis();
        let step = Step {
            step,
            at_ms,
            since_previous_ms: at_ms.saturating_sub(self.previous_ms),
            detail,
        };
        self.previous_ms = at_ms;
        if self.print {
            println!("{}", step_line(&step));
        }
        self.steps.push(step);
    }

    pub fn say(&self, line: impl fmt::Display) {
        if self.print {
            println!("{line}");
        }
    }
}

fn step_line(step: &Step) -> String {
    format!(
        "  {:<11}{:>7} ms  (+{:>6} ms)  {}",
        step.step, step.at_ms, step.since_previous_ms, step.detail
    )
}

/// What a payment's status change shows: the transaction once broadcast, the block once
/// confirmed.
fn status_detail(status: PaymentStatusView, payment: &PaymentView) -> String {
    let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "?".to_owned());
    match status {
        PaymentStatusView::Authorized => format!("{} (balance held)", payment.id),
        PaymentStatusView::Broadcast => format!(
            "tx {} nonce {} from {}",
            opt(&payment.tx_hash),
            payment
                .nonce
                .map_or_else(|| "?".to_owned(), |n| n.to_string()),
            opt(&payment.from)
        ),
        PaymentStatusView::Confirmed => format!(
            "block {}",
            payment
                .block_number
                .map_or_else(|| "?".to_owned(), |n| n.to_string())
        ),
        PaymentStatusView::Settled => format!(
            "{} {} to {} (ledger posted)",
            payment.amount.value, payment.asset, payment.recipient
        ),
        other => status_name(other).to_owned(),
    }
}

/// Records every happy-path status from the one shown last up to the payment's, each at most
/// once (a reorg can take a payment back to `broadcast`: shown again as such).
pub fn show_progress(steps: &mut Steps, shown: &mut PaymentStatusView, payment: &PaymentView) {
    let (Some(from), Some(to)) = (rank(*shown), rank(payment.status)) else {
        return;
    };
    let now = status_name(payment.status);
    if to < from {
        steps.record(now, format!("back to {now} (chain reorg?)"));
    } else {
        for status in &HAPPY_PATH[from + 1..=to] {
            let mut detail = status_detail(*status, payment);
            if *status != payment.status {
                detail.push_str(&format!(" [passed between polls; now {now}]"));
            }
            steps.record(status_name(*status), detail);
        }
    }
    *shown = payment.status;
}

/// The reason a payment will never settle, if it will not.
pub fn failed(payment: &PaymentView) -> Option<String> {
    let reason = || {
        payment
            .failure_reason
            .clone()
            .unwrap_or_else(|| "no reason recorded".into())
    };
    match payment.status {
        PaymentStatusView::Failed => Some(format!("failed: {}", reason())),
        PaymentStatusView::Expired => Some("expired".to_owned()),
        PaymentStatusView::Cancelled => Some(format!("was cancelled: {}", reason())),
        _ => None,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use meshpay_client::{Fees, Money, NetworkFee, ServiceFee};

    pub(crate) fn payment(status: PaymentStatusView) -> PaymentView {
        let money = |value: &str, base_units: &str| Money {
            value: value.into(),
            base_units: base_units.into(),
        };
        PaymentView {
            id: "pay_1".into(),
            quote_id: "quo_1".into(),
            status,
            version: 1,
            chain: "anvil".into(),
            asset: "USDC".into(),
            amount: money("25.00", "25000000"),
            recipient: super::super::DEFAULT_RECIPIENT.into(),
            fees: Fees {
                network: NetworkFee {
                    asset: "ETH".into(),
                    amount: money("0.0001", "100000000000000"),
                    actual: None,
                    gas_limit: "65000".into(),
                    max_fee_per_gas_wei: "1538461538".into(),
                    max_priority_fee_per_gas_wei: "1000000000".into(),
                },
                service: ServiceFee {
                    asset: "USDC".into(),
                    bps: 25,
                    amount: money("0.0625", "62500"),
                },
            },
            total_debit: Vec::new(),
            reference: None,
            metadata: None,
            from: Some("0x70997970C51812dc3A010C7d01b50e0d17dc79C8".into()),
            tx_hash: Some(format!("0x{}", "ab".repeat(32))),
            nonce: Some(0),
            block_number: Some(7),
            failure_reason: None,
            status_reason: None,
            created_at: time::OffsetDateTime::UNIX_EPOCH,
            updated_at: time::OffsetDateTime::UNIX_EPOCH,
            attempts: None,
        }
    }

    fn names(steps: &Steps) -> Vec<&'static str> {
        steps.steps.iter().map(|s| s.step).collect()
    }

    #[test]
    fn statuses_passed_between_polls_are_each_shown_once_in_order() {
        let mut steps = Steps::new(false);
        let mut shown = PaymentStatusView::Quoted;
        show_progress(
            &mut steps,
            &mut shown,
            &payment(PaymentStatusView::Authorized),
        );
        show_progress(
            &mut steps,
            &mut shown,
            &payment(PaymentStatusView::Authorized),
        );
        show_progress(&mut steps, &mut shown, &payment(PaymentStatusView::Settled));
        assert_eq!(
            names(&steps),
            ["authorized", "broadcast", "confirmed", "settled"]
        );
        assert!(steps.steps[1].detail.contains("passed between polls"));
        assert!(steps.steps[1].detail.contains("nonce 0"));
        assert!(steps.steps[2].detail.contains("block 7"));
        assert!(!steps.steps[3].detail.contains("passed between polls"));
    }

    #[test]
    fn a_payment_sent_back_to_broadcast_is_shown_again() {
        let mut steps = Steps::new(false);
        let mut shown = PaymentStatusView::Confirmed;
        show_progress(
            &mut steps,
            &mut shown,
            &payment(PaymentStatusView::Broadcast),
        );
        assert_eq!(names(&steps), ["broadcast"]);
        assert_eq!(shown, PaymentStatusView::Broadcast);
    }

    #[test]
    fn failed_payments_report_their_recorded_reason() {
        let mut p = payment(PaymentStatusView::Failed);
        p.failure_reason = Some("reverted on chain".into());
        assert_eq!(failed(&p).as_deref(), Some("failed: reverted on chain"));
        assert_eq!(failed(&payment(PaymentStatusView::Confirmed)), None);
    }

    #[test]
    fn a_step_line_shows_the_time_since_start_and_since_the_previous_step() {
        let step = Step {
            step: "broadcast",
            at_ms: 1234,
            since_previous_ms: 56,
            detail: "tx 0xab".into(),
        };
        assert_eq!(
            step_line(&step),
            "  broadcast     1234 ms  (+    56 ms)  tx 0xab"
        );
    }
}
