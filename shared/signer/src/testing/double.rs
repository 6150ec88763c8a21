//! A Key Vault test double: the documented REST surface `KeyVaultSigner` uses, holding a real
//! secp256k1 key.
//!
//! - `GET /keys/{name}`, `/keys/{name}/`, `/keys/{name}/{version}` → key bundle
//!   `{"key": {kid, kty "EC-HSM", crv "P-256K", x, y, key_ops}, "attributes": {...}}`
//! - `POST /keys/{name}/{version}/sign` and `/keys/{name}//sign` (the SDK's unversioned path),
//!   body `{"alg": "ES256K", "value": base64url(32 bytes)}` → `{"kid", "value": base64url(r‖s)}`
//! - a request without the expected bearer token → 401 with the Key Vault
//!   `WWW-Authenticate: Bearer authorization="…", resource="https://vault.azure.net"` challenge
//! - injected faults: 429 `Throttled` (optional `Retry-After`), 5xx, slow responses, and bad
//!   signatures (wrong key, wrong length)
//! - every `high_s_every`-th signature is returned in its high-s form (n - s), as Key Vault
//!   may do; counted so tests can check both forms were exercised.
//! - service-like load ([`DoubleOptions::sign_latency`], [`DoubleOptions::throttle`]): every
//!   sign answered after a fixed latency (an HSM round trip), and 429 bursts with
//!   `Retry-After` at a steady share of sign requests (Key Vault's per-vault limits), counted
//!   in [`SignStats`] for benchmarks.
//!

use alloy::signers::k256::{
    Scalar,
    ecdsa::{Signature, SigningKey, signature::hazmat::PrehashSigner},
    elliptic_curve::PrimeField,
};
use axum::{
    Router,
    body::Bytes,
    extract::State,
    http::{HeaderMap, Method, StatusCode, Uri, header},
    response::{IntoResponse, Response},
};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use serde_json::{Value, json};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The only token the double accepts (what the fake credential hands out).
pub const TOKEN: &str = "fake-entra-token";
/// Tenant named in the challenge.
pub const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";

/// A fault the next authorized request (any route) meets, in injection order.
#[derive(Clone, Debug)]
pub enum Fault {
    /// 429 `Throttled`, with `Retry-After: <secs>` when given.
    Throttle { retry_after_secs: Option<u64> },
    /// A 5xx (or any) status with a Key Vault error body.
    Status(u16),
    /// Answer normally, but only after this pause.
    Delay(Duration),
}

/// A corruption the next signature meets, in injection order.
#[derive(Clone, Debug)]
pub enum BadSignature {
    /// Sign with another key (as a wrong key version would).
    OtherKey(SigningKey),
    /// Return these bytes instead of r‖s.
    Bytes(Vec<u8>),
}

/// One request the double saw.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: Method,
    pub path: String,
    pub authorized: bool,
    pub status: u16,
}

pub struct DoubleOptions {
    /// `https://<vault>.vault.azure.net/` (the URL the client keeps).
    pub vault_url: String,
    pub key_name: String,
    pub key_version: String,
    pub signing_key: SigningKey,
    /// 0: never high-s; 1: always; k: signatures 0, k, 2k, … are returned high-s.
    pub high_s_every: u64,
    /// Pause before every sign answer that is not a fault (Key Vault's HSM round trip is
    /// about 90 ms).
    pub sign_latency: Duration,
    /// 429 bursts on sign requests, if any.
    pub throttle: Option<ThrottleBursts>,
}

/// Sign requests are numbered from 0 in arrival order (retries included); of each `every`
/// consecutive ones, the first `burst` are answered 429 `Throttled` with
/// `Retry-After: retry_after_secs`, as a vault over its request limit does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ThrottleBursts {
    pub every: u64,
    pub burst: u64,
    pub retry_after_secs: u64,
}

impl ThrottleBursts {
    fn throttles(&self, request: u64) -> bool {
        self.every > 0 && request % self.every < self.burst
    }
}

/// What the double's sign route saw.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SignStats {
    /// Sign requests received (throttled ones and retries included).
    pub requests: u64,
    /// Of those, answered 429 by [`DoubleOptions::throttle`] or an injected [`Fault::Throttle`].
    pub throttled: u64,
}

impl DoubleOptions {
    /// Vault `meshpay-test`, key `hot-1`, a fixed key (not an anvil account, so it starts
    /// unfunded), every other signature high-s.
    pub fn new() -> Self {
        let secret = alloy::primitives::keccak256("meshpay key vault double");
        Self {
            vault_url: "https://meshpay-test.vault.azure.net/".into(),
            key_name: "hot-1".into(),
            key_version: "6f1b1a8e0c2d4e9bb3c1f00d5e7a9c21".into(),
            signing_key: SigningKey::from_slice(secret.as_slice()).expect("valid scalar"),
            high_s_every: 2,
            sign_latency: Duration::ZERO,
            throttle: None,
        }
    }

    /// The same options signing with `key` (an anvil account's, to sign for a funded wallet).
    pub fn with_key(self, key: SigningKey) -> Self {
        Self {
            signing_key: key,
            ..self
        }
    }
}

impl Default for DoubleOptions {
    fn default() -> Self {
        Self::new()
    }
}

struct Shared {
    options: DoubleOptions,
    signatures: AtomicU64,
    high_s_returned: AtomicU64,
    sign_requests: AtomicU64,
    throttled: AtomicU64,
    faults: Mutex<VecDeque<Fault>>,
    bad_signatures: Mutex<VecDeque<BadSignature>>,
    seen: Mutex<Vec<Seen>>,
}

/// A running double on 127.0.0.1; stopped on drop.
pub struct KeyVaultDouble {
    shared: Arc<Shared>,
    addr: SocketAddr,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for KeyVaultDouble {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl KeyVaultDouble {
    pub async fn start(options: DoubleOptions) -> Self {
        let shared = Arc::new(Shared {
            options,
            signatures: AtomicU64::new(0),
            high_s_returned: AtomicU64::new(0),
            sign_requests: AtomicU64::new(0),
            throttled: AtomicU64::new(0),
            faults: Mutex::default(),
            bad_signatures: Mutex::default(),
            seen: Mutex::default(),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local addr");
        let app = Router::new()
            .fallback(handle)
            .with_state(Arc::clone(&shared));
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.expect("double serves");
        });
        Self {
            shared,
            addr,
            server,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn options(&self) -> &DoubleOptions {
        &self.shared.options
    }

    pub fn inject(&self, fault: Fault, times: usize) {
        let mut faults = self.shared.faults.lock().expect("faults lock");
        faults.extend(std::iter::repeat_n(fault, times));
    }

    pub fn clear_faults(&self) {
        self.shared.faults.lock().expect("faults lock").clear();
    }

    pub fn corrupt_next_signature(&self, bad: BadSignature) {
        self.shared
            .bad_signatures
            .lock()
            .expect("bad signatures lock")
            .push_back(bad);
    }

    /// Signatures produced (good ones), and how many of them were sent in high-s form.
    pub fn signature_counts(&self) -> (u64, u64) {
        (
            self.shared.signatures.load(Ordering::SeqCst),
            self.shared.high_s_returned.load(Ordering::SeqCst),
        )
    }

    /// Sign requests and 429s so far.
    pub fn sign_stats(&self) -> SignStats {
        SignStats {
            requests: self.shared.sign_requests.load(Ordering::SeqCst),
            throttled: self.shared.throttled.load(Ordering::SeqCst),
        }
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.shared.seen.lock().expect("seen lock").clone()
    }
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let expected = format!("Bearer {TOKEN}");
    let authorized = headers
        .get(header::AUTHORIZATION)
        .is_some_and(|value| value == expected.as_str());
    let response = if authorized {
        respond(&shared, &method, &uri, &body).await
    } else {
        challenge()
    };
    shared.seen.lock().expect("seen lock").push(Seen {
        method,
        path: uri.path().to_owned(),
        authorized,
        status: response.status().as_u16(),
    });
    response
}

fn challenge() -> Response {
    let challenge = format!(
        r#"Bearer authorization="https://login.microsoftonline.com/{TENANT}", resource="https://vault.azure.net""#
    );
    let body = error_body(
        "Unauthorized",
        "AKV10000: Request is missing a Bearer or PoP token.",
    );
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, challenge)],
        body,
    )
        .into_response()
}

async fn respond(shared: &Shared, method: &Method, uri: &Uri, body: &[u8]) -> Response {
    if !uri.query().unwrap_or_default().contains("api-version=") {
        return error(
            StatusCode::BAD_REQUEST,
            "BadParameter",
            "The api-version query parameter is missing.",
        );
    }
    let segments: Vec<&str> = uri.path().split('/').collect();
    let is_sign = method == Method::POST && segments.last() == Some(&"sign");
    let request = if is_sign {
        shared.sign_requests.fetch_add(1, Ordering::SeqCst)
    } else {
        0
    };
    let fault = shared.faults.lock().expect("faults lock").pop_front();
    let faulted = fault.is_some();
    // Injected faults come first; the load settings apply to sign requests without one.
    let load_throttle = shared
        .options
        .throttle
        .filter(|throttle| is_sign && !faulted && throttle.throttles(request));
    if is_sign && matches!(fault, Some(Fault::Throttle { .. })) || load_throttle.is_some() {
        shared.throttled.fetch_add(1, Ordering::SeqCst);
    }
    match fault {
        Some(Fault::Throttle { retry_after_secs }) => return throttled(retry_after_secs),
        Some(Fault::Status(code)) => {
            let status = StatusCode::from_u16(code).expect("valid status");
            return error(status, "InternalServerError", "Injected failure.");
        }
        Some(Fault::Delay(pause)) => tokio::time::sleep(pause).await,
        None => {}
    }
    let options = &shared.options;
    if let Some(throttle) = load_throttle {
        return throttled(Some(throttle.retry_after_secs));
    }
    if is_sign && !faulted && !options.sign_latency.is_zero() {
        tokio::time::sleep(options.sign_latency).await;
    }
    match (method, segments.as_slice()) {
        (&Method::GET, ["", "keys", name] | ["", "keys", name, ""])
            if *name == options.key_name =>
        {
            key_bundle(options)
        }
        (&Method::GET, ["", "keys", name, version])
            if *name == options.key_name && *version == options.key_version =>
        {
            key_bundle(options)
        }
        (&Method::POST, ["", "keys", name, version, "sign"])
            if *name == options.key_name
                && (version.is_empty() || *version == options.key_version) =>
        {
            sign(shared, body)
        }
        (_, ["", "keys", name, ..]) => error(
            StatusCode::NOT_FOUND,
            "KeyNotFound",
            &format!("A key with (name/id) {name} was not found in this key vault."),
        ),
        _ => error(StatusCode::NOT_FOUND, "NotFound", "No such route."),
    }
}

fn key_bundle(options: &DoubleOptions) -> Response {
    let point = options.signing_key.verifying_key().to_encoded_point(false);
    let (x, y) = (
        point.x().expect("uncompressed x"),
        point.y().expect("uncompressed y"),
    );
    let bundle = json!({
        "key": {
            "kid": kid(options),
            "kty": "EC-HSM",
            "crv": "P-256K",
            "key_ops": ["sign", "verify"],
            "x": URL_SAFE_NO_PAD.encode(x),
            "y": URL_SAFE_NO_PAD.encode(y),
        },
        "attributes": {
            "enabled": true,
            "created": 1_767_225_600,
            "updated": 1_767_225_600,
            "recoveryLevel": "Recoverable+Purgeable",
            "exportable": false,
        },
    });
    axum::Json(bundle).into_response()
}

fn sign(shared: &Shared, body: &[u8]) -> Response {
    let Ok(request) = serde_json::from_slice::<Value>(body) else {
        return error(StatusCode::BAD_REQUEST, "BadParameter", "Body is not JSON.");
    };
    if request["alg"] != "ES256K" {
        return error(
            StatusCode::BAD_REQUEST,
            "BadParameter",
            "Key and signing algorithm are incompatible.",
        );
    }
    let digest = request["value"]
        .as_str()
        .and_then(|value| URL_SAFE_NO_PAD.decode(value).ok());
    let Some(digest) = digest.filter(|digest| digest.len() == 32) else {
        let len = request["value"].as_str().map_or(0, str::len);
        return error(
            StatusCode::BAD_REQUEST,
            "BadParameter",
            &format!(
                "Invalid length of 'value': {len} bytes. ES256K requires 32 bytes, encoded with base64url."
            ),
        );
    };
    let options = &shared.options;
    let bad = shared
        .bad_signatures
        .lock()
        .expect("bad signatures lock")
        .pop_front();
    let raw = match bad {
        Some(BadSignature::Bytes(bytes)) => bytes,
        Some(BadSignature::OtherKey(key)) => sign_digest(&key, &digest).to_bytes().to_vec(),
        None => {
            let low: Signature = sign_digest(&options.signing_key, &digest);
            let n = shared.signatures.fetch_add(1, Ordering::SeqCst);
            let high_s = options.high_s_every > 0 && n.is_multiple_of(options.high_s_every);
            if high_s {
                shared.high_s_returned.fetch_add(1, Ordering::SeqCst);
                to_high_s(&low).to_bytes().to_vec()
            } else {
                low.to_bytes().to_vec()
            }
        }
    };
    axum::Json(json!({ "kid": kid(options), "value": URL_SAFE_NO_PAD.encode(raw) })).into_response()
}

/// k256 signs with RFC 6979 and returns low-s.
fn sign_digest(key: &SigningKey, digest: &[u8]) -> Signature {
    key.sign_prehash(digest).expect("32-byte digest signs")
}

/// (r, n - s): equally valid ECDSA, illegal in Ethereum transactions (EIP-2).
pub fn to_high_s(signature: &Signature) -> Signature {
    let s: Scalar = *signature.s().as_ref();
    Signature::from_scalars(signature.r().to_repr(), (-s).to_repr()).expect("n - s is in range")
}

fn kid(options: &DoubleOptions) -> String {
    format!(
        "{}keys/{}/{}",
        options.vault_url, options.key_name, options.key_version
    )
}

fn throttled(retry_after_secs: Option<u64>) -> Response {
    let body = error_body(
        "Throttled",
        "Request was not processed because too many requests were received. Reason: VaultRequestTypeLimitReached",
    );
    let mut response = (StatusCode::TOO_MANY_REQUESTS, body).into_response();
    if let Some(secs) = retry_after_secs {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, secs.into());
    }
    response
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    (status, error_body(code, message)).into_response()
}

fn error_body(code: &str, message: &str) -> axum::Json<Value> {
    axum::Json(json!({ "error": { "code": code, "message": message } }))
}
