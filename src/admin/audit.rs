//! The admin audit trail: every `meshpay admin …` command writes a row (who, what, when, its
//! options without secrets) before it runs and its outcome after. A command whose row cannot be
//! written does not run.

use clap::parser::ValueSource;
use clap::{ArgMatches, CommandFactory};
use meshpay_store::{AuditEntry, Store};
use serde_json::{Map, Value};

/// Names the operator (a person or a pipeline's identity); else the OS user.
pub const ACTOR_ENV: &str = "MESHPAY_ADMIN_ACTOR";

/// Options whose values are secrets (connection strings carry passwords and account keys).
const SECRET_OPTIONS: &[&str] = &["database_url", "connection"];

/// Who runs the command: [`ACTOR_ENV`], else `USER`/`LOGNAME`/`USERNAME`.
pub fn actor(get: impl Fn(&str) -> Option<String>) -> String {
    [ACTOR_ENV, "USER", "LOGNAME", "USERNAME"]
        .into_iter()
        .filter_map(&get)
        .map(|name| name.trim().chars().take(200).collect::<String>())
        .find(|name| !name.is_empty())
        .unwrap_or_else(|| "unknown".to_owned())
}

/// The admin subcommand path (`api-key create`) and the options given on the command line, from
/// `argv` (the whole command line, program name first); secrets replaced by `"<redacted>"`.
pub fn describe(
    argv: impl IntoIterator<Item = std::ffi::OsString>,
) -> anyhow::Result<(String, Value)> {
    let matches = <crate::cli::Cli as CommandFactory>::command().try_get_matches_from(argv)?;
    let mut path = Vec::new();
    let mut args = Map::new();
    let mut level: &ArgMatches = &matches;
    while let Some((name, sub)) = level.subcommand() {
        if !(path.is_empty() && name == "admin") {
            path.push(name.to_owned());
        }
        collect(sub, &mut args);
        level = sub;
    }
    Ok((path.join(" "), Value::Object(args)))
}

fn collect(matches: &ArgMatches, args: &mut Map<String, Value>) {
    for id in matches.ids() {
        let id = id.as_str();
        if matches.value_source(id) != Some(ValueSource::CommandLine) {
            continue;
        }
        let Ok(Some(raw)) = matches.try_get_raw(id) else {
            continue;
        };
        let values: Vec<Value> = raw
            .map(|v| {
                if SECRET_OPTIONS.contains(&id) {
                    Value::from("<redacted>")
                } else {
                    Value::from(v.to_string_lossy().into_owned())
                }
            })
            .collect();
        let value = match <[Value; 1]>::try_from(values) {
            Ok([one]) => one,
            Err(many) => Value::Array(many),
        };
        args.insert(id.to_owned(), value);
    }
}

/// Runs `action` between the audit row's start and its outcome.
pub async fn audited<T>(
    store: &Store,
    actor: &str,
    command: &str,
    args: &Value,
    action: impl std::future::Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<T> {
    let entry = AuditEntry {
        actor,
        command,
        args,
    };
    let id = store
        .start_audit(&entry)
        .await
        .map_err(|e| anyhow::anyhow!("could not write the audit row, nothing was done: {e}"))?;
    let result = action.await;
    let error = result.as_ref().err().map(|e| format!("{e:#}"));
    if let Err(e) = store.finish_audit(id, error.as_deref()).await {
        tracing::error!(audit_id = id, error = %e, "could not record the command's outcome");
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn describe_args(line: &[&str]) -> (String, Value) {
        describe(line.iter().map(std::ffi::OsString::from)).unwrap()
    }

    #[test]
    fn the_command_path_and_given_options_are_described_without_secrets() {
        let (command, args) = describe_args(&[
            "meshpay",
            "admin",
            "--database-url",
            "postgres://u:hunter2@db/meshpay",
            "payments",
            "requeue",
            "--payment",
            "pay_x",
            "--connection",
            "DefaultEndpointsProtocol=https;AccountKey=c2VjcmV0",
        ]);
        assert_eq!(command, "payments requeue");
        assert_eq!(args["payment"], "pay_x");
        assert_eq!(args["database_url"], "<redacted>");
        assert_eq!(args["connection"], "<redacted>");
        let text = args.to_string();
        assert!(
            !text.contains("hunter2") && !text.contains("c2VjcmV0"),
            "{text}"
        );
        // Defaults the operator did not type are not recorded as given.
        assert!(args.get("step").is_none(), "{text}");
    }

    #[test]
    fn the_actor_is_the_configured_name_else_the_os_user() {
        let get = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| (*v).to_owned())
            }
        };
        assert_eq!(
            actor(get(&[(ACTOR_ENV, "deploy-pipeline"), ("USER", "ops")])),
            "deploy-pipeline"
        );
        assert_eq!(actor(get(&[(ACTOR_ENV, " "), ("USER", "ops")])), "ops");
        assert_eq!(actor(get(&[])), "unknown");
    }
}
