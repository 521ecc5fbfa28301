//! Flows of Hanko's flow API, as stored: an opaque state document, a version for optimistic concurrency, and the
//! CSRF token the next action must present. What the states mean is the flow API's business.

use std::time::Duration;

use gatehouse_core::ids::FlowId;
use gatehouse_store::{FlowRecord, StoreError};

use crate::App;

/// A flow lives this long after it starts.
pub const FLOW_LIFETIME: Duration = Duration::from_secs(60 * 60);

/// What looking a flow up found.
#[derive(Debug)]
pub enum FoundFlow {
    Missing,
    Expired,
    Live(FlowRecord),
}

#[derive(Debug)]
pub struct Flows<'a> {
    app: &'a App,
}

impl<'a> Flows<'a> {
    pub(crate) fn new(app: &'a App) -> Self {
        Self { app }
    }

    /// Stores a new flow with its first state `data` and CSRF token.
    pub async fn create(&self, data: String, csrf_token: String) -> Result<FlowRecord, StoreError> {
        let now = self.app.clock().now();
        let record = FlowRecord {
            id: FlowId::generate(),
            data,
            version: 0,
            csrf_token,
            expires_at: now + FLOW_LIFETIME,
            created_at: now,
        };
        self.app.store().insert_flow(&record).await?;
        Ok(record)
    }

    pub async fn find(&self, id: FlowId) -> Result<FoundFlow, StoreError> {
        Ok(match self.app.store().find_flow(id).await? {
            None => FoundFlow::Missing,
            Some(record) if record.expires_at <= self.app.clock().now() => FoundFlow::Expired,
            Some(record) => FoundFlow::Live(record),
        })
    }

    /// Saves the flow's next state if nobody moved it since `expected_version`; `false` otherwise.
    pub async fn advance(
        &self,
        id: FlowId,
        expected_version: i64,
        data: &str,
        csrf_token: &str,
    ) -> Result<bool, StoreError> {
        self.app.store().update_flow(id, expected_version, data, csrf_token, self.app.clock().now()).await
    }
}
