//! A Hanko database for the import's tests, with rows inserted as Hanko writes them. Its schema comes from Hanko's
//! own migrations when they are at hand, and otherwise from Gatehouse's description of the tables the import reads
//! (`fixtures/hanko/*.sql`), so that the tests run, with the same assertions, on a clean clone too.
//!
//! Hanko writes its migrations in fizz (gobuffalo's schema language); [`fizz_to_postgres`] translates the part of
//! fizz they use into PostgreSQL as fizz's own PostgreSQL translator does: columns `NOT NULL` unless `null: true`,
//! `created_at`/`updated_at` added to every new table unless disabled, and fizz's names for indexes
//! (`<table>_<columns>_idx`) and foreign keys (`<table>_<referenced table>_<referenced columns>_fk`), which later
//! migrations drop by name.
//!
//! The migration files (`*.up.fizz`, Hanko's AGPL-3.0 code) are not part of this repository: they are read from
//! the folder [`MIGRATIONS_ENV`] names, or else from `shared/hanko-migrations` beside the repository, whichever
//! exists first.

use std::path::PathBuf;

use sqlx::{AnyConnection, Connection, Executor};
use uuid::Uuid;

use crate::{Backend, TestDb};

/// Names the folder of Hanko's `*.up.fizz` migrations. Not `GATEHOUSE_…`: the configuration would read that as a key.
pub const MIGRATIONS_ENV: &str = "TEST_HANKO_MIGRATIONS";

/// Hanko's migration that renamed the identities' columns (`provider_id` → `provider_user_id`, `provider_name` →
/// `provider_id`): [`HankoDb::before_identities_rename`] stops before it.
const IDENTITIES_RENAMED: &str = "20250130154010";

/// The fixtures, written from what Hanko's migrations produce up to their last version, and up to the one before
/// [`IDENTITIES_RENAMED`].
const CURRENT_FIXTURE: (&str, &str) = ("fixtures/hanko/current.sql", include_str!("../fixtures/hanko/current.sql"));
const BEFORE_RENAME_FIXTURE: (&str, &str) =
    ("fixtures/hanko/before_identities_rename.sql", include_str!("../fixtures/hanko/before_identities_rename.sql"));

/// The folder of Hanko's migrations, if there is one.
fn migrations_dir() -> Option<PathBuf> {
    let shared = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/hanko-migrations");
    std::env::var_os(MIGRATIONS_ENV).map(PathBuf::from).into_iter().chain([shared]).find(|dir| dir.is_dir())
}

/// Hanko's up migrations in `dir` older than `before` (all of them for `None`), oldest first, as `(version, text)`.
fn migrations(dir: &std::path::Path, before: Option<&str>) -> Vec<(String, String)> {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|error| panic!("{}: {error}", dir.display()));
    let mut found: Vec<(String, String)> = entries
        .map(|entry| entry.expect("a migration file").path())
        .filter_map(|path| {
            let name = path.file_name()?.to_str()?.strip_suffix(".up.fizz")?.to_owned();
            let version = name.split('_').next()?.to_owned();
            Some((version, path))
        })
        .filter(|(version, _)| before.is_none_or(|before| version.as_str() < before))
        .map(|(version, path)| (version, std::fs::read_to_string(path).expect("a readable migration")))
        .collect();
    found.sort();
    // A folder that is there but holds no migrations is a broken setup, not a reason to fall back on the fixture.
    assert!(!found.is_empty(), "no *.up.fizz migrations in {}", dir.display());
    found
}

/// A fresh PostgreSQL database with Hanko's tables; dropped when this is.
#[derive(Debug)]
pub struct HankoDb {
    db: TestDb,
}

impl HankoDb {
    /// Hanko's schema today: every migration.
    pub async fn new() -> Self {
        Self::built(None, CURRENT_FIXTURE).await
    }

    /// Hanko's schema as it was before the identities' columns were renamed.
    pub async fn before_identities_rename() -> Self {
        Self::built(Some(IDENTITIES_RENAMED), BEFORE_RENAME_FIXTURE).await
    }

    /// From Hanko's migrations older than `before` when they are at hand, else from `fixture` (its path and text).
    /// One line says which, so that a run shows what its import was tested against.
    async fn built(before: Option<&str>, (fixture, schema): (&str, &str)) -> Self {
        let hanko = Self { db: TestDb::new(Backend::Postgres).await };
        let mut connection = hanko.connect().await;
        match migrations_dir() {
            Some(dir) => {
                let older = before.map(|version| format!(" older than {version}")).unwrap_or_default();
                println!("Hanko database from Hanko's migrations{older} in {}", dir.display());
                for (version, text) in migrations(&dir, before) {
                    let statements =
                        fizz_to_postgres(&text).unwrap_or_else(|error| panic!("migration {version}: {error}"));
                    let mut tx = connection.begin().await.expect("begin");
                    for statement in statements {
                        (&mut *tx)
                            .execute(sqlx::AssertSqlSafe(statement.clone()))
                            .await
                            .unwrap_or_else(|error| panic!("migration {version}: {statement}: {error}"));
                    }
                    tx.commit().await.expect("commit a migration");
                }
            }
            None => {
                println!(
                    "Hanko database from Gatehouse's schema fixture {fixture} (no Hanko migrations: set \
                     {MIGRATIONS_ENV} or add shared/hanko-migrations to test on them)"
                );
                // Several statements in one string: PostgreSQL runs them in one implicit transaction.
                connection
                    .execute(sqlx::AssertSqlSafe(schema))
                    .await
                    .unwrap_or_else(|error| panic!("{fixture}: {error}"));
            }
        }
        connection.close().await.expect("close");
        hanko
    }

    pub fn url(&self) -> &str {
        self.db.url()
    }

    async fn connect(&self) -> AnyConnection {
        AnyConnection::connect(self.url()).await.expect("connect to the Hanko database")
    }

    /// Runs one statement, as Hanko's code would.
    pub async fn execute(&self, sql: &str) {
        let mut connection = self.connect().await;
        connection.execute(sqlx::AssertSqlSafe(sql.to_owned())).await.unwrap_or_else(|error| panic!("{sql}: {error}"));
        connection.close().await.expect("close");
    }

    /// A user as Hanko's sign-up makes one: an id and the times.
    pub async fn insert_user(&self, id: Uuid) {
        self.execute(&format!(
            "INSERT INTO users (id, created_at, updated_at) VALUES ('{id}', '2024-05-01 10:00:00', '2024-05-02 11:00:00')"
        ))
        .await;
    }

    /// An email of `user` (or of nobody); a primary one gets its `primary_emails` row too.
    pub async fn insert_email(&self, id: Uuid, user: Option<Uuid>, address: &str, verified: bool, primary: bool) {
        let owner = user.map_or_else(|| "NULL".to_owned(), |user| format!("'{user}'"));
        self.execute(&format!(
            "INSERT INTO emails (id, user_id, address, verified, created_at, updated_at)
             VALUES ('{id}', {owner}, '{address}', {verified}, '2024-05-01 10:00:01', '2024-05-01 10:00:01')"
        ))
        .await;
        if let (true, Some(user)) = (primary, user) {
            self.execute(&format!(
                "INSERT INTO primary_emails (id, email_id, user_id, created_at, updated_at)
                 VALUES ('{}', '{id}', '{user}', '2024-05-01 10:00:01', '2024-05-01 10:00:01')",
                Uuid::new_v4()
            ))
            .await;
        }
    }

    /// A third-party identity as Hanko's sign-up stores it: the provider's slug, its user id (`sub`), the claims,
    /// in the columns of this database's Hanko version (today's, or one from [`before`](Self::before) the rename).
    pub async fn insert_identity(&self, id: Uuid, provider: &str, subject: &str, user: Uuid, email: Uuid) {
        let data = serde_json::json!({ "sub": subject, "email": "from-the-provider@example.com" }).to_string();
        let mut connection = self.connect().await;
        let renamed = sqlx::query(
            "SELECT 1 FROM information_schema.columns
             WHERE table_name = 'identities' AND column_name = 'provider_user_id'",
        )
        .fetch_optional(&mut connection)
        .await
        .expect("read the schema")
        .is_some();
        connection.close().await.expect("close");
        let times = "'2024-05-01 10:00:02', '2024-05-01 10:00:02'";
        self.execute(&if renamed {
            format!(
                "INSERT INTO identities (id, provider_id, provider_user_id, data, email_id, user_id, created_at, updated_at)
                 VALUES ('{id}', '{provider}', '{subject}', '{data}', '{email}', '{user}', {times})"
            )
        } else {
            format!(
                "INSERT INTO identities (id, provider_name, provider_id, data, email_id, created_at, updated_at)
                 VALUES ('{id}', '{provider}', '{subject}', '{data}', '{email}', {times})"
            )
        })
        .await;
    }

    /// A password, as Hanko stores it (a bcrypt hash).
    pub async fn insert_password(&self, user: Uuid) {
        self.execute(&format!(
            "INSERT INTO password_credentials (id, user_id, password, created_at, updated_at)
             VALUES ('{}', '{user}', '$2a$12$hanko.password.hash.that.must.never.be.printed', now(), now())",
            Uuid::new_v4()
        ))
        .await;
    }
}

/// A value in a fizz call: a string, a bare word (`true`, `0`, `primary`), a list or a map.
#[derive(Clone, Debug, PartialEq)]
enum Value {
    Text(String),
    Word(String),
    List(Vec<Value>),
    Map(Vec<(String, Value)>),
}

impl Value {
    fn text(&self) -> Result<&str, String> {
        match self {
            Self::Text(text) | Self::Word(text) => Ok(text),
            other => Err(format!("expected a string, found {other:?}")),
        }
    }

    /// One column name or a list of them.
    fn names(&self) -> Result<Vec<String>, String> {
        match self {
            Self::List(items) => items.iter().map(|item| item.text().map(str::to_owned)).collect(),
            other => Ok(vec![other.text()?.to_owned()]),
        }
    }

    fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Self::Map(entries) => entries.iter().find(|(name, _)| name == key).map(|(_, value)| value),
            _ => None,
        }
    }

    fn is_true(&self, key: &str) -> bool {
        matches!(self.get(key), Some(Self::Word(word)) if word == "true")
    }
}

/// `name(args…)`, with the statements of its block for `create_table`.
#[derive(Debug)]
struct Call {
    name: String,
    args: Vec<Value>,
    block: Vec<Call>,
}

struct Parser<'a> {
    text: &'a [u8],
    at: usize,
}

impl Parser<'_> {
    fn skip_space(&mut self) {
        while self.text.get(self.at).is_some_and(u8::is_ascii_whitespace) {
            self.at += 1;
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.skip_space();
        self.text.get(self.at).copied()
    }

    fn expect(&mut self, byte: u8) -> Result<(), String> {
        match self.peek() {
            Some(found) if found == byte => {
                self.at += 1;
                Ok(())
            }
            found => Err(format!("expected {:?} at byte {}, found {:?}", byte as char, self.at, found.map(char::from))),
        }
    }

    fn word(&mut self) -> Result<String, String> {
        self.skip_space();
        let start = self.at;
        while self.text.get(self.at).is_some_and(|c| c.is_ascii_alphanumeric() || b"_.-".contains(c)) {
            self.at += 1;
        }
        if start == self.at {
            return Err(format!("expected a name at byte {start}"));
        }
        Ok(String::from_utf8_lossy(&self.text[start..self.at]).into_owned())
    }

    fn calls(&mut self) -> Result<Vec<Call>, String> {
        let mut calls = Vec::new();
        while !matches!(self.peek(), None | Some(b'}')) {
            let name = self.word()?;
            self.expect(b'(')?;
            let args = self.sequence(b')')?;
            let block = if name == "create_table" {
                self.expect(b'{')?;
                let block = self.calls()?;
                self.expect(b'}')?;
                block
            } else {
                Vec::new()
            };
            calls.push(Call { name, args, block });
        }
        Ok(calls)
    }

    /// Comma-separated values up to `close` (a trailing comma allowed); consumes `close`.
    fn sequence(&mut self, close: u8) -> Result<Vec<Value>, String> {
        let mut values = Vec::new();
        while self.peek() != Some(close) {
            values.push(self.value()?);
            if self.peek() == Some(b',') {
                self.at += 1;
            }
        }
        self.expect(close)?;
        Ok(values)
    }

    fn value(&mut self) -> Result<Value, String> {
        match self.peek() {
            Some(b'"') => Ok(Value::Text(self.string()?)),
            Some(b'[') => {
                self.at += 1;
                Ok(Value::List(self.sequence(b']')?))
            }
            Some(b'{') => {
                self.at += 1;
                let mut entries = Vec::new();
                while self.peek() != Some(b'}') {
                    let key = if self.peek() == Some(b'"') { self.string()? } else { self.word()? };
                    self.expect(b':')?;
                    entries.push((key, self.value()?));
                    if self.peek() == Some(b',') {
                        self.at += 1;
                    }
                }
                self.expect(b'}')?;
                Ok(Value::Map(entries))
            }
            _ => Ok(Value::Word(self.word()?)),
        }
    }

    /// A Go string literal, which may span lines in fizz.
    fn string(&mut self) -> Result<String, String> {
        self.expect(b'"')?;
        let mut bytes = Vec::new();
        loop {
            match self.text.get(self.at).copied() {
                None => return Err("unterminated string".into()),
                Some(b'"') => break,
                Some(b'\\') => {
                    self.at += 1;
                    bytes.push(match self.text.get(self.at).copied() {
                        Some(b'n') => b'\n',
                        Some(b't') => b'\t',
                        Some(other) => other,
                        None => return Err("unterminated string".into()),
                    });
                }
                Some(other) => bytes.push(other),
            }
            self.at += 1;
        }
        self.at += 1;
        String::from_utf8(bytes).map_err(|error| error.to_string())
    }
}

fn arg(call: &Call, at: usize) -> Result<&Value, String> {
    call.args.get(at).ok_or_else(|| format!("{} needs argument {}", call.name, at + 1))
}

fn text_arg(call: &Call, at: usize) -> Result<&str, String> {
    arg(call, at)?.text()
}

/// Options are the last argument when it is a map; none otherwise.
fn options(call: &Call, at: usize) -> Value {
    call.args.get(at).cloned().unwrap_or(Value::Map(Vec::new()))
}

fn quoted(names: &[String]) -> String {
    names.iter().map(|name| format!("\"{name}\"")).collect::<Vec<_>>().join(", ")
}

fn column_type(kind: &str, options: &Value) -> String {
    match kind {
        "string" => {
            let size = options.get("size").and_then(|size| size.text().ok()).unwrap_or("255");
            format!("VARCHAR ({size})")
        }
        "uuid" => "UUID".into(),
        "text" => "TEXT".into(),
        "bool" | "boolean" => "BOOLEAN".into(),
        "int" | "integer" => "INTEGER".into(),
        "timestamp" => "TIMESTAMP".into(),
        "json" => "JSONB".into(),
        other => other.to_owned(),
    }
}

fn default_clause(options: &Value) -> Result<String, String> {
    options.get("default").map_or_else(|| Ok(String::new()), |value| Ok(format!(" DEFAULT '{}'", value.text()?)))
}

fn column(name: &str, kind: &str, options: &Value) -> Result<String, String> {
    let primary = options.is_true("primary");
    let null = if primary || !options.is_true("null") { " NOT NULL" } else { "" };
    let key = if primary { " PRIMARY KEY" } else { "" };
    Ok(format!("\"{name}\" {}{key}{null}{}", column_type(kind, options), default_clause(options)?))
}

fn index(table: &str, columns: &[String], options: &Value) -> Result<String, String> {
    let name = match options.get("name") {
        Some(name) => name.text()?.to_owned(),
        None => format!("{table}_{}_idx", columns.join("_")),
    };
    let unique = if options.is_true("unique") { "UNIQUE " } else { "" };
    Ok(format!("CREATE {unique}INDEX \"{name}\" ON \"{table}\" ({})", quoted(columns)))
}

fn foreign_key(table: &str, column: &str, reference: &Value, options: &Value) -> Result<String, String> {
    let Value::Map(entries) = reference else { return Err(format!("foreign key of {table}: no referenced table")) };
    let [(referenced, columns)] = entries.as_slice() else { return Err(format!("foreign key of {table}: one table")) };
    let columns = columns.names()?;
    let name = match options.get("name") {
        Some(name) => name.text()?.to_owned(),
        None => format!("{table}_{referenced}_{}_fk", columns.join("_")),
    };
    let mut sql = format!(
        "ALTER TABLE \"{table}\" ADD CONSTRAINT \"{name}\" FOREIGN KEY (\"{column}\") REFERENCES \"{referenced}\" ({})",
        quoted(&columns)
    );
    for (option, clause) in [("on_delete", "ON DELETE"), ("on_update", "ON UPDATE")] {
        if let Some(action) = options.get(option) {
            sql.push_str(&format!(" {clause} {}", action.text()?.to_uppercase()));
        }
    }
    Ok(sql)
}

fn create_table(call: &Call) -> Result<Vec<String>, String> {
    let table = text_arg(call, 0)?;
    let (mut columns, mut names, mut primary, mut after) = (Vec::new(), Vec::new(), None, Vec::new());
    let mut timestamps = true;
    for statement in &call.block {
        match statement.name.as_str() {
            "t.Column" => {
                let name = text_arg(statement, 0)?;
                columns.push(column(name, text_arg(statement, 1)?, &options(statement, 2))?);
                names.push(name.to_owned());
            }
            "t.Timestamps" => {}
            "t.DisableTimestamps" => timestamps = false,
            "t.PrimaryKey" => primary = Some(arg(statement, 0)?.names()?),
            "t.Index" => after.push(index(table, &arg(statement, 0)?.names()?, &options(statement, 1))?),
            "t.ForeignKey" => {
                after.push(foreign_key(table, text_arg(statement, 0)?, arg(statement, 1)?, &options(statement, 2))?)
            }
            other => return Err(format!("create_table: unknown {other}")),
        }
    }
    for stamp in ["created_at", "updated_at"] {
        if timestamps && !names.iter().any(|name| name == stamp) {
            columns.push(format!("\"{stamp}\" TIMESTAMP NOT NULL"));
        }
    }
    if let Some(primary) = primary {
        columns.push(format!("PRIMARY KEY ({})", quoted(&primary)));
    }
    let mut statements = vec![format!("CREATE TABLE \"{table}\" ({})", columns.join(", "))];
    statements.extend(after);
    Ok(statements)
}

/// The PostgreSQL statements of one fizz migration.
pub fn fizz_to_postgres(fizz: &str) -> Result<Vec<String>, String> {
    let mut parser = Parser { text: fizz.as_bytes(), at: 0 };
    let calls = parser.calls()?;
    if parser.peek().is_some() {
        return Err(format!("unexpected text at byte {}", parser.at));
    }
    let mut statements = Vec::new();
    for call in &calls {
        let table = || text_arg(call, 0);
        match call.name.as_str() {
            "create_table" => statements.extend(create_table(call)?),
            "drop_table" => statements.push(format!("DROP TABLE \"{}\"", table()?)),
            "add_column" => statements.push(format!(
                "ALTER TABLE \"{}\" ADD COLUMN {}",
                table()?,
                column(text_arg(call, 1)?, text_arg(call, 2)?, &options(call, 3))?
            )),
            "change_column" => {
                let (name, options) = (text_arg(call, 1)?, options(call, 3));
                let null = if options.is_true("null") { "DROP NOT NULL" } else { "SET NOT NULL" };
                let default = match default_clause(&options)?.as_str() {
                    "" => "DROP DEFAULT".to_owned(),
                    clause => format!("SET{clause}"),
                };
                statements.push(format!(
                    "ALTER TABLE \"{}\" ALTER COLUMN \"{name}\" TYPE {}, ALTER COLUMN \"{name}\" {null}, \
                     ALTER COLUMN \"{name}\" {default}",
                    table()?,
                    column_type(text_arg(call, 2)?, &options)
                ));
            }
            "drop_column" => {
                statements.push(format!("ALTER TABLE \"{}\" DROP COLUMN \"{}\"", table()?, text_arg(call, 1)?))
            }
            "rename_column" => statements.push(format!(
                "ALTER TABLE \"{}\" RENAME COLUMN \"{}\" TO \"{}\"",
                table()?,
                text_arg(call, 1)?,
                text_arg(call, 2)?
            )),
            "add_index" => statements.push(index(table()?, &arg(call, 1)?.names()?, &options(call, 2))?),
            "drop_index" => statements.push(format!("DROP INDEX \"{}\"", text_arg(call, 1)?)),
            "add_foreign_key" => {
                statements.push(foreign_key(table()?, text_arg(call, 1)?, arg(call, 2)?, &options(call, 3))?);
            }
            "drop_foreign_key" => {
                statements.push(format!("ALTER TABLE \"{}\" DROP CONSTRAINT \"{}\"", table()?, text_arg(call, 1)?));
            }
            "sql" => statements.push(table()?.to_owned()),
            other => return Err(format!("unknown fizz statement {other}")),
        }
    }
    Ok(statements)
}

#[cfg(test)]
mod tests {
    use super::fizz_to_postgres;

    #[test]
    fn a_table_gets_fizz_names_not_null_columns_and_timestamps() {
        let fizz = r#"create_table("emails") {
	t.Column("id", "uuid")
	t.Column("user_id", "uuid", { "null": true })
	t.Column("address", "string", {size: 64})
	t.Column("enabled", "bool", { "default": true })
	t.PrimaryKey("id")
	t.Index(["address", "user_id"], { "unique": true })
	t.ForeignKey("user_id", {"users": ["id"]}, {"on_delete": "cascade", "on_update": "cascade",})
}"#;
        assert_eq!(
            fizz_to_postgres(fizz).unwrap(),
            [
                "CREATE TABLE \"emails\" (\"id\" UUID NOT NULL, \"user_id\" UUID, \"address\" VARCHAR (64) NOT NULL, \
                 \"enabled\" BOOLEAN NOT NULL DEFAULT 'true', \"created_at\" TIMESTAMP NOT NULL, \
                 \"updated_at\" TIMESTAMP NOT NULL, PRIMARY KEY (\"id\"))",
                "CREATE UNIQUE INDEX \"emails_address_user_id_idx\" ON \"emails\" (\"address\", \"user_id\")",
                "ALTER TABLE \"emails\" ADD CONSTRAINT \"emails_users_id_fk\" FOREIGN KEY (\"user_id\") \
                 REFERENCES \"users\" (\"id\") ON DELETE CASCADE ON UPDATE CASCADE",
            ]
        );
    }

    #[test]
    fn changes_renames_drops_and_raw_sql() {
        let fizz = r#"
rename_column("identities", "provider_id", "provider_user_id")
change_column("identities", "email_id", "uuid", {"null": true})
drop_index("identities", "identities_provider_id_provider_name_idx")
sql("UPDATE identities
SET user_id = NULL;")
drop_foreign_key("passcodes", "passcodes_flows_id_fk")
"#;
        assert_eq!(
            fizz_to_postgres(fizz).unwrap(),
            [
                "ALTER TABLE \"identities\" RENAME COLUMN \"provider_id\" TO \"provider_user_id\"",
                "ALTER TABLE \"identities\" ALTER COLUMN \"email_id\" TYPE UUID, ALTER COLUMN \"email_id\" DROP NOT NULL, \
                 ALTER COLUMN \"email_id\" DROP DEFAULT",
                "DROP INDEX \"identities_provider_id_provider_name_idx\"",
                "UPDATE identities\nSET user_id = NULL;",
                "ALTER TABLE \"passcodes\" DROP CONSTRAINT \"passcodes_flows_id_fk\"",
            ]
        );
    }

    #[test]
    fn anything_else_is_refused() {
        assert!(fizz_to_postgres("rename_table(\"a\", \"b\")").unwrap_err().contains("rename_table"));
        assert!(fizz_to_postgres("create_table(\"a\") { t.Column(\"x\" }").is_err());
    }
}
