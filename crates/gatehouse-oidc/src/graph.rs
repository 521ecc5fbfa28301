//! Microsoft Graph, read with the access token of the same sign-in (delegated, so only what the user may see): the
//! group membership when the ID token had too many groups, the tenant's display name, and the profile attributes
//! that the operator's custom claims read. Same HTTP client as the token call: the same timeouts, no redirects.

use std::fmt;

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::microsoft::MicrosoftClient;

/// At most this many pages of group memberships (999 each) are read: a membership beyond that is refused rather
/// than cut short.
pub const MAX_GROUP_PAGES: usize = 20;

/// The access token Microsoft issued with the ID token, for Graph. Never logged.
#[derive(Clone)]
pub struct AccessToken(String);

impl AccessToken {
    pub fn new(value: String) -> Self {
        Self(value)
    }

    fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AccessToken(<redacted>)")
    }
}

/// Why a Graph read failed. `Display` is for the log; none of it quotes a token.
#[derive(Debug, thiserror::Error)]
pub enum GraphError {
    #[error("calling Microsoft Graph failed: {0}")]
    Unreachable(String),
    #[error("Microsoft Graph refused the request: {code} (HTTP {status})")]
    Refused { status: u16, code: String },
    #[error("Microsoft Graph's answer could not be read")]
    Malformed,
    #[error("the user is in more groups than Gatehouse reads ({MAX_GROUP_PAGES} pages of 999)")]
    TooManyGroups,
    #[error("Microsoft's token response had no access token for Microsoft Graph")]
    NoAccessToken,
}

impl GraphError {
    /// A permission is missing (not granted, or not consented to by an administrator).
    pub fn is_permission(&self) -> bool {
        matches!(self, Self::Refused { status: 401 | 403, .. })
    }
}

#[derive(Deserialize)]
struct Page {
    #[serde(default)]
    value: Vec<Map<String, Value>>,
    #[serde(rename = "@odata.nextLink")]
    next_link: Option<String>,
}

#[derive(Deserialize)]
struct ErrorBody {
    error: Option<ErrorDetail>,
}

#[derive(Deserialize)]
struct ErrorDetail {
    code: Option<String>,
}

/// `next` when it is on the Graph at `graph` (same scheme, host and port, under its path, no user info); compared
/// as parsed URLs, so that a configured `graph_url` written with capitals or its default port still matches the
/// links Graph writes.
fn same_graph(next: &str, graph: &str) -> Option<url::Url> {
    let next = url::Url::parse(next).ok()?;
    let graph = url::Url::parse(&format!("{}/", graph.trim_end_matches('/'))).ok()?;
    let same = next.origin() == graph.origin()
        && next.username().is_empty()
        && next.password().is_none()
        && next.path().starts_with(graph.path());
    same.then_some(next)
}

impl MicrosoftClient {
    /// The ids of every group the user is a member of, directly or through other groups (as the `groups` claim
    /// counts them): `/me/transitiveMemberOf/microsoft.graph.group`, page by page.
    pub async fn graph_groups(&self, token: &AccessToken) -> Result<Vec<String>, GraphError> {
        let graph = self.settings().graph_base.as_str();
        let mut url = format!("{graph}/v1.0/me/transitiveMemberOf/microsoft.graph.group?$select=id&$top=999");
        let mut groups = Vec::new();
        for _ in 0..MAX_GROUP_PAGES {
            let page: Page = self.graph_get(&url, token).await?;
            groups.extend(page.value.iter().filter_map(|group| group.get("id")?.as_str().map(str::to_owned)));
            match page.next_link {
                // The next page must be on the same Graph: the token goes with the request.
                Some(next) => url = same_graph(&next, graph).ok_or(GraphError::Malformed)?.into(),
                None => return Ok(groups),
            }
        }
        Err(GraphError::TooManyGroups)
    }

    /// The display name of the tenant the user signed in to (`/organization`).
    pub async fn graph_tenant_name(&self, token: &AccessToken) -> Result<Option<String>, GraphError> {
        let url = format!("{}/v1.0/organization?$select=displayName", self.settings().graph_base);
        let page: Page = self.graph_get(&url, token).await?;
        Ok(page.value.first().and_then(|org| org.get("displayName")?.as_str()).map(str::to_owned))
    }

    /// The signed-in user's profile attributes named in `select` (`/me?$select=…`). The names are checked by the
    /// configuration to be plain property names.
    pub async fn graph_profile(
        &self,
        token: &AccessToken,
        select: &[String],
    ) -> Result<Map<String, Value>, GraphError> {
        let url = format!("{}/v1.0/me?$select={}", self.settings().graph_base, select.join(","));
        self.graph_get(&url, token).await
    }

    async fn graph_get<T: serde::de::DeserializeOwned>(&self, url: &str, token: &AccessToken) -> Result<T, GraphError> {
        let response = self
            .http()
            .get(url)
            .bearer_auth(token.expose())
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|error| GraphError::Unreachable(crate::call_failure(error)))?;
        let status = response.status();
        if !status.is_success() {
            let code = response
                .json::<ErrorBody>()
                .await
                .ok()
                .and_then(|body| body.error?.code)
                .map(|code| code.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '_').take(64).collect())
                .unwrap_or_else(|| "unknown".to_owned());
            return Err(GraphError::Refused { status: status.as_u16(), code });
        }
        response.json().await.map_err(|_| GraphError::Malformed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_next_page_is_followed_only_on_the_same_graph() {
        let graph = "https://graph.microsoft.com";
        let link = "https://graph.microsoft.com/v1.0/me/transitiveMemberOf/microsoft.graph.group?$skiptoken=x";
        assert_eq!(same_graph(link, graph).map(String::from).as_deref(), Some(link));
        for foreign in [
            "https://graph.microsoft.com.evil.example/v1.0/me",
            "https://graph.microsoft.com@evil.example/v1.0/me",
            "https://user@graph.microsoft.com/v1.0/me",
            "http://graph.microsoft.com/v1.0/me",
            "https://graph.microsoft.com:8443/v1.0/me",
            "https://evil.example/https://graph.microsoft.com/v1.0/me",
            "/v1.0/me",
        ] {
            assert_eq!(same_graph(foreign, graph), None, "{foreign}");
        }
        let proxied = "https://proxy.example/graph";
        assert!(same_graph("https://proxy.example/graph/v1.0/me", proxied).is_some());
        assert!(same_graph("https://proxy.example/other/v1.0/me", proxied).is_none());
    }

    /// A `graph_url` with capitals or its default port names the same Graph as the links Graph writes.
    #[test]
    fn the_configured_graph_is_compared_as_a_url() {
        let link = "https://dod-graph.microsoft.us/v1.0/me/transitiveMemberOf/microsoft.graph.group?$skiptoken=x";
        for graph in ["https://DOD-Graph.microsoft.us", "https://dod-graph.microsoft.us:443/"] {
            assert!(same_graph(link, graph).is_some(), "{graph}");
        }
    }
}
