//! The session JWT template (Hanko's `session.jwt_template.claims`): claims an operator adds to every session
//! JWT, as static values or field placeholders such as `{{.User.Email.Address}}`.
//!
//! Hanko runs Go's `text/template`; Gatehouse reads only field placeholders, checked once at start-up, so that a
//! template that cannot render stops the server with its key named instead of dropping a claim at every sign-in.
//!
//! Rendering:
//! - a string that is exactly one placeholder becomes the field's JSON value (a list for `.Roles`, a boolean for
//!   `.User.Email.IsVerified`, the claim's own value for `.Claims.x`); when the field is absent (no email, no
//!   tenant name, no value for the claim at this sign-in) the claim is left out, never `null`;
//! - a string mixing text and placeholders becomes a string: an absent field is empty text and a list is its
//!   items joined with `,`;
//! - as in Hanko, a string that comes out exactly `true` or `false` becomes a boolean;
//! - maps and lists render item by item (an absent item is left out of its map or list); other values are kept.

use std::{
    collections::{BTreeMap, BTreeSet},
    fmt,
};

use serde_json::{Map, Value};

use crate::{custom_claims::CustomClaim, ids::UserId, session::EmailClaim};

/// Where the template sits in the configuration; every issue's path starts with it.
pub const TEMPLATE_PATH: &str = "session.jwt_template.claims";

/// Top-level claims Gatehouse sets itself: Hanko's, the standard JWT ones, Gatehouse's `tenant`, `roles` and
/// `groups`, and the names `/sessions/validate` gives the built-in claims (Hanko's `subject`, `expiration`, …),
/// beside which it lists the custom ones. A template may not set them: an app trusts `sub` or `exp`, or
/// `subject` in a validation, because only Gatehouse writes them.
pub const RESERVED_CLAIMS: &[&str] = &[
    "sub",
    "exp",
    "iat",
    "nbf",
    "aud",
    "iss",
    "jti",
    "session_id",
    "email",
    "username",
    "amr",
    "tenant",
    "roles",
    "groups",
    "subject",
    "expiration",
    "issued_at",
    "audience",
    "issuer",
];

/// Whether Gatehouse sets `name` itself.
pub fn is_reserved(name: &str) -> bool {
    RESERVED_CLAIMS.contains(&name)
}

/// What one sign-in knows, for the template's placeholders.
#[derive(Clone, Copy, Debug)]
pub struct TemplateInput<'a> {
    pub user_id: UserId,
    pub email: Option<&'a EmailClaim>,
    pub tenant_id: Option<&'a str>,
    pub tenant_name: Option<&'a str>,
    pub roles: &'a [String],
    pub groups: &'a [String],
    /// The values of the declared custom claims for this sign-in; a claim without a value is not in it.
    pub custom: &'a BTreeMap<String, Value>,
}

/// One thing wrong with the template, named by its full key path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TemplateIssue {
    /// For example `session.jwt_template.claims.app.dept`, or `….scopes[2]` inside a list.
    pub path: String,
    pub message: String,
}

impl fmt::Display for TemplateIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// A field a placeholder names.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Field {
    UserId,
    EmailAddress,
    EmailIsPrimary,
    EmailIsVerified,
    /// Hanko's; Gatehouse has no usernames, so it is always absent.
    Username,
    TenantId,
    TenantName,
    Roles,
    Groups,
    /// A declared custom claim.
    Claim(String),
}

/// The fields as written in a placeholder, without `.Claims.<name>`.
const FIELDS: &[(&str, Field)] = &[
    (".User.UserID", Field::UserId),
    (".User.Email.Address", Field::EmailAddress),
    (".User.Email.IsPrimary", Field::EmailIsPrimary),
    (".User.Email.IsVerified", Field::EmailIsVerified),
    (".User.Username", Field::Username),
    (".Tenant.ID", Field::TenantId),
    (".Tenant.Name", Field::TenantName),
    (".Roles", Field::Roles),
    (".Groups", Field::Groups),
];

const CLAIMS_PREFIX: &str = ".Claims.";

impl Field {
    fn parse(text: &str, declared: &BTreeSet<String>) -> Result<Self, String> {
        if let Some((_, field)) = FIELDS.iter().find(|(name, _)| *name == text) {
            return Ok(field.clone());
        }
        match text.strip_prefix(CLAIMS_PREFIX) {
            Some(name) if declared.contains(name) => Ok(Self::Claim(name.to_owned())),
            Some(name) => Err(format!(
                "{{{{{text}}}}}: {name:?} is not a declared custom claim (declare it under session.custom_claims)"
            )),
            None => Err(format!(
                "{{{{{text}}}}}: unknown field; the fields are {}, and .Claims.<name> for a claim declared under \
                 session.custom_claims",
                FIELDS.iter().map(|(name, _)| *name).collect::<Vec<_>>().join(", ")
            )),
        }
    }

    fn value(&self, input: &TemplateInput) -> Option<Value> {
        let strings = |items: &[String]| Value::Array(items.iter().cloned().map(Value::String).collect());
        match self {
            Self::UserId => Some(Value::String(input.user_id.to_string())),
            Self::EmailAddress => input.email.map(|email| Value::String(email.address.clone())),
            Self::EmailIsPrimary => input.email.map(|email| Value::Bool(email.is_primary)),
            Self::EmailIsVerified => input.email.map(|email| Value::Bool(email.is_verified)),
            Self::Username => None,
            Self::TenantId => input.tenant_id.map(|id| Value::String(id.to_owned())),
            Self::TenantName => input.tenant_name.map(|name| Value::String(name.to_owned())),
            Self::Roles => Some(strings(input.roles)),
            Self::Groups => Some(strings(input.groups)),
            Self::Claim(name) => input.custom.get(name).cloned(),
        }
    }
}

/// A piece of a templated string.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Piece {
    Text(String),
    Field(Field),
}

/// A parsed claim value.
#[derive(Clone, Debug, PartialEq)]
enum Node {
    /// Kept as written (a string without placeholders included, `true`/`false` already booleans).
    Static(Value),
    /// Exactly one placeholder: the field's typed value.
    Field(Field),
    /// Text and placeholders: a string.
    Text(Vec<Piece>),
    Map(Vec<(String, Node)>),
    List(Vec<Node>),
}

/// The parsed template, ready to render at every sign-in.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct JwtTemplate {
    claims: Vec<(String, Node)>,
}

impl JwtTemplate {
    /// Reads `claims` (the value of `session.jwt_template.claims`); `declared` are the custom claims' names,
    /// which `.Claims.<name>` may use and top-level keys may not repeat. Every issue is returned, not only the
    /// first.
    pub fn parse(claims: &Map<String, Value>, declared: &BTreeSet<String>) -> Result<Self, Vec<TemplateIssue>> {
        let mut issues = Vec::new();
        let mut parsed = Vec::new();
        for (name, value) in claims {
            let path = format!("{TEMPLATE_PATH}.{name}");
            if is_reserved(name) {
                issues.push(TemplateIssue { path, message: "is set by Gatehouse and cannot be overridden".into() });
            } else if declared.contains(name) {
                issues.push(TemplateIssue {
                    path,
                    message: "is a declared custom claim (session.custom_claims), which Gatehouse puts in the token \
                              under its own name; use {{.Claims.<name>}} under another name to repeat it"
                        .into(),
                });
            } else if let Some(node) = parse_node(value, &path, declared, &mut issues) {
                parsed.push((name.clone(), node));
            }
        }
        if issues.is_empty() { Ok(Self { claims: parsed }) } else { Err(issues) }
    }

    /// The template's claims for one sign-in.
    pub fn render(&self, input: &TemplateInput) -> Map<String, Value> {
        render_entries(&self.claims, input)
    }
}

/// Everything configured about a session JWT's extra claims, checked at start (see
/// [`crate::config::SessionConfig::claims_plan`]).
#[derive(Clone, Debug, PartialEq)]
pub struct ClaimsPlan {
    pub template: JwtTemplate,
    pub custom_claims: BTreeMap<String, CustomClaim>,
    /// `session.max_jwt_bytes`.
    pub max_jwt_bytes: usize,
}

/// A session JWT over `session.max_jwt_bytes`: the session is not minted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "the session JWT would be {size} bytes, more than session.max_jwt_bytes ({max}): keep fewer groups \
     (third_party.providers.microsoft.groups.keep), declare fewer or shorter custom claims or template claims, or \
     raise the limit"
)]
pub struct JwtTooLarge {
    pub size: usize,
    pub max: usize,
}

impl ClaimsPlan {
    /// The claims one sign-in adds to the built-in ones: each declared custom claim that has a value in
    /// `input.custom`, under its name, then the template's. Neither can set a reserved claim, and the template
    /// cannot repeat a declared name, so nothing here overwrites anything.
    pub fn claims(&self, input: &TemplateInput) -> Map<String, Value> {
        let mut claims: Map<String, Value> = self
            .custom_claims
            .keys()
            .filter_map(|name| input.custom.get(name).map(|value| (name.clone(), value.clone())))
            .collect();
        claims.extend(self.template.render(input));
        claims
    }

    /// Refuses a signed JWT (its compact form) longer than the cap.
    pub fn check_size(&self, jwt: &str) -> Result<(), JwtTooLarge> {
        if jwt.len() > self.max_jwt_bytes {
            Err(JwtTooLarge { size: jwt.len(), max: self.max_jwt_bytes })
        } else {
            Ok(())
        }
    }
}

fn parse_node(value: &Value, path: &str, declared: &BTreeSet<String>, issues: &mut Vec<TemplateIssue>) -> Option<Node> {
    match value {
        Value::String(text) => match parse_pieces(text, declared) {
            // A string that is one placeholder keeps its value's type; any other renders as text.
            Ok(pieces) => Some(match pieces.as_slice() {
                [Piece::Field(field)] => Node::Field(field.clone()),
                _ => Node::Text(pieces),
            }),
            Err(message) => {
                issues.push(TemplateIssue { path: path.to_owned(), message });
                None
            }
        },
        Value::Object(map) => {
            let entries = map
                .iter()
                .filter_map(|(key, inner)| {
                    parse_node(inner, &format!("{path}.{key}"), declared, issues).map(|node| (key.clone(), node))
                })
                .collect();
            Some(Node::Map(entries))
        }
        Value::Array(items) => {
            let nodes = items
                .iter()
                .enumerate()
                .filter_map(|(index, inner)| parse_node(inner, &format!("{path}[{index}]"), declared, issues))
                .collect();
            Some(Node::List(nodes))
        }
        other => Some(Node::Static(other.clone())),
    }
}

/// Splits a string into text and field placeholders.
fn parse_pieces(text: &str, declared: &BTreeSet<String>) -> Result<Vec<Piece>, String> {
    let mut pieces = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        if start > 0 {
            pieces.push(Piece::Text(rest[..start].to_owned()));
        }
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            return Err("a placeholder opened with {{ is not closed with }}".into());
        };
        pieces.push(Piece::Field(parse_placeholder(after[..end].trim(), declared)?));
        rest = &after[end + 2..];
    }
    if !rest.is_empty() {
        pieces.push(Piece::Text(rest.to_owned()));
    }
    Ok(pieces)
}

/// The inside of `{{ … }}`: one field path such as `.User.Email.Address`, nothing else of Go's templates.
fn parse_placeholder(inner: &str, declared: &BTreeSet<String>) -> Result<Field, String> {
    let is_field_path = inner.strip_prefix('.').is_some_and(|path| {
        path.split('.').all(|part| !part.is_empty() && part.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
    });
    if is_field_path {
        return Field::parse(inner, declared);
    }
    let shown = match inner.split_once(char::is_whitespace) {
        Some((first, _)) => format!("{{{{{first} …}}}}"),
        None => format!("{{{{{inner}}}}}"),
    };
    Err(format!("only field placeholders like {{{{.User.Email.Address}}}} are supported; {shown} is not"))
}

/// Hanko turns a rendered `true` or `false` into a boolean.
fn typed_text(text: String) -> Value {
    match text.as_str() {
        "true" => Value::Bool(true),
        "false" => Value::Bool(false),
        _ => Value::String(text),
    }
}

fn render_entries(entries: &[(String, Node)], input: &TemplateInput) -> Map<String, Value> {
    entries.iter().filter_map(|(key, node)| render_node(node, input).map(|value| (key.clone(), value))).collect()
}

/// `None` when the value is absent, so that its key or list item is left out.
fn render_node(node: &Node, input: &TemplateInput) -> Option<Value> {
    match node {
        Node::Static(value) => Some(value.clone()),
        Node::Field(field) => field.value(input),
        Node::Text(pieces) => {
            let text: String = pieces
                .iter()
                .map(|piece| match piece {
                    Piece::Text(text) => text.clone(),
                    Piece::Field(field) => field.value(input).as_ref().map(as_text).unwrap_or_default(),
                })
                .collect();
            Some(typed_text(text))
        }
        Node::Map(entries) => Some(Value::Object(render_entries(entries, input))),
        Node::List(nodes) => Some(Value::Array(nodes.iter().filter_map(|node| render_node(node, input)).collect())),
    }
}

/// A value inside text: strings as they are, lists joined with `,`.
fn as_text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        Value::Array(items) => items.iter().map(as_text).collect::<Vec<_>>().join(","),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::json;
    use uuid::Uuid;

    use super::*;

    fn declared(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|name| (*name).to_owned()).collect()
    }

    fn parse(claims: Value) -> Result<JwtTemplate, Vec<String>> {
        let Value::Object(claims) = claims else { panic!("claims are a map") };
        JwtTemplate::parse(&claims, &declared(&["department", "plan"]))
            .map_err(|issues| issues.iter().map(ToString::to_string).collect())
    }

    fn render(claims: Value, input: &TemplateInput) -> Value {
        Value::Object(parse(claims).unwrap().render(input))
    }

    struct Signin {
        email: Option<EmailClaim>,
        roles: Vec<String>,
        groups: Vec<String>,
        custom: BTreeMap<String, Value>,
    }

    impl Signin {
        fn full() -> Self {
            Self {
                email: Some(EmailClaim { address: "megan@contoso.com".into(), is_primary: true, is_verified: false }),
                roles: vec!["admin".into(), "reader".into()],
                groups: vec!["g1".into()],
                custom: [("department".to_owned(), json!("Sales")), ("plan".to_owned(), json!(["gold", "x"]))]
                    .into_iter()
                    .collect(),
            }
        }

        fn bare() -> Self {
            Self { email: None, roles: vec![], groups: vec![], custom: BTreeMap::new() }
        }

        fn input(&self, tenant: Option<(&'static str, &'static str)>) -> TemplateInput<'_> {
            TemplateInput {
                user_id: UserId::from_uuid(Uuid::from_u128(7)),
                email: self.email.as_ref(),
                tenant_id: tenant.map(|(id, _)| id),
                tenant_name: tenant.map(|(_, name)| name),
                roles: &self.roles,
                groups: &self.groups,
                custom: &self.custom,
            }
        }
    }

    const TENANT: Option<(&str, &str)> = Some(("72f988bf-86f1-41af-91ab-2d7cd011db47", "Contoso"));

    /// A claim for every field, `{{.User.Username}}` included.
    fn every_field() -> Value {
        json!({
            "user": "{{.User.UserID}}",
            "mail": "{{ .User.Email.Address }}",
            "primary": "{{.User.Email.IsPrimary}}",
            "verified": "{{.User.Email.IsVerified}}",
            "name": "{{.User.Username}}",
            "tid": "{{.Tenant.ID}}",
            "org": "{{.Tenant.Name}}",
            "app_roles": "{{.Roles}}",
            "app_groups": "{{.Groups}}",
            "dept": "{{.Claims.department}}",
            "plans": "{{.Claims.plan}}",
        })
    }

    const USER_ID: &str = "00000000-0000-0000-0000-000000000007";

    #[test]
    fn every_field_renders_its_typed_value() {
        assert_eq!(
            render(every_field(), &Signin::full().input(TENANT)),
            json!({
                "user": USER_ID,
                "mail": "megan@contoso.com",
                "primary": true,
                "verified": false,
                "tid": "72f988bf-86f1-41af-91ab-2d7cd011db47",
                "org": "Contoso",
                "app_roles": ["admin", "reader"],
                "app_groups": ["g1"],
                "dept": "Sales",
                "plans": ["gold", "x"],
            })
        );
    }

    #[test]
    fn an_absent_field_leaves_its_claim_out_never_null() {
        let bare = Signin::bare();
        assert_eq!(
            render(every_field(), &bare.input(None)),
            json!({"user": USER_ID, "app_roles": [], "app_groups": []})
        );
        let nested =
            json!({"app": {"dept": "{{.Claims.department}}", "kept": 1}, "list": ["a", "{{.Tenant.Name}}", "b"]});
        assert_eq!(render(nested, &bare.input(None)), json!({"app": {"kept": 1}, "list": ["a", "b"]}));
    }

    #[test]
    fn mixed_text_is_a_string_with_absent_fields_empty_and_lists_joined() {
        let signin = Signin::full();
        let claims = json!({
            "greeting": "Hello {{.User.Email.Address}} of {{.Tenant.Name}}!",
            "roles_text": "roles={{.Roles}}",
            "flag": "{{.User.Email.IsPrimary}}!",
            "name": "user {{.User.Username}}",
        });
        assert_eq!(
            render(claims.clone(), &signin.input(TENANT)),
            json!({
                "greeting": "Hello megan@contoso.com of Contoso!",
                "roles_text": "roles=admin,reader",
                "flag": "true!",
                "name": "user ",
            })
        );
        let bare = Signin::bare();
        assert_eq!(render(claims, &bare.input(None))["greeting"], json!("Hello  of !"));
    }

    #[test]
    fn true_and_false_become_booleans_as_in_hanko() {
        let signin = Signin::full();
        let rendered = render(
            json!({"literal": "true", "built": "{{.User.Email.IsVerified}}{{.User.Username}}", "other": "True"}),
            &signin.input(None),
        );
        assert_eq!(rendered, json!({"literal": true, "built": false, "other": "True"}));
    }

    #[test]
    fn nested_maps_and_lists_render_recursively_and_scalars_pass_through() {
        let signin = Signin::full();
        let rendered = render(
            json!({
                "app": {"meta": {"mail": "{{.User.Email.Address}}", "n": 3, "on": false, "none": null}},
                "scopes": ["read", ["{{.Tenant.ID}}"], {"g": "{{.Groups}}"}],
                "number": 1.5,
                "empty": "",
            }),
            &signin.input(TENANT),
        );
        assert_eq!(
            rendered,
            json!({
                "app": {"meta": {"mail": "megan@contoso.com", "n": 3, "on": false, "none": null}},
                "scopes": ["read", ["72f988bf-86f1-41af-91ab-2d7cd011db47"], {"g": ["g1"]}],
                "number": 1.5,
                "empty": "",
            })
        );
    }

    #[test]
    fn reserved_claims_are_refused_not_ignored() {
        for name in RESERVED_CLAIMS {
            assert_eq!(
                parse(json!({ *name: "x" })).unwrap_err(),
                vec![format!("session.jwt_template.claims.{name}: is set by Gatehouse and cannot be overridden")]
            );
        }
        assert!(parse(json!({"app": {"sub": "x", "email": "y"}})).is_ok(), "only top-level keys are reserved");
    }

    /// `/sessions/validate` lists the custom claims beside the built-in ones under Hanko's names: a custom
    /// `subject` would be a second `subject` key there, the one a JSON reader keeps.
    #[test]
    fn the_names_of_the_validation_view_are_reserved() {
        for name in ["subject", "expiration", "issued_at", "audience", "issuer"] {
            assert!(parse(json!({ name: "x" })).is_err(), "{name}");
            assert!(is_reserved(name), "{name}");
        }
    }

    #[test]
    fn a_declared_claims_name_is_refused_at_the_top_level() {
        let issues = parse(json!({"department": "{{.Claims.department}}"})).unwrap_err();
        assert_eq!(issues.len(), 1);
        assert!(issues[0].starts_with("session.jwt_template.claims.department: is a declared custom claim"));
        assert!(parse(json!({"dept": "{{.Claims.department}}"})).is_ok());
    }

    #[test]
    fn claims_must_be_declared() {
        assert_eq!(
            parse(json!({"app": {"x": "{{.Claims.cost_center}}"}})).unwrap_err(),
            vec![
                "session.jwt_template.claims.app.x: {{.Claims.cost_center}}: \"cost_center\" is not a declared custom \
                 claim (declare it under session.custom_claims)"
            ]
        );
    }

    #[test]
    fn unknown_fields_name_the_supported_ones() {
        let issues = parse(json!({"x": "{{.User.Name}}"})).unwrap_err();
        assert!(issues[0].starts_with("session.jwt_template.claims.x: {{.User.Name}}: unknown field; the fields are"));
        assert!(issues[0].contains(".User.UserID, .User.Email.Address") && issues[0].contains(".Claims.<name>"));
        assert!(parse(json!({"x": "{{.Claims}}"})).unwrap_err()[0].contains("unknown field"));
    }

    #[test]
    fn go_template_actions_are_refused_with_what_is_supported() {
        let cases = [
            ("{{if .User.Email.IsVerified}}admin{{else}}basic{{end}}", "{{if …}}"),
            ("{{.User.Email.Address | printf \"%s\"}}", "{{.User.Email.Address …}}"),
            ("{{printf \"%s\" .User.UserID}}", "{{printf …}}"),
            ("{{/* note */}}", "{{/* …}}"),
            ("{{}}", "{{}}"),
            ("{{.}}", "{{.}}"),
            ("{{- .User.UserID -}}", "{{- …}}"),
        ];
        for (template, shown) in cases {
            assert_eq!(
                parse(json!({ "x": template })).unwrap_err(),
                vec![format!(
                    "session.jwt_template.claims.x: only field placeholders like {{{{.User.Email.Address}}}} are \
                     supported; {shown} is not"
                )],
                "{template}"
            );
        }
    }

    #[test]
    fn an_unclosed_placeholder_is_refused() {
        assert_eq!(
            parse(json!({"x": "Hello {{.User.UserID"})).unwrap_err(),
            vec!["session.jwt_template.claims.x: a placeholder opened with {{ is not closed with }}"]
        );
        assert!(parse(json!({"x": "a }} b"})).is_ok(), "a lone }} is text, as in Go");
    }

    #[test]
    fn every_issue_is_listed_with_its_path() {
        let issues = parse(json!({
            "sub": "x",
            "app": {"a": "{{.Nope}}", "list": ["ok", "{{if .X}}"]},
            "b": "{{.Claims.missing}}",
        }))
        .unwrap_err();
        let paths: Vec<&str> = issues.iter().map(|issue| issue.split(": ").next().unwrap()).collect();
        assert_eq!(
            paths,
            vec![
                "session.jwt_template.claims.app.a",
                "session.jwt_template.claims.app.list[1]",
                "session.jwt_template.claims.b",
                "session.jwt_template.claims.sub",
            ]
        );
    }

    #[test]
    fn an_empty_template_adds_nothing() {
        assert!(parse(json!({})).unwrap().render(&Signin::full().input(TENANT)).is_empty());
    }

    fn claim_name() -> impl Strategy<Value = String> {
        prop_oneof![
            proptest::sample::select(RESERVED_CLAIMS).prop_map(str::to_owned),
            Just("department".to_owned()),
            "[a-z_]{1,8}",
        ]
    }

    fn claim_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            "[ -~]{0,30}".prop_map(Value::String),
            proptest::sample::select(vec![
                "{{.User.Email.Address}}",
                "{{.Roles}}",
                "{{.Claims.department}}",
                "{{.Tenant.Name}} x",
                "true",
            ])
            .prop_map(Value::from),
        ];
        leaf.prop_recursive(3, 16, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                proptest::collection::btree_map("[a-z]{1,4}", inner, 0..4)
                    .prop_map(|map| Value::Object(map.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn rendering_never_sets_a_reserved_or_undeclared_top_level_key(
            claims in proptest::collection::btree_map(claim_name(), claim_value(), 0..6),
        ) {
            let claims: Map<String, Value> = claims.into_iter().collect();
            if let Ok(template) = JwtTemplate::parse(&claims, &declared(&["department"])) {
                let signin = Signin::full();
                for key in template.render(&signin.input(TENANT)).keys() {
                    prop_assert!(!is_reserved(key) && key != "department" && claims.contains_key(key), "{}", key);
                }
            }
        }

        #[test]
        fn parse_never_panics_and_text_without_placeholders_is_kept(text in any::<String>()) {
            let claims: Map<String, Value> = [("x".to_owned(), Value::String(text.clone()))].into_iter().collect();
            let parsed = JwtTemplate::parse(&claims, &declared(&["department"]));
            if !text.contains("{{") {
                let rendered = parsed.unwrap().render(&Signin::bare().input(None));
                prop_assert_eq!(&rendered["x"], &typed_text(text));
            }
        }
    }
}
