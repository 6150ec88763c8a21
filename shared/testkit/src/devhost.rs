//! devhost + a handler (by default `target/debug/meshpay` on the repo's app) on a free port,
//! started from already-built binaries (`cargo build --workspace --bins`, which `make test`
//! runs), output captured to a log file, stopped on drop.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::ports::{free_port, repo_root, target_bin_dir};

/// How long devhost plus the handler may take to be ready.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long devhost gets to stop its handler once asked to.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// What to start.
#[derive(Clone, Debug)]
pub struct DevhostBuilder {
    app_root: PathBuf,
    executable: PathBuf,
    env: Vec<(String, String)>,
    args: Vec<String>,
}

impl Default for DevhostBuilder {
    fn default() -> Self {
        Self {
            app_root: repo_root(),
            executable: target_bin_dir().join("meshpay"),
            env: Vec::new(),
            args: Vec::new(),
        }
    }
}

impl DevhostBuilder {
    /// The app root (host.json, functions/); default the repository root.
    pub fn app_root(mut self, path: impl Into<PathBuf>) -> Self {
        self.app_root = path.into();
        self
    }

    /// The handler executable; default `target/debug/meshpay`.
    pub fn executable(mut self, path: impl Into<PathBuf>) -> Self {
        self.executable = path.into();
        self
    }

    /// An environment variable for devhost and the handler (beats local.settings.json).
    pub fn env(mut self, key: &str, value: impl Into<String>) -> Self {
        self.env.push((key.to_owned(), value.into()));
        self
    }

    /// Overrides a host.json value (`--host-set path=value`), e.g. to poison in seconds.
    pub fn host_set(mut self, path: &str, value: &str) -> Self {
        self.args.push("--host-set".to_owned());
        self.args.push(format!("{path}={value}"));
        self
    }

    /// Starts devhost and waits until its handler is ready. Retries on another port if the
    /// chosen one was taken in the meantime.
    pub async fn start(self) -> Devhost {
        let devhost = target_bin_dir().join("devhost");
        assert!(
            devhost.exists(),
            "{} missing: run `cargo build --workspace --bins` (make test does)",
            devhost.display()
        );
        assert!(
            self.executable.exists(),
            "{} missing: run `cargo build --workspace --bins` (make test does)",
            self.executable.display()
        );
        let mut last_err = String::new();
        for _ in 0..3 {
            match self.try_start(&devhost).await {
                Ok(d) => return d,
                Err(e) => last_err = e,
            }
        }
        panic!("devhost did not start: {last_err}");
    }

    async fn try_start(&self, devhost: &PathBuf) -> Result<Devhost, String> {
        let port = free_port();
        let log =
            std::env::temp_dir().join(format!("meshpay-devhost-{}-{port}.log", std::process::id()));
        let out = std::fs::File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
        let err = out.try_clone().map_err(|e| e.to_string())?;
        let child = Command::new(devhost)
            .arg("--app-root")
            .arg(&self.app_root)
            .arg("--executable")
            .arg(&self.executable)
            .args(["--port", &port.to_string()])
            // devhost stops (and stops its handler) when this pipe closes: on drop, and also
            // when the test process dies without running drop.
            .arg("--stop-on-stdin-eof")
            .args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::piped())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|e| format!("spawn devhost: {e}"))?;
        let mut host = Devhost {
            child,
            port,
            log,
            handler_port: 0,
        };
        let client = reqwest::Client::new();
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(Some(status)) = host.child.try_wait() {
                return Err(format!(
                    "devhost exited with {status}:\n{}",
                    host.log_tail(40)
                ));
            }
            if let Ok(status) = host.status(&client).await
                && status["state"] == "Running"
            {
                host.handler_port = status["workerPort"].as_u64().unwrap_or(0) as u16;
                return Ok(host);
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "not ready within {START_TIMEOUT:?}:\n{}",
                    host.log_tail(40)
                ));
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

/// A running devhost.
#[derive(Debug)]
pub struct Devhost {
    child: Child,
    port: u16,
    log: PathBuf,
    handler_port: u16,
}

impl Devhost {
    /// Options for [`Devhost::start`]-like starts with a different app or handler.
    pub fn builder() -> DevhostBuilder {
        DevhostBuilder::default()
    }

    /// devhost + `target/debug/meshpay` on the repo's app with `env` (connection strings,
    /// `DATABASE_URL`, schedules, ...).
    pub async fn start(env: &[(&str, &str)]) -> Devhost {
        env.iter()
            .fold(Self::builder(), |b, (k, v)| b.env(k, *v))
            .start()
            .await
    }

    /// `http://127.0.0.1:<port>` (devhost's own HTTP side).
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// `http://127.0.0.1:<port>/api/<path>` (route prefix `api`).
    pub fn api_url(&self, path: &str) -> String {
        format!("{}/api/{}", self.base_url(), path.trim_start_matches('/'))
    }

    /// The handler's own address as devhost started it (for protocol-level tests that post
    /// invocations directly). Changes if the handler restarts; see [`Devhost::refresh_handler_url`].
    pub fn handler_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.handler_port)
    }

    /// Re-reads the handler port from devhost (after a restart) and returns its URL.
    pub async fn refresh_handler_url(&mut self) -> String {
        let client = reqwest::Client::new();
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(status) = self.status(&client).await
                && let Some(port) = status["workerPort"].as_u64()
            {
                self.handler_port = port as u16;
                return self.handler_url();
            }
            assert!(
                Instant::now() < deadline,
                "handler not ready:\n{}",
                self.log_tail(40)
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    async fn status(&self, client: &reqwest::Client) -> Result<Value, reqwest::Error> {
        client
            .get(format!("{}/admin/host/status", self.base_url()))
            .send()
            .await?
            .json()
            .await
    }

    /// Runs a non-HTTP function once through the admin API (`{"input": ...}`); 202 expected.
    pub async fn invoke_admin(&self, function: &str, input: &str) -> reqwest::StatusCode {
        reqwest::Client::new()
            .post(format!("{}/admin/functions/{function}", self.base_url()))
            .json(&serde_json::json!({ "input": input }))
            .send()
            .await
            .expect("admin request")
            .status()
    }

    /// Where devhost's and the handler's output goes.
    pub fn log_path(&self) -> &PathBuf {
        &self.log
    }

    /// The last `lines` lines of the log.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// devhost's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The process id of the handler devhost runs now (a child of devhost), if one is running.
    pub fn handler_pid(&self) -> Option<u32> {
        let parent = self.child.id().to_string();
        std::fs::read_dir("/proc")
            .ok()?
            .filter_map(Result::ok)
            .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
            .find(|pid| {
                // /proc/<pid>/stat: "pid (comm) state ppid ...": comm may hold spaces, so
                // split after its closing parenthesis.
                std::fs::read_to_string(format!("/proc/{pid}/stat"))
                    .ok()
                    .and_then(|stat| {
                        let rest = stat.rsplit_once(')')?.1;
                        rest.split_whitespace().nth(1).map(|ppid| ppid == parent)
                    })
                    .unwrap_or(false)
            })
    }

    /// SIGKILLs the handler (devhost restarts it, as the Functions host restarts a dead
    /// worker); returns its pid, or `None` when no handler was running.
    pub fn kill_handler(&self) -> Option<u32> {
        let pid = self.handler_pid()?;
        let killed = Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status()
            .is_ok_and(|s| s.success());
        killed.then_some(pid)
    }

    /// True while the devhost process runs.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Devhost {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "--- devhost log ({}), last lines ---\n{}",
                self.log.display(),
                self.log_tail(120)
            );
        }
        // Closing stdin asks devhost to stop its handler and exit; only the devhost process
        // itself is killed if it does not (std's kill never signals a reaped pid).
        drop(self.child.stdin.take());
        let deadline = Instant::now() + STOP_GRACE;
        while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        // Logs of passing tests are not needed; failing ones were printed above and are kept.
        if !std::thread::panicking() {
            let _ = std::fs::remove_file(&self.log);
        }
    }
}
