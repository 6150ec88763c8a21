//! The background task that keeps a pool's password a valid Entra ID token.
//!
//! PostgreSQL checks the token only when a connection logs in, so open connections outlive it;
//! only the options for *new* connections need a fresh token. The task swaps them with
//! `Pool::set_connect_options` on the schedule of [`super::schedule`], retries failures with
//! backoff (the previous token stays in place meanwhile), and ends when the pool is closed.

use std::sync::Arc;

use azure_core::credentials::{AccessToken, TokenCredential};
use sqlx::postgres::{PgConnectOptions, PgPool};
use time::OffsetDateTime;
use tokio::sync::{Notify, watch};

use super::POSTGRES_SCOPE;
use super::schedule::{RefreshPolicy, refresh_delay, retry_delay};
use crate::connect::DbConnectError;

/// What the refresher has installed so far (observable by tests and health checks; never the
/// token itself).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Installed {
    /// Tokens installed since the pool was created (including the first one).
    pub tokens: u64,
    /// Expiry of the token new connections use; `None` before the first one.
    pub expires_on: Option<OffsetDateTime>,
    /// Consecutive failed renewals since the last success.
    pub failures: u32,
}

/// Handle to a pool's token refresher. Dropping it does not stop the task (closing the pool
/// does).
#[derive(Debug, Clone)]
pub struct TokenRefresher {
    wake: Arc<Notify>,
    installed: watch::Receiver<Installed>,
}

impl TokenRefresher {
    /// Renews now instead of at the scheduled time (e.g. after a login failure).
    pub fn refresh_now(&self) {
        self.wake.notify_one();
    }

    pub fn installed(&self) -> Installed {
        *self.installed.borrow()
    }

    /// Follows every change; `changed()` errs once the task has ended (pool closed).
    pub fn subscribe(&self) -> watch::Receiver<Installed> {
        self.installed.clone()
    }
}

/// Asks `credential` for a PostgreSQL token, bounded by `timeout`.
pub(crate) async fn fetch_token(
    credential: &dyn TokenCredential,
    timeout: std::time::Duration,
) -> Result<AccessToken, DbConnectError> {
    match tokio::time::timeout(timeout, credential.get_token(&[POSTGRES_SCOPE], None)).await {
        Ok(Ok(token)) => Ok(token),
        Ok(Err(error)) => Err(DbConnectError::Token(error)),
        Err(_) => Err(DbConnectError::TokenTimeout(timeout)),
    }
}

/// `base` (the URL's options) with the token as password.
pub(crate) fn with_token(base: &PgConnectOptions, token: &AccessToken) -> PgConnectOptions {
    base.clone().password(token.token.secret())
}

/// Starts the task for `pool`. `first` is what the caller installed before (a token, or
/// `None` when the first request failed: the task then starts with a retry).
pub(crate) fn spawn(
    pool: PgPool,
    base: PgConnectOptions,
    credential: Arc<dyn TokenCredential>,
    policy: RefreshPolicy,
    first: Option<OffsetDateTime>,
) -> TokenRefresher {
    let initial = match first {
        Some(expires_on) => Installed {
            tokens: 1,
            expires_on: Some(expires_on),
            failures: 0,
        },
        None => Installed {
            tokens: 0,
            expires_on: None,
            failures: 1,
        },
    };
    let (sender, receiver) = watch::channel(initial);
    let wake = Arc::new(Notify::new());
    let task = Task {
        pool,
        base,
        credential,
        policy,
        wake: wake.clone(),
        sender,
    };
    tokio::spawn(task.run());
    TokenRefresher {
        wake,
        installed: receiver,
    }
}

struct Task {
    pool: PgPool,
    base: PgConnectOptions,
    credential: Arc<dyn TokenCredential>,
    policy: RefreshPolicy,
    wake: Arc<Notify>,
    sender: watch::Sender<Installed>,
}

impl Task {
    async fn run(self) {
        let closed = self.pool.close_event();
        tokio::pin!(closed);
        loop {
            let state = *self.sender.borrow();
            let delay = match state.expires_on {
                Some(expires_on) if state.failures == 0 => {
                    refresh_delay(expires_on, OffsetDateTime::now_utc(), &self.policy)
                }
                _ => retry_delay(state.failures, &self.policy),
            };
            tokio::select! {
                () = &mut closed => break,
                () = tokio::time::sleep(delay) => {}
                () = self.wake.notified() => {}
            }
            let fetched = tokio::select! {
                () = &mut closed => break,
                fetched = fetch_token(&*self.credential, self.policy.fetch_timeout) => fetched,
            };
            match fetched {
                Ok(token) => {
                    self.pool
                        .set_connect_options(with_token(&self.base, &token));
                    let renewed = state.expires_on != Some(token.expires_on);
                    if renewed || state.failures > 0 {
                        tracing::info!(expires_on = %token.expires_on, "PostgreSQL token renewed");
                    }
                    self.sender.send_modify(|installed| {
                        installed.tokens += 1;
                        installed.expires_on = Some(token.expires_on);
                        installed.failures = 0;
                    });
                }
                Err(error) => {
                    let failures = state.failures.saturating_add(1);
                    let expired = state
                        .expires_on
                        .is_none_or(|at| at <= OffsetDateTime::now_utc());
                    // Until the token expires, new connections still log in: a warning. After,
                    // they fail: an error.
                    if expired {
                        tracing::error!(%error, failures, "PostgreSQL token renewal failed; no valid token");
                    } else {
                        tracing::warn!(%error, failures, "PostgreSQL token renewal failed; retrying");
                    }
                    self.sender
                        .send_modify(|installed| installed.failures = failures);
                }
            }
        }
        tracing::debug!("pool closed: PostgreSQL token refresher stopped");
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::sync::Mutex;
    use std::time::Duration;

    use azure_core::credentials::TokenRequestOptions;
    use sqlx::postgres::PgPoolOptions;

    use super::*;

    /// Hands out scripted answers, then repeats the last token.
    #[derive(Debug, Default)]
    struct Scripted {
        answers: Mutex<VecDeque<Result<AccessToken, String>>>,
        last: Mutex<Option<AccessToken>>,
        calls: Mutex<Vec<Vec<String>>>,
    }

    impl Scripted {
        fn new(answers: Vec<Result<AccessToken, String>>) -> Arc<Scripted> {
            Arc::new(Scripted {
                answers: Mutex::new(answers.into()),
                ..Scripted::default()
            })
        }
    }

    #[async_trait::async_trait]
    impl TokenCredential for Scripted {
        async fn get_token(
            &self,
            scopes: &[&str],
            _: Option<TokenRequestOptions<'_>>,
        ) -> azure_core::Result<AccessToken> {
            self.calls
                .lock()
                .unwrap()
                .push(scopes.iter().map(|s| s.to_string()).collect());
            let next = self.answers.lock().unwrap().pop_front();
            match next {
                Some(Ok(token)) => {
                    *self.last.lock().unwrap() = Some(token.clone());
                    Ok(token)
                }
                Some(Err(message)) => Err(azure_core::Error::with_message(
                    azure_core::error::ErrorKind::Credential,
                    message,
                )),
                None => Ok(self.last.lock().unwrap().clone().unwrap()),
            }
        }
    }

    fn token(secret: &'static str, lifetime_ms: i64) -> AccessToken {
        AccessToken::new(
            secret,
            OffsetDateTime::now_utc() + time::Duration::milliseconds(lifetime_ms),
        )
    }

    /// Short waits so the tests run in milliseconds; the margin stays 5 minutes.
    fn fast() -> RefreshPolicy {
        RefreshPolicy {
            min_delay: Duration::from_millis(10),
            retry_initial: Duration::from_millis(10),
            retry_max: Duration::from_millis(40),
            ..RefreshPolicy::default()
        }
    }

    /// A pool that never connects (nothing listens on port 1; nothing here acquires).
    fn unused_pool() -> (PgPool, PgConnectOptions) {
        let base: PgConnectOptions = "postgres://app@127.0.0.1:1/db".parse().unwrap();
        let pool = PgPoolOptions::new().connect_lazy_with(base.clone());
        (pool, base)
    }

    /// Waits for the refresher state to satisfy `done`; the outer timeout only stops a hang.
    async fn wait_until(refresher: &TokenRefresher, done: impl FnMut(&Installed) -> bool) {
        let mut rx = refresher.subscribe();
        tokio::time::timeout(Duration::from_secs(30), rx.wait_for(done))
            .await
            .expect("refresher never reached the expected state")
            .unwrap();
    }

    #[tokio::test]
    async fn a_token_expiring_inside_the_margin_is_renewed_by_the_task_itself() {
        let credential = Scripted::new(vec![Ok(token("second", 3_600_000))]);
        let (pool, base) = unused_pool();
        // The first token expires in 5 min + 50 ms: the schedule renews it after ~50 ms.
        let first = OffsetDateTime::now_utc() + time::Duration::milliseconds(300_050);
        let refresher = spawn(pool.clone(), base, credential.clone(), fast(), Some(first));
        assert_eq!(refresher.installed().tokens, 1);

        wait_until(&refresher, |i| i.tokens == 2).await;
        let installed = refresher.installed();
        assert!(installed.expires_on.unwrap() > first + time::Duration::minutes(50));
        assert!(format!("{:?}", pool.connect_options()).contains("\"second\""));
        let calls = credential.calls.lock().unwrap().clone();
        assert_eq!(calls, [vec![POSTGRES_SCOPE.to_string()]]);
        pool.close().await;
    }

    #[tokio::test]
    async fn failed_renewals_are_retried_until_a_token_arrives() {
        let credential = Scripted::new(vec![
            Err("identity endpoint down".into()),
            Err("still down".into()),
            Ok(token("late", 3_600_000)),
        ]);
        let (pool, base) = unused_pool();
        // No first token (a lazy pool whose start-up fetch failed).
        let refresher = spawn(pool.clone(), base, credential.clone(), fast(), None);

        wait_until(&refresher, |i| i.tokens == 1).await;
        assert_eq!(refresher.installed().failures, 0);
        assert_eq!(credential.calls.lock().unwrap().len(), 3);
        assert!(format!("{:?}", pool.connect_options()).contains("\"late\""));
        pool.close().await;
    }

    #[tokio::test]
    async fn a_failed_renewal_keeps_the_previous_token() {
        let credential = Scripted::new(vec![Err("throttled".into())]);
        let (pool, base) = unused_pool();
        pool.set_connect_options(base.clone().password("current"));
        let refresher = spawn(
            pool.clone(),
            base,
            credential,
            fast(),
            Some(OffsetDateTime::now_utc() + time::Duration::hours(1)),
        );
        refresher.refresh_now();

        wait_until(&refresher, |i| i.failures == 1).await;
        assert_eq!(refresher.installed().tokens, 1);
        assert!(format!("{:?}", pool.connect_options()).contains("\"current\""));
        pool.close().await;
    }

    #[tokio::test]
    async fn the_task_ends_when_the_pool_is_closed() {
        let credential = Scripted::new(vec![Ok(token("t", 3_600_000))]);
        let (pool, base) = unused_pool();
        let refresher = spawn(
            pool.clone(),
            base,
            credential,
            fast(),
            Some(OffsetDateTime::now_utc() + time::Duration::hours(1)),
        );
        let mut rx = refresher.subscribe();
        pool.close().await;
        // The sender is dropped when the task returns: changed() then errs.
        let ended = tokio::time::timeout(Duration::from_secs(30), async {
            while rx.changed().await.is_ok() {}
        })
        .await;
        assert!(ended.is_ok(), "refresher still running after pool.close()");
    }

    #[tokio::test]
    async fn a_hanging_credential_times_out() {
        #[derive(Debug)]
        struct Hangs;
        #[async_trait::async_trait]
        impl TokenCredential for Hangs {
            async fn get_token(
                &self,
                _: &[&str],
                _: Option<TokenRequestOptions<'_>>,
            ) -> azure_core::Result<AccessToken> {
                std::future::pending().await
            }
        }
        let result = fetch_token(&Hangs, Duration::from_millis(10)).await;
        assert!(matches!(result, Err(DbConnectError::TokenTimeout(_))));
    }
}
