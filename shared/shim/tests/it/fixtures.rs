//! Every fixture parses into the typed payloads and survives a serde round trip.

use meshpay_shim::{
    HttpResponseOutput, HttpTriggerRequest, InvocationRequest, InvocationResponse, QueueMetadata,
    TimerInfo, decode_message,
};
use serde_json::{Value, json};
use time::macros::datetime;

use crate::support::{FIXTURES, fixture};

fn request(name: &str) -> InvocationRequest {
    serde_json::from_str(fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn round_trip<T>(value: &T) -> T
where
    T: serde::Serialize + serde::de::DeserializeOwned,
{
    serde_json::from_value(serde_json::to_value(value).unwrap()).unwrap()
}

#[test]
fn every_fixture_file_is_covered_by_the_table() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut on_disk: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".json"))
        .collect();
    on_disk.sort();
    let listed: Vec<&str> = FIXTURES.iter().map(|(name, _)| *name).collect();
    assert_eq!(on_disk, listed);
}

#[test]
fn every_request_fixture_parses_and_round_trips() {
    for (name, _) in FIXTURES.iter().filter(|(n, _)| !n.starts_with("response-")) {
        let parsed = request(name);
        assert!(!parsed.data.is_empty(), "{name}: empty Data");
        assert_eq!(round_trip(&parsed), parsed, "{name}");
    }
}

#[test]
fn every_response_fixture_parses_and_round_trips() {
    for (name, text) in FIXTURES.iter().filter(|(n, _)| n.starts_with("response-")) {
        let parsed: InvocationResponse = serde_json::from_str(text).unwrap();
        assert_eq!(round_trip(&parsed), parsed, "{name}");
        let res: HttpResponseOutput =
            serde_json::from_value(parsed.outputs["res"].clone()).unwrap();
        assert_eq!(round_trip(&res), res, "{name}");
    }
}

#[test]
fn documented_response_without_status_reads_as_200_like_the_host() {
    let parsed: InvocationResponse = serde_json::from_str(fixture("response-docs.json")).unwrap();
    let res: HttpResponseOutput = serde_json::from_value(parsed.outputs["res"].clone()).unwrap();
    assert_eq!(res.status_code, 200);
    assert_eq!(res.body.as_deref(), Some("Message enqueued"));
    assert_eq!(
        parsed.outputs["myQueueOutput"],
        json!(["queue message 1", "queue message 2"])
    );
    assert_eq!(parsed.logs, ["Log message 1", "Log message 2"]);
    assert_eq!(parsed.return_value, Some(json!("{\"hello\":\"world\"}")));
}

#[test]
fn http_fixtures_parse_into_trigger_requests_that_round_trip() {
    for name in [
        "http-docs.json",
        "http-core-tools.json",
        "http-binary-body.json",
        "http-host-source-route-params.json",
    ] {
        let data = request(name).data;
        let trigger: HttpTriggerRequest = serde_json::from_value(data["req"].clone()).unwrap();
        assert!(trigger.url.contains("/api/"), "{name}");
        assert_eq!(round_trip(&trigger), trigger, "{name}");
    }
}

#[test]
fn docs_query_given_as_text_reads_as_an_empty_map() {
    let data = request("http-docs.json").data;
    let trigger: HttpTriggerRequest = serde_json::from_value(data["req"].clone()).unwrap();
    assert!(trigger.query.is_empty());
    assert_eq!(trigger.content_type(), Some("application/json"));
}

#[test]
fn queue_metadata_decodes_the_same_from_both_encodings_and_round_trips() {
    let docs = QueueMetadata::from_metadata(&request("queue-docs.json").metadata);
    assert_eq!(docs.dequeue_count, Some(1));
    assert_eq!(
        docs.id.as_deref(),
        Some("800ae4b3-bdd2-4c08-badd-f08e5a34b865")
    );
    assert_eq!(
        docs.pop_receipt.as_deref(),
        Some("AgAAAAMAAAAAAAAAAgtnj8x+1QE=")
    );
    assert_eq!(
        docs.expiration_time,
        Some(datetime!(2019-10-16 17:58:31 UTC))
    );
    assert_eq!(docs.sys.as_ref().unwrap().method_name, "QueueTrigger");

    let source =
        QueueMetadata::from_metadata(&request("queue-host-source-double-encoded.json").metadata);
    assert_eq!(source.dequeue_count, Some(3));
    assert_eq!(
        source.id.as_deref(),
        Some("5f0d1c2e-9a8b-4c7d-8e6f-0a1b2c3d4e5f")
    );
    assert_eq!(
        source.pop_receipt.as_deref(),
        Some("AgAAAAMAAAAAAAAA2bRk1gmc2gE=")
    );
    assert_eq!(
        source.next_visible_time,
        Some(datetime!(2024-05-01 10:10:30 UTC))
    );

    let azfunc = QueueMetadata::from_metadata(&request("queue-third-party-azfunc.json").metadata);
    assert_eq!(azfunc.dequeue_count, Some(1));
    assert_eq!(azfunc.pop_receipt.as_deref(), Some("STRING"));

    for metadata in [docs, source, azfunc] {
        let wire = serde_json::to_value(&metadata).unwrap();
        assert_eq!(
            QueueMetadata::from_metadata(wire.as_object().unwrap()),
            metadata
        );
    }
}

#[test]
fn queue_messages_decode_from_every_fixture() {
    let docs = request("queue-docs.json").data["myQueueItem"].clone();
    // The documented message is not JSON; a Value handler receives the text itself.
    assert_eq!(
        decode_message::<Value>(docs).unwrap(),
        json!("{ message: \"Message sent\" }")
    );
    let source = request("queue-host-source-double-encoded.json").data["myQueueItem"].clone();
    assert_eq!(
        decode_message::<Value>(source).unwrap(),
        json!({"probe": "p-1", "n": 2})
    );
    let azfunc = request("queue-third-party-azfunc.json").data["queue"].clone();
    assert_eq!(
        decode_message::<Value>(azfunc).unwrap(),
        json!({"message": "hello", "number": 2})
    );
}

#[test]
fn timer_fixtures_parse_with_and_without_schedule_status() {
    let captured =
        TimerInfo::from_value(request("timer-captured.json").data["timer"].clone()).unwrap();
    assert_eq!(captured.schedule_status, None);
    assert!(captured.schedule.as_ref().unwrap().adjust_for_dst);
    assert!(!captured.is_past_due);

    let monitored =
        TimerInfo::from_value(request("timer-monitored.json").data["timer"].clone()).unwrap();
    let status = monitored.schedule_status.as_ref().unwrap();
    assert_eq!(status.last, Some(datetime!(2016-10-04 10:15:00 UTC)));
    assert_eq!(status.next, Some(datetime!(2016-10-04 10:20:00 UTC)));
    assert_eq!(
        status.last_updated,
        Some(datetime!(2016-10-04 10:16:00 UTC))
    );

    for timer in [captured, monitored] {
        assert_eq!(round_trip(&timer), timer);
    }
}
