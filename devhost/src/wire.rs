//! Invocation payloads encoded the way the host's source encodes them
//! (`ScriptInvocationContextExtensions.GetHttpScriptInvocationContextValue`): a string value
//! becomes its JSON text (so it arrives double-encoded, `"\"hello\""`), a number becomes a
//! string (`"DequeueCount":"1"`), a `DateTimeOffset` an ISO date, an object stays an object.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};
use time::OffsetDateTime;
use time::macros::format_description;

/// A string value as the host sends it: JSON-encoded, then sent as a JSON string.
pub fn host_string(s: &str) -> Value {
    Value::String(Value::String(s.to_owned()).to_string())
}

/// A number as the host sends it: `JsonConvert.SerializeObject(1)` = `"1"`.
pub fn host_number(n: u64) -> Value {
    Value::String(n.to_string())
}

/// A `DateTimeOffset` after the host's `Parse(ToString())` round trip: whole seconds, offset
/// `+00:00` (e.g. `2019-10-09T17:58:31+00:00`).
pub fn host_date(t: OffsetDateTime) -> Value {
    let fmt = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]+00:00");
    Value::String(
        t.to_offset(time::UtcOffset::UTC)
            .format(fmt)
            .unwrap_or_default(),
    )
}

/// .NET's round-trip UTC format with 7 fractional digits (`sys.UtcNow`).
pub fn utc_now(t: OffsetDateTime) -> String {
    let fmt =
        format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:7]Z");
    t.to_offset(time::UtcOffset::UTC)
        .format(fmt)
        .unwrap_or_default()
}

/// `Metadata.sys`, present in every invocation.
pub fn sys(function: &str, now: OffsetDateTime) -> Value {
    json!({
        "MethodName": function,
        "UtcNow": utc_now(now),
        "RandGuid": uuid::Uuid::new_v4().to_string(),
    })
}

/// What the queue trigger binds for one message.
#[derive(Clone, Debug)]
pub struct QueueMessageData<'a> {
    /// Message id.
    pub id: &'a str,
    /// Pop receipt.
    pub pop_receipt: &'a str,
    /// Receives including this one.
    pub dequeue_count: u64,
    /// Insertion time.
    pub insertion_time: OffsetDateTime,
    /// Expiration time.
    pub expiration_time: OffsetDateTime,
    /// Next visible time.
    pub next_visible_time: OffsetDateTime,
}

/// The queue-trigger envelope. `body` is the decoded message; with `binary` it is sent as
/// base64 (the host's `byte[]` case) instead of a double-encoded string.
pub fn queue_payload(
    function: &str,
    binding: &str,
    message: &QueueMessageData<'_>,
    body: &[u8],
    binary: bool,
    now: OffsetDateTime,
) -> Value {
    use base64::Engine as _;
    let text = String::from_utf8_lossy(body);
    let data = if binary {
        Value::String(base64::engine::general_purpose::STANDARD.encode(body))
    } else {
        host_string(&text)
    };
    let mut metadata = Map::new();
    metadata.insert("DequeueCount".into(), host_number(message.dequeue_count));
    metadata.insert("ExpirationTime".into(), host_date(message.expiration_time));
    metadata.insert("Id".into(), host_string(message.id));
    metadata.insert("InsertionTime".into(), host_date(message.insertion_time));
    metadata.insert(
        "NextVisibleTime".into(),
        host_date(message.next_visible_time),
    );
    metadata.insert("PopReceipt".into(), host_string(message.pop_receipt));
    if !binary {
        apply_json_properties(&mut metadata, &text);
    }
    metadata.insert("sys".into(), sys(function, now));
    json!({ "Data": { binding: data }, "Metadata": metadata })
}

/// `Utility.ApplyBindingData`: top-level non-array properties of a JSON-object message
/// become binding data (overriding trigger metadata of the same name); scalars as their
/// string form (`(string)JToken`, so `true` is `"True"`), objects as objects; nulls skipped.
pub fn apply_json_properties(metadata: &mut Map<String, Value>, text: &str) {
    let trimmed = text.trim();
    if !(trimmed.starts_with('{') && trimmed.ends_with('}')) {
        return;
    }
    let Ok(Value::Object(props)) = serde_json::from_str::<Value>(trimmed) else {
        return;
    };
    for (key, value) in props {
        let encoded = match value {
            Value::Null | Value::Array(_) => continue,
            Value::Object(o) => Value::Object(o),
            Value::String(s) => host_string(&s),
            Value::Bool(b) => host_string(if b { "True" } else { "False" }),
            Value::Number(n) => host_string(&n.to_string()),
        };
        metadata.insert(key, encoded);
    }
}

/// `TimerInfo.ScheduleStatus` (the host only has one when the schedule is monitored): the
/// status as it stood before this run, as the host's `TimerListener` hands it over.
#[derive(Clone, Copy, Debug)]
pub struct ScheduleStatus {
    /// Previous run; `None` before the first one, sent as the host's `default(DateTime)`.
    pub last: Option<OffsetDateTime>,
    /// The occurrence that was scheduled next when the status was written.
    pub next: OffsetDateTime,
    /// When the status was written; `None` before the first run, like `last`.
    pub last_updated: Option<OffsetDateTime>,
}

/// A .NET `default(DateTime)` as the host serializes it: kind `Unspecified`, so no offset.
const DEFAULT_DATETIME: &str = "0001-01-01T00:00:00";

fn host_date_or_default(t: Option<OffsetDateTime>) -> Value {
    t.map_or_else(|| Value::String(DEFAULT_DATETIME.into()), host_date)
}

/// The timer-trigger envelope: a `TimerInfo` object (no double encoding) and only `sys`.
pub fn timer_payload(
    function: &str,
    binding: &str,
    status: Option<ScheduleStatus>,
    past_due: bool,
    now: OffsetDateTime,
) -> Value {
    let status = status.map_or(Value::Null, |s| {
        json!({
            "Last": host_date_or_default(s.last),
            "Next": host_date(s.next),
            "LastUpdated": host_date_or_default(s.last_updated),
        })
    });
    json!({
        "Data": { binding: {
            "Schedule": { "AdjustForDST": true },
            "ScheduleStatus": status,
            "IsPastDue": past_due,
        }},
        "Metadata": { "sys": sys(function, now) },
    })
}

/// The parts of an incoming HTTP request the envelope form carries.
#[derive(Clone, Debug)]
pub struct HttpRequestData {
    /// `scheme://host/path?query` as received (including the route prefix).
    pub url: String,
    /// Method.
    pub method: String,
    /// Query parameters in order (repeated keys allowed).
    pub query: Vec<(String, String)>,
    /// Headers in order (repeated names allowed), names as received.
    pub headers: Vec<(String, String)>,
    /// Route values.
    pub params: BTreeMap<String, String>,
    /// Body bytes.
    pub body: Vec<u8>,
    /// Content type, for the base64 decision.
    pub content_type: Option<String>,
}

/// The HTTP-trigger envelope (`HttpRequestExtensions.GetRequestAsJObject` plus the HTTP
/// binding data in Metadata).
pub fn http_payload(
    function: &str,
    binding: &str,
    req: &HttpRequestData,
    now: OffsetDateTime,
) -> Value {
    let mut query = Map::new();
    for (k, v) in &req.query {
        join_into(&mut query, k, v);
    }
    let mut headers: Map<String, Value> = Map::new();
    let mut header_metadata = Map::new();
    for (k, v) in &req.headers {
        match headers.get_mut(k) {
            Some(Value::Array(values)) => values.push(Value::String(v.clone())),
            _ => {
                headers.insert(k.clone(), json!([v]));
            }
        }
        join_into(&mut header_metadata, k, v);
    }
    let params: Map<String, Value> = req
        .params
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    let mut request = json!({
        "Url": req.url,
        "Method": req.method,
        "Query": query,
        "Headers": headers,
        "Params": params,
        "Identities": local_identities(),
    });
    if !req.body.is_empty() {
        request["Body"] = http_body(&req.body, req.content_type.as_deref());
    }
    let mut metadata = Map::new();
    metadata.insert("Query".into(), Value::Object(query));
    metadata.insert("Headers".into(), Value::Object(header_metadata));
    metadata.insert("Params".into(), Value::Object(params));
    for (k, v) in &req.params {
        metadata.insert(k.clone(), host_string(v));
    }
    metadata.insert("sys".into(), sys(function, now));
    json!({ "Data": { binding: request }, "Metadata": metadata })
}

/// Repeated names joined with commas (ASP.NET `StringValues.ToString()`).
fn join_into(map: &mut Map<String, Value>, key: &str, value: &str) {
    match map.get_mut(key) {
        Some(Value::String(existing)) => {
            existing.push(',');
            existing.push_str(value);
        }
        _ => {
            map.insert(key.to_owned(), Value::String(value.to_owned()));
        }
    }
}

/// Text for text types; base64 for `application/octet-stream` and `multipart/*` (the host
/// serializes those as `byte[]`).
fn http_body(body: &[u8], content_type: Option<&str>) -> Value {
    use base64::Engine as _;
    let media = content_type
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if media == "application/octet-stream" || media.starts_with("multipart/") {
        Value::String(base64::engine::general_purpose::STANDARD.encode(body))
    } else {
        Value::String(String::from_utf8_lossy(body).into_owned())
    }
}

/// The identity Core Tools attaches locally: auth level Admin.
fn local_identities() -> Value {
    json!([{
        "AuthenticationType": "WebJobsAuthLevel",
        "IsAuthenticated": true,
        "Actor": null,
        "BootstrapContext": null,
        "Claims": [{
            "Issuer": "LOCAL AUTHORITY",
            "OriginalIssuer": "LOCAL AUTHORITY",
            "Properties": {},
            "Type": "http://schemas.microsoft.com/2017/07/functions/claims/authlevel",
            "Value": "Admin",
            "ValueType": "http://www.w3.org/2001/XMLSchema#string"
        }],
        "Label": null,
        "Name": null,
        "NameClaimType": "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name",
        "RoleClaimType": "http://schemas.microsoft.com/ws/2008/06/identity/claims/role"
    }])
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2019-10-09 17:58:32.2205399 UTC);

    fn message() -> QueueMessageData<'static> {
        QueueMessageData {
            id: "800ae4b3-bdd2-4c08-badd-f08e5a34b865",
            pop_receipt: "AgAAAAMAAAAAAAAAAgtnj8x+1QE=",
            dequeue_count: 1,
            insertion_time: datetime!(2019-10-09 17:58:31.123 UTC),
            expiration_time: datetime!(2019-10-16 17:58:31 UTC),
            next_visible_time: datetime!(2019-10-09 18:08:32 UTC),
        }
    }

    #[test]
    fn queue_payload_double_encodes_strings_and_stringifies_numbers() {
        let p = queue_payload("probe-worker", "msg", &message(), b"hello", false, NOW);
        assert_eq!(p["Data"]["msg"], "\"hello\"");
        let m = &p["Metadata"];
        assert_eq!(m["DequeueCount"], "1");
        assert_eq!(m["Id"], "\"800ae4b3-bdd2-4c08-badd-f08e5a34b865\"");
        assert_eq!(m["PopReceipt"], "\"AgAAAAMAAAAAAAAAAgtnj8x+1QE=\"");
        assert_eq!(m["InsertionTime"], "2019-10-09T17:58:31+00:00");
        assert_eq!(m["ExpirationTime"], "2019-10-16T17:58:31+00:00");
        assert_eq!(m["NextVisibleTime"], "2019-10-09T18:08:32+00:00");
        assert_eq!(m["sys"]["MethodName"], "probe-worker");
        assert_eq!(m["sys"]["UtcNow"], "2019-10-09T17:58:32.2205399Z");
        assert!(
            m.get("QueueTrigger").is_none(),
            "trigger value is not repeated in Metadata"
        );
    }

    #[test]
    fn json_object_message_properties_are_copied_into_metadata() {
        let body =
            br#"{"fail":true,"n":2,"who":"x","nested":{"a":1},"list":[1],"none":null,"Id":"mine"}"#;
        let p = queue_payload("w", "msg", &message(), body, false, NOW);
        let m = &p["Metadata"];
        assert_eq!(
            p["Data"]["msg"],
            Value::String(Value::String(String::from_utf8_lossy(body).into()).to_string())
        );
        assert_eq!(m["fail"], "\"True\"");
        assert_eq!(m["n"], "\"2\"");
        assert_eq!(m["who"], "\"x\"");
        assert_eq!(m["nested"], json!({"a": 1}));
        assert!(m.get("list").is_none() && m.get("none").is_none());
        assert_eq!(
            m["Id"], "\"mine\"",
            "message properties override binding data"
        );
    }

    #[test]
    fn binary_queue_trigger_sends_base64_once() {
        let p = queue_payload("w", "msg", &message(), &[0xff, 0x00], true, NOW);
        assert_eq!(p["Data"]["msg"], "/wA=");
    }

    #[test]
    fn timer_payload_matches_the_captured_host_shape() {
        let p = timer_payload("heartbeat", "timer", None, false, NOW);
        assert_eq!(
            p["Data"],
            json!({"timer": {"Schedule": {"AdjustForDST": true}, "ScheduleStatus": null, "IsPastDue": false}})
        );
        assert_eq!(p["Metadata"].as_object().unwrap().len(), 1);
    }

    #[test]
    fn http_payload_groups_headers_joins_query_and_base64s_binary_bodies() {
        let req = HttpRequestData {
            url: "http://127.0.0.1:7071/api/probe?a=1&a=2".into(),
            method: "POST".into(),
            query: vec![("a".into(), "1".into()), ("a".into(), "2".into())],
            headers: vec![("accept".into(), "x".into()), ("accept".into(), "y".into())],
            params: BTreeMap::from([("id".into(), "p1".into())]),
            body: vec![1, 2, 3],
            content_type: Some("application/octet-stream".into()),
        };
        let p = http_payload("probe", "req", &req, NOW);
        let r = &p["Data"]["req"];
        assert_eq!(r["Query"], json!({"a": "1,2"}));
        assert_eq!(r["Headers"], json!({"accept": ["x", "y"]}));
        assert_eq!(r["Params"], json!({"id": "p1"}));
        assert_eq!(r["Body"], "AQID");
        assert_eq!(p["Metadata"]["Headers"], json!({"accept": "x,y"}));
        assert_eq!(p["Metadata"]["id"], "\"p1\"");
    }

    #[test]
    fn empty_http_body_is_omitted() {
        let req = HttpRequestData {
            url: "http://h/api/x".into(),
            method: "GET".into(),
            query: vec![],
            headers: vec![],
            params: BTreeMap::new(),
            body: vec![],
            content_type: None,
        };
        assert!(
            http_payload("x", "req", &req, NOW)["Data"]["req"]
                .get("Body")
                .is_none()
        );
    }
}
