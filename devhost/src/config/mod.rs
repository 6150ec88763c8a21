//! Configuration read once at start: host.json, function.json files, app settings.

pub mod functions;
pub mod host;
pub mod settings;
pub mod timespan;
