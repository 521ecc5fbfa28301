//! The storage suite: every test runs on SQLite and on PostgreSQL, each on a database of its own.

use gatehouse_core::{
    clock::Timestamp,
    email::{Email, EmailProof},
    ids::{AdminKeyId, AuditEntryId, EmailId, FlowId, IdentityId, SessionId, StateId, TokenId, UserId},
    microsoft::directory::{DirectoryFacts, Tenant},
};
use gatehouse_store::{
    AuditLogEntry, AuditLogFilter, NewEmail, NewSession, NewUser, Store, StoreError, StoredSigningKey,
};
use gatehouse_testkit::{Backend, TestDb, both_backends};
use uuid::Uuid;

/// A time, in milliseconds.
fn at(millis: i64) -> Timestamp {
    Timestamp::from_millis(millis)
}

fn user(email: Option<&str>) -> NewUser {
    NewUser {
        id: UserId::generate(),
        name: Some("Megan Bowen".into()),
        given_name: Some("Megan".into()),
        family_name: Some("Bowen".into()),
        picture: None,
        email: email.map(|address| NewEmail {
            id: EmailId::generate(),
            address: Email::parse(address).unwrap(),
            proof: Some(EmailProof::Upn),
        }),
        created_at: at(1_000),
    }
}

fn session(user_id: UserId, created_at: i64) -> NewSession {
    NewSession {
        id: SessionId::generate(),
        user_id,
        user_agent: Some("test".into()),
        ip_address: Some("127.0.0.1".into()),
        created_at: at(created_at),
        expires_at: at(created_at + 3_600_000),
    }
}

fn audit_entry(kind: &str, created_at: Timestamp) -> AuditLogEntry {
    AuditLogEntry {
        id: AuditEntryId::generate(),
        kind: kind.into(),
        error: None,
        http_request_id: None,
        source_ip: None,
        user_agent: None,
        actor_user_id: None,
        actor_email: None,
        details: None,
        created_at,
    }
}

fn key(kid: &str, created_at: i64) -> StoredSigningKey {
    StoredSigningKey {
        kid: kid.into(),
        algorithm: "ES256".into(),
        sealed_private_key: vec![1, 2, 3, 0, 255],
        created_at: at(created_at),
        retired_at: None,
    }
}

async fn users_round_trip_with_their_primary_email(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let new = user(Some("Megan@Contoso.com"));
    store.create_user(&new).await.unwrap();
    let found = store.find_user(new.id).await.unwrap().unwrap();
    assert_eq!((found.name.as_deref(), found.given_name.as_deref()), (Some("Megan Bowen"), Some("Megan")));
    assert_eq!(found.emails.len(), 1);
    let email = found.primary_email().unwrap();
    assert_eq!(
        (email.address.as_str(), email.proof, email.is_primary),
        ("megan@contoso.com", Some(EmailProof::Upn), true)
    );
    assert!(found.identities.is_empty());
    assert_eq!(store.count_users().await.unwrap(), 1);
    assert!(store.find_user(UserId::generate()).await.unwrap().is_none());

    let emailless = user(None);
    store.create_user(&emailless).await.unwrap();
    assert!(store.find_user(emailless.id).await.unwrap().unwrap().emails.is_empty());
}

async fn email_addresses_are_unique_case_insensitively(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    store.create_user(&user(Some("megan@contoso.com"))).await.unwrap();
    let duplicate = user(Some("MEGAN@contoso.com"));
    assert!(matches!(store.create_user(&duplicate).await, Err(StoreError::Conflict("email address"))));
    assert!(store.find_user(duplicate.id).await.unwrap().is_none(), "a failed creation leaves no half-made user");
    assert_eq!(store.count_users().await.unwrap(), 1);
}

async fn deleting_a_user_removes_everything_of_theirs(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let new = user(Some("a@example.com"));
    store.create_user(&new).await.unwrap();
    let s = session(new.id, 1_000);
    store.create_session(&s, 5, None).await.unwrap();
    assert!(store.delete_user(new.id).await.unwrap());
    assert!(store.find_user(new.id).await.unwrap().is_none());
    assert!(store.find_live_session(s.id, at(1_000)).await.unwrap().is_none());
    assert!(!store.delete_user(new.id).await.unwrap());
    store.create_user(&user(Some("a@example.com"))).await.expect("the address is free again");
}

async fn sessions_respect_the_limit_and_expiry(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let new = user(Some("a@example.com"));
    store.create_user(&new).await.unwrap();
    let sessions: Vec<NewSession> = (0..3).map(|i| session(new.id, 10_000 + i * 1_000)).collect();
    for s in &sessions {
        store.create_session(s, 3, None).await.unwrap();
    }
    let evicted = store.create_session(&session(new.id, 20_000), 3, None).await.unwrap();
    assert_eq!(evicted, vec![sessions[0].id], "the oldest goes first");
    let live = store.list_sessions(new.id, at(20_000)).await.unwrap();
    assert_eq!(live.len(), 3);
    assert!(live.windows(2).all(|w| w[0].created_at >= w[1].created_at), "newest first");
    assert!(store.find_live_session(sessions[1].id, at(11_000)).await.unwrap().is_some());
    assert!(store.find_live_session(sessions[1].id, sessions[1].expires_at).await.unwrap().is_none(), "expired");

    store.touch_session(sessions[1].id, at(15_000)).await.unwrap();
    assert_eq!(store.find_live_session(sessions[1].id, at(15_000)).await.unwrap().unwrap().last_used, at(15_000));
    assert!(store.delete_session(sessions[1].id).await.unwrap());
    assert!(!store.delete_session(sessions[1].id).await.unwrap());

    let later = sessions[2].expires_at;
    let audit = AuditLogEntry { actor_user_id: Some(new.id), ..audit_entry("login_success", later) };
    let evicted = store.create_session(&session(new.id, later.as_millis()), 3, Some(&audit)).await.unwrap();
    assert!(evicted.is_empty(), "an expired session does not count against the limit");
    assert_eq!(store.list_sessions(new.id, later).await.unwrap().len(), 2);
    let logged = store
        .list_audit_logs(&AuditLogFilter { actor_user_id: Some(new.id), limit: 10, ..AuditLogFilter::default() })
        .await
        .unwrap();
    assert_eq!(logged, vec![audit], "the audit row is written with the session");
}

async fn concurrent_sessions_never_exceed_the_limit(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let new = user(Some("a@example.com"));
    store.create_user(&new).await.unwrap();
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let store: Store = store.clone();
            let s = session(new.id, 1_000 + i);
            tokio::spawn(async move { store.create_session(&s, 3, None).await })
        })
        .collect();
    let mut failures = Vec::new();
    for task in tasks {
        if let Err(error) = task.await.unwrap() {
            failures.push(error.to_string());
        }
    }
    // The user's row is locked for each session, so the twenty queue rather than fail.
    assert!(failures.is_empty(), "{failures:?}");
    let live = store.list_sessions(new.id, at(2_000)).await.unwrap().len();
    assert_eq!(live, 3, "exactly the limit is left live");
}

async fn signing_keys_rotate_and_retire(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    store.rotate_signing_key(&key("one", 1_000)).await.unwrap();
    store.rotate_signing_key(&key("two", 2_000)).await.unwrap();
    let keys = store.list_signing_keys(at(0)).await.unwrap();
    assert_eq!(keys.iter().map(|k| k.kid.as_str()).collect::<Vec<_>>(), vec!["two", "one"]);
    assert_eq!(keys[0].retired_at, None);
    assert_eq!(keys[1].retired_at, Some(at(2_000)));
    assert_eq!(keys[1].sealed_private_key, vec![1, 2, 3, 0, 255], "binary key data survives");
    assert!(store.has_signing_key("one").await.unwrap() && !store.has_signing_key("nine").await.unwrap());
    assert_eq!(
        store.list_signing_keys(at(2_000)).await.unwrap().len(),
        1,
        "keys retired long enough ago are not listed"
    );
    assert_eq!(store.delete_retired_signing_keys(at(2_000)).await.unwrap(), 1);
    assert!(!store.has_signing_key("one").await.unwrap());
    assert!(matches!(store.rotate_signing_key(&key("two", 3_000)).await, Err(StoreError::Conflict(_))));
    let keys = store.list_signing_keys(at(0)).await.unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0].retired_at, None, "a failed rotation retires nothing");
}

async fn audit_logs_filter(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let actor = UserId::generate();
    for (i, kind) in ["user_logged_out", "thirdparty_signin_succeeded", "user_logged_out"].iter().enumerate() {
        let entry = AuditLogEntry {
            actor_user_id: (i != 1).then_some(actor),
            source_ip: Some("127.0.0.1".into()),
            details: Some("{\"flow\":\"x\"}".into()),
            ..audit_entry(kind, at(1_000 * (i as i64 + 1)))
        };
        store.insert_audit_log(&entry).await.unwrap();
    }
    let all = store.list_audit_logs(&AuditLogFilter { limit: 10, ..Default::default() }).await.unwrap();
    assert_eq!(all.iter().map(|e| e.created_at).collect::<Vec<_>>(), vec![at(3_000), at(2_000), at(1_000)]);
    let by_kind = AuditLogFilter { kind: Some("user_logged_out".into()), limit: 10, ..Default::default() };
    assert_eq!(store.list_audit_logs(&by_kind).await.unwrap().len(), 2);
    let by_actor =
        AuditLogFilter { actor_user_id: Some(actor), since: Some(at(2_000)), limit: 10, ..Default::default() };
    let rows = store.list_audit_logs(&by_actor).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].details.as_deref(), Some("{\"flow\":\"x\"}"));
    let window = AuditLogFilter { since: Some(at(1_000)), until: Some(at(3_000)), limit: 1, ..Default::default() };
    assert_eq!(store.list_audit_logs(&window).await.unwrap()[0].created_at, at(2_000));
    assert_eq!(store.count_audit_logs(&window).await.unwrap(), 2, "the count ignores the page size");
    let second_page = AuditLogFilter { offset: 1, ..window };
    assert_eq!(store.list_audit_logs(&second_page).await.unwrap()[0].created_at, at(1_000));
}

async fn settings_are_versioned_and_saves_never_overwrite_each_other(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    assert_eq!(store.settings_version("idp").await.unwrap(), 0);
    assert!(store.load_settings("idp").await.unwrap().is_none());
    assert_eq!(store.save_settings("idp", 0, "{\"a\":1}", at(10)).await.unwrap(), Some(1));
    assert_eq!(store.save_settings("idp", 0, "{\"lost\":1}", at(11)).await.unwrap(), None, "both read version 0");
    assert_eq!(store.save_settings("idp", 1, "{\"a\":2}", at(12)).await.unwrap(), Some(2));
    assert_eq!(store.save_settings("idp", 1, "{\"lost\":2}", at(13)).await.unwrap(), None, "a stale version");
    let saved = store.load_settings("idp").await.unwrap().unwrap();
    assert_eq!((saved.version, saved.data.as_str(), saved.updated_at), (2, "{\"a\":2}", at(12)));
    assert_eq!(store.settings_version("other").await.unwrap(), 0, "documents are separate");
}

async fn admin_keys_are_stored_as_hashes_and_revoked(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let key = |name: &str, hash: &str| gatehouse_store::AdminKeyRecord {
        id: AdminKeyId::generate(),
        name: name.into(),
        key_hash: hash.into(),
        created_at: at(1_000),
        last_used_at: None,
        revoked_at: None,
    };
    let (ops, ci) = (key("ops", "sha256:one"), key("ci", "sha256:two"));
    store.insert_admin_key(&ops).await.unwrap();
    store.insert_admin_key(&ci).await.unwrap();
    assert!(matches!(store.insert_admin_key(&key("dup", "sha256:one")).await, Err(StoreError::Conflict(_))));
    store.touch_admin_key(ops.id, at(5_000)).await.unwrap();
    assert!(store.revoke_admin_key(ci.id, at(6_000)).await.unwrap());
    assert!(!store.revoke_admin_key(ci.id, at(7_000)).await.unwrap(), "already revoked");
    let active = store.active_admin_keys().await.unwrap();
    assert_eq!(active.iter().map(|k| k.name.as_str()).collect::<Vec<_>>(), ["ops"]);
    assert_eq!(active[0].last_used_at, Some(at(5_000)));
    let all = store.list_admin_keys().await.unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(all.iter().find(|k| k.id == ci.id).unwrap().revoked_at, Some(at(6_000)));
}

async fn users_are_searched_and_their_sessions_and_identities_removed(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let mut alice = user(Some("Alice_Smith@Example.com"));
    alice.created_at = at(2_000);
    let bob = user(Some("bob%x@example.org"));
    store.create_user(&alice).await.unwrap();
    store.create_user(&bob).await.unwrap();
    store.create_user(&user(None)).await.unwrap();
    let (all, total) = store.search_users(None, 2, 0).await.unwrap();
    assert_eq!((all.len(), total), (2, 3));
    assert_eq!(all[0].primary_email.as_deref(), Some("alice_smith@example.com"), "newest first");
    let search = |part: &'static str| {
        let store = store.clone();
        async move { store.search_users(Some(part), 10, 0).await.unwrap().1 }
    };
    assert_eq!(search("ALICE_").await, 1, "case-insensitive");
    assert_eq!(search("e_s").await, 1, "an underscore is literal");
    assert_eq!(search("%").await, 1, "a percent sign is literal");
    assert_eq!(search("example").await, 2);
    assert_eq!(search("nobody").await, 0);
    assert_eq!(store.search_users(None, 10, 2).await.unwrap().0.len(), 1, "offset");

    let (first, second) = (session(alice.id, 10_000), session(alice.id, 20_000));
    store.create_session(&first, 5, None).await.unwrap();
    store.create_session(&second, 5, None).await.unwrap();
    store.create_session(&session(bob.id, 10_000), 5, None).await.unwrap();
    assert!(!store.delete_user_session(bob.id, first.id).await.unwrap(), "only the owner's sessions");
    assert!(store.delete_user_session(alice.id, first.id).await.unwrap());
    assert_eq!(store.delete_user_sessions(alice.id).await.unwrap(), 1);
    assert_eq!(store.list_sessions(bob.id, at(0)).await.unwrap().len(), 1, "other users keep theirs");
    assert!(!store.unlink_identity(alice.id, IdentityId::generate()).await.unwrap());
}

async fn migrations_are_idempotent_and_data_survives_reconnecting(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let new = user(Some("a@example.com"));
    store.create_user(&new).await.unwrap();
    let session = session(new.id, 1_000);
    store.create_session(&session, 5, None).await.unwrap();
    store.close().await;
    assert!(store.create_user(&user(None)).await.is_err(), "a closed store writes nothing");
    assert!(store.find_live_session(session.id, at(1_000)).await.is_err(), "a closed store answers nothing");
    let reopened = db.store().await;
    reopened.migrate().await.unwrap();
    assert!(reopened.find_user(new.id).await.unwrap().is_some());
    reopened.ping().await.unwrap();
}

async fn expired_rows_are_swept(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let new = user(Some("a@example.com"));
    store.create_user(&new).await.unwrap();
    let old = session(new.id, 1_000);
    let live = session(new.id, 10_000_000);
    store.create_session(&live, 5, None).await.unwrap();
    store.create_session(&old, 5, None).await.unwrap();
    let token = |value: &str, expires_at| gatehouse_store::NewToken {
        id: TokenId::generate(),
        user_id: new.id,
        value_hash: value.into(),
        identity_id: None,
        code_verifier_hash: None,
        is_flow: false,
        user_created: false,
        created_at: Timestamp::UNIX_EPOCH,
        expires_at: at(expires_at),
        directory: None,
    };
    store.insert_token(&token("old", 2_000)).await.unwrap();
    store.insert_token(&token("new", 20_000_000)).await.unwrap();
    let flow = |expires_at| gatehouse_store::FlowRecord {
        id: FlowId::generate(),
        data: "{}".into(),
        version: 0,
        csrf_token: "c".into(),
        expires_at: at(expires_at),
        created_at: Timestamp::UNIX_EPOCH,
    };
    let (old_flow, live_flow) = (flow(3_000), flow(30_000_000));
    store.insert_flow(&old_flow).await.unwrap();
    store.insert_flow(&live_flow).await.unwrap();
    let state = StateId::generate();
    assert!(store.mark_state_used(state, at(4_000)).await.unwrap());
    assert!(!store.mark_state_used(state, at(4_000)).await.unwrap(), "a state is used once");
    assert!(store.mark_state_used(StateId::generate(), at(40_000_000)).await.unwrap());
    let now = at(5_000_000);
    assert_eq!(store.delete_expired_used_states(now).await.unwrap(), 1);
    assert_eq!(store.delete_expired_sessions(now).await.unwrap(), 1);
    assert_eq!(store.delete_expired_tokens(now).await.unwrap(), 1);
    assert_eq!(store.delete_expired_flows(now).await.unwrap(), 1);
    assert!(store.find_live_session(live.id, now).await.unwrap().is_some());
    assert!(store.take_token("new").await.unwrap().is_some() && store.take_token("old").await.unwrap().is_none());
    let facts = DirectoryFacts {
        tenant: Tenant { id: "72f988bf-86f1-41af-91ab-2d7cd011db47".into(), name: Some("Contoso".into()) },
        roles: vec!["Admin".into()],
        groups: vec!["g-1".into()],
        groups_from_graph: true,
        custom: [("department".to_owned(), serde_json::json!("Sales"))].into(),
        read_at: now,
    };
    store
        .insert_token(&gatehouse_store::NewToken { directory: Some(facts.clone()), ..token("facts", 20_000_000) })
        .await
        .unwrap();
    assert_eq!(store.take_token("facts").await.unwrap().unwrap().directory, Some(facts), "a sign-in's facts are kept");
    assert!(
        store.find_flow(live_flow.id).await.unwrap().is_some() && store.find_flow(old_flow.id).await.unwrap().is_none()
    );
    store.insert_audit_log(&audit_entry("k", at(1_000))).await.unwrap();
    store.insert_audit_log(&audit_entry("k", now)).await.unwrap();
    assert_eq!(store.delete_audit_logs_before(now).await.unwrap(), 1, "rows older than the retention go");
    assert_eq!(store.count_audit_logs(&AuditLogFilter::default()).await.unwrap(), 1);
    assert!(store.update_flow(live_flow.id, 0, "{\"x\":1}", "d", now).await.unwrap());
    assert!(!store.update_flow(live_flow.id, 0, "{}", "e", now).await.unwrap(), "a stale version is refused");
}

/// Upgrading from the `verified` flag (migration 0004): only a personal account's address can be proven from what
/// was stored (the identity's tenant); every other address, whatever the old flag said, is unproven until its
/// owner's next sign-in records a proof.
async fn the_email_proof_upgrade_keeps_only_what_can_be_proven(backend: Backend) {
    use sqlx::Connection;
    let db = TestDb::new(backend).await;
    let url = match backend {
        Backend::Sqlite => format!("{}?mode=rwc", db.url()),
        Backend::Postgres => db.url().to_owned(),
    };
    let mut conn = sqlx::AnyConnection::connect(&url).await.unwrap();
    let before_proofs = match backend {
        Backend::Sqlite => sqlx::migrate!("./migrations/sqlite"),
        Backend::Postgres => sqlx::migrate!("./migrations/postgres"),
    };
    before_proofs.run_to(3, &mut conn).await.unwrap();
    let personal = r#"{"sub":"s1","tid":"9188040d-6c67-4c5b-b112-36a304b66dad","email_verified":true}"#;
    let work = r#"{"sub":"s2","tid":"72f988bf-86f1-41af-91ab-2d7cd011db47","email_verified":true}"#;
    let mut users = Vec::new();
    for (n, (address, verified, claims)) in
        [("me@outlook.com", true, personal), ("victim@contoso.com", true, work), ("x@fabrikam.com", false, work)]
            .into_iter()
            .enumerate()
    {
        let (user, email) = (Uuid::new_v4().to_string(), Uuid::new_v4().to_string());
        sqlx::query("INSERT INTO users (id, created_at, updated_at) VALUES ($1, 1, 1)")
            .bind(&user)
            .execute(&mut conn)
            .await
            .unwrap();
        sqlx::query(
            "INSERT INTO emails (id, user_id, address, verified, created_at, updated_at) VALUES ($1, $2, $3, $4, 1, 1)",
        )
        .bind(&email)
        .bind(&user)
        .bind(address)
        .bind(verified)
        .execute(&mut conn)
        .await
        .unwrap();
        sqlx::query(
            "INSERT INTO primary_emails (id, email_id, user_id, created_at, updated_at) VALUES ($1, $2, $3, 1, 1)",
        )
        .bind(Uuid::new_v4().to_string())
        .bind(&email)
        .bind(&user)
        .execute(&mut conn)
        .await
        .unwrap();
        sqlx::query(
            "INSERT INTO identities (id, provider_id, provider_user_id, data, email_id, user_id, created_at, updated_at)
             VALUES ($1, 'microsoft', $2, $3, $4, $5, 1, 1)",
        )
        .bind(Uuid::new_v4().to_string())
        .bind(format!("sub-{n}"))
        .bind(claims)
        .bind(&email)
        .bind(&user)
        .execute(&mut conn)
        .await
        .unwrap();
        users.push(user.parse::<UserId>().unwrap());
    }
    conn.close().await.unwrap();

    let store = db.store().await;
    let mut proofs = Vec::new();
    for user in users {
        let found = store.find_user(user).await.unwrap().unwrap();
        let email = found.primary_email().unwrap();
        proofs.push((email.address.clone(), email.proof));
    }
    assert_eq!(
        proofs,
        [
            ("me@outlook.com".to_owned(), Some(EmailProof::PersonalAccount)),
            ("victim@contoso.com".to_owned(), None),
            ("x@fabrikam.com".to_owned(), None),
        ]
    );
}

both_backends!(
    the_email_proof_upgrade_keeps_only_what_can_be_proven,
    expired_rows_are_swept,
    users_round_trip_with_their_primary_email,
    email_addresses_are_unique_case_insensitively,
    deleting_a_user_removes_everything_of_theirs,
    sessions_respect_the_limit_and_expiry,
    concurrent_sessions_never_exceed_the_limit,
    signing_keys_rotate_and_retire,
    audit_logs_filter,
    migrations_are_idempotent_and_data_survives_reconnecting,
    settings_are_versioned_and_saves_never_overwrite_each_other,
    admin_keys_are_stored_as_hashes_and_revoked,
    users_are_searched_and_their_sessions_and_identities_removed,
);

/// The SQLite files hold sessions and encrypted keys: only their owner may read them, whatever the umask.
#[cfg(unix)]
#[tokio::test]
async fn sqlite_files_are_private_to_their_owner() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gatehouse.db");
    let store = Store::connect(&format!("sqlite://{}", path.display()), 2).await.unwrap();
    store.migrate().await.unwrap();
    for suffix in ["", "-wal", "-shm"] {
        let file = format!("{}{suffix}", path.display());
        let mode = std::fs::metadata(&file).unwrap_or_else(|e| panic!("{file}: {e}")).permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{file} has mode {:o}", mode & 0o777);
    }
    store.close().await;
}

/// Drops `write` once it has been polled `polls` times (yielding to the runtime in between), as the server drops
/// a store call wherever it stands when a request times out or its client goes away; `None` if it was dropped.
async fn cancelled_after<T>(write: impl Future<Output = T>, polls: usize) -> Option<T> {
    let mut write = std::pin::pin!(write);
    for _ in 0..polls {
        let poll = std::future::poll_fn(|cx| std::task::Poll::Ready(write.as_mut().poll(cx))).await;
        if let std::task::Poll::Ready(done) = poll {
            return Some(done);
        }
        tokio::task::yield_now().await;
    }
    None
}

/// SQLite writes cancelled at every await point (a transaction's `BEGIN`, its statements, its `COMMIT`), the way
/// sqlx's worker thread could be made to stop: the write connection keeps working (sqlx 0.9 rolls back a cancelled
/// `BEGIN` itself), and every cancelled write happened whole or not at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_writes_cancelled_anywhere_leave_the_writer_working_and_nothing_half_done() {
    let db = TestDb::new(Backend::Sqlite).await;
    let store = db.store().await;
    let (mut cancelled, mut kept) = (0, 0);
    for attempt in 0..400 {
        let made = user(Some(&format!("cancelled{attempt}@example.com")));
        if cancelled_after(store.create_user(&made), attempt % 40).await.is_none() {
            cancelled += 1;
        }
        store.create_user(&user(None)).await.expect("the write after a cancelled one");
        if let Some(found) = store.find_user(made.id).await.unwrap() {
            assert_eq!(found.emails.len(), 1, "a user was made without their email");
            kept += 1;
        }
    }
    println!("{cancelled} of 400 writes cancelled; {kept} users made whole, none half");
    assert!(cancelled > 0);
    store.close().await;
}
