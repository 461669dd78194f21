//! Keys berth makes for itself (`server_keys`): made once by whichever process asks first, then
//! read by every process on the database.

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};

use super::schema::server_keys;
use super::{now_ms, DbConnection};

/// The key named `name`, stored as `make()` made it if no process stored one before (two
/// processes starting at once store one between them). Call inside a write.
pub fn get_or_create(
    conn: &mut DbConnection,
    name: &str,
    make: impl FnOnce() -> String,
) -> anyhow::Result<String> {
    // One text for both databases (the multi-backend connection has no `on_conflict`).
    diesel::sql_query(
        "INSERT INTO server_keys (name, value, created_at) VALUES ($1, $2, $3) \
         ON CONFLICT (name) DO NOTHING",
    )
    .bind::<Text, _>(name)
    .bind::<Text, _>(make())
    .bind::<BigInt, _>(now_ms())
    .execute(conn)?;
    Ok(server_keys::table
        .find(name)
        .select(server_keys::value)
        .first(conn)?)
}

#[cfg(test)]
mod tests {
    use diesel::{Connection, SqliteConnection};
    use diesel_migrations::MigrationHarness;

    use super::*;

    #[test]
    fn a_key_is_made_once_and_then_read_back() {
        let mut conn = SqliteConnection::establish(":memory:").expect("in-memory database");
        conn.run_pending_migrations(crate::adapters::db::SQLITE_MIGRATIONS)
            .expect("migrations apply");
        let mut conn = DbConnection::Sqlite(conn);
        let first = get_or_create(&mut conn, "manage_key", || "one".into()).unwrap();
        let again = get_or_create(&mut conn, "manage_key", || "two".into()).unwrap();
        let other = get_or_create(&mut conn, "other", || "three".into()).unwrap();
        assert_eq!(
            (first.as_str(), again.as_str(), other.as_str()),
            ("one", "one", "three")
        );
    }
}
