//! Custom claims an operator declares under `session.custom_claims`: a name, a type, and where each sign-in's value
//! comes from (a claim of the ID token, an attribute of the Microsoft Graph user, or a constant per tenant).
//! Gatehouse puts each one in the session JWT under its own name; the JWT template can use it as `.Claims.<name>`.
//!
//! A value is taken only when it has the declared type, so an app can rely on the claim's shape:
//! - `string`: a string of at most [`MAX_STRING_CHARS`] characters;
//! - `number`: a number, or a string holding a JSON number (`"42"`, `"4.5"`), as directories often store them;
//! - `boolean`: `true`/`false`, or the strings `"true"`/`"false"`;
//! - `strings`: a list of at most [`MAX_LIST_ITEMS`] such strings, or a single string as a list of one (a claim
//!   that has one value is often sent as a plain string).
//!
//! Anything else, a longer string or list included, is no value: the claim is left out (never cut short, which
//! would change what it says), and the caller logs it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Number, Value};

use crate::{config::CustomClaimConfig, jwt_template::is_reserved, microsoft::claims::is_guid};

/// The longest string a custom claim carries, in characters: claims ride in every request's cookie or header.
pub const MAX_STRING_CHARS: usize = 1024;
/// The most items a `strings` claim carries.
pub const MAX_LIST_ITEMS: usize = 200;
/// The longest claim or Graph attribute name.
const MAX_NAME_CHARS: usize = 64;
/// The `per_tenant` key for every tenant not listed.
pub const ANY_TENANT: &str = "*";

/// The JSON type of a custom claim's value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClaimType {
    String,
    Number,
    Boolean,
    /// A list of strings.
    Strings,
}

impl ClaimType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::String => "string",
            Self::Number => "number",
            Self::Boolean => "boolean",
            Self::Strings => "strings",
        }
    }

    /// `value` as this type (see the module's rules), or `None` when it is not one.
    pub fn coerce(self, value: &Value) -> Option<Value> {
        let short = |text: &str| text.chars().count() <= MAX_STRING_CHARS;
        match (self, value) {
            (Self::String, Value::String(text)) if short(text) => Some(value.clone()),
            (Self::Number, Value::Number(_)) | (Self::Boolean, Value::Bool(_)) => Some(value.clone()),
            (Self::Number, Value::String(text)) => serde_json::from_str::<Number>(text.trim()).ok().map(Value::Number),
            (Self::Boolean, Value::String(text)) => match text.as_str() {
                "true" => Some(Value::Bool(true)),
                "false" => Some(Value::Bool(false)),
                _ => None,
            },
            (Self::Strings, Value::String(text)) if short(text) => Some(Value::Array(vec![value.clone()])),
            (Self::Strings, Value::Array(items))
                if items.len() <= MAX_LIST_ITEMS && items.iter().all(|item| item.as_str().is_some_and(short)) =>
            {
                Some(value.clone())
            }
            _ => None,
        }
    }
}

/// Where a custom claim's value comes from.
#[derive(Clone, Debug, PartialEq)]
pub enum ClaimSource {
    /// This claim of the ID token.
    IdToken(String),
    /// This property of the Graph user (`GET /me?$select=…`).
    Graph(String),
    /// A constant per tenant: lower-case tenant GUIDs, and [`ANY_TENANT`] for the others. Values have the type.
    PerTenant(BTreeMap<String, Value>),
}

/// A declared custom claim, checked.
#[derive(Clone, Debug, PartialEq)]
pub struct CustomClaim {
    pub claim_type: ClaimType,
    pub source: ClaimSource,
}

impl CustomClaim {
    /// Checks the declaration of the claim `name`; every problem is returned, each starting with the field it is
    /// about when it is about one.
    pub fn parse(name: &str, config: &CustomClaimConfig) -> Result<Self, Vec<String>> {
        let mut issues = Vec::new();
        if !is_plain_name(name, |c| c.is_ascii_alphabetic() || c == '_') {
            issues.push(format!(
                "a claim name is a letter or _ followed by up to {} letters, digits or _",
                MAX_NAME_CHARS - 1
            ));
        } else if is_reserved(name) {
            issues.push("is set by Gatehouse and cannot be declared".into());
        }
        let source = match (&config.id_token, &config.graph, &config.per_tenant) {
            (Some(claim), None, None) => {
                if claim.trim().is_empty() {
                    issues.push("id_token: must name a claim of the ID token".into());
                }
                Some(ClaimSource::IdToken(claim.clone()))
            }
            (None, Some(attribute), None) => {
                if !is_plain_name(attribute, |c| c.is_ascii_alphabetic()) {
                    issues.push(format!(
                        "graph: {attribute:?} is not a Graph user property name (a letter followed by up to {} \
                         letters, digits or _, such as employeeType)",
                        MAX_NAME_CHARS - 1
                    ));
                }
                Some(ClaimSource::Graph(attribute.clone()))
            }
            (None, None, Some(tenants)) => {
                Some(ClaimSource::PerTenant(per_tenant(config.claim_type, tenants, &mut issues)))
            }
            _ => {
                issues.push("set exactly one of id_token, graph or per_tenant".into());
                None
            }
        };
        match source {
            Some(source) if issues.is_empty() => Ok(Self { claim_type: config.claim_type, source }),
            _ => Err(issues),
        }
    }

    /// This sign-in's value, when its source has one of the declared type (see the module's rules).
    /// `graph_user` is `None` when Graph was not asked.
    pub fn value(
        &self,
        id_token: &Map<String, Value>,
        graph_user: Option<&Map<String, Value>>,
        tenant_id: &str,
    ) -> Option<Value> {
        let found = match &self.source {
            ClaimSource::IdToken(claim) => id_token.get(claim),
            ClaimSource::Graph(attribute) => graph_user.and_then(|user| user.get(attribute)),
            ClaimSource::PerTenant(values) => {
                values.get(&tenant_id.to_ascii_lowercase()).or_else(|| values.get(ANY_TENANT))
            }
        };
        found.and_then(|value| self.claim_type.coerce(value))
    }
}

/// Checks `per_tenant`: the keys are tenant GUIDs (kept lower-case) or `*`, the values have the claim's type.
fn per_tenant(
    claim_type: ClaimType,
    tenants: &BTreeMap<String, Value>,
    issues: &mut Vec<String>,
) -> BTreeMap<String, Value> {
    if tenants.is_empty() {
        issues.push("per_tenant: list at least one tenant GUID or *".into());
    }
    let mut values = BTreeMap::new();
    for (tenant, value) in tenants {
        if tenant != ANY_TENANT && !is_guid(tenant) {
            issues.push(format!("per_tenant: {tenant:?} is not a tenant GUID or *"));
            continue;
        }
        let Some(value) = claim_type.coerce(value) else {
            issues.push(format!("per_tenant.{tenant}: {value} is not a {}", claim_type.as_str()));
            continue;
        };
        if values.insert(tenant.to_ascii_lowercase(), value).is_some() {
            issues.push(format!("per_tenant: tenant {tenant} is listed twice"));
        }
    }
    values
}

/// `first` and then letters, digits or `_`, at most [`MAX_NAME_CHARS`] in all: safe in a JWT and in a `$select`.
fn is_plain_name(text: &str, first: impl Fn(char) -> bool) -> bool {
    let mut chars = text.chars();
    text.len() <= MAX_NAME_CHARS
        && chars.next().is_some_and(first)
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The Graph user properties the custom claims need, sorted and without repeats, for `$select`; empty when no
/// claim comes from Graph (then no Graph call is needed for them).
pub fn graph_attributes(claims: &BTreeMap<String, CustomClaim>) -> Vec<String> {
    let mut attributes: Vec<String> = claims
        .values()
        .filter_map(|claim| match &claim.source {
            ClaimSource::Graph(attribute) => Some(attribute.clone()),
            _ => None,
        })
        .collect();
    attributes.sort();
    attributes.dedup();
    attributes
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;

    const CONTOSO: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";

    fn config(value: Value) -> CustomClaimConfig {
        serde_json::from_value(value).unwrap()
    }

    fn claim(value: Value) -> CustomClaim {
        CustomClaim::parse("claim", &config(value)).unwrap()
    }

    fn issues(name: &str, value: Value) -> Vec<String> {
        CustomClaim::parse(name, &config(value)).unwrap_err()
    }

    fn map(value: Value) -> Map<String, Value> {
        let Value::Object(map) = value else { panic!("a map") };
        map
    }

    #[test]
    fn each_source_gives_its_value() {
        let id_token = map(json!({"department": "Sales", "tid": CONTOSO}));
        let graph = map(json!({"employeeType": "Contractor"}));
        let department = claim(json!({"type": "string", "id_token": "department"}));
        assert_eq!(department.value(&id_token, None, CONTOSO), Some(json!("Sales")));
        assert_eq!(department.value(&Map::new(), Some(&id_token), CONTOSO), None, "only the ID token");
        let employee_type = claim(json!({"type": "string", "graph": "employeeType"}));
        assert_eq!(employee_type.value(&id_token, Some(&graph), CONTOSO), Some(json!("Contractor")));
        assert_eq!(employee_type.value(&graph, None, CONTOSO), None, "Graph not asked");
    }

    #[test]
    fn per_tenant_values_follow_the_tenant_then_the_wildcard() {
        let plan = claim(json!({"type": "string", "per_tenant": {CONTOSO.to_uppercase(): "gold", "*": "free"}}));
        assert_eq!(plan.value(&Map::new(), None, CONTOSO), Some(json!("gold")), "GUIDs are lower-cased");
        assert_eq!(plan.value(&Map::new(), None, &CONTOSO.to_uppercase()), Some(json!("gold")));
        assert_eq!(plan.value(&Map::new(), None, "9188040d-6c67-4c5b-b112-36a304b66dad"), Some(json!("free")));
        let only = claim(json!({"type": "number", "per_tenant": {CONTOSO: "3"}}));
        assert_eq!(only.value(&Map::new(), None, CONTOSO), Some(json!(3)), "coerced at start-up");
        assert_eq!(only.value(&Map::new(), None, "other"), None);
    }

    #[test]
    fn values_of_another_type_are_no_value() {
        let token = map(json!({
            "s": "text", "n": 4.5, "ns": " 42 ", "bad_n": "4x", "b": true, "bs": "false", "bad_b": "yes",
            "list": ["a", "b"], "mixed": ["a", 1], "obj": {"a": 1}, "null": null, "big": "1e400",
        }));
        let cases = [
            ("string", "s", Some(json!("text"))),
            ("string", "n", None),
            ("string", "list", None),
            ("string", "null", None),
            ("number", "n", Some(json!(4.5))),
            ("number", "ns", Some(json!(42))),
            ("number", "bad_n", None),
            ("number", "big", None),
            ("number", "b", None),
            ("boolean", "b", Some(json!(true))),
            ("boolean", "bs", Some(json!(false))),
            ("boolean", "bad_b", None),
            ("boolean", "n", None),
            ("strings", "list", Some(json!(["a", "b"]))),
            ("strings", "s", Some(json!(["text"]))),
            ("strings", "mixed", None),
            ("strings", "obj", None),
            ("strings", "missing", None),
        ];
        for (claim_type, source, expected) in cases {
            let declared = claim(json!({"type": claim_type, "id_token": source}));
            assert_eq!(declared.value(&token, None, CONTOSO), expected, "{claim_type} from {source}");
        }
    }

    #[test]
    fn strings_and_lists_over_the_caps_are_no_value() {
        let long = "é".repeat(MAX_STRING_CHARS);
        assert_eq!(ClaimType::String.coerce(&json!(long)), Some(json!(long)), "characters, not bytes");
        assert_eq!(ClaimType::String.coerce(&json!(format!("{long}x"))), None);
        assert_eq!(ClaimType::Strings.coerce(&json!(format!("{long}x"))), None);
        assert_eq!(ClaimType::Strings.coerce(&json!([format!("{long}x")])), None);
        let items = vec!["g"; MAX_LIST_ITEMS];
        assert_eq!(ClaimType::Strings.coerce(&json!(items)), Some(json!(items)));
        let more = vec!["g"; MAX_LIST_ITEMS + 1];
        assert_eq!(ClaimType::Strings.coerce(&json!(more)), None);
    }

    #[test]
    fn names_are_plain_and_not_reserved() {
        for good in ["department", "_x", "A1_b", &"a".repeat(64)] {
            assert!(CustomClaim::parse(good, &config(json!({"type": "string", "id_token": "x"}))).is_ok(), "{good}");
        }
        for bad in ["", "1st", "dept-name", "a.b", "é", &"a".repeat(65)] {
            assert_eq!(
                issues(bad, json!({"type": "string", "id_token": "x"})),
                vec!["a claim name is a letter or _ followed by up to 63 letters, digits or _"],
                "{bad:?}"
            );
        }
        assert_eq!(
            issues("roles", json!({"type": "strings", "id_token": "roles"})),
            vec!["is set by Gatehouse and cannot be declared"]
        );
    }

    #[test]
    fn exactly_one_source() {
        let expected = vec!["set exactly one of id_token, graph or per_tenant"];
        assert_eq!(issues("x", json!({"type": "string"})), expected);
        assert_eq!(issues("x", json!({"type": "string", "id_token": "a", "graph": "b"})), expected);
        assert_eq!(issues("x", json!({"type": "string", "graph": "b", "per_tenant": {"*": "c"}})), expected);
        assert_eq!(
            issues("x", json!({"type": "string", "id_token": " "})),
            vec!["id_token: must name a claim of the ID token"]
        );
    }

    #[test]
    fn graph_attributes_are_safe_in_a_select() {
        for bad in ["employee type", "_hidden", "a,b", "a&$expand=manager", "", "1a", &"a".repeat(65)] {
            let found = issues("x", json!({"type": "string", "graph": bad}));
            assert_eq!(found.len(), 1, "{bad:?}");
            assert!(found[0].starts_with(&format!("graph: {bad:?} is not a Graph user property name")), "{found:?}");
        }
        assert!(CustomClaim::parse("x", &config(json!({"type": "string", "graph": "extension_ab12_cost"}))).is_ok());
    }

    #[test]
    fn per_tenant_keys_and_values_are_checked() {
        let found = issues(
            "plan",
            json!({"type": "boolean", "per_tenant": {"contoso.com": true, "*": "maybe", CONTOSO: "true"}}),
        );
        assert_eq!(
            found,
            vec!["per_tenant.*: \"maybe\" is not a boolean", "per_tenant: \"contoso.com\" is not a tenant GUID or *",]
        );
        assert_eq!(
            issues("plan", json!({"type": "string", "per_tenant": {}})),
            vec!["per_tenant: list at least one tenant GUID or *"]
        );
        let twice =
            issues("plan", json!({"type": "string", "per_tenant": {CONTOSO: "a", CONTOSO.to_uppercase(): "b"}}));
        assert_eq!(twice, vec![format!("per_tenant: tenant {CONTOSO} is listed twice")]);
    }

    #[test]
    fn graph_attributes_are_sorted_and_unique() {
        let claims: BTreeMap<String, CustomClaim> = [
            ("a", json!({"type": "string", "graph": "employeeType"})),
            ("b", json!({"type": "string", "graph": "department"})),
            ("c", json!({"type": "string", "graph": "employeeType"})),
            ("d", json!({"type": "string", "id_token": "department"})),
        ]
        .into_iter()
        .map(|(name, value)| (name.to_owned(), claim(value)))
        .collect();
        assert_eq!(graph_attributes(&claims), vec!["department", "employeeType"]);
        assert!(graph_attributes(&BTreeMap::new()).is_empty());
    }

    fn any_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            any::<bool>().prop_map(Value::Bool),
            any::<f64>().prop_map(|n| Number::from_f64(n).map_or(Value::Null, Value::Number)),
            any::<String>().prop_map(Value::String),
        ];
        leaf.prop_recursive(2, 8, 4, |inner| proptest::collection::vec(inner, 0..4).prop_map(Value::Array))
    }

    proptest! {
        #[test]
        fn a_coerced_value_has_the_type_and_coerces_to_itself(value in any_value()) {
            for claim_type in [ClaimType::String, ClaimType::Number, ClaimType::Boolean, ClaimType::Strings] {
                if let Some(coerced) = claim_type.coerce(&value) {
                    let typed = match claim_type {
                        ClaimType::String => coerced.is_string(),
                        ClaimType::Number => coerced.is_number(),
                        ClaimType::Boolean => coerced.is_boolean(),
                        ClaimType::Strings => coerced.as_array().is_some_and(|items| items.iter().all(Value::is_string)),
                    };
                    prop_assert!(typed, "{:?} from {}", claim_type, value);
                    prop_assert_eq!(claim_type.coerce(&coerced), Some(coerced.clone()));
                }
            }
        }
    }
}
