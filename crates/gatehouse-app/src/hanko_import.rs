//! Moving users from a Hanko database into this one: the core's plan, then each user written in a transaction of
//! their own. A user is either wholly imported or not at all, and a second run imports only who is not here yet.

use gatehouse_core::{
    clock::Clock,
    hanko_import::{ImportReport, UserOutcome, plan},
};
use gatehouse_store::{HankoDatabase, Store, StoreError};

use crate::{
    audit::{AuditLog, RequestMeta},
    thirdparty::MICROSOFT,
};

/// The audit row written with each imported user, at the time of the import.
pub const USER_IMPORTED: &str = "user_imported";

/// Reads `source` and imports every user not in `store` yet; the report says what was imported and what not.
pub async fn import_from_hanko(
    store: &Store,
    source: &mut HankoDatabase,
    clock: &dyn Clock,
) -> Result<ImportReport, StoreError> {
    let data = source.read().await?;
    let plan = plan(&data);
    let mut report = ImportReport::new(&plan, &data);
    for imported in &plan.users {
        let user = Some(imported.user.id);
        let audit = AuditLog::entry(USER_IMPORTED, user, None, &RequestMeta::default(), clock.now());
        let outcome = match store.import_user(imported, MICROSOFT, &audit).await {
            Ok(true) => UserOutcome::Imported,
            Ok(false) => UserOutcome::AlreadyPresent,
            Err(StoreError::Conflict(what)) => UserOutcome::Conflict(what.to_owned()),
            Err(error) => return Err(error),
        };
        report.record(imported, outcome);
    }
    Ok(report)
}
