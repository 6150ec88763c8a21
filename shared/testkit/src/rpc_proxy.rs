//! A JSON-RPC fault proxy in front of a chain node (anvil): what a flaky provider does to a
//! client, on demand and at seeded random.
//!
//! Point the handler's chains config at [`RpcProxy::url`] instead of the node and choose
//! [`Faults`]: errors (a JSON-RPC error or HTTP 503), timeouts (no answer, then the connection
//! closes), a send the node accepted whose reply is lost, stale reads (`null` for the receipt or
//! the transaction of a mined hash), a lagging block number, and a load balancer alternating
//! between the node and a view of it some blocks behind. Every fault injected is counted by
//! kind ([`RpcProxy::injected`]). The test itself reads the node directly, never the proxy.
//!
//! A lost reply is a closed connection without a response (the hyper service returns an
//! error), which the client sees exactly as a provider that died after accepting the request.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// Reads of a transaction by hash: what a lagging node answers `null` to for a mined hash.
const HASH_READS: [&str; 2] = ["eth_getTransactionReceipt", "eth_getTransactionByHash"];

/// Fault kinds as counted by [`RpcProxy::injected`].
pub mod kind {
    /// A JSON-RPC error or an HTTP 503 instead of forwarding.
    pub const ERROR: &str = "rpc_error";
    /// No answer for [`super::Faults::hang`], then the connection closes.
    pub const TIMEOUT: &str = "rpc_timeout";
    /// `eth_sendRawTransaction` forwarded (the node has it), then the reply dropped.
    pub const SEND_REPLY_DROPPED: &str = "rpc_send_reply_dropped";
    /// `null` for the receipt or transaction of a hash the node has mined.
    pub const STALE_READ: &str = "rpc_stale_read";
    /// `eth_blockNumber` answered 1–3 blocks behind.
    pub const LAGGING_BLOCK: &str = "rpc_lagging_block";
    /// A request answered by the load balancer's lagging view.
    pub const LAGGING_VIEW: &str = "rpc_lagging_view";
    /// A read of a hash hidden on purpose ([`super::Faults::hide_first_reads`],
    /// [`super::RpcProxy::hide_hash`]).
    pub const HIDDEN_HASH: &str = "rpc_hidden_hash";
}

/// What the proxy does to requests. Rates are per mille of the requests they apply to; the
/// default forwards everything untouched.
#[derive(Debug, Clone)]
pub struct Faults {
    /// Any request: answered with an error instead of being forwarded.
    pub error: u16,
    /// Any request: no answer for `hang`, then the connection closes.
    pub timeout: u16,
    /// `eth_sendRawTransaction`: forwarded, then the connection closes without the reply.
    pub drop_send_reply: u16,
    /// Receipt / transaction-by-hash reads of a mined hash: answered `null`.
    pub stale_read: u16,
    /// `eth_blockNumber`: answered 1–3 blocks behind.
    pub lagging_block: u16,
    /// `Some(lag)`: every other request goes to a view of the node `lag` blocks behind (block
    /// number, nonces, `latest` blocks and the receipts of newer blocks as that node sees them).
    pub load_balancer: Option<u64>,
    /// The first `n` receipt / transaction-by-hash reads of every mined hash answer `null`.
    pub hide_first_reads: u32,
    /// How long a timed-out request is held before its connection closes.
    pub hang: Duration,
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            error: 0,
            timeout: 0,
            drop_send_reply: 0,
            stale_read: 0,
            lagging_block: 0,
            load_balancer: None,
            hide_first_reads: 0,
            hang: Duration::from_secs(8),
        }
    }
}

impl Faults {
    /// No fault: every request forwarded as it is.
    pub fn none() -> Faults {
        Faults::default()
    }
}

/// A running proxy; stops on drop.
pub struct RpcProxy {
    url: String,
    state: Arc<ProxyState>,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for RpcProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RpcProxy").field("url", &self.url).finish()
    }
}

struct ProxyState {
    upstream: String,
    http: reqwest::Client,
    faults: Mutex<Faults>,
    rng: Mutex<StdRng>,
    injected: Mutex<BTreeMap<&'static str, u64>>,
    reads_per_hash: Mutex<HashMap<String, u32>>,
    hidden: Mutex<HashSet<String>>,
    requests: Mutex<u64>,
}

/// The connection is closed without an answer.
#[derive(Debug)]
struct Dropped;

impl std::fmt::Display for Dropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("reply dropped by the fault proxy")
    }
}

impl std::error::Error for Dropped {}

impl RpcProxy {
    /// A proxy on a free loopback port in front of `upstream` (`http://127.0.0.1:<anvil>`),
    /// deciding its random faults from `seed`. Starts with [`Faults::none`].
    pub async fn start(upstream: &str, seed: u64) -> RpcProxy {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the RPC proxy");
        let addr: SocketAddr = listener.local_addr().expect("proxy address");
        let state = Arc::new(ProxyState {
            upstream: upstream.to_owned(),
            http: reqwest::Client::new(),
            faults: Mutex::new(Faults::none()),
            rng: Mutex::new(StdRng::seed_from_u64(seed)),
            injected: Mutex::default(),
            reads_per_hash: Mutex::default(),
            hidden: Mutex::default(),
            requests: Mutex::new(0),
        });
        let task = tokio::spawn(accept_loop(listener, state.clone()));
        RpcProxy {
            url: format!("http://{addr}"),
            state,
            task,
        }
    }

    /// The proxy's JSON-RPC URL (what the handler's chains config names).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Replaces the faults applied from the next request on.
    pub fn set_faults(&self, faults: Faults) {
        *self.state.faults.lock().unwrap() = faults;
    }

    /// The faults currently applied.
    pub fn faults(&self) -> Faults {
        self.state.faults.lock().unwrap().clone()
    }

    /// Every receipt / transaction read of `hash` answers `null` until [`RpcProxy::reveal_hash`].
    pub fn hide_hash(&self, hash: &str) {
        self.state
            .hidden
            .lock()
            .unwrap()
            .insert(hash.to_ascii_lowercase());
    }

    /// Ends [`RpcProxy::hide_hash`] for `hash`.
    pub fn reveal_hash(&self, hash: &str) {
        self.state
            .hidden
            .lock()
            .unwrap()
            .remove(&hash.to_ascii_lowercase());
    }

    /// Faults injected so far, by [`kind`].
    pub fn injected(&self) -> BTreeMap<&'static str, u64> {
        self.state.injected.lock().unwrap().clone()
    }

    /// Requests received so far.
    pub fn requests(&self) -> u64 {
        *self.state.requests.lock().unwrap()
    }
}

impl Drop for RpcProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn accept_loop(listener: TcpListener, state: Arc<ProxyState>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let state = state.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| handle(state.clone(), request));
            // A dropped reply ends the connection with an error: expected, not reported.
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// What one request gets, decided before it is forwarded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Plan {
    Forward,
    Error { http: bool },
    Hang,
    DropReply,
    StaleRead,
    LaggingBlock(u64),
    LaggingView(u64),
}

impl ProxyState {
    fn count(&self, kind: &'static str) {
        *self.injected.lock().unwrap().entry(kind).or_default() += 1;
    }

    fn plan(&self, method: &str) -> Plan {
        let faults = self.faults.lock().unwrap().clone();
        let turn = {
            let mut requests = self.requests.lock().unwrap();
            *requests += 1;
            *requests
        };
        let mut rng = self.rng.lock().unwrap();
        let mut roll = |per_mille: u16| per_mille > 0 && rng.gen_range(0..1000) < per_mille;
        if roll(faults.error) {
            return Plan::Error {
                http: turn % 2 == 0,
            };
        }
        if roll(faults.timeout) {
            return Plan::Hang;
        }
        if method == "eth_sendRawTransaction" && roll(faults.drop_send_reply) {
            return Plan::DropReply;
        }
        if HASH_READS.contains(&method) && roll(faults.stale_read) {
            return Plan::StaleRead;
        }
        if method == "eth_blockNumber" && roll(faults.lagging_block) {
            return Plan::LaggingBlock(rng.gen_range(1..=3));
        }
        match faults.load_balancer {
            Some(lag) if lag > 0 && turn % 2 == 1 => Plan::LaggingView(lag),
            _ => Plan::Forward,
        }
    }

    async fn forward(&self, body: &Value) -> Result<Value, Dropped> {
        self.http
            .post(&self.upstream)
            .json(body)
            .send()
            .await
            .map_err(|_| Dropped)?
            .json()
            .await
            .map_err(|_| Dropped)
    }

    async fn head(&self) -> Result<u64, Dropped> {
        let reply = self
            .forward(&json!({"jsonrpc": "2.0", "id": 0, "method": "eth_blockNumber", "params": []}))
            .await?;
        reply["result"]
            .as_str()
            .and_then(parse_quantity)
            .ok_or(Dropped)
    }

    /// `true` when `hash` must read as unknown now (targeted hiding), counting the read.
    fn hides(&self, hash: &str, first_reads: u32) -> bool {
        let hash = hash.to_ascii_lowercase();
        if self.hidden.lock().unwrap().contains(&hash) {
            return true;
        }
        if first_reads == 0 {
            return false;
        }
        let mut reads = self.reads_per_hash.lock().unwrap();
        let seen = reads.entry(hash).or_default();
        *seen += 1;
        *seen <= first_reads
    }

    /// The request as a node `lag` blocks behind would answer it.
    async fn lagging_view(&self, request: &Value, lag: u64) -> Result<Value, Dropped> {
        let head = self.head().await?;
        let behind = head.saturating_sub(lag);
        let tag = format!("{behind:#x}");
        let method = request["method"].as_str().unwrap_or_default();
        let mut request = request.clone();
        match method {
            "eth_blockNumber" => return Ok(result_of(&request, json!(tag))),
            "eth_getTransactionCount" | "eth_getBalance" | "eth_call" | "eth_getBlockByNumber" => {
                if let Some(params) = request["params"].as_array_mut() {
                    let at = if method == "eth_getBlockByNumber" {
                        0
                    } else {
                        1
                    };
                    if let Some(block) = params.get_mut(at)
                        && matches!(block.as_str(), Some("latest" | "pending" | "safe"))
                    {
                        *block = json!(tag);
                    }
                }
            }
            _ => {}
        }
        let mut reply = self.forward(&request).await?;
        if HASH_READS.contains(&method) {
            let mined_at = reply["result"]["blockNumber"]
                .as_str()
                .and_then(parse_quantity);
            if mined_at.is_some_and(|n| n > behind) {
                reply["result"] = Value::Null;
            }
        }
        Ok(reply)
    }
}

async fn handle(
    state: Arc<ProxyState>,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Dropped> {
    let body = request
        .into_body()
        .collect()
        .await
        .map_err(|_| Dropped)?
        .to_bytes();
    let Ok(call) = serde_json::from_slice::<Value>(&body) else {
        return Ok(reply(
            StatusCode::BAD_REQUEST,
            &json!({"error": "not JSON"}),
        ));
    };
    // Batches are forwarded untouched: meshpay sends single calls.
    if call.is_array() {
        return Ok(reply(StatusCode::OK, &state.forward(&call).await?));
    }
    let method = call["method"].as_str().unwrap_or_default().to_owned();
    let plan = state.plan(&method);
    let answer = match plan {
        Plan::Error { http } => {
            state.count(kind::ERROR);
            if http {
                return Ok(reply(
                    StatusCode::SERVICE_UNAVAILABLE,
                    &json!({"error": "injected"}),
                ));
            }
            json!({"jsonrpc": "2.0", "id": call["id"],
                   "error": {"code": -32603, "message": "injected fault: internal error"}})
        }
        Plan::Hang => {
            state.count(kind::TIMEOUT);
            let hang = state.faults.lock().unwrap().hang;
            tokio::time::sleep(hang).await;
            return Err(Dropped);
        }
        Plan::DropReply => {
            state.forward(&call).await?;
            state.count(kind::SEND_REPLY_DROPPED);
            return Err(Dropped);
        }
        Plan::LaggingBlock(lag) => {
            let head = state.head().await?;
            state.count(kind::LAGGING_BLOCK);
            result_of(&call, json!(format!("{:#x}", head.saturating_sub(lag))))
        }
        Plan::LaggingView(lag) => {
            state.count(kind::LAGGING_VIEW);
            state.lagging_view(&call, lag).await?
        }
        Plan::StaleRead | Plan::Forward => {
            let mut answer = state.forward(&call).await?;
            if HASH_READS.contains(&method.as_str()) && !answer["result"].is_null() {
                let hash = call["params"][0].as_str().unwrap_or_default();
                let first_reads = state.faults.lock().unwrap().hide_first_reads;
                if state.hides(hash, first_reads) {
                    state.count(kind::HIDDEN_HASH);
                    answer["result"] = Value::Null;
                } else if plan == Plan::StaleRead {
                    state.count(kind::STALE_READ);
                    answer["result"] = Value::Null;
                }
            }
            answer
        }
    };
    Ok(reply(StatusCode::OK, &answer))
}

fn result_of(call: &Value, result: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": call["id"], "result": result})
}

fn reply(status: StatusCode, body: &Value) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    response
}

fn parse_quantity(hex: &str) -> Option<u64> {
    u64::from_str_radix(hex.strip_prefix("0x")?, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::anvil::Anvil;

    async fn call(url: &str, method: &str, params: Value) -> Result<Value, String> {
        let body = json!({"jsonrpc": "2.0", "id": 7, "method": method, "params": params});
        reqwest::Client::new()
            .post(url)
            .json(&body)
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .map_err(|e| e.to_string())?
            .json::<Value>()
            .await
            .map_err(|e| e.to_string())
    }

    async fn mined_hash(anvil: &Anvil) -> String {
        let tx = json!({"from": anvil.address(0), "to": anvil.address(5), "value": "0x1"});
        let receipt = anvil.send_and_wait(tx).await;
        receipt["transactionHash"].as_str().unwrap().to_owned()
    }

    #[tokio::test]
    async fn forwards_untouched_without_faults() {
        let anvil = Anvil::start().await;
        let proxy = RpcProxy::start(anvil.url(), 1).await;
        let reply = call(proxy.url(), "eth_chainId", json!([])).await.unwrap();
        assert_eq!(reply["result"], json!("0x7a69"));
        assert_eq!(reply["id"], json!(7));
        assert!(proxy.injected().is_empty());
    }

    #[tokio::test]
    async fn hides_the_first_reads_of_a_mined_hash_then_answers_the_receipt() {
        let anvil = Anvil::start().await;
        let proxy = RpcProxy::start(anvil.url(), 1).await;
        let hash = mined_hash(&anvil).await;
        proxy.set_faults(Faults {
            hide_first_reads: 2,
            ..Faults::none()
        });
        let read = || call(proxy.url(), "eth_getTransactionReceipt", json!([hash]));
        assert_eq!(read().await.unwrap()["result"], Value::Null);
        assert_eq!(read().await.unwrap()["result"], Value::Null);
        assert_eq!(
            read().await.unwrap()["result"]["transactionHash"],
            json!(hash)
        );
        assert_eq!(proxy.injected().get(kind::HIDDEN_HASH), Some(&2));
    }

    #[tokio::test]
    async fn a_dropped_send_reply_still_reaches_the_node() {
        let anvil = Anvil::start().await;
        let proxy = RpcProxy::start(anvil.url(), 1).await;
        proxy.set_faults(Faults {
            drop_send_reply: 1000,
            ..Faults::none()
        });
        // anvil's dev accounts are unlocked: eth_sendTransaction stands in for a signed send
        // and is not affected; sign through anvil and send the raw bytes.
        let tx = json!({"from": anvil.address(0), "to": anvil.address(6), "value": "0x2",
                        "gas": "0x5208", "maxFeePerGas": "0x77359400",
                        "maxPriorityFeePerGas": "0x1", "nonce": "0x0", "chainId": "0x7a69"});
        let raw = anvil.rpc("eth_signTransaction", json!([tx])).await;
        let sent = call(proxy.url(), "eth_sendRawTransaction", json!([raw])).await;
        assert!(sent.is_err(), "the reply must be lost: {sent:?}");
        // The node accepted it before the reply was dropped; it is mined on the node's own
        // schedule, so wait for the block rather than read once.
        let expected = meshpay_domain::U256::from(10u128.pow(22) + 2);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
        let mut balance = anvil.eth_balance(anvil.address(6)).await;
        while balance != expected && std::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            balance = anvil.eth_balance(anvil.address(6)).await;
        }
        assert_eq!(balance, expected, "the node must have the transaction");
        assert_eq!(proxy.injected().get(kind::SEND_REPLY_DROPPED), Some(&1));
    }

    #[tokio::test]
    async fn the_load_balancer_answers_every_other_read_from_a_lagging_view() {
        let anvil = Anvil::start().await;
        let proxy = RpcProxy::start(anvil.url(), 1).await;
        let hash = mined_hash(&anvil).await;
        anvil.mine(1).await;
        proxy.set_faults(Faults {
            load_balancer: Some(5),
            ..Faults::none()
        });
        let mut nulls = 0;
        let mut found = 0;
        for _ in 0..4 {
            let reply = call(proxy.url(), "eth_getTransactionReceipt", json!([hash]))
                .await
                .unwrap();
            if reply["result"].is_null() {
                nulls += 1;
            } else {
                found += 1;
            }
        }
        assert_eq!((nulls, found), (2, 2));
    }

    #[tokio::test]
    async fn errors_come_as_rpc_errors_or_http_503() {
        let anvil = Anvil::start().await;
        let proxy = RpcProxy::start(anvil.url(), 1).await;
        proxy.set_faults(Faults {
            error: 1000,
            ..Faults::none()
        });
        let first = call(proxy.url(), "eth_chainId", json!([])).await.unwrap();
        let second = call(proxy.url(), "eth_chainId", json!([])).await.unwrap();
        let rpc_errors = [&first, &second]
            .iter()
            .filter(|r| r["error"]["code"] == json!(-32603))
            .count();
        assert_eq!(rpc_errors, 1, "{first} {second}");
        assert_eq!(proxy.injected().get(kind::ERROR), Some(&2));
    }
}
