//! Property tests of the invocation envelope parser through the whole service: any body the
//! host (or anything else on the handler's port) could send gets an answer, never a panic; a
//! refusal is problem+json; a body over the envelope limit is 413 before it is parsed.
//! `PROPTEST_CASES` sets the number of cases (`make fuzz` runs many more than `make test`).

use axum::body::Body;
use axum::http::StatusCode;
use axum::routing::Router;
use proptest::prelude::*;
use serde_json::{Map, Value, json};

use crate::support::{FIXTURES, invoke, send, test_app};

/// `test_app`'s envelope limit.
const LIMIT: usize = 64 * 1024;

/// Envelope targets of the test app: queue, typed queue, timer, and HTTP functions.
const FUNCTIONS: [&str; 5] = ["echo", "typed", "tick", "enqueue", "created"];

/// `PROPTEST_CASES` cases (256 unless set); a failure prints its shrunk input instead of
/// writing a regressions file into the source tree.
fn config() -> ProptestConfig {
    ProptestConfig {
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Sends `body` to `function` and checks the answer is one the host can act on.
fn check(rt: &tokio::runtime::Runtime, app: &Router, function: &str, body: Vec<u8>) -> StatusCode {
    let (status, content_type, reply) = rt.block_on(send(app, invoke(function, Body::from(body))));
    if !status.is_success() {
        assert_eq!(
            content_type.as_deref(),
            Some("application/problem+json"),
            "{function}: {status} {reply}"
        );
        let code = reply["code"].as_str().unwrap_or_default();
        // A 500 is only ever the test handler's own failure, never the parser's.
        assert!(
            status != StatusCode::INTERNAL_SERVER_ERROR || code.starts_with("handler_"),
            "{function}: {status} {reply}"
        );
    }
    status
}

/// Any JSON value, a few levels deep.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| json!(f)),
        any::<String>().prop_map(Value::from),
        "[0-9T:.+-]{0,40}".prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..8).prop_map(Value::from),
            proptest::collection::btree_map("[A-Za-z$]{0,12}", inner, 0..8)
                .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// Field names the shim reads, so generated envelopes reach past the first check.
fn known_key() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("myQueueItem".to_owned()),
        Just("queue".to_owned()),
        Just("timer".to_owned()),
        Just("req".to_owned()),
        Just("Url".to_owned()),
        Just("Method".to_owned()),
        Just("Headers".to_owned()),
        Just("Body".to_owned()),
        Just("Query".to_owned()),
        Just("Params".to_owned()),
        Just("DequeueCount".to_owned()),
        Just("sys".to_owned()),
        Just("ScheduleStatus".to_owned()),
        Just("Last".to_owned()),
        "[A-Za-z]{1,10}",
    ]
}

fn fields() -> impl Strategy<Value = Value> {
    proptest::collection::btree_map(known_key(), any_json(), 0..6)
        .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>()))
}

fn envelope() -> impl Strategy<Value = Value> {
    (fields(), fields(), any::<bool>()).prop_map(|(data, metadata, double)| {
        // The host sometimes sends a value as JSON text inside a string.
        let data = if double {
            Value::Object(
                data.as_object()
                    .unwrap()
                    .iter()
                    .map(|(k, v)| (k.clone(), Value::String(v.to_string())))
                    .collect(),
            )
        } else {
            data
        };
        json!({"Data": data, "Metadata": metadata})
    })
}

/// A request fixture with one cut, insertion or byte flip, sent to a function of its kind.
fn mutated_fixture() -> impl Strategy<Value = (&'static str, Vec<u8>)> {
    let requests: Vec<(&'static str, &'static str)> = FIXTURES
        .iter()
        .filter(|(name, _)| !name.starts_with("response-"))
        .copied()
        .collect();
    (
        proptest::sample::select(requests),
        proptest::collection::vec((any::<usize>(), any::<u8>(), 0u8..3), 1..8),
    )
        .prop_map(|((name, text), edits)| {
            let function = match name.split('-').next() {
                Some("queue") => "echo",
                Some("timer") => "tick",
                _ => "enqueue",
            };
            let mut bytes = text.as_bytes().to_vec();
            for (at, byte, kind) in edits {
                let at = at % (bytes.len() + 1);
                match kind {
                    0 if at < bytes.len() => {
                        bytes.remove(at);
                    }
                    1 => bytes.insert(at, byte),
                    _ if at < bytes.len() => bytes[at] ^= byte.max(1),
                    _ => bytes.push(byte),
                }
            }
            (function, bytes)
        })
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn any_bytes_to_any_function_get_an_answer_and_never_a_panic(
        function in proptest::sample::select(FUNCTIONS.to_vec()),
        body in prop_oneof![
            16 => proptest::collection::vec(any::<u8>(), 0..256),
            1 => proptest::collection::vec(any::<u8>(), 0..=LIMIT),
        ],
    ) {
        let (rt, app) = (runtime(), test_app());
        check(&rt, &app, function, body);
    }

    #[test]
    fn generated_envelopes_get_an_answer_and_never_a_panic(
        function in proptest::sample::select(FUNCTIONS.to_vec()),
        envelope in envelope(),
    ) {
        let (rt, app) = (runtime(), test_app());
        check(&rt, &app, function, serde_json::to_vec(&envelope).unwrap());
    }

    #[test]
    fn edited_host_fixtures_get_an_answer_and_never_a_panic(
        (function, body) in mutated_fixture(),
    ) {
        let (rt, app) = (runtime(), test_app());
        check(&rt, &app, function, body);
    }

    #[test]
    fn a_body_over_the_envelope_limit_is_413_before_parsing(
        function in proptest::sample::select(FUNCTIONS.to_vec()),
        over in 1usize..4096,
        fill in any::<u8>(),
    ) {
        let (rt, app) = (runtime(), test_app());
        let status = check(&rt, &app, function, vec![fill; LIMIT + over]);
        prop_assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    }
}
