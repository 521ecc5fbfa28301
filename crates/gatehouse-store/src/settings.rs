use sqlx::Row;

use gatehouse_core::clock::Timestamp;

use crate::{Result, Store, StoredSettings, time};

impl Store {
    /// The version of the settings document `name`; 0 when nothing was ever saved. Cheap enough to poll.
    pub async fn settings_version(&self, name: &str) -> Result<i64> {
        let row =
            sqlx::query("SELECT version FROM settings WHERE name = $1").bind(name).fetch_optional(&self.reader).await?;
        Ok(match row {
            Some(row) => row.try_get("version")?,
            None => 0,
        })
    }

    pub async fn load_settings(&self, name: &str) -> Result<Option<StoredSettings>> {
        let row = sqlx::query("SELECT version, data, updated_at FROM settings WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.reader)
            .await?;
        row.map(|row| {
            Ok(StoredSettings {
                version: row.try_get("version")?,
                data: row.try_get("data")?,
                updated_at: time(&row, "updated_at")?,
            })
        })
        .transpose()
    }

    /// Saves `data` as the version after `expected_version`, if nobody saved since that version was read.
    /// Returns the new version, or `None` when the document moved on meanwhile.
    pub async fn save_settings(
        &self,
        name: &str,
        expected_version: i64,
        data: &str,
        now: Timestamp,
    ) -> Result<Option<i64>> {
        let result = if expected_version == 0 {
            writing!(self, |connection| {
                Ok(sqlx::query(
                    "INSERT INTO settings (name, version, data, updated_at) VALUES ($1, 1, $2, $3)
                 ON CONFLICT (name) DO NOTHING",
                )
                .bind(name)
                .bind(data)
                .bind(now.as_millis())
                .execute(connection)
                .await?)
            })?
        } else {
            writing!(self, |connection| {
                Ok(sqlx::query(
                "UPDATE settings SET version = version + 1, data = $3, updated_at = $4 WHERE name = $1 AND version = $2",
            )
            .bind(name)
            .bind(expected_version)
            .bind(data)
            .bind(now.as_millis())
            .execute(connection).await?)
            })?
        };
        Ok((result.rows_affected() == 1).then_some(expected_version + 1))
    }
}
