//! The payments API (quotes, payments, cancel, balances, the OpenAPI document) through devhost
//! and `meshpay` against PostgreSQL, anvil and Azurite, with the pipeline after the API
//! switched off. Every test ends by checking the ledger invariant.

use meshpay_domain::{Amount, AssetId, PaymentEvent, PaymentId, Scope, Scopes};
use meshpay_store::{AssetLimit, Transition};
use meshpay_testkit::api::{Method, base_units};
use meshpay_testkit::payment::RECIPIENT;
use meshpay_testkit::stack::{HandlerSettings, Stack};
use serde_json::{Value, json};

/// How long to wait for queue messages.
const QUEUE_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// The API's own stage on a fresh stack.
async fn start() -> Stack {
    start_with(HandlerSettings::default()).await
}

async fn start_with(settings: HandlerSettings) -> Stack {
    Stack::builder().devhost(settings.api_only()).start().await
}

fn usdc_units(n: u128) -> u128 {
    n * 1_000_000
}

/// The total debit of a quote or payment for one asset symbol.
fn debit(view: &Value, symbol: &str) -> u128 {
    view["total_debit"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["asset"] == symbol)
        .map(|d| base_units(&d["amount"]))
        .unwrap_or(0)
}

#[tokio::test]
async fn token_quote_prices_service_fee_in_the_token_and_network_fee_in_eth() {
    let stack = start().await;
    let m = stack.merchant().await;
    let quote = stack.api().quote(&m.key, "USDC", "250.00").await;

    assert!(quote["id"].as_str().unwrap().starts_with("quo_"));
    assert_eq!(quote["chain"], "anvil");
    assert_eq!(quote["asset"], "USDC");
    assert_eq!(
        quote["amount"],
        json!({"value": "250.00", "base_units": "250000000"})
    );
    assert_eq!(quote["recipient"], RECIPIENT);
    // 25 bps of 250 USDC
    assert_eq!(quote["fees"]["service"]["bps"], 25);
    assert_eq!(base_units(&quote["fees"]["service"]["amount"]), 625_000);
    let network = &quote["fees"]["network"];
    assert_eq!(network["asset"], "ETH");
    let gas: u128 = network["gas_limit"].as_str().unwrap().parse().unwrap();
    let max_fee: u128 = network["max_fee_per_gas_wei"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(base_units(&network["amount"]), gas * max_fee);
    assert!(max_fee <= 200_000_000_000, "the chain's cap applies");
    // two assets debited: token amount + service fee, and the network fee in ETH
    assert_eq!(debit(&quote, "USDC"), 250_625_000);
    assert_eq!(debit(&quote, "ETH"), gas * max_fee);
    assert_eq!(quote["total_debit"][0]["asset"], "USDC");

    let created = time::OffsetDateTime::parse(
        quote["created_at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let expires = time::OffsetDateTime::parse(
        quote["expires_at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let ttl = (expires - created).whole_seconds();
    assert!((59..=60).contains(&ttl), "default TTL is 60 s, got {ttl}");

    let read = stack
        .api()
        .get(
            &format!("/quotes/{}", quote["id"].as_str().unwrap()),
            &m.key,
        )
        .await;
    assert_eq!(read.status, 200);
    assert_eq!(read.body, quote);
    stack.assert_ledger_invariants().await;
}

#[tokio::test]
async fn native_quote_includes_the_network_fee_in_its_single_debit() {
    let stack = start().await;
    let m = stack.merchant().await;
    let quote = stack.api().quote(&m.key, "ETH", "0.5").await;
    assert_eq!(quote["amount"]["base_units"], "500000000000000000");
    assert_eq!(quote["fees"]["network"]["gas_limit"], "21000");
    let network = base_units(&quote["fees"]["network"]["amount"]);
    let service = base_units(&quote["fees"]["service"]["amount"]);
    assert_eq!(quote["total_debit"].as_array().unwrap().len(), 1);
    assert_eq!(
        debit(&quote, "ETH"),
        500_000_000_000_000_000 + service + network
    );
    stack.assert_ledger_invariants().await;
}

#[tokio::test]
async fn bad_requests_get_the_right_status_and_code_and_write_nothing() {
    let stack = start().await;
    let m = stack.merchant().await;
    let read_only = stack.key_with(m.id, &[Scope::PaymentsRead]).await;
    let good = json!({"chain": "anvil", "asset": "USDC", "amount": "1.00", "recipient": RECIPIENT});
    let big = format!(
        r#"{{"chain":"anvil","asset":"USDC","amount":"1.00","recipient":"{RECIPIENT}","pad":"{}"}}"#,
        "x".repeat(70 * 1024)
    );
    let malformed_key = "mp_live_0000000000000000_".to_owned() + &"0".repeat(64);
    let cases: Vec<(&str, Option<&str>, String, u16, &str)> = vec![
        ("no key", None, good.to_string(), 401, "unauthorized"),
        ("unknown key", Some(malformed_key.as_str()), good.to_string(), 401, "unauthorized"),
        ("garbage key", Some("hunter2"), good.to_string(), 401, "unauthorized"),
        ("missing scope", Some(read_only.as_str()), good.to_string(), 403, "forbidden"),
        ("malformed JSON", Some(m.key.as_str()), "{\"chain\":".into(), 400, "invalid_json"),
        ("not an object", Some(m.key.as_str()), "[1,2".into(), 400, "invalid_json"),
        ("empty body", Some(m.key.as_str()), String::new(), 400, "invalid_json"),
        ("unknown field", Some(m.key.as_str()),
            json!({"chain": "anvil", "asset": "USDC", "amount": "1", "recipient": RECIPIENT, "memo": 1}).to_string(),
            422, "validation_failed"),
        ("number amount", Some(m.key.as_str()),
            json!({"chain": "anvil", "asset": "USDC", "amount": 250.0, "recipient": RECIPIENT}).to_string(),
            422, "validation_failed"),
        ("missing field", Some(m.key.as_str()),
            json!({"chain": "anvil", "asset": "USDC", "amount": "1"}).to_string(),
            422, "validation_failed"),
        ("over 64 KiB", Some(m.key.as_str()), big, 413, "payload_too_large"),
    ];
    for (name, key, body, status, code) in cases {
        let reply = stack
            .api()
            .send(Method::POST, "/quotes", key, None, Some(body))
            .await;
        assert_eq!(reply.status, status, "{name}: {:?}", reply.body);
        assert_eq!(reply.code(), code, "{name}");
        assert_eq!(
            reply.header("content-type"),
            Some("application/problem+json"),
            "{name}"
        );
        assert!(
            !reply.body["detail"].as_str().unwrap_or("").is_empty(),
            "{name}"
        );
    }
    // wrong media type
    let reply = stack
        .api()
        .post_as("/quotes", &m.key, "text/plain", good.to_string())
        .await;
    assert_eq!(reply.status, 415);
    // payments with bad bodies or headers
    let no_key = stack
        .api()
        .send(
            Method::POST,
            "/payments",
            Some(&m.key),
            None,
            Some(json!({"quote_id": "quo_x"}).to_string()),
        )
        .await;
    assert_eq!(
        (no_key.status, no_key.code()),
        (400, "idempotency_key_required")
    );
    let bad_quote = stack.api().authorize(&m.key, "k1", "not-a-quote").await;
    assert_eq!(
        (bad_quote.status, bad_quote.code()),
        (422, "validation_failed")
    );
    let unknown_quote = stack
        .api()
        .authorize(&m.key, "k2", &format!("quo_{}", "0".repeat(32)))
        .await;
    assert_eq!(
        (unknown_quote.status, unknown_quote.code()),
        (404, "not_found")
    );
    for table in ["quotes", "payments", "idempotency_keys", "ledger_entries"] {
        assert_eq!(
            stack.count(&format!("SELECT count(*) FROM {table}")).await,
            0,
            "{table} written"
        );
    }
    stack.assert_ledger_invariants().await;
}

#[tokio::test]
async fn quote_rejects_bad_recipients_assets_and_amounts() {
    let stack = start().await;
    let m = stack.merchant().await;
    let bad_checksum = "0x976ea74026E726554dB657fA54763abd0C3a0aa9";
    let cases = [
        (
            "bad checksum",
            "anvil",
            "USDC",
            "1.00",
            bad_checksum,
            "invalid_recipient",
        ),
        (
            "zero address",
            "anvil",
            "USDC",
            "1.00",
            "0x0000000000000000000000000000000000000000",
            "invalid_recipient",
        ),
        (
            "denied",
            "anvil",
            "USDC",
            "1.00",
            "0x000000000000000000000000000000000000dEaD",
            "invalid_recipient",
        ),
        (
            "denied lower case",
            "anvil",
            "USDC",
            "1.00",
            "0x000000000000000000000000000000000000dead",
            "invalid_recipient",
        ),
        (
            "short address",
            "anvil",
            "USDC",
            "1.00",
            "0x1234",
            "invalid_recipient",
        ),
        (
            "unknown chain",
            "mainnet",
            "USDC",
            "1.00",
            RECIPIENT,
            "unsupported_chain",
        ),
        (
            "unknown asset",
            "anvil",
            "DAI",
            "1.00",
            RECIPIENT,
            "unsupported_asset",
        ),
        (
            "asset case",
            "anvil",
            "usdc",
            "1.00",
            RECIPIENT,
            "unsupported_asset",
        ),
        (
            "over-precise",
            "anvil",
            "USDC",
            "1.0000001",
            RECIPIENT,
            "validation_failed",
        ),
        ("zero", "anvil", "USDC", "0", RECIPIENT, "validation_failed"),
        (
            "zero decimals",
            "anvil",
            "USDC",
            "0.000000",
            RECIPIENT,
            "validation_failed",
        ),
        (
            "negative",
            "anvil",
            "USDC",
            "-5",
            RECIPIENT,
            "validation_failed",
        ),
        (
            "exponent",
            "anvil",
            "USDC",
            "1e6",
            RECIPIENT,
            "validation_failed",
        ),
        (
            "huge",
            "anvil",
            "ETH",
            &"9".repeat(90),
            RECIPIENT,
            "validation_failed",
        ),
    ];
    for (name, chain, asset, amount, recipient, code) in cases {
        let body =
            json!({"chain": chain, "asset": asset, "amount": amount, "recipient": recipient});
        let reply = stack.api().post("/quotes", &m.key, &body).await;
        assert_eq!(reply.status, 422, "{name}: {:?}", reply.body);
        assert_eq!(reply.code(), code, "{name}: {:?}", reply.body);
    }
    // all-lower and all-upper hex carry no checksum and are accepted
    for recipient in [
        RECIPIENT.to_lowercase(),
        format!("0x{}", RECIPIENT[2..].to_uppercase()),
    ] {
        let body =
            json!({"chain": "anvil", "asset": "USDC", "amount": "1", "recipient": recipient});
        let reply = stack.api().post("/quotes", &m.key, &body).await;
        assert_eq!(reply.status, 201, "{recipient}: {:?}", reply.body);
        assert_eq!(reply.body["recipient"], RECIPIENT, "stored checksummed");
    }
    assert_eq!(stack.count("SELECT count(*) FROM quotes").await, 2);
    stack.assert_ledger_invariants().await;
}

#[tokio::test]
async fn authorization_holds_the_debits_and_emits_the_broadcast_message() {
    let stack = start().await;
    let m = stack.merchant().await;
    stack.fund(m.id, "anvil:USDC", "1000").await;
    stack.fund(m.id, "anvil:ETH", "1").await;
    let quote = stack.api().quote(&m.key, "USDC", "250.00").await;
    let reply = stack
        .api()
        .authorize(&m.key, "order-1", quote["id"].as_str().unwrap())
        .await;
    assert_eq!(reply.status, 201, "{:?}", reply.body);
    let payment = &reply.body;
    let payment_id = payment["id"].as_str().unwrap();
    assert!(payment_id.starts_with("pay_"));
    assert_eq!(payment["status"], "authorized");
    assert_eq!(payment["version"], 1);
    assert_eq!(payment["quote_id"], quote["id"]);
    assert_eq!(payment["total_debit"], quote["total_debit"]);
    assert_eq!(
        reply.header("location"),
        Some(format!("/api/payments/{payment_id}").as_str())
    );

    let balances = stack.api().balances(&m.key).await;
    let usdc = balances.iter().find(|b| b.0 == "USDC").unwrap();
    let eth = balances.iter().find(|b| b.0 == "ETH").unwrap();
    assert_eq!(usdc.2, debit(payment, "USDC"));
    assert_eq!(usdc.1, usdc_units(1000) - debit(payment, "USDC"));
    assert_eq!(eth.2, debit(payment, "ETH"));
    assert_eq!(eth.1, 10u128.pow(18) - debit(payment, "ETH"));

    let messages = stack
        .azurite
        .wait_for_messages("payments-broadcast", 1, QUEUE_WAIT)
        .await;
    let message: Value = serde_json::from_str(&messages[0]).unwrap();
    assert_eq!(message, json!({"v": 1, "payment_id": payment_id}));

    let read = stack
        .api()
        .get(&format!("/payments/{payment_id}"), &m.key)
        .await;
    assert_eq!(read.status, 200);
    // The single-payment read adds `attempts` (no transaction before broadcast).
    let mut read_body = read.body.clone();
    let attempts = read_body.as_object_mut().unwrap().remove("attempts");
    assert_eq!(attempts, Some(json!([])));
    assert_eq!(&read_body, payment);
    // the quote now names its payment and cannot be used again
    let quote_now = stack
        .api()
        .get(
            &format!("/quotes/{}", quote["id"].as_str().unwrap()),
            &m.key,
        )
        .await;
    assert_eq!(quote_now.body["payment_id"], payment_id);
    let again = stack
        .api()
        .authorize(&m.key, "order-2", quote["id"].as_str().unwrap())
        .await;
    assert_eq!((again.status, again.code()), (409, "quote_already_used"));
    stack.assert_ledger_invariants().await;
}

#[tokio::test]
async fn same_key_and_body_replays_the_original_response_and_another_body_is_422() {
    let stack = start().await;
    let m = stack.merchant().await;
    stack.fund(m.id, "anvil:ETH", "10").await;
    let quote = stack.api().quote(&m.key, "ETH", "1").await;
    let quote_id = quote["id"].as_str().unwrap();
    let first = stack.api().authorize(&m.key, "replay-1", quote_id).await;
    assert_eq!(first.status, 201);
    assert_eq!(first.header("idempotent-replayed"), None);
    // same body with keys reordered and other whitespace is the same request
    let reordered = format!("{{ \"quote_id\" : \"{quote_id}\" }}");
    let second = stack
        .api()
        .send(
            Method::POST,
            "/payments",
            Some(&m.key),
            Some("replay-1"),
            Some(reordered),
        )
        .await;
    assert_eq!(second.status, first.status);
    assert_eq!(second.raw, first.raw, "replayed body is byte-identical");
    assert_eq!(second.header("idempotent-replayed"), Some("true"));
    // the replay re-emits the broadcast message (the step is idempotent per payment)
    let messages = stack
        .azurite
        .wait_for_messages("payments-broadcast", 2, QUEUE_WAIT)
        .await;
    assert_eq!(messages[0], messages[1]);

    let other = stack
        .api()
        .send(
            Method::POST,
            "/payments",
            Some(&m.key),
            Some("replay-1"),
            Some(json!({"quote_id": quote_id, "reference": "other"}).to_string()),
        )
        .await;
    assert_eq!(
        (other.status, other.code()),
        (422, "idempotency_key_reused")
    );

    let list = stack.api().get("/payments", &m.key).await;
    assert_eq!(list.body["data"].as_array().unwrap().len(), 1);
    let (_, _, held) = stack.api().balances(&m.key).await.remove(0);
    assert_eq!(
        held,
        debit(&first.body, "ETH"),
        "held once, not per request"
    );
    stack.assert_ledger_invariants().await;
}

#[tokio::test]
async fn twenty_concurrent_requests_with_one_key_create_exactly_one_payment() {
    let stack = start().await;
    let m = stack.merchant().await;
    stack.fund(m.id, "anvil:ETH", "10").await;
    let quote = stack.api().quote(&m.key, "ETH", "1").await;
    let quote_id = quote["id"].as_str().unwrap();
    let api = stack.api();
    let replies =
        futures::future::join_all((0..20).map(|_| api.authorize(&m.key, "concurrent-1", quote_id)))
            .await;
    let created: Vec<_> = replies.iter().filter(|r| r.status == 201).collect();
    assert!(!created.is_empty());
    for reply in &replies {
        match reply.status {
            201 => assert_eq!(reply.raw, created[0].raw, "every 201 is the same payment"),
            409 => assert_eq!(reply.code(), "idempotency_key_in_flight"),
            other => panic!("unexpected {other}: {:?}", reply.body),
        }
    }
    assert_eq!(stack.count("SELECT count(*) FROM payments").await, 1);
    let (_, _, held) = stack.api().balances(&m.key).await.remove(0);
    assert_eq!(held, debit(&created[0].body, "ETH"));
    stack.assert_ledger_invariants().await;
}

#[tokio::test]
async fn another_merchants_quotes_and_payments_are_not_found() {
    let stack = start().await;
    let alice = stack.merchant().await;
    let mallory = stack.merchant().await;
    stack.fund(alice.id, "anvil:ETH", "10").await;
    stack.fund(mallory.id, "anvil:ETH", "10").await;
    let quote = stack.api().quote(&alice.key, "ETH", "1").await;
    let quote_id = quote["id"].as_str().unwrap();
    let unused = stack.api().quote(&alice.key, "ETH", "1").await;
    let payment = stack
        .api()
        .authorize(&alice.key, "a-1", quote_id)
        .await
        .body;
    let payment_id = payment["id"].as_str().unwrap();

    let cases = [
        stack
            .api()
            .get(&format!("/quotes/{quote_id}"), &mallory.key)
            .await,
        stack
            .api()
            .get(&format!("/payments/{payment_id}"), &mallory.key)
            .await,
        stack
            .api()
            .send(
                Method::POST,
                &format!("/payments/{payment_id}/cancel"),
                Some(&mallory.key),
                None,
                None,
            )
            .await,
        stack
            .api()
            .authorize(&mallory.key, "m-1", unused["id"].as_str().unwrap())
            .await,
    ];
    for reply in cases {
        assert_eq!(
            (reply.status, reply.code()),
            (404, "not_found"),
            "{:?}",
            reply.body
        );
    }
    let list = stack.api().get("/payments", &mallory.key).await;
    assert_eq!(list.body["data"], json!([]));
    // Alice's payment is untouched and her unused quote still usable by her
    let read = stack
        .api()
        .get(&format!("/payments/{payment_id}"), &alice.key)
        .await;
    assert_eq!(read.body["status"], "authorized");
    let reply = stack
        .api()
        .authorize(&alice.key, "a-2", unused["id"].as_str().unwrap())
        .await;
    assert_eq!(reply.status, 201);
    stack.assert_ledger_invariants().await;
}

#[tokio::test]
async fn insufficient_funds_is_402_holds_nothing_and_the_key_can_be_retried_after_funding() {
    let stack = start().await;
    let m = stack.merchant().await;
    stack.fund(m.id, "anvil:USDC", "10").await;
    stack.fund(m.id, "anvil:ETH", "1").await;
    let quote = stack.api().quote(&m.key, "USDC", "250").await;
    let quote_id = quote["id"].as_str().unwrap();
    let reply = stack.api().authorize(&m.key, "poor-1", quote_id).await;
    assert_eq!(
        (reply.status, reply.code()),
        (402, "insufficient_funds"),
        "{:?}",
        reply.body
    );
    assert!(
        reply.body["detail"]
            .as_str()
            .unwrap()
            .contains("anvil:USDC")
    );
    assert!(
        stack.api().balances(&m.key).await.iter().all(|b| b.2 == 0),
        "nothing held"
    );
    assert_eq!(stack.count("SELECT count(*) FROM payments").await, 0);

    stack.fund(m.id, "anvil:USDC", "1000").await;
    let retried = stack.api().authorize(&m.key, "poor-1", quote_id).await;
    assert_eq!(retried.status, 201, "{:?}", retried.body);
    stack.assert_ledger_invariants().await;
}

#[tokio::test]
async fn token_payment_without_native_balance_for_the_network_fee_is_refused() {
    let stack = start().await;
    let m = stack.merchant().await;
    stack.fund(m.id, "anvil:USDC", "1000").await;
    let quote = stack.api().quote(&m.key, "USDC", "5").await;
    let reply = stack
        .api()
        .authorize(&m.key, "no-eth", quote["id"].as_str().unwrap())
        .await;
    assert_eq!(
        (reply.status, reply.code()),
        (402, "insufficient_funds"),
        "{:?}",
        reply.body
    );
    assert!(reply.body["detail"].as_str().unwrap().contains("anvil:ETH"));
    stack.assert_ledger_invariants().await;
}

#[tokio::test]
async fn per_payment_and_daily_limits_are_enforced() {
    let stack = start().await;
    let limit = AssetLimit {
        asset: "anvil:ETH".parse::<AssetId>().unwrap(),
        max_per_payment: Some(Amount::from_u128(3 * 10u128.pow(18))),
        daily_max: Some(Amount::from_u128(5 * 10u128.pow(18))),
    };
    let m = stack.merchant_with(Scopes::all(), vec![limit]).await;
    stack.fund(m.id, "anvil:ETH", "100").await;

    let too_big = stack.api().quote(&m.key, "ETH", "4").await;
    let reply = stack
        .api()
        .authorize(&m.key, "big", too_big["id"].as_str().unwrap())
        .await;
    assert_eq!(
        (reply.status, reply.code()),
        (422, "limit_exceeded"),
        "{:?}",
        reply.body
    );
    assert!(
        reply.body["detail"]
            .as_str()
            .unwrap()
            .contains("per_payment")
    );

    for (i, amount) in ["3", "2"].iter().enumerate() {
        let quote = stack.api().quote(&m.key, "ETH", amount).await;
        let reply = stack
            .api()
            .authorize(&m.key, &format!("day-{i}"), quote["id"].as_str().unwrap())
            .await;
        assert_eq!(reply.status, 201, "{amount}: {:?}", reply.body);
    }
    let over = stack.api().quote(&m.key, "ETH", "0.1").await;
    let reply = stack
        .api()
        .authorize(&m.key, "day-3", over["id"].as_str().unwrap())
        .await;
    assert_eq!((reply.status, reply.code()), (422, "limit_exceeded"));
    assert!(reply.body["detail"].as_str().unwrap().contains("daily"));
    assert_eq!(stack.count("SELECT count(*) FROM payments").await, 2);
    stack.assert_ledger_invariants().await;
}

#[tokio::test]
async fn cancel_releases_the_hold_before_broadcast_is_202_cancelling_after_it_and_409_once_confirmed()
 {
    let stack = start().await;
    let m = stack.merchant().await;
    stack.fund(m.id, "anvil:USDC", "1000").await;
    stack.fund(m.id, "anvil:ETH", "1").await;
    let before = stack.api().balances(&m.key).await;
    let quote = stack.api().quote(&m.key, "USDC", "100").await;
    let payment = stack
        .api()
        .authorize(&m.key, "c-1", quote["id"].as_str().unwrap())
        .await
        .body;
    let payment_id = payment["id"].as_str().unwrap();
    let cancel_path = format!("/payments/{payment_id}/cancel");

    let cancelled = stack
        .api()
        .send(Method::POST, &cancel_path, Some(&m.key), None, None)
        .await;
    assert_eq!(cancelled.status, 200, "{:?}", cancelled.body);
    assert_eq!(cancelled.body["status"], "cancelled");
    assert_eq!(
        stack.api().balances(&m.key).await,
        before,
        "hold released in full"
    );
    let again = stack
        .api()
        .send(Method::POST, &cancel_path, Some(&m.key), None, None)
        .await;
    assert_eq!(
        (again.status, again.body["status"].as_str()),
        (200, Some("cancelled"))
    );

    // after broadcast a cancellation is a transaction on the payment's nonce: 202 cancelling
    // (the hold stays until it or the original is mined); once confirmed it is too late
    let mut ids = Vec::new();
    for key in ["c-2", "c-3"] {
        let quote = stack.api().quote(&m.key, "USDC", "100").await;
        let payment = stack
            .api()
            .authorize(&m.key, key, quote["id"].as_str().unwrap())
            .await
            .body;
        let id: PaymentId = payment["id"].as_str().unwrap().parse().unwrap();
        stack
            .store
            .transition_payment(&Transition::new(id, 1, PaymentEvent::Broadcast))
            .await
            .unwrap();
        ids.push(id);
    }
    let api = stack.api();
    let cancelling = api
        .send(
            Method::POST,
            &format!("/payments/{}/cancel", ids[0]),
            Some(&m.key),
            None,
            None,
        )
        .await;
    assert_eq!(
        (cancelling.status, cancelling.body["status"].as_str()),
        (202, Some("cancelling")),
        "{:?}",
        cancelling.body
    );
    stack
        .store
        .transition_payment(&Transition::new(ids[1], 2, PaymentEvent::Confirm))
        .await
        .unwrap();
    let late = api
        .send(
            Method::POST,
            &format!("/payments/{}/cancel", ids[1]),
            Some(&m.key),
            None,
            None,
        )
        .await;
    assert_eq!(
        (late.status, late.code()),
        (409, "invalid_state"),
        "{:?}",
        late.body
    );
    stack.assert_ledger_invariants().await;
}

#[tokio::test]
async fn expired_quote_cannot_be_authorized() {
    let stack = start_with(HandlerSettings::default().env("MESHPAY_QUOTE_TTL_SECONDS", "1")).await;
    let m = stack.merchant().await;
    stack.fund(m.id, "anvil:ETH", "10").await;
    let quote = stack.api().quote(&m.key, "ETH", "1").await;
    // let the one-second TTL lapse (a wait for a state, not a timing assertion)
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let reply = stack
        .api()
        .authorize(&m.key, "late", quote["id"].as_str().unwrap())
        .await;
    assert_eq!(
        (reply.status, reply.code()),
        (409, "quote_expired"),
        "{:?}",
        reply.body
    );
    assert_eq!(stack.count("SELECT count(*) FROM payments").await, 0);
    stack.assert_ledger_invariants().await;
}

#[tokio::test]
async fn payments_list_newest_first_with_status_filter_and_keyset_cursor() {
    let stack = start().await;
    let m = stack.merchant().await;
    stack.fund(m.id, "anvil:ETH", "10").await;
    let mut ids = Vec::new();
    for i in 0..3 {
        let quote = stack.api().quote(&m.key, "ETH", "0.1").await;
        let reply = stack
            .api()
            .authorize(&m.key, &format!("list-{i}"), quote["id"].as_str().unwrap())
            .await;
        ids.push(reply.body["id"].as_str().unwrap().to_owned());
    }
    let cancel = format!("/payments/{}/cancel", ids[0]);
    assert_eq!(
        stack
            .api()
            .send(Method::POST, &cancel, Some(&m.key), None, None)
            .await
            .status,
        200
    );

    let page1 = stack.api().get("/payments?limit=2", &m.key).await;
    assert_eq!(page1.status, 200, "{:?}", page1.body);
    let page1_ids: Vec<&str> = page1.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    assert_eq!(page1_ids, vec![ids[2].as_str(), ids[1].as_str()]);
    let cursor = page1.body["next_cursor"].as_str().unwrap();
    let page2 = stack
        .api()
        .get(&format!("/payments?limit=2&cursor={cursor}"), &m.key)
        .await;
    let page2_ids: Vec<&str> = page2.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    assert_eq!(page2_ids, vec![ids[0].as_str()]);
    assert!(page2.body["next_cursor"].is_null());

    let cancelled = stack.api().get("/payments?status=cancelled", &m.key).await;
    assert_eq!(cancelled.body["data"].as_array().unwrap().len(), 1);
    assert_eq!(cancelled.body["data"][0]["id"], ids[0].as_str());

    for query in [
        "limit=0",
        "limit=101",
        "limit=x",
        "status=bogus",
        "cursor=!!",
        "colour=red",
    ] {
        let reply = stack.api().get(&format!("/payments?{query}"), &m.key).await;
        assert_eq!(
            (reply.status, reply.code()),
            (422, "validation_failed"),
            "{query}"
        );
    }
    let unknown = stack
        .api()
        .get(&format!("/payments/pay_{}", "0".repeat(32)), &m.key)
        .await;
    assert_eq!(unknown.status, 404);
    let malformed = stack.api().get("/payments/not-an-id", &m.key).await;
    assert_eq!(malformed.status, 404);
    stack.assert_ledger_invariants().await;
}

#[tokio::test]
async fn openapi_document_is_served_without_a_key() {
    let stack = start().await;
    let reply = stack
        .api()
        .send(Method::GET, "/openapi.json", None, None, None)
        .await;
    assert_eq!(reply.status, 200);
    assert!(reply.body["openapi"].as_str().unwrap().starts_with("3.1"));
    assert!(reply.body["paths"]["/api/payments"]["post"].is_object());
    // A payment's transactions are documented, without their signed bytes.
    let schemas = &reply.body["components"]["schemas"];
    assert!(
        schemas["PaymentView"]["properties"]["attempts"].is_object(),
        "{}",
        schemas["PaymentView"]
    );
    let attempt = schemas["TransactionAttemptView"]["properties"]
        .as_object()
        .unwrap();
    for field in [
        "attempt",
        "tx_hash",
        "nonce",
        "from",
        "max_fee_per_gas",
        "max_priority_fee_per_gas",
        "gas_limit",
        "status",
        "sent_at",
    ] {
        assert!(attempt.contains_key(field), "{field}");
    }
    assert!(!attempt.keys().any(|k| k.contains("raw")), "{attempt:?}");
    stack.assert_ledger_invariants().await;
}

/// Through the host: a method a route's functions do not declare reaches the handler through the
/// catch-all `fallback` function and gets 405 with `Allow`; an unknown path gets a problem+json
/// 404. Nothing is written either way.
#[tokio::test]
async fn undeclared_methods_are_405_with_allow_and_unknown_paths_404_through_the_host() {
    let stack = start().await;
    let m = stack.merchant().await;
    for (method, path, allow) in [
        ("TRACE", "/quotes", "POST"),
        ("DELETE", "/balances", "GET"),
        ("PUT", "/payments", "POST, GET"),
        (
            "PATCH",
            "/payments/pay_00000000000000000000000000000000/cancel",
            "POST",
        ),
    ] {
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        let reply = stack
            .api()
            .send(method.clone(), path, Some(&m.key), None, None)
            .await;
        assert_eq!(reply.status, 405, "{method} {path}: {:?}", reply.body);
        assert_eq!(reply.code(), "method_not_allowed", "{method} {path}");
        let mut got: Vec<&str> = reply.header("allow").unwrap().split(", ").collect();
        let mut want: Vec<&str> = allow.split(", ").collect();
        got.sort_unstable();
        want.sort_unstable();
        assert_eq!(got, want, "{method} {path}");
    }
    let missing = stack
        .api()
        .send(Method::GET, "/no/such/route", Some(&m.key), None, None)
        .await;
    assert_eq!(missing.status, 404);
    assert_eq!(missing.code(), "not_found");
    assert_eq!(
        missing.header("content-type"),
        Some("application/problem+json")
    );
    assert_eq!(stack.count("SELECT count(*) FROM payments").await, 0);
}
