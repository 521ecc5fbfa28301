//! What Microsoft knows about the user besides who they are: the tenant of this sign-in, the app roles assigned to
//! them, and their groups (with Microsoft's overage rule), and which of these a session keeps. The Graph calls that
//! complete an overage live in the OIDC crate; this module decides when they are needed and what is kept.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;

/// At most this many app roles are kept; longer role values are dropped. Entra caps an app at a few hundred
/// roles, so this only stops a malformed token from bloating the session.
pub const MAX_ROLES: usize = 250;
/// Longest role or group value kept (app role values are at most 120 characters; group names a little more).
pub const MAX_VALUE_LEN: usize = 256;

/// Delegated Graph permission to read the user's group memberships (an administrator must consent to it).
pub const GROUP_MEMBERSHIP_PERMISSION: &str = "GroupMember.Read.All";
/// Delegated Graph permission to read the user's profile and their organisation's name (users may consent).
pub const PROFILE_PERMISSION: &str = "User.Read";

/// Microsoft Graph of the cloud `cloud_instance` belongs to: each national cloud has its own Graph, and a token
/// for one is refused by the others. Any other instance (a fake or a test proxy) serves Graph itself.
pub fn graph_base(cloud_instance: &str) -> String {
    let host = url::Url::parse(cloud_instance).ok().and_then(|url| url.host_str().map(str::to_ascii_lowercase));
    match host.as_deref() {
        Some("login.microsoftonline.com") => "https://graph.microsoft.com".to_owned(),
        Some("login.microsoftonline.us") => "https://graph.microsoft.us".to_owned(),
        Some("login.partner.microsoftonline.cn" | "login.chinacloudapi.cn") => {
            "https://microsoftgraph.chinacloudapi.cn".to_owned()
        }
        _ => cloud_instance.trim_end_matches('/').to_owned(),
    }
}

/// The Graph permissions a sign-in asks for, as scopes of `graph` (empty when no Graph call is configured).
pub fn graph_scopes(graph: &str, read_groups: bool, read_profile: bool) -> Vec<String> {
    let graph = graph.trim_end_matches('/');
    let mut scopes = Vec::new();
    if read_profile {
        scopes.push(format!("{graph}/{PROFILE_PERMISSION}"));
    }
    if read_groups {
        scopes.push(format!("{graph}/{GROUP_MEMBERSHIP_PERMISSION}"));
    }
    scopes
}

/// What the ID token says about the user's groups.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GroupsClaim {
    /// No `groups` claim and no overage marker: the app registration emits no group claims.
    Absent,
    /// The groups, as the app registration emits them (object ids, or names for groups synced from on-premises).
    Listed(Vec<String>),
    /// The user is in more groups than fit in a token (200 for a JWT): Microsoft left the `groups` claim out and
    /// said so with `_claim_names` (or `hasgroups`). The membership must be read from Microsoft Graph.
    Overage,
}

impl GroupsClaim {
    /// Reads the `groups`, `_claim_names` and `hasgroups` claims. An overage marker wins over a list, so that a
    /// partial list is never taken for the whole membership.
    pub fn from_claims(
        groups: Option<&serde_json::Value>,
        claim_names: Option<&serde_json::Value>,
        hasgroups: Option<&serde_json::Value>,
    ) -> Self {
        let overage = claim_names.and_then(|names| names.get("groups")).is_some()
            || hasgroups.is_some_and(|value| value == &serde_json::Value::Bool(true) || value == "true");
        if overage {
            return Self::Overage;
        }
        match groups {
            Some(serde_json::Value::Array(values)) => Self::Listed(strings(values, usize::MAX)),
            Some(serde_json::Value::String(value)) => Self::Listed(strings(&[value.clone().into()], 1)),
            _ => Self::Absent,
        }
    }
}

/// The string values of a claim list, without empty or overlong ones, at most `limit` of them.
fn strings(values: &[serde_json::Value], limit: usize) -> Vec<String> {
    values
        .iter()
        .filter_map(serde_json::Value::as_str)
        .filter(|value| !value.is_empty() && value.chars().count() <= MAX_VALUE_LEN)
        .take(limit)
        .map(str::to_owned)
        .collect()
}

/// The `roles` claim: app role values assigned to the user (directly or through a group).
pub fn roles_from_claim(roles: Option<&serde_json::Value>) -> Vec<String> {
    let mut roles = match roles {
        Some(serde_json::Value::Array(values)) => strings(values, MAX_ROLES),
        Some(serde_json::Value::String(value)) => strings(&[value.clone().into()], 1),
        _ => Vec::new(),
    };
    roles.sort();
    roles.dedup();
    roles
}

/// Which groups a session keeps: `third_party.providers.microsoft.groups.keep`. Each pattern is a value to keep
/// as it is, or a prefix ending in `*` (for group names, which synced groups can carry). No pattern keeps all.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GroupFilter {
    exact: Vec<String>,
    prefixes: Vec<String>,
}

/// A `keep` pattern that cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0:?}: a pattern is a group value, or a prefix followed by one '*' at the end")]
pub struct InvalidGroupPattern(pub String);

impl GroupFilter {
    pub fn parse(patterns: &[String]) -> Result<Self, InvalidGroupPattern> {
        let mut filter = Self::default();
        for pattern in patterns {
            let trimmed = pattern.trim();
            let prefix = trimmed.strip_suffix('*');
            let body = prefix.unwrap_or(trimmed);
            if body.is_empty() || body.contains('*') || body.chars().count() > MAX_VALUE_LEN {
                return Err(InvalidGroupPattern(pattern.clone()));
            }
            match prefix {
                // Object ids are matched without regard to case, as Microsoft compares them.
                Some(prefix) => filter.prefixes.push(prefix.to_lowercase()),
                None => filter.exact.push(body.to_lowercase()),
            }
        }
        Ok(filter)
    }

    pub fn keeps(&self, group: &str) -> bool {
        if self.exact.is_empty() && self.prefixes.is_empty() {
            return true;
        }
        let group = group.to_lowercase();
        self.exact.contains(&group) || self.prefixes.iter().any(|prefix| group.starts_with(prefix.as_str()))
    }

    /// The kept groups, sorted and without duplicates.
    pub fn apply(&self, groups: impl IntoIterator<Item = String>) -> Vec<String> {
        let mut kept: Vec<String> = groups
            .into_iter()
            .filter(|group| !group.is_empty() && group.chars().count() <= MAX_VALUE_LEN && self.keeps(group))
            .collect();
        kept.sort();
        kept.dedup();
        kept
    }
}

/// The tenant of a sign-in: its id (`tid`), and its display name when it was read.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tenant {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// What one sign-in learnt about the user from Microsoft, as the session and the admin API see it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirectoryFacts {
    pub tenant: Tenant,
    #[serde(default)]
    pub roles: Vec<String>,
    /// The kept groups (see [`GroupFilter`]).
    #[serde(default)]
    pub groups: Vec<String>,
    /// Whether the groups were read from Microsoft Graph because the token had too many.
    #[serde(default)]
    pub groups_from_graph: bool,
    /// The operator's declared custom claims that had a value, by name.
    #[serde(default)]
    pub custom: BTreeMap<String, serde_json::Value>,
    /// When Microsoft said all this: the sign-in's time.
    pub read_at: Timestamp,
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;

    fn filter(patterns: &[&str]) -> GroupFilter {
        GroupFilter::parse(&patterns.iter().map(|p| p.to_string()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn a_listed_groups_claim_is_read() {
        let groups = json!(["g1", "g2", 7, ""]);
        assert_eq!(
            GroupsClaim::from_claims(Some(&groups), None, None),
            GroupsClaim::Listed(vec!["g1".into(), "g2".into()])
        );
        assert_eq!(GroupsClaim::from_claims(None, None, None), GroupsClaim::Absent);
        // A single group may come as a string rather than a list.
        assert_eq!(GroupsClaim::from_claims(Some(&json!("g1")), None, None), GroupsClaim::Listed(vec!["g1".into()]));
    }

    #[test]
    fn claim_names_or_hasgroups_mean_overage_even_beside_a_list() {
        let names = json!({ "groups": "src1" });
        let partial = json!(["g1"]);
        assert_eq!(GroupsClaim::from_claims(Some(&partial), Some(&names), None), GroupsClaim::Overage);
        assert_eq!(GroupsClaim::from_claims(None, None, Some(&json!(true))), GroupsClaim::Overage);
        assert_eq!(GroupsClaim::from_claims(None, None, Some(&json!("true"))), GroupsClaim::Overage);
        // Another claim's source is not a group overage.
        let other = json!({ "wids": "src2" });
        assert_eq!(GroupsClaim::from_claims(None, Some(&other), Some(&json!(false))), GroupsClaim::Absent);
    }

    #[test]
    fn roles_are_strings_sorted_once_and_bounded() {
        let roles = json!(["Writer", "Admin", "Writer", 3, "x".repeat(MAX_VALUE_LEN + 1)]);
        assert_eq!(roles_from_claim(Some(&roles)), vec!["Admin".to_string(), "Writer".to_string()]);
        assert_eq!(roles_from_claim(Some(&json!("Admin"))), vec!["Admin".to_string()]);
        let many: Vec<String> = (0..MAX_ROLES + 10).map(|i| format!("r{i:04}")).collect();
        assert_eq!(roles_from_claim(Some(&json!(many))).len(), MAX_ROLES);
    }

    #[test]
    fn no_pattern_keeps_every_group() {
        assert_eq!(filter(&[]).apply(["b".into(), "a".into(), "a".into()]), vec!["a".to_string(), "b".to_string()]);
    }

    /// Groups read from Graph pass the same bounds as the token's: nothing empty or overlong reaches a session.
    #[test]
    fn empty_or_overlong_groups_are_never_kept() {
        let longest = "g".repeat(MAX_VALUE_LEN);
        let kept = filter(&[]).apply([String::new(), longest.clone(), format!("{longest}g")]);
        assert_eq!(kept, vec![longest]);
    }

    #[test]
    fn exact_values_and_prefixes_keep_only_their_groups() {
        let keep = filter(&["0F3A1111-2222-3333-4444-555566667777", "app-*"]);
        assert!(keep.keeps("0f3a1111-2222-3333-4444-555566667777"));
        assert!(keep.keeps("App-Readers"));
        assert!(!keep.keeps("0f3a1111-2222-3333-4444-555566667778"));
        assert!(!keep.keeps("team-app-readers"));
        assert!(!keep.keeps("0f3a1111"));
    }

    #[test]
    fn unusable_patterns_are_refused() {
        for bad in ["", "*", "a*b", "**", "a**"] {
            assert!(GroupFilter::parse(&[bad.to_string()]).is_err(), "{bad:?}");
        }
        let longest = "g".repeat(MAX_VALUE_LEN);
        assert!(GroupFilter::parse(&[longest.clone(), format!("{longest}*")]).is_ok(), "as long as a kept value");
        assert!(GroupFilter::parse(&[format!("{longest}g")]).is_err(), "longer than any kept value");
    }

    #[test]
    fn each_cloud_has_its_own_graph() {
        assert_eq!(graph_base("https://login.microsoftonline.com"), "https://graph.microsoft.com");
        assert_eq!(graph_base("https://LOGIN.microsoftonline.us/"), "https://graph.microsoft.us");
        assert_eq!(graph_base("https://login.chinacloudapi.cn"), "https://microsoftgraph.chinacloudapi.cn");
        assert_eq!(graph_base("https://login.partner.microsoftonline.cn"), "https://microsoftgraph.chinacloudapi.cn");
        assert_eq!(graph_base("http://127.0.0.1:9/"), "http://127.0.0.1:9");
    }

    #[test]
    fn only_configured_reads_ask_for_graph_permissions() {
        let graph = "https://graph.microsoft.com";
        assert!(graph_scopes(graph, false, false).is_empty());
        assert_eq!(graph_scopes(graph, true, false), vec!["https://graph.microsoft.com/GroupMember.Read.All"]);
        assert_eq!(graph_scopes(graph, false, true), vec!["https://graph.microsoft.com/User.Read"]);
        assert_eq!(graph_scopes(graph, true, true).len(), 2);
    }

    #[test]
    fn facts_round_trip_through_json() {
        let facts = DirectoryFacts {
            tenant: Tenant { id: "t".into(), name: Some("Contoso".into()) },
            roles: vec!["Admin".into()],
            groups: vec!["g".into()],
            groups_from_graph: true,
            custom: BTreeMap::from([("dept".to_string(), json!("Sales"))]),
            read_at: Timestamp::from_millis(5),
        };
        let text = serde_json::to_string(&facts).unwrap();
        assert_eq!(serde_json::from_str::<DirectoryFacts>(&text).unwrap(), facts);
    }

    proptest! {
        #[test]
        fn a_filter_keeps_only_what_a_pattern_matches(
            groups in proptest::collection::vec("[a-c]{1,3}", 0..12),
            pattern in "[a-c]{1,2}\\*?",
        ) {
            let keep = filter(&[pattern.as_str()]);
            let kept = keep.apply(groups.clone());
            for group in &kept {
                let matched = match pattern.strip_suffix('*') {
                    Some(prefix) => group.starts_with(prefix),
                    None => group == &pattern,
                };
                prop_assert!(matched, "{} kept by {}", group, pattern);
            }
            for group in &groups {
                prop_assert_eq!(kept.contains(group), keep.keeps(group));
            }
        }
    }
}
