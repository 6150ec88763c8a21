//! API key lifecycle and limits through the host: a key over its rate gets 429 `rate_limited`
//! with `Retry-After`; rotation, suspension and `api-key list` are admin commands whose every
//! run leaves an audit row.

use meshpay_testkit::stack::{HandlerSettings, Stack};
use serde_json::Value;

use crate::support::{admin_command, json_answer};

fn admin(stack: &Stack, args: &[&str]) -> Value {
    json_answer(
        admin_command(stack, args)
            .env("MESHPAY_ADMIN_ACTOR", "e2e-operator")
            .env_remove("MESHPAY_CHAINS_CONFIG"),
    )
}

#[tokio::test]
async fn keys_are_rate_limited_rotated_suspended_and_every_admin_action_is_audited() {
    let stack = Stack::builder()
        .without_chain()
        .devhost(HandlerSettings::default().api_only())
        .start()
        .await;
    let merchant = admin(&stack, &["merchant", "create", "--name", "limits"]);
    let merchant_id = merchant["id"].as_str().unwrap().to_owned();
    let created = admin(
        &stack,
        &[
            "api-key",
            "create",
            "--merchant",
            &merchant_id,
            "--rate-limit",
            "1/s",
        ],
    );
    assert_eq!(created["rate_limit_per_sec"], 1);
    let key = created["key"].as_str().unwrap().to_owned();
    let api = stack.api();

    // One token a second: sequential requests meet an empty bucket unless every one of them
    // took over a second.
    let mut limited = None;
    for _ in 0..20 {
        let reply = api.get("/balances", &key).await;
        if reply.status == 429 {
            limited = Some(reply);
            break;
        }
        assert_eq!(reply.status, 200, "{:?}", reply.body);
    }
    let limited = limited.expect("a 1/s key is rate limited");
    assert_eq!(limited.code(), "rate_limited");
    assert_eq!(limited.header("retry-after"), Some("1"));
    assert_eq!(
        limited.header("content-type"),
        Some("application/problem+json")
    );

    let listed = admin(&stack, &["api-key", "list", "--merchant", &merchant_id]);
    assert_eq!(listed["count"], 1);
    assert!(
        !listed.to_string().contains(&key[key.len() - 64..]),
        "no secret in the list"
    );
    assert!(listed["keys"][0]["last_used_at"].is_string(), "{listed}");

    let old_id = created["id"].as_str().unwrap();
    let rotated = admin(
        &stack,
        &["api-key", "rotate", "--key-id", old_id, "--grace", "0s"],
    );
    let new_key = rotated["new_key"]["key"].as_str().unwrap().to_owned();
    assert_eq!(api.get("/balances", &key).await.status, 401);
    assert_eq!(api.get("/balances", &new_key).await.status, 200);

    admin(
        &stack,
        &[
            "merchant",
            "suspend",
            "--merchant",
            &merchant_id,
            "--reason",
            "e2e",
        ],
    );
    let suspended = api.get("/balances", &new_key).await;
    assert_eq!(
        (suspended.status, suspended.code()),
        (403, "merchant_suspended")
    );
    admin(&stack, &["merchant", "resume", "--merchant", &merchant_id]);
    // The new key's bucket may be empty from the request above; wait out its refill.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(api.get("/balances", &new_key).await.status, 200);

    let audit = admin(&stack, &["audit"]);
    let commands: Vec<&str> = audit["audit"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| row["command"].as_str().unwrap())
        .collect();
    assert_eq!(
        commands,
        [
            "audit",
            "merchant resume",
            "merchant suspend",
            "api-key rotate",
            "api-key list",
            "api-key create",
            "merchant create"
        ]
    );
    let rows = audit["audit"].as_array().unwrap();
    assert!(rows.iter().all(|r| r["actor"] == "e2e-operator"), "{audit}");
    assert_eq!(rows[3]["args"]["grace"], "0s");
    assert_eq!(rows[3]["outcome"], "ok");
    assert!(
        !audit.to_string().contains(&new_key),
        "no key in the audit trail"
    );
}
