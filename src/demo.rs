//! `meshpay demo`: one payment through a running stack (what `make dev` runs once it is up),
//! printed step by step with timings, then checked against the chain's own records.
//!
//! Steps: POST /quotes → POST /payments (Idempotency-Key) → poll GET /payments/{id} until
//! `settled`; each status change is printed when first seen, with the time since the start and
//! since the previous step. A status that came and went between two polls is printed with the
//! later one's time (marked). Then the receipt is read from the chain's JSON-RPC (`--rpc`), not
//! from meshpay: block, status, the ERC-20 `Transfer` log (token payments) and the recipient's
//! balance just before and at the inclusion block. Any mismatch fails the command.
//!
//! Exit status: 0 when settled and the chain agrees; non-zero with the reason otherwise
//! (problem+json `code`/`detail` of the API, `failure_reason` of a failed payment, a timeout).

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, Instant};

use alloy::primitives::{Address, B256, Bytes, U64, U256};
use alloy::sol_types::{SolCall, SolEvent};
use anyhow::{Context, anyhow, bail};
use clap::Args;
use meshpay_domain::Amount;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

/// anvil account 3: not a hot wallet, not the token deployer, so its balance changes only by
/// what it is paid.
const DEFAULT_RECIPIENT: &str = "0x90F79bf6EB2c4f870365E785982E1f101E93b906";
/// Pause between two reads of the payment: short, so the printed timings are close to when the
/// status really changed (locally a read takes ~3 ms; settle follows confirm within ~50 ms).
const POLL_INTERVAL: Duration = Duration::from_millis(25);
/// Bound on one HTTP request (API or JSON-RPC).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Decimals of the chain's native asset (every EVM chain: wei).
const NATIVE_DECIMALS: u8 = 18;

alloy::sol! {
    event Transfer(address indexed from, address indexed to, uint256 value);
    function balanceOf(address account) external view returns (uint256);
    function decimals() external view returns (uint8);
}

#[derive(Debug, Clone, Args)]
pub struct DemoArgs {
    /// Base URL of the API (devhost's route prefix included).
    #[arg(long, default_value = "http://127.0.0.1:7071/api")]
    pub api: String,
    /// A key with the scopes quotes:write, payments:write and payments:read.
    #[arg(long, env = "MESHPAY_API_KEY", hide_env_values = true)]
    pub api_key: ApiKey,
    /// Chain name (chains config).
    #[arg(long, default_value = "anvil")]
    pub chain: String,
    /// Asset symbol on the chain (USDC, ETH).
    #[arg(long, default_value = "USDC")]
    pub asset: String,
    /// Amount in the asset's units.
    #[arg(long, default_value = "25.00")]
    pub amount: String,
    /// Recipient address (default: anvil account 3).
    #[arg(long, default_value = DEFAULT_RECIPIENT)]
    pub recipient: String,
    /// The chain's JSON-RPC endpoint, read for the receipt (the chain's own view).
    #[arg(long, default_value = "http://127.0.0.1:8545")]
    pub rpc: String,
    /// Seconds to wait for `settled`.
    #[arg(long, default_value_t = 120)]
    pub timeout: u64,
    /// Print one JSON document (steps, payment, chain check) instead of lines.
    #[arg(long)]
    pub json: bool,
}

/// The API key: never printed, not even by `Debug`.
#[derive(Clone)]
pub struct ApiKey(String);

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(<redacted>)")
    }
}

impl FromStr for ApiKey {
    type Err = &'static str;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s.is_empty() {
            return Err("the API key is empty");
        }
        Ok(ApiKey(s.to_owned()))
    }
}

// ---------------------------------------------------------------------------------------------
// API shapes (the fields the demo reads; see meshpay_api::views)

#[derive(Debug, Clone, Deserialize)]
struct Money {
    value: String,
    base_units: String,
}

#[derive(Debug, Clone, Deserialize)]
struct NetworkFee {
    asset: String,
    amount: Money,
}

#[derive(Debug, Clone, Deserialize)]
struct ServiceFee {
    bps: u16,
    amount: Money,
}

#[derive(Debug, Clone, Deserialize)]
struct Fees {
    network: NetworkFee,
    service: ServiceFee,
}

#[derive(Debug, Clone, Deserialize)]
struct Quote {
    id: String,
    asset: String,
    amount: Money,
    recipient: String,
    fees: Fees,
    expires_at: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Status {
    Quoted,
    Authorized,
    Broadcast,
    Confirmed,
    Settled,
    Failed,
    Expired,
    Cancelled,
}

impl Status {
    /// Position on the happy path; `None` for the ends that are not `settled`.
    fn rank(self) -> Option<usize> {
        HAPPY_PATH.iter().position(|s| *s == self)
    }

    fn name(self) -> &'static str {
        match self {
            Status::Quoted => "quoted",
            Status::Authorized => "authorized",
            Status::Broadcast => "broadcast",
            Status::Confirmed => "confirmed",
            Status::Settled => "settled",
            Status::Failed => "failed",
            Status::Expired => "expired",
            Status::Cancelled => "cancelled",
        }
    }
}

const HAPPY_PATH: [Status; 5] = [
    Status::Quoted,
    Status::Authorized,
    Status::Broadcast,
    Status::Confirmed,
    Status::Settled,
];

#[derive(Debug, Clone, Deserialize)]
struct Payment {
    id: String,
    status: Status,
    asset: String,
    amount: Money,
    recipient: String,
    from: Option<String>,
    tx_hash: Option<String>,
    nonce: Option<u64>,
    block_number: Option<u64>,
    failure_reason: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Problem {
    code: Option<String>,
    title: Option<String>,
    detail: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// Steps and their timings

#[derive(Debug, Clone, serde::Serialize)]
struct Step {
    step: &'static str,
    at_ms: u128,
    since_previous_ms: u128,
    detail: String,
}

/// Prints each step as it happens (unless the output is JSON) and keeps them for the summary.
struct Steps {
    start: Instant,
    previous_ms: u128,
    steps: Vec<Step>,
    print: bool,
}

impl Steps {
    fn new(print: bool) -> Self {
        Steps {
            start: Instant::now(),
            previous_ms: 0,
            steps: Vec::new(),
            print,
        }
    }

    fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }

    fn record(&mut self, step: &'static str, detail: String) {
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

    fn say(&self, line: impl fmt::Display) {
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
fn status_detail(status: Status, payment: &Payment) -> String {
    let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "?".to_owned());
    match status {
        Status::Authorized => format!("{} (balance held)", payment.id),
        Status::Broadcast => format!(
            "tx {} nonce {} from {}",
            opt(&payment.tx_hash),
            payment
                .nonce
                .map_or_else(|| "?".to_owned(), |n| n.to_string()),
            opt(&payment.from)
        ),
        Status::Confirmed => format!(
            "block {}",
            payment
                .block_number
                .map_or_else(|| "?".to_owned(), |n| n.to_string())
        ),
        Status::Settled => format!(
            "{} {} to {} (ledger posted)",
            payment.amount.value, payment.asset, payment.recipient
        ),
        other => other.name().to_owned(),
    }
}

// ---------------------------------------------------------------------------------------------
// HTTP

struct Api {
    http: reqwest::Client,
    base: String,
    key: ApiKey,
}

/// Why a request got no usable answer; `retryable` for a read worth repeating (meshpay
/// restarting, the host busy).
#[derive(Debug)]
struct RequestError {
    message: String,
    retryable: bool,
}

impl fmt::Display for RequestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for RequestError {}

impl Api {
    fn url(&self, path: &str) -> String {
        format!("{}/{}", self.base.trim_end_matches('/'), path)
    }

    async fn send<T: DeserializeOwned>(
        &self,
        what: &str,
        request: reqwest::RequestBuilder,
    ) -> Result<T, RequestError> {
        let response = request
            .bearer_auth(&self.key.0)
            .send()
            .await
            .map_err(|e| RequestError {
                message: format!(
                    "{what}: cannot reach meshpay at {} ({}): is `make dev` running?",
                    self.base,
                    error_chain(&e)
                ),
                retryable: true,
            })?;
        let status = response.status();
        let body = response.bytes().await.map_err(|e| RequestError {
            message: format!("{what}: reading the response: {}", error_chain(&e)),
            retryable: true,
        })?;
        if !status.is_success() {
            return Err(RequestError {
                message: format!("{what}: {}", problem_message(status.as_u16(), &body)),
                retryable: status.is_server_error(),
            });
        }
        serde_json::from_slice(&body).map_err(|e| RequestError {
            message: format!(
                "{what}: unexpected response ({e}): {}",
                excerpt(&String::from_utf8_lossy(&body))
            ),
            retryable: false,
        })
    }
}

/// `402 insufficient_funds: <detail>` from a problem+json body, else the status and the start
/// of the body.
fn problem_message(status: u16, body: &[u8]) -> String {
    match serde_json::from_slice::<Problem>(body) {
        Ok(Problem {
            code: Some(code),
            title,
            detail,
        }) => {
            let detail = detail.or(title).unwrap_or_default();
            format!("HTTP {status} {code}: {detail}")
        }
        _ => format!("HTTP {status}: {}", excerpt(&String::from_utf8_lossy(body))),
    }
}

fn excerpt(text: &str) -> String {
    const MAX: usize = 300;
    let text = text.trim();
    match text.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

/// reqwest's Display hides the cause ("error sending request"): the chain says why.
fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

// ---------------------------------------------------------------------------------------------
// The chain's view (plain JSON-RPC: nothing of meshpay in between)

struct Rpc {
    http: reqwest::Client,
    url: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Receipt {
    status: Option<U64>,
    block_number: U64,
    block_hash: B256,
    gas_used: U64,
    effective_gas_price: U256,
    logs: Vec<Log>,
}

#[derive(Debug, Deserialize)]
struct Log {
    address: Address,
    topics: Vec<B256>,
    data: Bytes,
}

#[derive(Debug, Deserialize)]
struct Transaction {
    from: Address,
    to: Option<Address>,
    value: U256,
    nonce: U64,
    input: Bytes,
}

impl Rpc {
    async fn call<T: DeserializeOwned>(&self, method: &str, params: Value) -> anyhow::Result<T> {
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
        let response: Value = self
            .http
            .post(&self.url)
            .json(&body)
            .send()
            .await
            .map_err(|e| anyhow!("{method} at {}: {}", self.url, error_chain(&e)))?
            .json()
            .await
            .map_err(|e| anyhow!("{method} at {}: {}", self.url, error_chain(&e)))?;
        if let Some(error) = response.get("error") {
            bail!("{method} at {}: {error}", self.url);
        }
        let result = response.get("result").cloned().unwrap_or(Value::Null);
        serde_json::from_value(result).with_context(|| format!("{method}: unexpected result"))
    }

    async fn eth_call(&self, to: Address, data: Vec<u8>, block: u64) -> anyhow::Result<Bytes> {
        self.call(
            "eth_call",
            json!([{"to": to, "data": Bytes::from(data)}, format!("{block:#x}")]),
        )
        .await
    }

    async fn token_balance(
        &self,
        token: Address,
        who: Address,
        block: u64,
    ) -> anyhow::Result<U256> {
        let out = self
            .eth_call(token, balanceOfCall { account: who }.abi_encode(), block)
            .await?;
        balanceOfCall::abi_decode_returns(&out).context("balanceOf: unexpected return data")
    }

    async fn native_balance(&self, who: Address, block: u64) -> anyhow::Result<U256> {
        self.call("eth_getBalance", json!([who, format!("{block:#x}")]))
            .await
    }
}

/// What the chain says about the payment's transaction.
#[derive(Debug, serde::Serialize)]
struct ChainView {
    tx_hash: String,
    block_number: u64,
    block_hash: String,
    status: u64,
    from: String,
    nonce: u64,
    gas_used: u64,
    fee_wei: String,
    /// `token` (ERC-20 transfer) or `native`.
    kind: &'static str,
    /// The token contract (token payments).
    token: Option<String>,
    /// The amount moved: the Transfer log's value, or the transaction's value.
    transferred_base_units: String,
    transferred: String,
    recipient_balance_before: String,
    recipient_balance_after: String,
}

async fn chain_view(rpc: &Rpc, payment: &Payment) -> anyhow::Result<ChainView> {
    let hash: B256 = payment
        .tx_hash
        .as_deref()
        .context("the settled payment has no tx_hash")?
        .parse()
        .context("the payment's tx_hash is not a 32-byte hash")?;
    let recipient: Address = payment
        .recipient
        .parse()
        .context("the payment's recipient is not an address")?;
    let expected: U256 = payment
        .amount
        .base_units
        .parse()
        .context("the payment's amount is not an integer")?;
    let receipt: Option<Receipt> = rpc.call("eth_getTransactionReceipt", json!([hash])).await?;
    let receipt = receipt.with_context(|| {
        format!("the chain has no receipt for {hash} (was anvil restarted since?)")
    })?;
    let tx: Option<Transaction> = rpc.call("eth_getTransactionByHash", json!([hash])).await?;
    let tx = tx.with_context(|| format!("the chain has no transaction {hash}"))?;
    let block = receipt.block_number.to::<u64>();
    let status = receipt.status.map_or(0, |s| s.to::<u64>());
    if status != 1 {
        bail!("the chain says {hash} in block {block} reverted (status {status})");
    }
    if let Some(ours) = payment.block_number
        && ours != block
    {
        bail!("meshpay records block {ours} for {hash}, the chain block {block}");
    }
    if let Some(from) = &payment.from
        && !from.eq_ignore_ascii_case(&tx.from.to_string())
    {
        bail!("meshpay records sender {from}, the chain {}", tx.from);
    }

    let to = tx.to.context("the transaction creates a contract")?;
    let before_block = block.saturating_sub(1);
    let (kind, token, moved, decimals, before, after) = if tx.input.is_empty() {
        if to != recipient {
            bail!("the transaction pays {to}, the payment is to {recipient}");
        }
        let before = rpc.native_balance(recipient, before_block).await?;
        let after = rpc.native_balance(recipient, block).await?;
        ("native", None, tx.value, NATIVE_DECIMALS, before, after)
    } else {
        let moved = transfer_amount(&receipt.logs, to, tx.from, recipient)?;
        let out = rpc
            .eth_call(to, decimalsCall {}.abi_encode(), block)
            .await?;
        let decimals =
            decimalsCall::abi_decode_returns(&out).context("decimals: unexpected return data")?;
        let before = rpc.token_balance(to, recipient, before_block).await?;
        let after = rpc.token_balance(to, recipient, block).await?;
        (
            "token",
            Some(to.to_string()),
            moved,
            decimals,
            before,
            after,
        )
    };
    if moved != expected {
        bail!(
            "the chain moved {moved} base units, the payment is for {expected} ({})",
            payment.amount.value
        );
    }
    let format = |v: U256| Amount::from_base_units(v).format_decimal(decimals);
    Ok(ChainView {
        tx_hash: hash.to_string(),
        block_number: block,
        block_hash: receipt.block_hash.to_string(),
        status,
        from: tx.from.to_string(),
        nonce: tx.nonce.to::<u64>(),
        gas_used: receipt.gas_used.to::<u64>(),
        fee_wei: (U256::from(receipt.gas_used) * receipt.effective_gas_price).to_string(),
        kind,
        token,
        transferred_base_units: moved.to_string(),
        transferred: format(moved),
        recipient_balance_before: format(before),
        recipient_balance_after: format(after),
    })
}

/// The value of the one `Transfer(from, to, value)` log the token emitted to `recipient`.
fn transfer_amount(
    logs: &[Log],
    token: Address,
    from: Address,
    recipient: Address,
) -> anyhow::Result<U256> {
    let matching: Vec<U256> = logs
        .iter()
        .filter(|log| log.address == token)
        .filter(|log| {
            log.topics.len() == 3
                && log.topics[0] == Transfer::SIGNATURE_HASH
                && log.topics[1] == from.into_word()
                && log.topics[2] == recipient.into_word()
                && log.data.len() == 32
        })
        .map(|log| U256::from_be_slice(&log.data))
        .collect();
    match matching.as_slice() {
        [value] => Ok(*value),
        [] => bail!("no Transfer log from {from} to {recipient} by token {token} in the receipt"),
        _ => bail!("several Transfer logs from {from} to {recipient} in one receipt"),
    }
}

// ---------------------------------------------------------------------------------------------

pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    let http = reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .build()
        .context("building the HTTP client")?;
    let api = Api {
        http: http.clone(),
        base: args.api.clone(),
        key: args.api_key.clone(),
    };
    let rpc = Rpc {
        http,
        url: args.rpc.clone(),
    };
    let deadline = Duration::from_secs(args.timeout);
    let mut steps = Steps::new(!args.json);
    steps.say(format_args!(
        "demo payment: {} {} on {} to {} (API {}, chain {})",
        args.amount, args.asset, args.chain, args.recipient, args.api, args.rpc
    ));

    let quote: Quote = api
        .send(
            "POST /quotes",
            api.http.post(api.url("quotes")).json(&json!({
                "chain": args.chain, "asset": args.asset,
                "amount": args.amount, "recipient": args.recipient,
            })),
        )
        .await?;
    steps.record(
        "quoted",
        format!(
            "{} {} {} to {}; network fee ≤ {} {}, service fee {} {} ({} bps); expires {}",
            quote.id,
            quote.amount.value,
            quote.asset,
            quote.recipient,
            quote.fees.network.amount.value,
            quote.fees.network.asset,
            quote.fees.service.amount.value,
            quote.asset,
            quote.fees.service.bps,
            quote.expires_at
        ),
    );

    let idempotency_key = format!("demo-{}", uuid::Uuid::new_v4());
    let mut payment: Payment = api
        .send(
            "POST /payments",
            api.http
                .post(api.url("payments"))
                .header("Idempotency-Key", &idempotency_key)
                .json(&json!({"quote_id": quote.id, "reference": "meshpay demo"})),
        )
        .await?;
    let mut shown = Status::Quoted;
    show_progress(&mut steps, &mut shown, &payment);

    let path = format!("payments/{}", payment.id);
    let mut last_error: Option<RequestError> = None;
    while payment.status != Status::Settled {
        if let Some(reason) = failed(&payment) {
            bail!("payment {} {reason}", payment.id);
        }
        if steps.elapsed() >= deadline {
            let why = last_error.map_or_else(String::new, |e| format!("; last error: {e}"));
            bail!(
                "payment {} is still {} after {} s{why} (logs: .dev/logs/devhost.log)",
                payment.id,
                payment.status.name(),
                args.timeout
            );
        }
        tokio::time::sleep(POLL_INTERVAL).await;
        match api
            .send::<Payment>("GET /payments/{id}", api.http.get(api.url(&path)))
            .await
        {
            Ok(now) => {
                payment = now;
                show_progress(&mut steps, &mut shown, &payment);
            }
            Err(error) if error.retryable => last_error = Some(error),
            Err(error) => return Err(error.into()),
        }
    }

    let chain = chain_view(&rpc, &payment)
        .await
        .context("checking the payment on chain")?;
    if args.json {
        let out = json!({
            "payment_id": payment.id,
            "quote_id": quote.id,
            "idempotency_key": idempotency_key,
            "status": payment.status.name(),
            "total_ms": steps.elapsed().as_millis(),
            "steps": steps.steps,
            "chain": chain,
        });
        println!("{out}");
    } else {
        print_chain(&chain, &payment);
    }
    Ok(())
}

/// Records every happy-path status from the one shown last up to the payment's, each at most
/// once (a reorg can take a payment back to `broadcast`: shown again as such).
fn show_progress(steps: &mut Steps, shown: &mut Status, payment: &Payment) {
    let (Some(from), Some(to)) = (shown.rank(), payment.status.rank()) else {
        return;
    };
    if to < from {
        steps.record(
            payment.status.name(),
            format!("back to {} (chain reorg?)", payment.status.name()),
        );
    } else {
        for status in &HAPPY_PATH[from + 1..=to] {
            let mut detail = status_detail(*status, payment);
            if *status != payment.status {
                detail.push_str(&format!(
                    " [passed between polls; now {}]",
                    payment.status.name()
                ));
            }
            steps.record(status.name(), detail);
        }
    }
    *shown = payment.status;
}

/// The reason a payment will never settle, if it will not.
fn failed(payment: &Payment) -> Option<String> {
    let reason = || {
        payment
            .failure_reason
            .clone()
            .unwrap_or_else(|| "no reason recorded".into())
    };
    match payment.status {
        Status::Failed => Some(format!("failed: {}", reason())),
        Status::Expired => Some("expired".to_owned()),
        Status::Cancelled => Some(format!("was cancelled: {}", reason())),
        _ => None,
    }
}

fn print_chain(chain: &ChainView, payment: &Payment) {
    println!(
        "chain: tx {} in block {} ({}), status {} (success), from {} nonce {}, gas used {}, fee {} wei",
        chain.tx_hash,
        chain.block_number,
        chain.block_hash,
        chain.status,
        chain.from,
        chain.nonce,
        chain.gas_used,
        chain.fee_wei
    );
    match &chain.token {
        Some(token) => println!(
            "chain: Transfer log of {} {} ({} base units) by token {} to {}: matches the payment",
            chain.transferred,
            payment.asset,
            chain.transferred_base_units,
            token,
            payment.recipient
        ),
        None => println!(
            "chain: value {} {} ({} wei) to {}: matches the payment",
            chain.transferred, payment.asset, chain.transferred_base_units, payment.recipient
        ),
    }
    println!(
        "chain: recipient's {} balance {} → {} (blocks {} → {})",
        payment.asset,
        chain.recipient_balance_before,
        chain.recipient_balance_after,
        chain.block_number.saturating_sub(1),
        chain.block_number
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payment(status: Status) -> Payment {
        Payment {
            id: "pay_1".into(),
            status,
            asset: "USDC".into(),
            amount: Money {
                value: "25.00".into(),
                base_units: "25000000".into(),
            },
            recipient: DEFAULT_RECIPIENT.into(),
            from: Some("0x70997970C51812dc3A010C7d01b50e0d17dc79C8".into()),
            tx_hash: Some(format!("0x{}", "ab".repeat(32))),
            nonce: Some(0),
            block_number: Some(7),
            failure_reason: None,
        }
    }

    fn names(steps: &Steps) -> Vec<&'static str> {
        steps.steps.iter().map(|s| s.step).collect()
    }

    #[test]
    fn statuses_passed_between_polls_are_each_shown_once_in_order() {
        let mut steps = Steps::new(false);
        let mut shown = Status::Quoted;
        show_progress(&mut steps, &mut shown, &payment(Status::Authorized));
        show_progress(&mut steps, &mut shown, &payment(Status::Authorized));
        show_progress(&mut steps, &mut shown, &payment(Status::Settled));
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
        let mut shown = Status::Confirmed;
        show_progress(&mut steps, &mut shown, &payment(Status::Broadcast));
        assert_eq!(names(&steps), ["broadcast"]);
        assert_eq!(shown, Status::Broadcast);
    }

    #[test]
    fn failed_payments_report_their_recorded_reason() {
        let mut p = payment(Status::Failed);
        p.failure_reason = Some("reverted on chain".into());
        assert_eq!(failed(&p).as_deref(), Some("failed: reverted on chain"));
        assert_eq!(failed(&payment(Status::Confirmed)), None);
    }

    #[test]
    fn problem_json_errors_show_code_and_detail() {
        let body = br#"{"type":"urn:meshpay:problem:insufficient_funds","title":"Insufficient funds","status":402,"detail":"available 1.00 USDC","code":"insufficient_funds"}"#;
        assert_eq!(
            problem_message(402, body),
            "HTTP 402 insufficient_funds: available 1.00 USDC"
        );
        assert_eq!(
            problem_message(502, b"bad gateway"),
            "HTTP 502: bad gateway"
        );
    }

    #[test]
    fn the_transfer_amount_comes_from_the_one_matching_log() {
        let token: Address = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
            .parse()
            .unwrap();
        let from: Address = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
            .parse()
            .unwrap();
        let to: Address = DEFAULT_RECIPIENT.parse().unwrap();
        let log = |address: Address, recipient: Address, value: u64| Log {
            address,
            topics: vec![
                Transfer::SIGNATURE_HASH,
                from.into_word(),
                recipient.into_word(),
            ],
            data: Bytes::from(U256::from(value).to_be_bytes::<32>().to_vec()),
        };
        let logs = vec![
            log(from, to, 1),
            log(token, from, 2),
            log(token, to, 25_000_000),
        ];
        assert_eq!(
            transfer_amount(&logs, token, from, to).unwrap(),
            U256::from(25_000_000u64)
        );
        assert!(transfer_amount(&logs[..2], token, from, to).is_err());
    }

    #[test]
    fn the_api_key_is_never_in_debug_output() {
        let key: ApiKey = "mp_secret".parse().unwrap();
        assert!(!format!("{key:?}").contains("mp_secret"));
        assert!(" ".parse::<ApiKey>().is_err());
    }
}
