//! Reading the stored lifecycle states (`sites.state`, `jobs.state`) as their enums: a row whose
//! state is text berth does not know fails to load, with the text and the known states, instead
//! of passing for some other state.

use diesel::backend::Backend;
use diesel::deserialize::{self, FromSql, Queryable};
use diesel::sql_types::Text;

use crate::domain::{Author, JobState, RolloutSiteState, RolloutState, SiteState, VersionState};

macro_rules! read_as_text {
    ($($state:ty),+) => {$(
        impl<DB: Backend> FromSql<Text, DB> for $state
        where
            String: FromSql<Text, DB>,
        {
            fn from_sql(bytes: DB::RawValue<'_>) -> deserialize::Result<Self> {
                let text = String::from_sql(bytes)?;
                Ok(text.parse::<$state>()?)
            }
        }

        impl<DB: Backend> Queryable<Text, DB> for $state
        where
            Self: FromSql<Text, DB>,
        {
            type Row = Self;

            fn build(row: Self) -> deserialize::Result<Self> {
                Ok(row)
            }
        }
    )+};
}

read_as_text!(
    SiteState,
    JobState,
    VersionState,
    Author,
    RolloutState,
    RolloutSiteState
);

#[cfg(test)]
mod tests {
    use diesel::connection::SimpleConnection;
    use diesel::{Connection, SqliteConnection};
    use diesel_migrations::MigrationHarness;

    use crate::adapters::db::{jobs, sites, DbConnection};
    use crate::domain::{JobState, SiteState};

    fn database() -> DbConnection {
        let mut conn = SqliteConnection::establish(":memory:").expect("in-memory database");
        conn.run_pending_migrations(crate::adapters::db::SQLITE_MIGRATIONS)
            .expect("migrations apply");
        conn.batch_execute(
            "INSERT INTO sites (id, tenant, name, hostname, email, state, created_at, updated_at) \
             VALUES ('site_known', 'acme', 'shop', 'shop.example.com', 'a@example.com', 'ready', 1, 1), \
                    ('site_odd', 'acme', 'odd', 'odd.example.com', 'a@example.com', 'archived', 1, 1); \
             INSERT INTO jobs (id, kind, payload, state, max_attempts, run_at, created_at, updated_at) \
             VALUES ('job_known', 'provision', '{}', 'succeeded', 5, 1, 1, 1), \
                    ('job_odd', 'provision', '{}', 'done', 5, 1, 1, 1);",
        )
        .expect("rows insert");
        DbConnection::Sqlite(conn)
    }

    #[test]
    fn a_stored_state_reads_as_its_enum_and_unknown_text_is_an_error_not_a_guess() {
        let mut conn = database();
        let site = sites::get(&mut conn, "site_known").unwrap().unwrap();
        assert_eq!(site.state, SiteState::Ready);
        let job = jobs::get(&mut conn, "job_known").unwrap().unwrap();
        assert_eq!(job.state, JobState::Succeeded);

        let odd_site = format!("{:#}", sites::get(&mut conn, "site_odd").unwrap_err());
        assert!(
            odd_site.contains("unknown state \"archived\""),
            "{odd_site}"
        );
        let odd_job = format!("{:#}", jobs::get(&mut conn, "job_odd").unwrap_err());
        assert!(
            odd_job.contains("unknown state \"done\"; known: queued, running, succeeded, failed"),
            "{odd_job}"
        );
    }
}
