//! A real Azurite queue service (from `node_modules`) on a free port with its own data
//! directory, killed and cleaned up on drop. Uses the emulator's public dev account.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use meshpay_queue::{
    DEV_ACCOUNT_KEY, DEV_ACCOUNT_NAME, MessageEncoding, Queue, QueueService, SendOptions,
    StorageConnection,
};

use crate::ports::{free_port, node_bin};

/// How long Azurite may take to accept connections after spawn.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A running `azurite-queue`.
#[derive(Debug)]
pub struct Azurite {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl Azurite {
    /// Starts Azurite's queue service on a free loopback port and waits until it accepts TCP
    /// connections. Retries on another port if the chosen one was taken in the meantime.
    pub async fn start() -> Azurite {
        let mut last_err = String::new();
        for _ in 0..3 {
            match Azurite::try_start().await {
                Ok(azurite) => return azurite,
                Err(e) => last_err = e,
            }
        }
        panic!("azurite did not start: {last_err}");
    }

    async fn try_start() -> Result<Azurite, String> {
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("meshpay-azurite-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let child = spawn(port, &dir)?;
        // From here Drop kills the child and removes the directory on every early return.
        let mut azurite = Azurite { child, port, dir };
        azurite.wait_ready().await?;
        Ok(azurite)
    }

    /// Stops Azurite (SIGTERM, so it writes its database out) and starts it again on the same
    /// port and data directory: queues and messages persist on disk (`--location`), as Azure
    /// Storage keeps every write it acknowledged. A SIGKILL would not be a fair stand-in: the
    /// emulator saves its database every few seconds and would forget acknowledged writes.
    pub async fn restart(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let mut last_err = String::new();
        for _ in 0..50 {
            match spawn(self.port, &self.dir) {
                Ok(child) => {
                    self.child = child;
                    match self.wait_ready().await {
                        Ok(()) => return,
                        Err(e) => {
                            // Never leave a half-started one behind the next attempt.
                            let _ = self.child.kill();
                            let _ = self.child.wait();
                            last_err = e;
                        }
                    }
                }
                Err(e) => last_err = e,
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("azurite did not restart: {last_err}");
    }

    async fn wait_ready(&mut self) -> Result<(), String> {
        let port = self.port;
        let azurite = self;
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(Some(status)) = azurite.child.try_wait() {
                return Err(format!(
                    "azurite exited with {status}: {}",
                    azurite.log_tail()
                ));
            }
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "no listener within {START_TIMEOUT:?}: {}",
                    azurite.log_tail()
                ));
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// The queue port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:<port>/devstoreaccount1`.
    pub fn queue_endpoint(&self) -> String {
        format!("http://127.0.0.1:{}/{DEV_ACCOUNT_NAME}", self.port)
    }

    /// A connection string for this instance (set it as `AzureWebJobsStorage`).
    pub fn connection_string(&self) -> String {
        format!(
            "DefaultEndpointsProtocol=http;AccountName={DEV_ACCOUNT_NAME};\
             AccountKey={DEV_ACCOUNT_KEY};QueueEndpoint={};",
            self.queue_endpoint()
        )
    }

    /// A queue client for this instance.
    pub fn service(&self) -> QueueService {
        let conn = StorageConnection::parse(&self.connection_string()).expect("connection string");
        QueueService::new(&conn).expect("queue service")
    }

    /// Queue `name`, created if missing.
    pub async fn queue(&self, name: &str) -> Queue {
        let queue = self.service().queue(name).expect("queue name");
        queue.create_if_not_exists().await.expect("create queue");
        queue
    }

    /// Sends `body` to `queue` (created if missing) base64-encoded, as the Functions host expects.
    pub async fn send(&self, queue: &str, body: &str) {
        self.queue(queue)
            .await
            .send(
                body.as_bytes(),
                MessageEncoding::Base64,
                SendOptions::default(),
            )
            .await
            .expect("send message");
    }

    /// Waits until `queue` holds at least `count` visible messages and returns their decoded
    /// bodies (base64) without removing them. Panics after `timeout` naming what was seen.
    pub async fn wait_for_messages(
        &self,
        queue: &str,
        count: usize,
        timeout: Duration,
    ) -> Vec<String> {
        let q = self.queue(queue).await;
        let deadline = Instant::now() + timeout;
        loop {
            let peeked = q.peek(32).await.expect("peek");
            if peeked.len() >= count {
                return peeked
                    .iter()
                    .map(|m| {
                        let body = m
                            .body(MessageEncoding::Base64)
                            .unwrap_or_else(|_| m.text.clone().into_bytes());
                        String::from_utf8_lossy(&body).into_owned()
                    })
                    .collect();
            }
            assert!(
                Instant::now() < deadline,
                "queue `{queue}` has {} message(s) after {timeout:?}, expected {count}",
                peeked.len()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The last lines of Azurite's output, for failure messages.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.dir.join("azurite.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

/// Starts `azurite-queue` on `port` with its data in `dir` (appending to `dir/azurite.log`).
fn spawn(port: u16, dir: &std::path::Path) -> Result<Child, String> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("azurite.log"))
        .map_err(|e| e.to_string())?;
    let log_err = log.try_clone().map_err(|e| e.to_string())?;
    Command::new(node_bin("azurite-queue"))
        .args(["--queueHost", "127.0.0.1", "--queuePort", &port.to_string()])
        .arg("--location")
        .arg(dir)
        .arg("--silent")
        // Azurite reports usage to Microsoft by default; with no route out here it spools every
        // report under the temp directory instead, a new directory per run.
        .arg("--disableTelemetry")
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err)
        .spawn()
        .map_err(|e| format!("spawn azurite-queue: {e}"))
}

impl Drop for Azurite {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_restart_keeps_the_queues_and_their_messages_on_the_same_port() {
        let mut azurite = Azurite::start().await;
        let port = azurite.port();
        azurite.send("kept", "{\"n\":1}").await;

        azurite.restart().await;

        assert_eq!(azurite.port(), port);
        let bodies = azurite
            .wait_for_messages("kept", 1, Duration::from_secs(10))
            .await;
        assert_eq!(bodies, ["{\"n\":1}"]);
    }
}
