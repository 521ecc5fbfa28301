//! Housekeeping: expired flows, one-time tokens, sessions and used-state records are deleted, so tables do not
//! grow without bound. Requests never clean up after themselves, which keeps the sign-in path's writes few.
//! Safe to run on every instance at once: each sweep is a plain `DELETE … WHERE expires_at <= now`.

use std::time::Duration;

use gatehouse_store::{Store, StoreError};

use crate::clock;

/// How often an instance sweeps.
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(15 * 60);

/// What one sweep removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Swept {
    pub flows: u64,
    pub tokens: u64,
    pub sessions: u64,
    pub used_states: u64,
}

pub async fn sweep(store: &Store) -> Result<Swept, StoreError> {
    let now = clock::now_ms();
    Ok(Swept {
        flows: store.delete_expired_flows(now).await?,
        tokens: store.delete_expired_tokens(now).await?,
        sessions: store.delete_expired_sessions(now).await?,
        used_states: store.delete_expired_used_states(now).await?,
    })
}

/// Sweeps every [`SWEEP_INTERVAL`] until the process ends; failures are logged and retried next time.
pub async fn run(store: Store) {
    let mut every = tokio::time::interval(SWEEP_INTERVAL);
    loop {
        every.tick().await;
        match sweep(&store).await {
            Ok(swept) => tracing::debug!(?swept, "housekeeping"),
            Err(error) => tracing::warn!(%error, "housekeeping failed; retrying at the next interval"),
        }
    }
}
