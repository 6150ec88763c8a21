//! host.json: the parts a custom-handler app uses. The host binds configuration
//! case-insensitively, so every key lookup here ignores case.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context as _, bail};
use meshpay_queue::MessageEncoding;
use serde_json::{Map, Value};

use super::timespan;

/// The Functions default when `extensions.http.routePrefix` is absent.
const DEFAULT_ROUTE_PREFIX: &str = "api";
/// `customHandler.initializationTimeout` default in the host source.
const DEFAULT_INIT_TIMEOUT: Duration = Duration::from_secs(30);
/// Premium/Dedicated default (Core Tools runs unbounded; a bound keeps queue messages moving).
const DEFAULT_FUNCTION_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// The queue extension's lower bound for `maxPollingInterval`.
const MIN_POLLING_INTERVAL: Duration = Duration::from_millis(100);

/// host.json, typed.
#[derive(Clone, Debug)]
pub struct HostConfig {
    /// `customHandler.description.defaultExecutablePath`.
    pub executable: String,
    /// `customHandler.description.arguments` (not yet `%`-expanded).
    pub arguments: Vec<String>,
    /// `customHandler.description.workingDirectory` (relative to the app root).
    pub working_directory: Option<String>,
    /// `enableForwardingHttpRequest` or `enableProxyingHttpRequest`.
    pub forward_http: bool,
    /// `customHandler.initializationTimeout`.
    pub initialization_timeout: Duration,
    /// `extensions.http.routePrefix`, without slashes ("" = no prefix).
    pub route_prefix: String,
    /// `extensions.queues`.
    pub queues: QueueOptions,
    /// `functionTimeout`; `None` = unbounded.
    pub function_timeout: Option<Duration>,
}

/// `extensions.queues` with the queue extension's defaults.
#[derive(Clone, Debug)]
pub struct QueueOptions {
    /// Messages fetched per receive (1..=32, default 16).
    pub batch_size: u8,
    /// Fetch the next batch once this few messages are still in flight.
    pub new_batch_threshold: usize,
    /// Delay before a failed message is visible again (default 0).
    pub visibility_timeout: Duration,
    /// Attempts before a message goes to `<queue>-poison` (default 5).
    pub max_dequeue_count: u64,
    /// Longest wait between polls of an empty queue (default 1 min, minimum 100 ms).
    pub max_polling_interval: Duration,
    /// How message bytes are stored (default base64).
    pub message_encoding: MessageEncoding,
}

impl HostConfig {
    /// Reads `path` and applies `overrides` (`dotted.path=value`, value parsed as JSON when
    /// it is JSON, else taken as a string) before interpreting it.
    pub fn load(path: &Path, overrides: &[String]) -> anyhow::Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let mut json: Value = serde_json::from_str(&text)
            .with_context(|| format!("{} is not JSON", path.display()))?;
        for item in overrides {
            apply_override(&mut json, item)?;
        }
        Self::from_json(&json).with_context(|| format!("in {}", path.display()))
    }

    /// Interprets a host.json document.
    pub fn from_json(json: &Value) -> anyhow::Result<Self> {
        // `httpWorker` is the pre-GA name; `customHandler` wins when both exist.
        let handler = get(json, "customHandler").or_else(|| get(json, "httpWorker"));
        let Some(handler) = handler else {
            bail!("host.json has no `customHandler` section")
        };
        let description = get(handler, "description").unwrap_or(&Value::Null);
        let executable = get_str(description, "defaultExecutablePath").unwrap_or_default();
        if executable.trim().is_empty() {
            bail!("customHandler.description.defaultExecutablePath is empty");
        }
        let arguments = get(description, "arguments")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        let working_directory =
            get_str(description, "workingDirectory").filter(|s| !s.trim().is_empty());
        let forward_http = get_bool(handler, "enableForwardingHttpRequest")
            || get_bool(handler, "enableProxyingHttpRequest");
        let initialization_timeout = match get_str(handler, "initializationTimeout") {
            Some(t) => timespan::parse(&t)
                .map_err(anyhow::Error::msg)?
                .unwrap_or(DEFAULT_INIT_TIMEOUT),
            None => DEFAULT_INIT_TIMEOUT,
        };
        let extensions = get(json, "extensions").unwrap_or(&Value::Null);
        let route_prefix = get(extensions, "http")
            .and_then(|h| get_str(h, "routePrefix"))
            .unwrap_or_else(|| DEFAULT_ROUTE_PREFIX.to_owned())
            .trim_matches('/')
            .to_owned();
        let queues = QueueOptions::from_json(get(extensions, "queues").unwrap_or(&Value::Null))?;
        let function_timeout = match get_str(json, "functionTimeout") {
            Some(t) => timespan::parse(&t).map_err(anyhow::Error::msg)?,
            None => Some(DEFAULT_FUNCTION_TIMEOUT),
        };
        Ok(Self {
            executable,
            arguments,
            working_directory,
            forward_http,
            initialization_timeout,
            route_prefix,
            queues,
            function_timeout,
        })
    }
}

impl QueueOptions {
    fn from_json(q: &Value) -> anyhow::Result<Self> {
        let batch_size = match get(q, "batchSize").and_then(Value::as_u64) {
            Some(n @ 1..=32) => n as u8,
            Some(n) => bail!("extensions.queues.batchSize {n} is outside 1..=32"),
            None => 16,
        };
        // The extension's default is (batchSize / 2) * processorCount.
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let new_batch_threshold = get(q, "newBatchThreshold")
            .and_then(Value::as_u64)
            .map_or(usize::from(batch_size / 2) * cpus, |n| n as usize);
        let span = |key: &str, default: Duration| -> anyhow::Result<Duration> {
            match get_str(q, key) {
                Some(t) => Ok(timespan::parse(&t)
                    .map_err(|e| anyhow::anyhow!("extensions.queues.{key}: {e}"))?
                    .unwrap_or(default)),
                None => Ok(default),
            }
        };
        let max_polling_interval =
            span("maxPollingInterval", Duration::from_secs(60))?.max(MIN_POLLING_INTERVAL);
        let message_encoding = match get_str(q, "messageEncoding") {
            Some(e) => MessageEncoding::from_setting(&e).with_context(|| {
                format!("extensions.queues.messageEncoding `{e}` is neither base64 nor none")
            })?,
            None => MessageEncoding::Base64,
        };
        Ok(Self {
            batch_size,
            new_batch_threshold,
            visibility_timeout: span("visibilityTimeout", Duration::ZERO)?,
            max_dequeue_count: get(q, "maxDequeueCount")
                .and_then(Value::as_u64)
                .unwrap_or(5)
                .max(1),
            max_polling_interval,
            message_encoding,
        })
    }
}

/// Case-insensitive member lookup.
pub fn get<'a>(value: &'a Value, key: &str) -> Option<&'a Value> {
    value
        .as_object()?
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(key))
        .map(|(_, v)| v)
}

/// A member as a string (numbers and booleans are accepted as their text).
pub fn get_str(value: &Value, key: &str) -> Option<String> {
    match get(value, key)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// A member as a boolean (`true` or `"true"`).
pub fn get_bool(value: &Value, key: &str) -> bool {
    match get(value, key) {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s.eq_ignore_ascii_case("true"),
        _ => false,
    }
}

/// `a.b.c=value`: sets (creating objects as needed, matching existing keys case-insensitively).
fn apply_override(json: &mut Value, item: &str) -> anyhow::Result<()> {
    let (path, raw) = item
        .split_once('=')
        .with_context(|| format!("--host-set `{item}`: expected path=value"))?;
    let value = serde_json::from_str(raw).unwrap_or_else(|_| Value::String(raw.to_owned()));
    let keys: Vec<&str> = path.split('.').filter(|k| !k.is_empty()).collect();
    let Some((last, parents)) = keys.split_last() else {
        bail!("--host-set `{item}`: empty path")
    };
    let Value::Object(root) = json else {
        bail!("host.json is not a JSON object")
    };
    let mut map = root;
    for key in parents {
        map = child_map(map, key)?;
    }
    let key = existing_key(map, last);
    map.insert(key, value);
    Ok(())
}

fn existing_key(map: &Map<String, Value>, key: &str) -> String {
    map.keys()
        .find(|k| k.eq_ignore_ascii_case(key))
        .cloned()
        .unwrap_or_else(|| key.to_owned())
}

/// The object under `key`, replacing a non-object value by an empty object.
fn child_map<'a>(
    map: &'a mut Map<String, Value>,
    key: &str,
) -> anyhow::Result<&'a mut Map<String, Value>> {
    let key = existing_key(map, key);
    let slot = map.entry(key).or_insert_with(|| Value::Object(Map::new()));
    if !slot.is_object() {
        *slot = Value::Object(Map::new());
    }
    match slot {
        Value::Object(child) => Ok(child),
        _ => bail!("override path is not an object"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn minimal() -> Value {
        json!({"version": "2.0", "customHandler": {"description": {"defaultExecutablePath": "meshpay"}}})
    }

    #[test]
    fn defaults_match_the_host_and_queue_extension() {
        let c = HostConfig::from_json(&minimal()).unwrap();
        assert_eq!(c.route_prefix, "api");
        assert!(!c.forward_http);
        assert_eq!(c.initialization_timeout, Duration::from_secs(30));
        assert_eq!(c.queues.batch_size, 16);
        assert_eq!(c.queues.max_dequeue_count, 5);
        assert_eq!(c.queues.visibility_timeout, Duration::ZERO);
        assert_eq!(c.queues.max_polling_interval, Duration::from_secs(60));
        assert_eq!(c.queues.message_encoding, MessageEncoding::Base64);
    }

    #[test]
    fn keys_are_case_insensitive_and_proxying_counts_as_forwarding() {
        let j = json!({
            "CustomHandler": {"Description": {"DefaultExecutablePath": "x"}, "enableProxyingHttpRequest": true},
            "Extensions": {"HTTP": {"RoutePrefix": "/v1/"}, "Queues": {"MaxDequeueCount": 2, "MessageEncoding": "none"}},
            "functionTimeout": "00:00:10"
        });
        let c = HostConfig::from_json(&j).unwrap();
        assert!(c.forward_http);
        assert_eq!(c.route_prefix, "v1");
        assert_eq!(c.queues.max_dequeue_count, 2);
        assert_eq!(c.queues.message_encoding, MessageEncoding::None);
        assert_eq!(c.function_timeout, Some(Duration::from_secs(10)));
    }

    #[test]
    fn overrides_set_nested_values_over_existing_keys() {
        let mut j = json!({"customHandler": {"description": {"defaultExecutablePath": "x"}},
                           "extensions": {"queues": {"maxDequeueCount": 5}}});
        apply_override(&mut j, "extensions.queues.MAXDEQUEUECOUNT=2").unwrap();
        apply_override(&mut j, "extensions.queues.maxPollingInterval=00:00:00.100").unwrap();
        let c = HostConfig::from_json(&j).unwrap();
        assert_eq!(c.queues.max_dequeue_count, 2);
        assert_eq!(c.queues.max_polling_interval, Duration::from_millis(100));
    }

    #[test]
    fn polling_interval_has_the_extension_floor() {
        let mut j = minimal();
        apply_override(&mut j, "extensions.queues.maxPollingInterval=00:00:00.001").unwrap();
        let c = HostConfig::from_json(&j).unwrap();
        assert_eq!(c.queues.max_polling_interval, Duration::from_millis(100));
    }

    #[test]
    fn missing_executable_is_rejected() {
        assert!(HostConfig::from_json(&json!({"customHandler": {}})).is_err());
        assert!(HostConfig::from_json(&json!({})).is_err());
    }
}
