//! Free loopback ports and repo paths.

use std::net::TcpListener;
use std::path::PathBuf;

/// A currently free TCP port on 127.0.0.1 (the OS may hand it out again later; callers start
/// their service right away).
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local addr").port()
}

/// The repository root (the workspace root).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("repo root")
}

/// The directory cargo writes binaries to for the running test or tool (`target/debug`).
pub fn target_bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    // A test: target/debug/deps/<test-binary> -> target/debug; a binary using the testkit
    // (meshpay-dev): target/<profile>/<binary> -> target/<profile>.
    let dir = exe.parent().expect("exe dir");
    if dir.file_name().is_some_and(|name| name == "deps") {
        dir.parent().expect("profile dir").to_path_buf()
    } else {
        dir.to_path_buf()
    }
}

/// `node_modules/.bin/<name>` in the repo; panics with a hint when `npm ci` has not run.
pub fn node_bin(name: &str) -> PathBuf {
    let path = repo_root().join("node_modules/.bin").join(name);
    assert!(
        path.exists(),
        "{} missing: run `npm ci` (make test does)",
        path.display()
    );
    path
}
