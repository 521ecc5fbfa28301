use gatehouse_testkit::{Backend, TestServer, both_backends};
use serde_json::Value;

async fn the_public_listener_describes_every_route(backend: Backend) {
    let server = TestServer::start(backend, |_| {}).await;
    let response = server.client.get(server.url("/openapi.json")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let spec: Value = response.json().await.unwrap();
    let operations = |path: &str| -> Vec<String> {
        spec["paths"][path].as_object().map(|item| item.keys().cloned().collect()).unwrap_or_default()
    };
    for (path, methods) in [
        ("/", &["get"][..]),
        ("/health/alive", &["get"]),
        ("/health/ready", &["get"]),
        ("/.well-known/jwks.json", &["get"]),
        ("/.well-known/config", &["get"]),
        ("/sessions/validate", &["get", "post"]),
        ("/logout", &["post"]),
        ("/me", &["get"]),
        ("/token", &["post"]),
        ("/thirdparty/auth", &["get"]),
        ("/thirdparty/callback", &["get", "post"]),
        ("/login", &["post"]),
        ("/registration", &["post"]),
        ("/profile", &["post"]),
    ] {
        for method in methods {
            assert!(operations(path).iter().any(|m| m == method), "{method} {path} is documented: {:?}", spec["paths"]);
        }
    }
    let schemas = &spec["components"]["schemas"];
    for schema in ["ErrorBody", "FlowState", "SessionValidation", "UserView", "JsonWebKeySet", "LegacyConfig"] {
        assert!(schemas[schema].is_object(), "{schema} is described");
    }
    let flow_answer = &spec["paths"]["/login"]["post"]["responses"]["403"]["content"]["application/json"]["schema"];
    assert_eq!(flow_answer["$ref"], "#/components/schemas/FlowState", "flow errors are flow states");
    assert_eq!(spec["components"]["securitySchemes"]["session"]["scheme"], "bearer");
    assert!(
        spec["paths"].get("/identity-providers").is_none(),
        "the admin API is described by the admin listener only"
    );
}

both_backends!(the_public_listener_describes_every_route);
