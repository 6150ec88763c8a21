//! `functions/<name>/function.json`: each function's trigger and output bindings.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde_json::Value;

use super::host::{get, get_bool, get_str};
use super::settings::Settings;
use crate::routes::RouteTemplate;

/// One indexed function.
#[derive(Clone, Debug)]
pub struct FunctionDef {
    /// The folder name: the handler path (`POST /<name>`) and `sys.MethodName`.
    pub name: String,
    /// What starts it.
    pub trigger: Trigger,
    /// Queue output bindings, written from `Outputs.<binding>`.
    pub queue_outputs: Vec<QueueOutput>,
    /// Name of the `http` output binding (`res`, or `$return`).
    pub http_output: Option<String>,
}

/// The trigger binding.
#[derive(Clone, Debug)]
pub enum Trigger {
    /// `httpTrigger`.
    Http(HttpTrigger),
    /// `queueTrigger`.
    Queue(QueueTrigger),
    /// `timerTrigger`.
    Timer(TimerTrigger),
}

/// An `httpTrigger` binding.
#[derive(Clone, Debug)]
pub struct HttpTrigger {
    /// Binding name (`Data.<name>` in the envelope form).
    pub binding: String,
    /// `route`, default the function name.
    pub route: RouteTemplate,
    /// Upper-case methods; `None` = any.
    pub methods: Option<Vec<String>>,
    /// Forwarded as the original request (one httpTrigger in, one http out, forwarding on).
    pub forwarded: bool,
}

/// A `queueTrigger` binding.
#[derive(Clone, Debug)]
pub struct QueueTrigger {
    /// Binding name.
    pub binding: String,
    /// Queue to poll (`%Setting%` resolved).
    pub queue_name: String,
    /// Connection setting name (empty = `AzureWebJobsStorage`).
    pub connection: String,
    /// `dataType: binary`: the body is sent as base64 instead of a string.
    pub binary: bool,
}

/// A `timerTrigger` binding.
#[derive(Clone, Debug)]
pub struct TimerTrigger {
    /// Binding name.
    pub binding: String,
    /// NCRONTAB expression (`%Setting%` resolved).
    pub schedule: String,
    /// Also fire once when the host starts.
    pub run_on_startup: bool,
    /// `useMonitor`; `None` = the host's default (monitor schedules of a minute or longer).
    pub use_monitor: Option<bool>,
}

/// A `queue` output binding.
#[derive(Clone, Debug)]
pub struct QueueOutput {
    /// Binding name (key in `Outputs`, or `$return`).
    pub binding: String,
    /// Target queue (`%Setting%` resolved).
    pub queue_name: String,
    /// Connection setting name.
    pub connection: String,
}

/// The folder holding function folders: `<app_root>/<functions_dir>` when it exists, else the
/// app root itself (the layout of a packaged Functions app).
pub fn functions_root(app_root: &Path, functions_dir: &str) -> PathBuf {
    let dir = app_root.join(functions_dir);
    if dir.is_dir() {
        dir
    } else {
        app_root.to_path_buf()
    }
}

/// Indexes every `<root>/*/function.json`. Functions that fail to index are returned as
/// errors (logged by the caller) and skipped, as the host does; disabled ones are left out.
pub fn load_all(
    root: &Path,
    settings: &Settings,
    forward_http: bool,
) -> anyhow::Result<(Vec<FunctionDef>, Vec<String>)> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(root)
        .with_context(|| format!("reading {}", root.display()))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.join("function.json").is_file())
        .collect();
    dirs.sort();
    let mut functions = Vec::new();
    let mut errors = Vec::new();
    for dir in dirs {
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let path = dir.join("function.json");
        let parsed = std::fs::read_to_string(&path)
            .map_err(|e| e.to_string())
            .and_then(|t| serde_json::from_str::<Value>(&t).map_err(|e| e.to_string()));
        let json = match parsed {
            Ok(json) => json,
            Err(e) => {
                errors.push(format!("{name}: {}: {e}", path.display()));
                continue;
            }
        };
        if is_disabled(&name, &json, settings) {
            tracing::info!(function = %name, "disabled, not indexed");
            continue;
        }
        match parse_function(&name, &json, settings, forward_http) {
            Ok(f) => functions.push(f),
            Err(e) => errors.push(format!("{name}: {e}")),
        }
    }
    Ok((functions, errors))
}

fn is_disabled(name: &str, json: &Value, settings: &Settings) -> bool {
    get_bool(json, "disabled")
        || settings
            .get(&format!("AzureWebJobs.{name}.Disabled"))
            .is_some_and(|v| v.eq_ignore_ascii_case("true") || v == "1")
}

/// Interprets one function.json.
pub fn parse_function(
    name: &str,
    json: &Value,
    settings: &Settings,
    forward_http: bool,
) -> Result<FunctionDef, String> {
    let bindings = get(json, "bindings")
        .and_then(Value::as_array)
        .ok_or("no `bindings` array")?;
    let kind = |b: &Value| get_str(b, "type").unwrap_or_default().to_ascii_lowercase();
    let direction = |b: &Value| {
        get_str(b, "direction")
            .unwrap_or_default()
            .to_ascii_lowercase()
    };
    let binding_name = |b: &Value| get_str(b, "name").unwrap_or_default();
    let expand = |b: &Value, key: &str| -> Result<Option<String>, String> {
        get_str(b, key).map(|v| settings.expand(&v)).transpose()
    };

    let triggers: Vec<&Value> = bindings
        .iter()
        .filter(|b| kind(b).ends_with("trigger"))
        .collect();
    let [trigger] = triggers.as_slice() else {
        return Err(format!(
            "expected exactly one trigger binding, found {}",
            triggers.len()
        ));
    };
    let inputs: Vec<String> = bindings
        .iter()
        .filter(|b| direction(b) == "in")
        .map(kind)
        .collect();
    let outputs: Vec<String> = bindings
        .iter()
        .filter(|b| direction(b) == "out")
        .map(kind)
        .collect();

    let mut queue_outputs = Vec::new();
    let mut http_output = None;
    for b in bindings.iter().filter(|b| direction(b) == "out") {
        match kind(b).as_str() {
            "queue" => {
                let queue_name = expand(b, "queueName")?.ok_or("queue output without queueName")?;
                meshpay_queue::validate_queue_name(&queue_name).map_err(|e| e.to_string())?;
                queue_outputs.push(QueueOutput {
                    binding: binding_name(b),
                    queue_name,
                    connection: get_str(b, "connection").unwrap_or_default(),
                });
            }
            "http" => http_output = Some(binding_name(b)),
            other => {
                tracing::warn!(function = %name, binding = %binding_name(b), "output type `{other}` is not supported by devhost; ignored")
            }
        }
    }

    let trigger = match kind(trigger).as_str() {
        "httptrigger" => {
            let route = expand(trigger, "route")?.unwrap_or_else(|| name.to_owned());
            let methods = get(trigger, "methods").and_then(Value::as_array).map(|m| {
                m.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_ascii_uppercase)
                    .collect()
            });
            Trigger::Http(HttpTrigger {
                binding: binding_name(trigger),
                route: RouteTemplate::parse(&route)?,
                methods,
                forwarded: forward_http && inputs == ["httptrigger"] && outputs == ["http"],
            })
        }
        "queuetrigger" => {
            let queue_name =
                expand(trigger, "queueName")?.ok_or("queueTrigger without queueName")?;
            meshpay_queue::validate_queue_name(&queue_name).map_err(|e| e.to_string())?;
            Trigger::Queue(QueueTrigger {
                binding: binding_name(trigger),
                queue_name,
                connection: get_str(trigger, "connection").unwrap_or_default(),
                binary: get_str(trigger, "dataType")
                    .is_some_and(|t| t.eq_ignore_ascii_case("binary")),
            })
        }
        "timertrigger" => Trigger::Timer(TimerTrigger {
            binding: binding_name(trigger),
            schedule: expand(trigger, "schedule")?.ok_or("timerTrigger without schedule")?,
            run_on_startup: get_bool(trigger, "runOnStartup"),
            use_monitor: get(trigger, "useMonitor").and_then(Value::as_bool),
        }),
        other => {
            return Err(format!(
                "trigger type `{other}` is not supported by devhost"
            ));
        }
    };
    Ok(FunctionDef {
        name: name.to_owned(),
        trigger,
        queue_outputs,
        http_output,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(j: Value, forward: bool) -> Result<FunctionDef, String> {
        let settings = Settings::from_pairs(&[("DEVHOST_T_SCHEDULE", "* * * * * *")]);
        parse_function("f", &j, &settings, forward)
    }

    #[test]
    fn http_in_and_out_is_forwarded_only_when_forwarding_is_on() {
        let j = json!({"bindings": [
            {"type": "httpTrigger", "direction": "in", "name": "req", "methods": ["get"], "route": "health"},
            {"type": "http", "direction": "out", "name": "res"}]});
        let Trigger::Http(h) = parse(j.clone(), true).unwrap().trigger else {
            panic!()
        };
        assert!(h.forwarded);
        assert_eq!(h.methods.unwrap(), ["GET"]);
        let Trigger::Http(h) = parse(j, false).unwrap().trigger else {
            panic!()
        };
        assert!(!h.forwarded);
    }

    #[test]
    fn http_with_a_queue_output_uses_the_envelope() {
        let j = json!({"bindings": [
            {"type": "httpTrigger", "direction": "in", "name": "req", "methods": ["post"]},
            {"type": "http", "direction": "out", "name": "res"},
            {"type": "queue", "direction": "out", "name": "out", "queueName": "probes", "connection": "AzureWebJobsStorage"}]});
        let f = parse(j, true).unwrap();
        let Trigger::Http(h) = &f.trigger else {
            panic!()
        };
        assert!(!h.forwarded);
        assert_eq!(h.route.as_str(), "f", "route defaults to the function name");
        assert_eq!(f.http_output.as_deref(), Some("res"));
        assert_eq!(f.queue_outputs[0].queue_name, "probes");
    }

    #[test]
    fn timer_schedule_resolves_percent_settings() {
        let j = json!({"bindings": [
            {"type": "timerTrigger", "direction": "in", "name": "timer", "schedule": "%DEVHOST_T_SCHEDULE%", "runOnStartup": true}]});
        let Trigger::Timer(t) = parse(j, true).unwrap().trigger else {
            panic!()
        };
        assert_eq!(t.schedule, "* * * * * *");
        assert!(t.run_on_startup);
    }

    #[test]
    fn unresolvable_settings_and_bad_queue_names_fail_indexing() {
        let j = json!({"bindings": [{"type": "queueTrigger", "direction": "in", "name": "m", "queueName": "%DEVHOST_T_NOPE%"}]});
        assert!(parse(j, true).unwrap_err().contains("DEVHOST_T_NOPE"));
        let j = json!({"bindings": [{"type": "queueTrigger", "direction": "in", "name": "m", "queueName": "Bad_Name"}]});
        assert!(parse(j, true).is_err());
    }

    #[test]
    fn functions_without_exactly_one_trigger_are_rejected() {
        assert!(parse(json!({"bindings": []}), true).is_err());
        assert!(
            parse(
                json!({"bindings": [{"type": "blobTrigger", "direction": "in", "name": "b"}]}),
                true
            )
            .is_err()
        );
    }
}
