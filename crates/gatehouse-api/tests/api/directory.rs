//! What Microsoft knows about the user, in the session: the tenant of the sign-in, app roles, groups (with the
//! overage read from Microsoft Graph), and the admin's view of them with the time they were read.

use gatehouse_core::config::Config;
use gatehouse_testkit::{
    Backend, both_backends,
    fake_entra::{FAKE_ORG_TENANT, FakeUser, GRAPH_MAX_PAGE_SIZE, GROUP_CLAIM_LIMIT},
};
use reqwest::Method;
use serde_json::{Value, json};

use crate::{
    admin::admin_json,
    email_proof::sign_in,
    sessions::{split, validate},
    thirdparty::{Setup, audit_kinds},
};

const GUEST_TENANT: &str = "0c0ffee0-1234-4abc-8def-00000000ba5e";

fn group(n: usize) -> String {
    format!("00000000-0000-4000-8000-{n:012}")
}

/// Groups 0..count, as Entra lists object ids.
fn groups(count: usize) -> Vec<String> {
    (0..count).map(group).collect()
}

/// The session JWT's claims.
fn claims(token: &str) -> Value {
    split(token).1
}

/// Roles, groups and the tenant of the sign-in reach the JWT and `/sessions/validate`; the admin API shows them with
/// when they were read; a changed assignment shows at the next sign-in, and the admin can end the old sessions.
async fn roles_groups_and_tenant_reach_the_session(backend: Backend) {
    let setup = Setup::start(backend, |_| {}).await;
    let person = FakeUser::new("megan@contoso.com").with_roles(["Writer", "Admin"]).with_groups(groups(3));
    let (user_id, token) = sign_in(&setup, person.clone()).await.unwrap();
    let jwt = claims(&token);
    assert_eq!(jwt["tenant"], json!({ "id": FAKE_ORG_TENANT }), "no name unless read_tenant_name");
    assert_eq!(jwt["roles"], json!(["Admin", "Writer"]));
    assert_eq!(jwt["groups"], json!(groups(3)));
    let validation = validate(&setup.server, &token).await;
    assert_eq!(validation["claims"]["roles"], json!(["Admin", "Writer"]), "{validation}");
    assert_eq!(validation["claims"]["groups"], json!(groups(3)));
    assert_eq!(validation["claims"]["tenant"]["id"], FAKE_ORG_TENANT);

    let (_, admin_view) = admin_json(&setup.server, Method::GET, &format!("/users/{user_id}"), None).await;
    let identity = &admin_view["identities"][0];
    assert_eq!((identity["roles"].clone(), identity["groups"].clone()), (json!(["Admin", "Writer"]), json!(groups(3))));
    let first_read = identity["directory_read_at"].as_str().unwrap().to_owned();

    setup.server.clock.advance(std::time::Duration::from_secs(3600));
    let demoted = person.with_roles(["Reader"]).with_groups(groups(1));
    let (same, fresh) = sign_in(&setup, demoted).await.unwrap();
    assert_eq!(same, user_id);
    assert_eq!(
        (claims(&fresh)["roles"].clone(), claims(&fresh)["groups"].clone()),
        (json!(["Reader"]), json!(groups(1)))
    );
    let (_, admin_view) = admin_json(&setup.server, Method::GET, &format!("/users/{user_id}"), None).await;
    let identity = &admin_view["identities"][0];
    assert_eq!(identity["roles"], json!(["Reader"]), "roles are re-read at every sign-in");
    assert!(identity["directory_read_at"].as_str().unwrap() > first_read.as_str(), "{identity}");

    // The earlier session still says Admin: the admin ends every session of the user.
    assert_eq!(validate(&setup.server, &token).await["is_valid"], true);
    let (status, _) = admin_json(&setup.server, Method::DELETE, &format!("/users/{user_id}/sessions"), None).await;
    assert!((200..300).contains(&status), "{status}");
    assert_eq!(validate(&setup.server, &token).await["is_valid"], false);
    assert_eq!(validate(&setup.server, &fresh).await["is_valid"], false);
}

/// A guest signs in from their home tenant and from a tenant that invited them: each session carries the tenant of
/// its own sign-in.
async fn each_session_carries_the_tenant_of_its_sign_in(backend: Backend) {
    let setup = Setup::start(backend, |config| config.third_party.providers.microsoft.allow_linking = true).await;
    setup.entra.set_tenant_name(GUEST_TENANT, "Fabrikam");
    let home = FakeUser::new("megan@contoso.com").with_upn("megan@contoso.com").with_roles(["Admin"]);
    let mut guest = FakeUser::new("megan@contoso.com").in_tenant(GUEST_TENANT).with_roles(["Guest"]);
    guest.upn = None;
    let (user_id, at_home) = sign_in(&setup, home).await.unwrap();
    let (same, as_guest) = sign_in(&setup, guest).await.unwrap();
    assert_eq!(same, user_id, "linked by the proven address");
    assert_eq!(
        (claims(&at_home)["tenant"]["id"].clone(), claims(&at_home)["roles"].clone()),
        (json!(FAKE_ORG_TENANT), json!(["Admin"]))
    );
    assert_eq!(
        (claims(&as_guest)["tenant"]["id"].clone(), claims(&as_guest)["roles"].clone()),
        (json!(GUEST_TENANT), json!(["Guest"]))
    );
}

/// With `read_tenant_name`, the organisation's display name is read from Graph (asking for `User.Read`); without,
/// no Graph permission is asked for at all.
async fn the_tenant_name_is_read_when_asked(backend: Backend) {
    let setup = Setup::start(backend, |config| config.third_party.providers.microsoft.read_tenant_name = true).await;
    let (_, token) = sign_in(&setup, FakeUser::new("megan@contoso.com")).await.unwrap();
    assert_eq!(claims(&token)["tenant"], json!({ "id": FAKE_ORG_TENANT, "name": "Contoso" }));
    let scope = setup.entra.last_authorize_query().unwrap()["scope"].clone();
    assert_eq!(scope, format!("openid profile email {}/User.Read", setup.entra.base_url()));

    let plain = Setup::start(backend, |_| {}).await;
    sign_in(&plain, FakeUser::new("megan@contoso.com")).await.unwrap();
    assert_eq!(plain.entra.last_authorize_query().unwrap()["scope"], "openid profile email");
    assert_eq!(plain.entra.graph_requests(), 0);
}

/// Overage: more groups than fit in a token. With `groups.from_graph` every group is read from Graph, page by page
/// (asking for `GroupMember.Read.All`). All 1,200 make a JWT over `session.max_jwt_bytes`: the sign-in is refused at
/// the callback with a message naming the cap and `groups.keep`, before anything is stored (no user is signed up
/// who could never have a session); `groups.keep` keeps only the listed ones.
async fn an_overage_is_read_from_graph(backend: Backend) {
    let count = GRAPH_MAX_PAGE_SIZE + 201;
    let setup =
        Setup::start(backend, |config: &mut Config| config.third_party.providers.microsoft.groups.from_graph = true)
            .await;
    let (code, description) =
        sign_in(&setup, FakeUser::new("megan@contoso.com").with_groups(groups(count))).await.unwrap_err();
    assert_eq!(setup.entra.graph_requests(), 2, "1,200 groups, 999 per page");
    assert!(setup.entra.last_authorize_query().unwrap()["scope"].ends_with("/GroupMember.Read.All"));
    assert_eq!(code, "server_error");
    assert!(
        description.contains("session.max_jwt_bytes (3800)") && description.contains("groups.keep"),
        "{description}"
    );
    assert_eq!(setup.server.store.count_users().await.unwrap(), 0, "nothing was stored");
    assert!(audit_kinds(&setup.server).await.contains(&"thirdparty_signin_signup_failed".to_owned()));

    let kept = Setup::start(backend, |config: &mut Config| {
        let groups = &mut config.third_party.providers.microsoft.groups;
        groups.from_graph = true;
        groups.keep = vec![group(7), group(1199).to_uppercase(), "00000000-0000-4000-8000-00000000010*".into()];
    })
    .await;
    let (_, token) = sign_in(&kept, FakeUser::new("megan@contoso.com").with_groups(groups(count))).await.unwrap();
    let mut expected: Vec<String> = (100..110).map(group).chain([group(7), group(1199)]).collect();
    expected.sort();
    assert_eq!(claims(&token)["groups"], json!(expected));
}

/// Never a silent session without groups: an overage without `from_graph`, a Graph that refuses (no permission) or
/// fails, each fail the sign-in with a readable reason and an audit row.
async fn an_unread_overage_fails_the_sign_in(backend: Backend) {
    let overage = || FakeUser::new("megan@contoso.com").with_groups(groups(GROUP_CLAIM_LIMIT + 1));
    let setup = Setup::start(backend, |_| {}).await;
    let (code, description) = sign_in(&setup, overage()).await.unwrap_err();
    assert_eq!(code, "server_error");
    assert!(description.contains("more groups"), "{description}");
    assert_eq!(setup.entra.graph_requests(), 0);
    assert!(audit_kinds(&setup.server).await.contains(&"thirdparty_signin_signup_failed".to_owned()));

    let setup = Setup::start(backend, |config| {
        config.third_party.providers.microsoft.groups.from_graph = true;
        config.session.max_jwt_bytes = 65_536;
    })
    .await;
    setup.entra.fail_next_graph(403, "Authorization_RequestDenied");
    let (code, description) = sign_in(&setup, overage()).await.unwrap_err();
    assert_eq!(code, "server_error");
    assert!(description.contains("GroupMember.Read.All"), "{description}");
    // Anonymous failures write one audit row per client, kind and minute.
    setup.server.clock.advance(std::time::Duration::from_secs(61));
    setup.entra.fail_next_graph(503, "serviceNotAvailable");
    let (_, description) = sign_in(&setup, overage()).await.unwrap_err();
    assert!(description.contains("please try again"), "{description}");
    let failures =
        audit_kinds(&setup.server).await.iter().filter(|kind| *kind == "thirdparty_signin_signup_failed").count();
    assert_eq!(failures, 2);
    let (_, token) = sign_in(&setup, overage()).await.expect("Graph is back");
    assert_eq!(claims(&token)["groups"].as_array().unwrap().len(), GROUP_CLAIM_LIMIT + 1);
}

/// Custom claims from the ID token, from Graph's profile (asking for `User.Read`) and constant per tenant, and
/// Hanko's template over them, reach the session JWT and `/sessions/validate`.
async fn custom_claims_and_the_template_reach_the_session(backend: Backend) {
    let setup = Setup::start(backend, |config| {
        config.session.custom_claims = serde_json::from_value(json!({
            "department": { "type": "string", "id_token": "department" },
            "employee_type": { "type": "string", "graph": "employeeType" },
            "plan": { "type": "string", "per_tenant": { FAKE_ORG_TENANT: "gold", "*": "free" } },
        }))
        .unwrap();
        config.session.jwt_template = Some(
            serde_json::from_value(json!({ "claims": { "app": {
                "org": "{{.Tenant.ID}}",
                "roles": "{{.Roles}}",
                "who": "{{.User.Email.Address}} ({{.Claims.department}})",
            }}}))
            .unwrap(),
        );
    })
    .await;
    let person = FakeUser::new("megan@contoso.com")
        .with_roles(["Admin"])
        .with_claim("department", "Sales")
        .with_graph_attribute("employeeType", "Contractor");
    let (_, token) = sign_in(&setup, person).await.unwrap();
    let jwt = claims(&token);
    assert_eq!(
        (jwt["department"].clone(), jwt["employee_type"].clone(), jwt["plan"].clone()),
        (json!("Sales"), json!("Contractor"), json!("gold")),
        "{jwt}"
    );
    assert_eq!(jwt["app"], json!({ "org": FAKE_ORG_TENANT, "roles": ["Admin"], "who": "megan@contoso.com (Sales)" }));
    assert!(
        setup.entra.last_authorize_query().unwrap()["scope"].ends_with("/User.Read"),
        "a Graph attribute needs User.Read"
    );
    let validation = validate(&setup.server, &token).await;
    assert_eq!(
        (validation["claims"]["app"].clone(), validation["claims"]["plan"].clone()),
        (jwt["app"].clone(), json!("gold")),
        "{validation}"
    );

    let (_, elsewhere) = sign_in(&setup, FakeUser::new("adele@fabrikam.com").in_tenant(GUEST_TENANT)).await.unwrap();
    let jwt = claims(&elsewhere);
    assert_eq!(jwt["plan"], "free", "the constant for any other tenant");
    assert!(jwt.get("department").is_none(), "a claim without a value is left out: {jwt}");
}

both_backends!(
    roles_groups_and_tenant_reach_the_session,
    each_session_carries_the_tenant_of_its_sign_in,
    the_tenant_name_is_read_when_asked,
    an_overage_is_read_from_graph,
    an_unread_overage_fails_the_sign_in,
    custom_claims_and_the_template_reach_the_session,
);
