//! `scripts/package.sh` (what `make package` runs) builds the zip-deploy package the real
//! Functions host expects: host.json and one folder per function (diagnostics left out) with
//! its function.json at the root, the handler at host.json's `defaultExecutablePath` with its executable bit, and
//! nothing else from the source tree. Packages the debug binary cargo built for this test, into
//! a directory of its own (never the shared dist/).

use std::collections::BTreeMap;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A scratch directory removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir =
            std::env::temp_dir().join(format!("meshpay-package-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn package(out: &Path, extra_env: &[(&str, &str)]) -> Output {
    let mut command = Command::new("bash");
    command
        .arg(repo().join("scripts/package.sh"))
        .env("MESHPAY_PACKAGE_BINARY", env!("CARGO_BIN_EXE_meshpay"))
        // The test binary is the dynamically linked debug build.
        .env("MESHPAY_PACKAGE_ALLOW_DYNAMIC", "1")
        .env("MESHPAY_PACKAGE_OUT", out)
        .env_remove("MESHPAY_PACKAGE_CHAINS")
        .env_remove("MESHPAY_PACKAGE_SIGNERS");
    for (name, value) in extra_env {
        command.env(name, value);
    }
    command.output().unwrap()
}

fn package_ok(out: &Path, extra_env: &[(&str, &str)]) {
    let output = package(out, extra_env);
    assert!(
        output.status.success(),
        "package.sh failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// One zip entry: its bytes (omitted for the handler: tens of MB) and Unix mode.
struct Entry {
    bytes: Option<Vec<u8>>,
    size: u64,
    mode: Option<u32>,
}

fn unzip(path: &Path, skip_bytes_of: &str) -> BTreeMap<String, Entry> {
    let mut archive = zip::ZipArchive::new(std::fs::File::open(path).unwrap()).unwrap();
    let mut entries = BTreeMap::new();
    for index in 0..archive.len() {
        let mut file = archive.by_index(index).unwrap();
        let name = file.name().to_owned();
        let bytes = if name == skip_bytes_of {
            None
        } else {
            let mut bytes = Vec::new();
            file.read_to_end(&mut bytes).unwrap();
            Some(bytes)
        };
        let entry = Entry {
            bytes,
            size: file.size(),
            mode: file.unix_mode(),
        };
        assert!(
            entries.insert(name.clone(), entry).is_none(),
            "{name} twice"
        );
    }
    entries
}

/// The diagnostics functions: the root package's `diagnostics` feature
/// (`dep:meshpay-fn-<folder>`), the one place they are listed.
fn diagnostics_functions() -> Vec<String> {
    let manifest: toml::Table =
        toml::from_str(&std::fs::read_to_string(repo().join("Cargo.toml")).unwrap()).unwrap();
    let names: Vec<String> = manifest["features"]["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|dep| {
            let dep = dep.as_str().unwrap();
            dep.strip_prefix("dep:meshpay-fn-").unwrap().to_owned()
        })
        .collect();
    assert!(!names.is_empty(), "no diagnostics feature");
    names
}

/// `functions/<name>/function.json` of the source tree, by name, diagnostics included.
fn all_source_functions() -> BTreeMap<String, Vec<u8>> {
    let mut functions = BTreeMap::new();
    for dir in std::fs::read_dir(repo().join("functions")).unwrap() {
        let dir = dir.unwrap().path();
        let function_json = dir.join("function.json");
        if function_json.is_file() {
            let name = dir.file_name().unwrap().to_string_lossy().into_owned();
            functions.insert(name, std::fs::read(function_json).unwrap());
        }
    }
    assert!(!functions.is_empty(), "no functions/*/function.json found");
    functions
}

/// The functions the production package holds: all but the diagnostics ones.
fn source_functions() -> BTreeMap<String, Vec<u8>> {
    let diagnostics = diagnostics_functions();
    all_source_functions()
        .into_iter()
        .filter(|(name, _)| !diagnostics.contains(name))
        .collect()
}

/// host.json's `customHandler.description.defaultExecutablePath`.
fn executable_path() -> String {
    let host: Value =
        serde_json::from_slice(&std::fs::read(repo().join("host.json")).unwrap()).unwrap();
    host["customHandler"]["description"]["defaultExecutablePath"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[test]
fn the_zip_holds_host_json_each_function_json_and_the_executable_and_nothing_else() {
    let scratch = Scratch::new("layout");
    package_ok(&scratch.0, &[]);
    let executable = executable_path();
    let entries = unzip(&scratch.0.join("meshpay.zip"), &executable);

    let functions = source_functions();
    let mut expected: Vec<String> = functions
        .keys()
        .map(|name| format!("{name}/function.json"))
        .collect();
    expected.push("host.json".into());
    expected.push(executable.clone());
    expected.sort();
    let found: Vec<String> = entries.keys().cloned().collect();
    assert_eq!(found, expected, "package layout");

    for (name, source) in &functions {
        let packaged = entries[&format!("{name}/function.json")].bytes.as_ref();
        assert_eq!(packaged, Some(source), "{name}/function.json differs");
    }
    let host = std::fs::read(repo().join("host.json")).unwrap();
    assert_eq!(entries["host.json"].bytes.as_ref(), Some(&host));

    let handler = &entries[&executable];
    let built = std::fs::metadata(env!("CARGO_BIN_EXE_meshpay")).unwrap();
    assert_eq!(
        handler.size,
        built.len(),
        "the packaged handler is the given binary"
    );
    let mode = handler.mode.expect("the zip records Unix modes");
    assert_eq!(mode & 0o111, 0o111, "handler not executable: mode {mode:o}");

    // The source tree stays out (the folder listing above already implies it; this names it).
    assert!(
        entries.keys().all(|name| !name.ends_with(".rs")
            && !name.ends_with("Cargo.toml")
            && !name.contains("src/")),
        "{found:?}"
    );
    // dist/app is the unzipped package, plus local settings for `func start` that the zip
    // leaves out (checked by the layout above).
    assert!(scratch.0.join("app").join(&executable).is_file());
    let local: serde_json::Value =
        serde_json::from_slice(&std::fs::read(scratch.0.join("app/local.settings.json")).unwrap())
            .unwrap();
    let chains = local["Values"]["MESHPAY_CHAINS_CONFIG"].as_str().unwrap();
    assert!(
        Path::new(chains).is_absolute() && Path::new(chains).is_file(),
        "{chains}"
    );
    assert_eq!(local["Values"]["FUNCTIONS_WORKER_RUNTIME"], "Custom");
}

#[test]
fn the_zip_holds_no_diagnostics_function() {
    let scratch = Scratch::new("diagnostics");
    package_ok(&scratch.0, &[]);
    let entries = unzip(&scratch.0.join("meshpay.zip"), &executable_path());
    let diagnostics = diagnostics_functions();
    let on_disk = all_source_functions();
    for name in &diagnostics {
        assert!(
            on_disk.contains_key(name),
            "{name} is not a function folder"
        );
        let folder = format!("{name}/");
        assert!(
            entries.keys().all(|entry| !entry.starts_with(&folder)),
            "{name} is in the package"
        );
        assert!(!scratch.0.join("app").join(name).exists());
    }
}

#[test]
fn chains_and_signers_files_given_to_the_script_land_at_the_app_root() {
    let scratch = Scratch::new("config");
    let chains = repo().join("chains.dev.toml");
    let signers = repo().join("signers.dev.toml");
    package_ok(
        &scratch.0,
        &[
            ("MESHPAY_PACKAGE_CHAINS", chains.to_str().unwrap()),
            ("MESHPAY_PACKAGE_SIGNERS", signers.to_str().unwrap()),
        ],
    );
    let entries = unzip(&scratch.0.join("meshpay.zip"), &executable_path());
    assert_eq!(
        entries["chains.toml"].bytes.as_ref(),
        Some(&std::fs::read(&chains).unwrap())
    );
    assert_eq!(
        entries["signers.toml"].bytes.as_ref(),
        Some(&std::fs::read(&signers).unwrap())
    );
    assert_eq!(entries.len(), source_functions().len() + 4);
}

#[test]
fn a_missing_binary_or_config_file_fails_before_anything_is_written() {
    let scratch = Scratch::new("missing");
    let missing = scratch.0.join("no-such-meshpay");
    let output = package(
        &scratch.0,
        &[("MESHPAY_PACKAGE_BINARY", missing.to_str().unwrap())],
    );
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("no-such-meshpay missing"));

    let output = package(
        &scratch.0,
        &[("MESHPAY_PACKAGE_CHAINS", "no-such-chains.toml")],
    );
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("no-such-chains.toml not found"));
    assert!(!scratch.0.join("meshpay.zip").exists());
    assert!(!scratch.0.join("app").exists());
}

/// `scripts/check-static.sh` on `binary`.
fn check_static(binary: &Path) -> Output {
    Command::new("bash")
        .arg(repo().join("scripts/check-static.sh"))
        .arg(binary)
        .output()
        .unwrap()
}

#[test]
fn only_a_static_handler_is_packaged_unless_dynamic_is_allowed() {
    // The debug build is dynamically linked: refused by the check and by the script.
    let dynamic = check_static(Path::new(env!("CARGO_BIN_EXE_meshpay")));
    assert!(!dynamic.status.success());
    assert!(
        String::from_utf8_lossy(&dynamic.stderr).contains("not a static executable"),
        "{}",
        String::from_utf8_lossy(&dynamic.stderr)
    );
    let scratch = Scratch::new("static");
    let refused = package(&scratch.0, &[("MESHPAY_PACKAGE_ALLOW_DYNAMIC", "")]);
    assert!(!refused.status.success());
    assert!(!scratch.0.join("meshpay.zip").exists());

    // A program built for the package's target (x86_64-unknown-linux-musl, rust-toolchain.toml)
    // passes `file` and `ldd`.
    let source = scratch.0.join("hello.rs");
    std::fs::write(&source, "fn main() { println!(\"hello\"); }\n").unwrap();
    let binary = scratch.0.join("hello");
    let built = Command::new("rustc")
        .args(["--target", "x86_64-unknown-linux-musl", "-o"])
        .arg(&binary)
        .arg(&source)
        .output()
        .unwrap();
    assert!(
        built.status.success(),
        "{}",
        String::from_utf8_lossy(&built.stderr)
    );
    let static_ok = check_static(&binary);
    assert!(
        static_ok.status.success(),
        "{}",
        String::from_utf8_lossy(&static_ok.stderr)
    );
}
