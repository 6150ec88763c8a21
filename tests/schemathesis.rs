//! The API against its own OpenAPI document: schemathesis (every check, every phase including
//! the stateful one that follows the document's links) against a real stack. Ignored by plain
//! `cargo test`: it needs the schemathesis CLI, which `scripts/schemathesis.sh` installs into
//! `.venv/` and passes as `MESHPAY_SCHEMATHESIS` (the `make test` phase). The seed is printed;
//! `SCHEMATHESIS_SEED=<seed> scripts/schemathesis.sh` replays a run.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "support/payments.rs"]
mod support;

use std::process::Stdio;

use support::Stack;

/// Test cases per operation and phase: keeps the whole run under about two minutes.
const MAX_EXAMPLES: &str = "40";

#[tokio::test]
#[ignore = "needs the schemathesis CLI: run scripts/schemathesis.sh"]
async fn schemathesis_finds_no_failure_with_every_check_and_phase() {
    let st = std::env::var("MESHPAY_SCHEMATHESIS")
        .expect("MESHPAY_SCHEMATHESIS: path of the `st` executable (scripts/schemathesis.sh)");
    let seed = std::env::var("SCHEMATHESIS_SEED")
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| (uuid::Uuid::new_v4().as_u128() % 1_000_000_000).to_string());
    let max_examples = std::env::var("SCHEMATHESIS_MAX_EXAMPLES")
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| MAX_EXAMPLES.to_owned());

    let stack = Stack::start().await;
    let merchant = stack.merchant().await;
    // Enough that an authorized quote of an ordinary amount is never refused for funds.
    stack.fund(merchant.id, "anvil:USDC", "1000000000").await;
    stack.fund(merchant.id, "anvil:ETH", "1000000").await;

    let config = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/schemathesis.toml");
    let schema = stack.url("/openapi.json");
    let base = stack.devhost.base_url();
    let args = [
        "--config-file".to_owned(),
        config.display().to_string(),
        "run".to_owned(),
        schema,
        "--url".to_owned(),
        base,
        "--checks".to_owned(),
        "all".to_owned(),
        "--phases".to_owned(),
        "examples,coverage,fuzzing,stateful".to_owned(),
        "--max-examples".to_owned(),
        max_examples,
        "--seed".to_owned(),
        seed.clone(),
        "--header".to_owned(),
        format!("Authorization: Bearer {}", merchant.key),
        "--workers".to_owned(),
        "1".to_owned(),
        "--no-color".to_owned(),
    ];
    println!(
        "schemathesis seed: {seed} (replay: SCHEMATHESIS_SEED={seed} scripts/schemathesis.sh)"
    );
    println!("{st} {}", args.join(" ").replace(&merchant.key, "<key>"));
    let status = tokio::process::Command::new(&st)
        .args(&args)
        .stdin(Stdio::null())
        .status()
        .await
        .expect("run schemathesis");
    let _ = std::fs::copy(stack.devhost.log_path(), "/tmp/st-devhost.log");
    stack.assert_ledger_invariants().await;
    assert!(
        status.success(),
        "schemathesis failed (seed {seed}): {status}\n{}",
        stack.devhost.log_tail(40)
    );
}
