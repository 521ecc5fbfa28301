//! `seed`: fills a migrated Gatehouse database with `--users` users and `--sessions` live sessions, for measuring
//! how Gatehouse copes with a large database. Each user looks as a sign-up with Microsoft leaves it: a verified
//! primary email and a Microsoft identity. Sessions are spread round-robin over the new users and live 12 hours
//! (the default `session.lifespan`).
//!
//! It is fast because the database does the work: one transaction of set-based `INSERT … SELECT` statements over
//! a numbered series (PostgreSQL's `generate_series`, a recursive CTE on SQLite), with random UUIDs made in SQL,
//! so the indexes grow as they do under real sign-ups. Foreign keys are not checked while seeding (on PostgreSQL
//! only as a superuser): the rows are consistent by construction. Seeding again adds more users; addresses never
//! collide. A million users and a million sessions take about 40 s on SQLite and 60 s on PostgreSQL here.
//!
//! `seed --database-url sqlite://gatehouse.db --users 1000000 --sessions 1000000`

use std::{
    process::ExitCode,
    time::{Instant, SystemTime, UNIX_EPOCH},
};

use anyhow::{Context, Result, bail};
use clap::Parser;
use sqlx::{AnyConnection, AssertSqlSafe, Connection};
use uuid::Uuid;

/// How long the seeded sessions live: Gatehouse's default `session.lifespan`.
const SESSION_LIFETIME_MS: i64 = 12 * 60 * 60 * 1000;

/// The tenant written into the seeded identities: the fake Entra ID's organisation.
const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";

#[derive(Debug, Parser)]
#[command(about = "Fill a migrated Gatehouse database with users and live sessions, fast")]
struct Args {
    /// `sqlite://path` or `postgres://…`, as in Gatehouse's `database.url`; run `gatehouse migrate` first.
    #[arg(long, env = "GATEHOUSE_DATABASE__URL")]
    database_url: String,
    /// Users to add, each with a verified primary email and a Microsoft identity.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    users: u32,
    /// Live sessions to add, spread over the new users.
    #[arg(long, default_value_t = 0)]
    sessions: u32,
}

#[tokio::main]
async fn main() -> ExitCode {
    match seed(Args::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("seed: {error:#}");
            ExitCode::FAILURE
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Dialect {
    Sqlite,
    Postgres,
}

impl Dialect {
    /// A random version-4 UUID as text, made by the database for each row.
    fn uuid(self) -> &'static str {
        match self {
            Self::Postgres => "gen_random_uuid()::text",
            Self::Sqlite => {
                "(lower(hex(randomblob(4))) || '-' || lower(hex(randomblob(2))) || '-4' \
                 || substr(lower(hex(randomblob(2))), 2) || '-' || substr('89ab', 1 + abs(random() % 4), 1) \
                 || substr(lower(hex(randomblob(2))), 2) || '-' || lower(hex(randomblob(6))))"
            }
        }
    }

    /// A table `s` with one column `n` numbering 1 to `count`, for a `FROM` clause.
    fn series(self, count: u32) -> String {
        match self {
            Self::Postgres => format!("generate_series(1, {count}) AS s (n)"),
            Self::Sqlite => format!(
                "(WITH RECURSIVE c (n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c WHERE n < {count}) \
                 SELECT n FROM c) AS s"
            ),
        }
    }
}

/// The statements of one seeding, each with what it does; they run in one transaction.
fn statements(dialect: Dialect, args: &Args, run: &str, now: i64) -> Vec<(&'static str, String)> {
    let (users, sessions) = (args.users, args.sessions);
    let uuid = dialect.uuid();
    // The user of row n has these ids and this address; the temporary table hands them to every table.
    let address = format!("'seed-{run}-' || n || '@seed.example'");
    let claims = format!(
        r#"'{{"sub":"seed-{run}-' || n || '","tid":"{TENANT}","oid":"' || {uuid} || '","email":"' || {address}
           || '","email_verified":true,"name":"Seed User ' || n || '","given_name":"Seed","family_name":"User ' || n
           || '","preferred_username":"' || {address} || '"}}'"#
    );
    let mut statements = vec![
        ("temporary table", "CREATE TEMPORARY TABLE seed (n INTEGER PRIMARY KEY, user_id TEXT, email_id TEXT)".into()),
        ("user numbers and ids", format!("INSERT INTO seed SELECT n, {uuid}, {uuid} FROM {}", dialect.series(users))),
        (
            "users",
            format!(
                "INSERT INTO users (id, name, given_name, family_name, created_at, updated_at)
                 SELECT user_id, 'Seed User ' || n, 'Seed', 'User ' || n, {now}, {now} FROM seed"
            ),
        ),
        (
            "emails",
            format!(
                "INSERT INTO emails (id, user_id, address, evidence, created_at, updated_at)
                 SELECT email_id, user_id, {address}, 'upn', {now}, {now} FROM seed"
            ),
        ),
        (
            "primary emails",
            format!(
                "INSERT INTO primary_emails (id, email_id, user_id, created_at, updated_at)
                 SELECT {uuid}, email_id, user_id, {now}, {now} FROM seed"
            ),
        ),
        (
            "Microsoft identities",
            format!(
                "INSERT INTO identities (id, provider_id, provider_user_id, data, email_id, user_id, created_at,
                                         updated_at)
                 SELECT {uuid}, 'microsoft', 'seed-{run}-' || n, {claims}, email_id, user_id, {now}, {now} FROM seed"
            ),
        ),
    ];
    if sessions > 0 {
        let expires_at = now + SESSION_LIFETIME_MS;
        statements.push((
            "sessions",
            format!(
                "INSERT INTO sessions (id, user_id, user_agent, ip_address, expires_at, last_used, created_at,
                                       updated_at)
                 SELECT {uuid}, seed.user_id, 'gatehouse-seed', '127.0.0.1', {expires_at}, {now}, {now}, {now}
                 FROM {} JOIN seed ON seed.n = (s.n - 1) % {users} + 1",
                dialect.series(sessions)
            ),
        ));
    }
    statements.push(("drop temporary table", "DROP TABLE seed".into()));
    statements
}

async fn seed(args: Args) -> Result<()> {
    sqlx::any::install_default_drivers();
    let dialect = match args.database_url.split_once(':').map(|(scheme, _)| scheme) {
        Some("sqlite") => Dialect::Sqlite,
        Some("postgres" | "postgresql") => Dialect::Postgres,
        _ => bail!("--database-url must be sqlite://… or postgres://…"),
    };
    // Never the URL itself in a message: it may hold a password.
    let mut conn = AnyConnection::connect(&args.database_url).await.context("cannot open the database")?;
    let started = Instant::now();
    // The rows reference each other correctly by construction, so this connection skips the foreign-key checks,
    // half of the work.
    match dialect {
        // And the whole seeding fits in memory (about 2 GB for a million of each); spilling mid-transaction is slow.
        Dialect::Sqlite => {
            execute(&mut conn, "PRAGMA foreign_keys = OFF; PRAGMA cache_size = -2000000; PRAGMA temp_store = MEMORY")
                .await?;
        }
        Dialect::Postgres => {
            if execute(&mut conn, "SET session_replication_role = replica").await.is_err() {
                println!("  not a superuser: foreign keys are checked, which takes about twice as long");
            }
        }
    }
    let now = SystemTime::now().duration_since(UNIX_EPOCH).context("the clock is before 1970")?.as_millis() as i64;
    // Tells this seeding's addresses and subjects from earlier ones.
    let run = &Uuid::new_v4().simple().to_string()[..8];
    println!("seed: {dialect:?}, {} users, {} sessions", args.users, args.sessions);
    let mut tx = conn.begin().await?;
    for (what, statement) in statements(dialect, &args, run, now) {
        let step = Instant::now();
        execute(&mut tx, &statement)
            .await
            .with_context(|| format!("{what}: failed; is the database migrated (`gatehouse migrate`)?"))?;
        println!("  {what:<22} {:>6.1} s", step.elapsed().as_secs_f64());
    }
    let step = Instant::now();
    tx.commit().await.context("commit")?;
    // A benchmark right after seeding should meet the database as it settles in production, not while it
    // settles: PostgreSQL's autovacuum would vacuum and analyze the grown tables soon and a checkpoint would
    // write the seeded pages out in the middle of the measurement; SQLite folds its write-ahead log back into
    // the file.
    match dialect {
        Dialect::Postgres => {
            execute(&mut conn, "VACUUM (ANALYZE)").await?;
            if let Err(error) = execute(&mut conn, "CHECKPOINT").await {
                eprintln!("  CHECKPOINT refused ({error}); the next checkpoint may fall into the measurement");
            }
        }
        Dialect::Sqlite => execute(&mut conn, "PRAGMA wal_checkpoint(TRUNCATE)").await?,
    }
    println!("  {:<22} {:>6.1} s", "commit, settle", step.elapsed().as_secs_f64());
    println!("seeded {} users and {} sessions in {:.1} s", args.users, args.sessions, started.elapsed().as_secs_f64());
    Ok(())
}

async fn execute(conn: &mut AnyConnection, sql: &str) -> Result<()> {
    sqlx::raw_sql(AssertSqlSafe(sql)).execute(conn).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use gatehouse_core::email::EmailProof;
    use gatehouse_testkit::{Backend, TestDb, both_backends};

    use super::*;

    /// The seeder on a database migrated as `gatehouse migrate` leaves it: every user looks as a Microsoft sign-up
    /// leaves them (a primary address proven by a UPN, an identity), with their sessions.
    async fn seeding_adds_users_as_sign_ups_leave_them(backend: Backend) {
        let db = TestDb::new(backend).await;
        let store = db.store().await;
        seed(Args { database_url: db.url().to_owned(), users: 10, sessions: 20 }).await.unwrap();
        let (users, total) = store.search_users(Some("@seed.example"), 100, 0).await.unwrap();
        assert_eq!(total, 10);
        let mut sessions = 0;
        for summary in users {
            let user = store.find_user(summary.id).await.unwrap().unwrap();
            let email = user.primary_email().expect("a primary address");
            assert_eq!(email.proof, Some(EmailProof::Upn));
            assert_eq!(user.identities.len(), 1);
            assert_eq!(user.identities[0].email_id, Some(email.id));
            sessions += store.list_sessions(user.id, gatehouse_core::clock::Timestamp::UNIX_EPOCH).await.unwrap().len();
        }
        assert_eq!(sessions, 20);
    }

    both_backends!(seeding_adds_users_as_sign_ups_leave_them);
}
