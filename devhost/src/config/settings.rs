//! App settings: the process environment plus local.settings.json `Values` (the environment
//! wins, as with Core Tools), and `%Setting%` expansion in binding values.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context as _;
use serde_json::Value;

/// App settings as the host sees them. `Debug` lists names only: values include connection
/// strings and keys.
#[derive(Clone, Default)]
pub struct Settings {
    /// local.settings.json `Values` (strings only; other JSON values are stringified).
    local: BTreeMap<String, String>,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("local_names", &self.local.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Settings {
    /// Reads `<app_root>/local.settings.json` if it exists.
    pub fn load(app_root: &Path) -> anyhow::Result<Self> {
        let path = app_root.join("local.settings.json");
        if !path.exists() {
            return Ok(Self::default());
        }
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let json: Value = serde_json::from_str(&text)
            .with_context(|| format!("{} is not JSON", path.display()))?;
        let mut local = BTreeMap::new();
        if let Some(values) = json.get("Values").and_then(Value::as_object) {
            for (k, v) in values {
                let v = match v {
                    Value::String(s) => s.clone(),
                    Value::Null => continue,
                    other => other.to_string(),
                };
                local.insert(k.clone(), v);
            }
        }
        Ok(Self { local })
    }

    /// Settings from a fixed map (tests).
    #[cfg(test)]
    pub fn from_pairs(pairs: &[(&str, &str)]) -> Self {
        let local = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Self { local }
    }

    /// The value of `key`: the environment, then local.settings.json.
    pub fn get(&self, key: &str) -> Option<String> {
        if let Ok(v) = std::env::var(key) {
            return Some(v);
        }
        self.local.get(key).cloned()
    }

    /// local.settings.json values the environment does not already define: what the handler
    /// process gets on top of the inherited environment.
    pub fn local_values_not_in_env(&self) -> Vec<(String, String)> {
        self.local
            .iter()
            .filter(|(k, _)| std::env::var_os(k).is_none())
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// Replaces every `%Name%` in `text` with the setting `Name`; an unknown name is an error,
    /// as the host refuses to index such a function.
    pub fn expand(&self, text: &str) -> Result<String, String> {
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(start) = rest.find('%') {
            out.push_str(&rest[..start]);
            let after = &rest[start + 1..];
            let Some(end) = after.find('%') else {
                return Err(format!("unbalanced `%` in `{text}`"));
            };
            let name = &after[..end];
            let value = self.get(name).ok_or_else(|| {
                format!("`%{name}%` does not resolve to a value (app setting `{name}`)")
            })?;
            out.push_str(&value);
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }

    /// `%VAR%` expansion for customHandler arguments: unknown names are removed (the host uses
    /// `Environment.ExpandEnvironmentVariables` and strips what stays unresolved).
    pub fn expand_lenient(&self, text: &str) -> String {
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(start) = rest.find('%') {
            let after = &rest[start + 1..];
            let Some(end) = after.find('%') else { break };
            out.push_str(&rest[..start]);
            out.push_str(&self.get(&after[..end]).unwrap_or_default());
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_names_settings_without_their_values() {
        let s = Settings::from_pairs(&[("AzureWebJobsStorage", "AccountKey=c2VjcmV0")]);
        let debug = format!("{s:?}");
        assert!(debug.contains("AzureWebJobsStorage"), "{debug}");
        assert!(!debug.contains("c2VjcmV0"), "{debug}");
    }

    #[test]
    fn percent_names_are_replaced_by_settings() {
        let s = Settings::from_pairs(&[
            ("DEVHOST_T_SCHED", "*/5 * * * * *"),
            ("DEVHOST_T_Q", "jobs"),
        ]);
        assert_eq!(s.expand("%DEVHOST_T_SCHED%").unwrap(), "*/5 * * * * *");
        assert_eq!(s.expand("in-%DEVHOST_T_Q%-x").unwrap(), "in-jobs-x");
        assert_eq!(s.expand("plain").unwrap(), "plain");
    }

    #[test]
    fn unknown_percent_name_is_an_error_naming_the_setting() {
        let err = Settings::default()
            .expand("%DEVHOST_T_MISSING%")
            .unwrap_err();
        assert!(err.contains("DEVHOST_T_MISSING"), "{err}");
    }

    #[test]
    fn lenient_expansion_drops_unknown_names() {
        let s = Settings::from_pairs(&[("DEVHOST_T_A", "1")]);
        assert_eq!(
            s.expand_lenient("--a %DEVHOST_T_A% --b %DEVHOST_T_NOPE%"),
            "--a 1 --b "
        );
    }

    #[test]
    fn environment_wins_over_local_settings() {
        // PATH is always set in the test environment.
        let s = Settings::from_pairs(&[("PATH", "from-file")]);
        assert_ne!(s.get("PATH").as_deref(), Some("from-file"));
        assert!(s.local_values_not_in_env().iter().all(|(k, _)| k != "PATH"));
    }
}
