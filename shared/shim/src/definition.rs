//! Typed `function.json`: what the host reads to bind a function, embedded in each function
//! crate with `include_str!` so the handler knows the same bindings the host knows.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

/// A function's name (its folder name) and the text of its `function.json`, both known at
/// compile time. Parsing is deferred to [`crate::FunctionApp::build`], so registration is a
/// plain builder chain and every error surfaces in one place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FunctionJson {
    pub name: &'static str,
    pub json: &'static str,
}

impl FunctionJson {
    pub const fn new(name: &'static str, json: &'static str) -> Self {
        Self { name, json }
    }

    pub fn parse(&self) -> Result<FunctionDefinition, DefinitionError> {
        FunctionDefinition::parse(self.name, self.json)
    }
}

/// Why a `function.json` cannot serve as a function definition.
#[derive(Debug, thiserror::Error)]
pub enum DefinitionError {
    #[error("function.json of `{function}` is not valid JSON for a function definition: {source}")]
    Json {
        function: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("function `{function}` has {count} trigger bindings; exactly one is required")]
    TriggerCount { function: String, count: usize },
    #[error("function `{function}` declares binding name `{binding}` more than once")]
    DuplicateBinding { function: String, binding: String },
    #[error("binding `{binding}` of function `{function}` lacks the `{field}` property")]
    MissingField {
        function: String,
        binding: String,
        field: &'static str,
    },
    #[error("function name `{0}` is not a valid folder name (ASCII letters, digits, `-`, `_`)")]
    InvalidName(String),
}

/// The binding `type`s the shim understands; anything else is kept verbatim.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum BindingType {
    HttpTrigger,
    Http,
    QueueTrigger,
    Queue,
    TimerTrigger,
    Other(String),
}

impl BindingType {
    pub fn as_str(&self) -> &str {
        match self {
            Self::HttpTrigger => "httpTrigger",
            Self::Http => "http",
            Self::QueueTrigger => "queueTrigger",
            Self::Queue => "queue",
            Self::TimerTrigger => "timerTrigger",
            Self::Other(other) => other,
        }
    }

    /// Every `*Trigger` type is a trigger, including ones the shim does not dispatch.
    pub fn is_trigger(&self) -> bool {
        self.as_str().to_ascii_lowercase().ends_with("trigger")
    }
}

// The host compares binding types case-insensitively.
impl<'de> Deserialize<'de> for BindingType {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        Ok(match raw.to_ascii_lowercase().as_str() {
            "httptrigger" => Self::HttpTrigger,
            "http" => Self::Http,
            "queuetrigger" => Self::QueueTrigger,
            "queue" => Self::Queue,
            "timertrigger" => Self::TimerTrigger,
            _ => Self::Other(raw),
        })
    }
}

impl Serialize for BindingType {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    In,
    Out,
    InOut,
}

/// One entry of `bindings`. Properties the shim does not model stay in `other`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Binding {
    #[serde(rename = "type")]
    pub kind: BindingType,
    pub direction: Direction,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub methods: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_level: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_on_startup: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub use_monitor: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_type: Option<String>,
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

/// Which dispatch path a function takes, decided by its trigger binding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TriggerKind {
    Http,
    Queue,
    Timer,
    Other(String),
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
struct FunctionJsonBody {
    bindings: Vec<Binding>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    disabled: Option<bool>,
    #[serde(flatten)]
    other: Map<String, Value>,
}

/// A parsed and validated `function.json`.
#[derive(Debug, Clone, PartialEq)]
pub struct FunctionDefinition {
    name: String,
    bindings: Vec<Binding>,
    trigger_index: usize,
}

impl FunctionDefinition {
    pub fn parse(name: &str, json: &str) -> Result<Self, DefinitionError> {
        if !is_valid_function_name(name) {
            return Err(DefinitionError::InvalidName(name.to_owned()));
        }
        let body: FunctionJsonBody =
            serde_json::from_str(json).map_err(|source| DefinitionError::Json {
                function: name.to_owned(),
                source,
            })?;
        Self::from_bindings(name, body.bindings)
    }

    fn from_bindings(name: &str, bindings: Vec<Binding>) -> Result<Self, DefinitionError> {
        let triggers: Vec<usize> = (0..bindings.len())
            .filter(|&i| bindings[i].kind.is_trigger())
            .collect();
        let [trigger_index] = triggers[..] else {
            return Err(DefinitionError::TriggerCount {
                function: name.to_owned(),
                count: triggers.len(),
            });
        };
        for (i, binding) in bindings.iter().enumerate() {
            if bindings[..i].iter().any(|b| b.name == binding.name) {
                return Err(DefinitionError::DuplicateBinding {
                    function: name.to_owned(),
                    binding: binding.name.clone(),
                });
            }
            check_required_fields(name, binding)?;
        }
        Ok(Self {
            name: name.to_owned(),
            bindings,
            trigger_index,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn bindings(&self) -> &[Binding] {
        &self.bindings
    }

    pub fn trigger(&self) -> &Binding {
        &self.bindings[self.trigger_index]
    }

    pub fn trigger_kind(&self) -> TriggerKind {
        match &self.trigger().kind {
            BindingType::HttpTrigger => TriggerKind::Http,
            BindingType::QueueTrigger => TriggerKind::Queue,
            BindingType::TimerTrigger => TriggerKind::Timer,
            other => TriggerKind::Other(other.as_str().to_owned()),
        }
    }

    /// Output bindings (direction `out`), in declaration order.
    pub fn outputs(&self) -> impl Iterator<Item = &Binding> {
        self.bindings
            .iter()
            .filter(|b| b.direction == Direction::Out)
    }

    /// The `http` output binding, if any.
    pub fn http_output(&self) -> Option<&Binding> {
        self.outputs().find(|b| b.kind == BindingType::Http)
    }

    pub fn output(&self, name: &str) -> Option<&Binding> {
        self.outputs().find(|b| b.name == name)
    }

    /// True when the host forwards the original HTTP request instead of an envelope: exactly
    /// one input (an `httpTrigger`) and one output (an `http`), as `IsHttpInAndOutFunction`.
    pub fn is_http_forwardable(&self) -> bool {
        let inputs: Vec<_> = self
            .bindings
            .iter()
            .filter(|b| b.direction != Direction::Out)
            .collect();
        let outputs: Vec<_> = self.outputs().collect();
        matches!(inputs[..], [b] if b.kind == BindingType::HttpTrigger)
            && matches!(outputs[..], [b] if b.kind == BindingType::Http)
    }
}

fn check_required_fields(function: &str, binding: &Binding) -> Result<(), DefinitionError> {
    let missing = |field| DefinitionError::MissingField {
        function: function.to_owned(),
        binding: binding.name.clone(),
        field,
    };
    match binding.kind {
        BindingType::QueueTrigger | BindingType::Queue if binding.queue_name.is_none() => {
            Err(missing("queueName"))
        }
        BindingType::TimerTrigger if binding.schedule.is_none() => Err(missing("schedule")),
        _ => Ok(()),
    }
}

/// The host posts to `/{FunctionName}`; restricting names to URL-safe characters keeps that
/// path unambiguous.
fn is_valid_function_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROBE: &str = r#"{"bindings":[
        {"type":"httpTrigger","direction":"in","name":"req","authLevel":"function","methods":["post"],"route":"probe"},
        {"type":"http","direction":"out","name":"res"},
        {"type":"queue","direction":"out","name":"out","queueName":"probes","connection":"AzureWebJobsStorage"}]}"#;

    #[test]
    fn http_function_with_queue_output_is_not_forwardable() {
        let def = FunctionDefinition::parse("probe", PROBE).unwrap();
        assert_eq!(def.trigger_kind(), TriggerKind::Http);
        assert_eq!(def.http_output().unwrap().name, "res");
        assert_eq!(
            def.output("out").unwrap().queue_name.as_deref(),
            Some("probes")
        );
        assert!(!def.is_http_forwardable());
    }

    #[test]
    fn http_in_http_out_is_forwardable_even_with_return_name() {
        let json = r#"{"bindings":[{"type":"HttpTrigger","direction":"in","name":"req"},
            {"type":"http","direction":"out","name":"$return"}]}"#;
        let def = FunctionDefinition::parse("health", json).unwrap();
        assert!(def.is_http_forwardable());
    }

    #[test]
    fn two_triggers_are_rejected() {
        let json = r#"{"bindings":[{"type":"httpTrigger","direction":"in","name":"a"},
            {"type":"timerTrigger","direction":"in","name":"b","schedule":"0 * * * * *"}]}"#;
        let err = FunctionDefinition::parse("x", json).unwrap_err();
        assert!(matches!(
            err,
            DefinitionError::TriggerCount { count: 2, .. }
        ));
    }

    #[test]
    fn queue_binding_without_queue_name_is_rejected() {
        let json = r#"{"bindings":[{"type":"queueTrigger","direction":"in","name":"m"}]}"#;
        let err = FunctionDefinition::parse("x", json).unwrap_err();
        assert!(matches!(
            err,
            DefinitionError::MissingField {
                field: "queueName",
                ..
            }
        ));
    }

    #[test]
    fn duplicate_binding_names_are_rejected() {
        let json = r#"{"bindings":[{"type":"queueTrigger","direction":"in","name":"m","queueName":"a"},
            {"type":"queue","direction":"out","name":"m","queueName":"b"}]}"#;
        let err = FunctionDefinition::parse("x", json).unwrap_err();
        assert!(matches!(err, DefinitionError::DuplicateBinding { .. }));
    }

    #[test]
    fn function_name_with_slash_is_rejected() {
        let err = FunctionDefinition::parse("a/b", PROBE).unwrap_err();
        assert!(matches!(err, DefinitionError::InvalidName(_)));
    }

    #[test]
    fn unknown_binding_properties_survive_a_round_trip() {
        let json =
            r#"{"type":"blob","direction":"in","name":"b","path":"c/{x}","dataType":"binary"}"#;
        let binding: Binding = serde_json::from_str(json).unwrap();
        assert_eq!(binding.kind, BindingType::Other("blob".into()));
        assert_eq!(binding.other["path"], "c/{x}");
        let back: Value = serde_json::to_value(&binding).unwrap();
        assert_eq!(back, serde_json::from_str::<Value>(json).unwrap());
    }
}
