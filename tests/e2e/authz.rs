//! The authorization matrix, through devhost: every operation the served OpenAPI document lists
//! × {no key, malformed, unknown, revoked, wrong scope, another merchant's resource}. The
//! operations and the scope each needs come from the document itself (`security` names the
//! scope), so an endpoint registered later is covered without touching this file; one whose
//! path names a resource this file cannot create yet fails with a message saying so.
//!
//! What holds for every operation that takes a key: each refusal is the documented status with
//! a problem+json body and a stable code; the documented scope is the one enforced (a key with
//! only that scope gets past authorization, a key with every other scope is 403); and another
//! merchant's resource answers exactly as a resource that does not exist (status, code, body).

use std::collections::{BTreeMap, BTreeSet};
use std::str::FromStr;
use std::time::{Duration, Instant};

use alloy::primitives::Address;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use meshpay_domain::{Amount, ApiKeyId, IdempotencyKey, InvoiceId, Scope, Scopes};
use meshpay_payins::deposit::{DepositFactory, invoice_salt};
use meshpay_store::{CreateInvoiceOutcome, NewInvoice};
use meshpay_testkit::anvil::DEV_DEPOSIT_FACTORY_ADDRESS;
use meshpay_testkit::api::{Client, Method, Reply};
use meshpay_testkit::assets::usdc;
use meshpay_testkit::merchant::{Merchant, MerchantSetup};
use meshpay_testkit::payment::PaymentSetup;
use meshpay_testkit::stack::{HandlerSettings, Stack};
use serde_json::{Value, json};
use time::OffsetDateTime;

/// Tags of the operations that take no API key: liveness, the document, development probes and
/// the chain provider's webhook (signed by the provider instead). Anything else must name its
/// scope.
/// The pay page and its status are public by design (the unguessable invoice id is the
/// capability).
const WITHOUT_API_KEY: [&str; 5] = ["health", "document", "diagnostics", "chain webhooks", "pay"];

/// Longest wait for the notify timer (every second here) to create a webhook delivery.
const DELIVERY_WAIT: Duration = Duration::from_secs(60);

/// One operation of the document that takes an API key.
#[derive(Debug, Clone)]
struct Operation {
    method: Method,
    /// `/api/payments/{id}/cancel`, as documented.
    template: String,
    scope: Scope,
    /// The collection its `{id}` belongs to (`payments`), when the path has one.
    resource: Option<String>,
    has_body: bool,
    /// Documented response statuses (`"401"`, ...).
    responses: BTreeSet<String>,
}

impl Operation {
    fn name(&self) -> String {
        format!("{} {}", self.method, self.template)
    }

    /// The path under `/api` with `{id}` set to `id`.
    fn path(&self, id: Option<&str>) -> String {
        let path = self.template.trim_start_matches("/api");
        match id {
            Some(id) => path.replace("{id}", id),
            None => path.to_owned(),
        }
    }

    fn body(&self) -> Option<String> {
        self.has_body.then(|| "{}".to_owned())
    }
}

/// The operations that take a key, read from the served document; panics on an operation that
/// neither names one scope nor carries a tag of [`WITHOUT_API_KEY`].
fn operations(document: &Value) -> Vec<Operation> {
    let mut out = Vec::new();
    for (template, item) in document["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let name = format!("{method} {template}");
            let security = op["security"].as_array().filter(|s| !s.is_empty());
            let Some(security) = security else {
                let tag = op["tags"][0].as_str().unwrap_or_default();
                assert!(
                    WITHOUT_API_KEY.contains(&tag),
                    "{name} takes no API key but is not tagged as an open operation"
                );
                continue;
            };
            let scopes = security[0]["api_key"].as_array();
            let scope = scopes
                .filter(|s| s.len() == 1)
                .and_then(|s| s[0].as_str())
                .and_then(|s| s.parse::<Scope>().ok())
                .unwrap_or_else(|| panic!("{name}: security must name its one scope"));
            let segments: Vec<&str> = template.split('/').collect();
            let resource = segments
                .iter()
                .position(|s| s.starts_with('{'))
                .map(|i| segments[i - 1].to_owned());
            assert!(
                !template.contains('{') || template.matches('{').count() == 1,
                "{name}: one path parameter is all this matrix fills in"
            );
            out.push(Operation {
                method: method.to_uppercase().parse().unwrap(),
                template: template.clone(),
                scope,
                resource,
                has_body: op["requestBody"].is_object(),
                responses: op["responses"]
                    .as_object()
                    .unwrap()
                    .keys()
                    .cloned()
                    .collect(),
            });
        }
    }
    out
}

/// A problem+json refusal with `status` and `code`, which the operation documents.
fn assert_refused(op: &Operation, case: &str, reply: &Reply, status: u16, code: &str) {
    let name = op.name();
    assert_eq!(
        (reply.status, reply.code()),
        (status, code),
        "{name} {case}: {}",
        reply.body
    );
    assert_eq!(
        reply.header("content-type"),
        Some("application/problem+json"),
        "{name} {case}"
    );
    assert_eq!(reply.body["status"], json!(status), "{name} {case}");
    assert_eq!(
        reply.body["type"],
        json!(format!("urn:meshpay:problem:{code}")),
        "{name} {case}"
    );
    assert!(
        reply.body["detail"].as_str().is_some_and(|d| !d.is_empty()),
        "{name} {case}"
    );
    assert!(
        op.responses.contains(&status.to_string()),
        "{name} answers {status} for {case} but does not document it"
    );
}

/// `id` with its last character changed: the same kind of id, owned by nobody.
fn unknown_like(id: &str) -> String {
    let mut unknown = id.to_owned();
    let last = unknown.pop().unwrap();
    unknown.push(if last == '0' { '1' } else { '0' });
    unknown
}

/// The stack: no chain (nothing here reaches one), the notify timer every second so a webhook
/// delivery exists to be asked for.
async fn start() -> Stack {
    let settings = HandlerSettings::default()
        .env("NOTIFY_SCHEDULE", "* * * * * *")
        .env("MESHPAY_WEBHOOK_URL_POLICY", "allow-private")
        .env("MESHPAY_WEBHOOK_SECRET_KEY", STANDARD.encode([7u8; 32]));
    Stack::builder()
        .without_chain()
        .devhost(settings)
        .start()
        .await
}

/// Alice's resources by collection (`payments` → `pay_…`): one of every kind a path can name.
async fn owned_resources(stack: &Stack, alice: &Merchant) -> BTreeMap<String, String> {
    let api = stack.api();
    let quote = PaymentSetup::new(usdc(), 1_000_000)
        .quote(&stack.store, alice.id)
        .await;
    // The endpoint first, so the payment's `payment.authorized` event is delivered to it.
    let (endpoint, _) = api
        .create_webhook_endpoint(&alice.key, "http://127.0.0.1:9/hook")
        .await;
    let payment = PaymentSetup::new(usdc(), 2_000_000)
        .authorize(&stack.store, alice.id)
        .await;
    let started = Instant::now();
    let delivery = loop {
        let list = api.get("/webhook-deliveries", &alice.key).await;
        if let Some(id) = list.body["data"][0]["id"].as_str() {
            break id.to_owned();
        }
        assert!(
            started.elapsed() < DELIVERY_WAIT,
            "no delivery: {}",
            list.body
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let invoice = alice_invoice(stack, alice).await;
    BTreeMap::from([
        ("invoices".to_owned(), invoice),
        ("quotes".to_owned(), quote.id.to_string()),
        ("payments".to_owned(), payment.id.to_string()),
        ("webhook-endpoints".to_owned(), endpoint),
        ("webhook-deliveries".to_owned(), delivery),
    ])
}

/// An open invoice of alice's, written through the store: this stack has no chain, and the
/// matrix is about who may see it, not how it was created.
async fn alice_invoice(stack: &Stack, alice: &Merchant) -> String {
    let id = InvoiceId::unguessable();
    let salt = invoice_salt(id);
    let factory = Address::from_str(DEV_DEPOSIT_FACTORY_ADDRESS).unwrap();
    let new = NewInvoice {
        merchant_id: alice.id,
        idempotency_key: IdempotencyKey::new(&id.to_string()).unwrap(),
        request_hash: [0; 32],
        asset: usdc(),
        amount: Amount::from_u128(1_000_000),
        factory,
        id,
        salt,
        deposit_address: DepositFactory::at(factory).deposit_address(salt),
        reference: None,
        metadata: None,
        expires_at: OffsetDateTime::now_utc() + time::Duration::hours(1),
    };
    match stack.store.create_invoice(&new).await.unwrap() {
        CreateInvoiceOutcome::Created(invoice) => invoice.id.to_string(),
        CreateInvoiceOutcome::Replayed(_) => panic!("replayed"),
    }
}

/// The id of alice's resource `op`'s path names (panics naming the missing fixture).
fn owned_id<'a>(owned: &'a BTreeMap<String, String>, op: &Operation) -> Option<&'a str> {
    op.resource.as_ref().map(|resource| {
        owned.get(resource).map(String::as_str).unwrap_or_else(|| {
            panic!(
                "{}: add a `{resource}` resource of alice's to owned_resources",
                op.name()
            )
        })
    })
}

/// A key of alice's with exactly `scopes`, and its id.
async fn alice_key(stack: &Stack, alice: &Merchant, scopes: Scopes) -> (ApiKeyId, String) {
    let created = stack.store.create_api_key(alice.id, scopes).await.unwrap();
    (created.id, created.key.expose().to_owned())
}

#[tokio::test]
async fn every_keyed_operation_refuses_bad_keys_and_scopes_and_hides_other_merchants_resources() {
    let stack = start().await;
    let api: Client = stack.api();
    let alice = MerchantSetup::funded(1_000_000_000, 10u128.pow(18))
        .create_with_key(&stack.store)
        .await;
    let mallory = MerchantSetup::funded(1_000_000_000, 10u128.pow(18))
        .create_with_key(&stack.store)
        .await;
    let owned = owned_resources(&stack, &alice).await;

    let document = api
        .send(Method::GET, "/openapi.json", None, None, None)
        .await
        .body;
    let operations = operations(&document);
    assert!(
        operations.len() >= 13,
        "the document lists {} keyed operations",
        operations.len()
    );

    let (revoked_id, revoked) = alice_key(&stack, &alice, Scopes::all()).await;
    stack.store.revoke_api_key(revoked_id).await.unwrap();
    // A well-formed key nobody holds, and alice's key prefix with another secret.
    let unknown = format!("mp_live_{}_{}", "0".repeat(16), "0".repeat(64));
    let (prefix, _) = alice.key.rsplit_once('_').unwrap();
    let wrong_secret = format!("{prefix}_{}", "f".repeat(64));
    let bad_credentials: Vec<(&str, Option<String>)> = vec![
        ("no key", None),
        ("empty bearer", Some("Bearer ".to_owned())),
        ("malformed key", Some("Bearer hunter2".to_owned())),
        ("two tokens", Some(format!("Bearer {} x", alice.key))),
        (
            "basic scheme",
            Some(format!("Basic {}", STANDARD.encode(&alice.key))),
        ),
        ("no scheme", Some(alice.key.clone())),
        ("unknown key", Some(format!("Bearer {unknown}"))),
        ("wrong secret", Some(format!("Bearer {wrong_secret}"))),
        ("revoked key", Some(format!("Bearer {revoked}"))),
    ];

    let mut listed_by_alice = 0;
    for op in &operations {
        let alice_id = owned_id(&owned, op);
        let path = op.path(alice_id);

        for (case, authorization) in &bad_credentials {
            let reply = api
                .send_authorization(
                    op.method.clone(),
                    &path,
                    authorization.as_deref(),
                    op.body(),
                )
                .await;
            assert_refused(op, case, &reply, 401, "unauthorized");
        }

        let others: Scopes = Scope::ALL.into_iter().filter(|s| *s != op.scope).collect();
        let (_, wrong_scope) = alice_key(&stack, &alice, others).await;
        let reply = api
            .send(
                op.method.clone(),
                &path,
                Some(&wrong_scope),
                None,
                op.body(),
            )
            .await;
        assert_refused(op, "wrong scope", &reply, 403, "forbidden");

        // The documented scope alone is enough to get past authorization (read on alice's own
        // resource; anything that changes state is sent to an id nobody owns).
        let (_, only_scope) = alice_key(&stack, &alice, Scopes::from_iter([op.scope])).await;
        let probe = match alice_id {
            Some(id) if op.method != Method::GET => op.path(Some(&unknown_like(id))),
            _ => path.clone(),
        };
        let reply = api
            .send(
                op.method.clone(),
                &probe,
                Some(&only_scope),
                None,
                op.body(),
            )
            .await;
        assert!(
            ![401, 403].contains(&reply.status),
            "{} with only `{}`: {} {}",
            op.name(),
            op.scope,
            reply.status,
            reply.body
        );
        if op.method == Method::GET && alice_id.is_some() {
            assert_eq!(
                reply.status,
                200,
                "{} as the owner: {}",
                op.name(),
                reply.body
            );
        }

        match alice_id {
            Some(id) => {
                // Another merchant asking for alice's resource learns nothing: the answer is the
                // one for an id that does not exist, byte for byte once the id is masked.
                let nobody = unknown_like(id);
                let theirs = api
                    .send(
                        op.method.clone(),
                        &path,
                        Some(&mallory.key),
                        None,
                        op.body(),
                    )
                    .await;
                let missing = api
                    .send(
                        op.method.clone(),
                        &op.path(Some(&nobody)),
                        Some(&mallory.key),
                        None,
                        op.body(),
                    )
                    .await;
                assert_refused(op, "another merchant's resource", &theirs, 404, "not_found");
                assert_refused(op, "a resource nobody has", &missing, 404, "not_found");
                let masked = |reply: &Reply, id: &str| {
                    String::from_utf8_lossy(&reply.raw).replace(id, "<id>")
                };
                assert_eq!(
                    masked(&theirs, id),
                    masked(&missing, &nobody),
                    "{}: another merchant's resource answers unlike a missing one",
                    op.name()
                );
                assert_eq!(
                    theirs.header("content-type"),
                    missing.header("content-type")
                );
            }
            None if op.method == Method::GET => {
                // A listing shows another merchant none of alice's ids.
                let mine = api.get(&path, &alice.key).await;
                let theirs = api.get(&path, &mallory.key).await;
                assert_eq!(theirs.status, 200, "{}: {}", op.name(), theirs.body);
                for id in owned.values() {
                    let text = String::from_utf8_lossy(&theirs.raw);
                    assert!(
                        !text.contains(id.as_str()),
                        "{} shows mallory {id}",
                        op.name()
                    );
                    if String::from_utf8_lossy(&mine.raw).contains(id.as_str()) {
                        listed_by_alice += 1;
                    }
                }
            }
            None => {}
        }
    }
    // The listing check above looked at lists that do hold alice's resources.
    assert!(
        listed_by_alice >= 3,
        "alice's lists showed {listed_by_alice} of her ids"
    );

    // A quote is named in a body, not a path: paying with alice's quote is a missing quote.
    let theirs = api.authorize(&mallory.key, "m-1", &owned["quotes"]).await;
    let missing = api
        .authorize(&mallory.key, "m-2", &unknown_like(&owned["quotes"]))
        .await;
    assert_eq!((theirs.status, theirs.code()), (404, "not_found"));
    assert_eq!(
        (theirs.status, theirs.code(), &theirs.body["detail"]),
        (missing.status, missing.code(), &missing.body["detail"])
    );

    // Nothing any refused request did touched alice's resources.
    for (collection, id) in &owned {
        let reply = api.get(&format!("/{collection}/{id}"), &alice.key).await;
        assert_eq!(reply.status, 200, "{collection}/{id}: {}", reply.body);
    }
    let payment = api
        .get(&format!("/payments/{}", owned["payments"]), &alice.key)
        .await;
    assert_eq!(payment.body["status"], "authorized");
    let mallorys = format!(
        "SELECT count(*) FROM payments WHERE merchant_id = '{}'",
        mallory.id.as_uuid()
    );
    assert_eq!(stack.count(&mallorys).await, 0);
}
