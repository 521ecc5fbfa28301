//! `gatehouse import hanko`: users of a Hanko database (built by Hanko's own migrations when they are at hand, else
//! from Gatehouse's fixture of Hanko's tables: gatehouse-testkit's `hanko`) move into Gatehouse and sign in with
//! Microsoft to the account they had, with the same user id.

use std::path::Path;

use gatehouse_testkit::{
    Backend, TestDb,
    fake_entra::{FakeEntra, FakeUser},
    hanko::HankoDb,
};
use serde_json::Value;
use uuid::Uuid;

use super::{Running, browser, gatehouse, microsoft, sign_in, write_config_on};

const MEGAN: Uuid = Uuid::from_u128(0x0a11ce00_0000_4000_8000_00000000000a);
const MEGAN_EMAIL: Uuid = Uuid::from_u128(0x0a11ce00_0000_4000_8000_0000000000e1);
const MEGAN_PRIVATE_EMAIL: Uuid = Uuid::from_u128(0x0a11ce00_0000_4000_8000_0000000000e2);
const MEGAN_MICROSOFT: Uuid = Uuid::from_u128(0x0a11ce00_0000_4000_8000_0000000000d1);
const MEGAN_GOOGLE: Uuid = Uuid::from_u128(0x0a11ce00_0000_4000_8000_0000000000d2);
/// Megan's pairwise `sub` at Microsoft, which Hanko stored as the identity's provider user id.
const MEGAN_SUB: &str = "AAAAAAAAAAAAAAAAAAAAAIkzqFVrSaSaFHy782bbtaQ";
const NESTOR: Uuid = Uuid::from_u128(0x0b0b0000_0000_4000_8000_00000000000b);
/// A password the Hanko database URL carries (trust authentication ignores it): it must never be printed.
const HANKO_PASSWORD: &str = "hanko-db-password-never-printed";

/// Megan signed up with Microsoft, later added a private address she never verified, and connected Google;
/// Nestor has a password only.
async fn megan_and_nestor(hanko: &HankoDb) {
    hanko.insert_user(MEGAN).await;
    hanko.insert_email(MEGAN_EMAIL, Some(MEGAN), "megan@contoso.com", true, true).await;
    hanko.insert_email(MEGAN_PRIVATE_EMAIL, Some(MEGAN), "Megan@Private.example", false, false).await;
    hanko.insert_identity(MEGAN_MICROSOFT, "microsoft", MEGAN_SUB, MEGAN, MEGAN_EMAIL).await;
    hanko.insert_identity(MEGAN_GOOGLE, "google", "google-sub-1", MEGAN, MEGAN_PRIVATE_EMAIL).await;
    hanko.insert_user(NESTOR).await;
    hanko.insert_email(Uuid::new_v4(), Some(NESTOR), "nestor@contoso.com", true, true).await;
    hanko.insert_password(NESTOR).await;
}

/// The Hanko database's URL with [`HANKO_PASSWORD`] in it.
fn with_password(hanko: &HankoDb) -> String {
    let mut url = url::Url::parse(hanko.url()).unwrap();
    url.set_password(Some(HANKO_PASSWORD)).unwrap();
    url.to_string()
}

/// Runs `gatehouse import hanko`; whether it succeeded and what it printed (stdout, then stderr).
fn import(dir: &Path, config: &str, from: &str) -> (bool, String) {
    let output = gatehouse(dir, &["import", "hanko", "--from", from, "--config", config]).output().unwrap();
    let printed = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(!printed.contains(HANKO_PASSWORD), "the Hanko database's password was printed: {printed}");
    (output.status.success(), printed)
}

/// Megan, as Microsoft signs her in: the same `sub` as the identity Hanko stored.
fn megan_at_microsoft() -> FakeUser {
    let mut megan = FakeUser::new("megan@contoso.com");
    megan.sub = MEGAN_SUB.into();
    megan
}

/// Serves the Gatehouse configured in `config`, signs Megan in with Microsoft, and returns her user id and `/me`.
fn sign_in_megan(runtime: &tokio::runtime::Runtime, entra: &FakeEntra, dir: &Path, config: &str) -> (Uuid, Value) {
    let server = Running::start(gatehouse(dir, &["serve", "--config", config]));
    entra.queue_user(megan_at_microsoft());
    let client = browser();
    let (user, me) = runtime.block_on(async {
        let signed_in = sign_in(&client, &server.base).await.expect("Megan signs in");
        let me = client.get(format!("{}/me", server.base)).bearer_auth(&signed_in.session).send().await.unwrap();
        (signed_in.user, me.json::<Value>().await.unwrap())
    });
    server.stop();
    (user, me)
}

#[test]
fn hanko_users_sign_in_with_microsoft_to_the_same_account_on_sqlite() {
    hanko_users_sign_in_to_the_same_account(Backend::Sqlite);
}

#[test]
fn hanko_users_sign_in_with_microsoft_to_the_same_account_on_postgres() {
    hanko_users_sign_in_to_the_same_account(Backend::Postgres);
}

fn hanko_users_sign_in_to_the_same_account(backend: Backend) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let hanko = runtime.block_on(HankoDb::new());
    runtime.block_on(megan_and_nestor(&hanko));
    let db = runtime.block_on(TestDb::new(backend));
    let entra = runtime.block_on(microsoft::fake_entra());
    let dir = tempfile::tempdir().unwrap();
    let config = write_config_on(dir.path(), db.url(), &microsoft::config(&entra.base_url()));

    let (ok, printed) = import(dir.path(), &config, &with_password(&hanko));
    assert!(ok, "{printed}");
    for line in [
        "users imported: 2",
        "users already in Gatehouse (left as they are): 0",
        "emails imported: 3 (2 verified)",
        "Microsoft identities imported: 1",
        "imported users without a Microsoft identity: 1",
        "users with passkeys or passwords (these do not carry over): 1",
        "rows skipped: 1",
        &format!("  {MEGAN_GOOGLE}: identity of provider \"google\" (Gatehouse has Microsoft only)"),
    ] {
        assert!(printed.lines().any(|printed| printed == line), "{line:?} missing from:\n{printed}");
    }
    for secret in [MEGAN_SUB, "$2a$12$", "megan@contoso.com"] {
        assert!(!printed.contains(secret), "{secret} printed:\n{printed}");
    }

    let (ok, again) = import(dir.path(), &config, &with_password(&hanko));
    assert!(ok, "{again}");
    assert!(again.contains("users imported: 0\n"), "{again}");
    assert!(again.contains("users already in Gatehouse (left as they are): 2\n"), "{again}");

    let (user, me) = sign_in_megan(&runtime, &entra, dir.path(), &config);
    assert_eq!(user, MEGAN, "Megan lands in the account she had in Hanko");
    let emails: Vec<(&str, bool, bool)> = me["emails"]
        .as_array()
        .unwrap()
        .iter()
        .map(|email| (email["address"].as_str().unwrap(), email["is_verified"] == true, email["is_primary"] == true))
        .collect();
    assert_eq!(emails, [("megan@contoso.com", true, true), ("megan@private.example", false, false)], "{me}");
    assert_eq!(me["identities"].as_array().map(Vec::len), Some(1), "{me}");

    let users = runtime.block_on(async {
        use sqlx::{Connection, Row};
        let mut target = sqlx::AnyConnection::connect(db.url()).await.unwrap();
        let users: i64 = sqlx::query("SELECT COUNT(*) FROM users").fetch_one(&mut target).await.unwrap().get(0);
        users
    });
    assert_eq!(users, 2, "the sign-in made no new user");
}

/// Before Hanko's 2025 rename, `provider_name` held the provider and `provider_id` Microsoft's `sub`, and the
/// identity's user was its email's.
#[test]
fn an_older_hanko_schema_is_imported_too() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let hanko = runtime.block_on(HankoDb::before_identities_rename());
    runtime.block_on(async {
        hanko.insert_user(MEGAN).await;
        hanko.insert_email(MEGAN_EMAIL, Some(MEGAN), "megan@contoso.com", true, true).await;
        hanko.insert_identity(MEGAN_MICROSOFT, "microsoft", MEGAN_SUB, MEGAN, MEGAN_EMAIL).await;
    });
    let db = runtime.block_on(TestDb::new(Backend::Sqlite));
    let entra = runtime.block_on(microsoft::fake_entra());
    let dir = tempfile::tempdir().unwrap();
    let config = write_config_on(dir.path(), db.url(), &microsoft::config(&entra.base_url()));

    let (ok, printed) = import(dir.path(), &config, hanko.url());
    assert!(ok && printed.contains("Microsoft identities imported: 1\n"), "{printed}");
    let (user, _) = sign_in_megan(&runtime, &entra, dir.path(), &config);
    assert_eq!(user, MEGAN);
}

/// A Hanko user whose address another Gatehouse user already has is left out whole and named, and the command
/// fails; a database that is not Hanko's is refused before anything is written.
#[test]
fn a_user_who_conflicts_is_left_out_whole_and_the_command_fails() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let earlier = runtime.block_on(HankoDb::new());
    let hanko = runtime.block_on(HankoDb::new());
    let other = Uuid::new_v4();
    runtime.block_on(async {
        earlier.insert_user(other).await;
        earlier.insert_email(Uuid::new_v4(), Some(other), "megan@contoso.com", false, true).await;
        megan_and_nestor(&hanko).await;
    });
    let db = runtime.block_on(TestDb::new(Backend::Postgres));
    let dir = tempfile::tempdir().unwrap();
    let config = write_config_on(dir.path(), db.url(), "");

    assert!(import(dir.path(), &config, earlier.url()).0);
    let (ok, printed) = import(dir.path(), &config, db.url());
    assert!(!ok && printed.contains("not a Hanko database"), "Gatehouse's own database is not Hanko's: {printed}");
    let (ok, printed) = import(dir.path(), &config, "sqlite://hanko.db");
    assert!(!ok && printed.contains("Hanko's database is PostgreSQL"), "{printed}");

    let (ok, printed) = import(dir.path(), &config, hanko.url());
    assert!(!ok, "{printed}");
    assert!(
        printed.contains(&format!("user {MEGAN}: not imported: an email address belongs to another user")),
        "{printed}"
    );
    assert!(printed.contains("users imported: 1\n"), "Nestor still comes: {printed}");
    assert!(printed.contains("error: 1 users were not imported (listed above)"), "{printed}");

    let (megan_rows, identities) = runtime.block_on(async {
        use sqlx::{Connection, Row};
        let mut target = sqlx::AnyConnection::connect(db.url()).await.unwrap();
        let megan = MEGAN.to_string();
        let rows: i64 = sqlx::query(
            "SELECT (SELECT COUNT(*) FROM users WHERE id = $1) + (SELECT COUNT(*) FROM emails WHERE user_id = $1)",
        )
        .bind(&megan)
        .fetch_one(&mut target)
        .await
        .unwrap()
        .get(0);
        let identities: i64 =
            sqlx::query("SELECT COUNT(*) FROM identities").fetch_one(&mut target).await.unwrap().get(0);
        (rows, identities)
    });
    assert_eq!((megan_rows, identities), (0, 0), "nothing of Megan was written");
}
