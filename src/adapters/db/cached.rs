//! Prepared statements that stay in the connection's statement cache.
//!
//! diesel prepares some statements afresh on every run: every `UPDATE` (an `AsChangeset` struct
//! with `Option` fields leaves columns out, so one Rust type can stand for several SQL texts),
//! inserts with optional columns on SQLite and all raw SQL. Parsing and planning again is a good
//! part of what a small write costs, and the write path runs thousands a second. [`Cached`] keeps
//! such a statement in the cache keyed by its SQL text (never by its Rust type), which is right
//! whatever the text turns out to be; it is meant for statements of a fixed shape, so that the
//! cache holds one entry each.

use diesel::backend::Backend;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::{QueryResult, RunQueryDsl};

/// A statement cached by its SQL text. Build it with [`CacheDsl::cached`].
#[derive(Debug, Clone, Copy)]
pub struct Cached<Q>(Q);

pub trait CacheDsl: Sized {
    /// Keeps this statement prepared between runs (see the module documentation).
    fn cached(self) -> Cached<Self> {
        Cached(self)
    }
}

impl<Q> CacheDsl for Q {}

impl<Q> QueryId for Cached<Q> {
    type QueryId = ();
    /// No static id: the cache key is the SQL text and the bind types.
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<Q: Query> Query for Cached<Q> {
    type SqlType = Q::SqlType;
}

impl<Q: QueryFragment<DB>, DB: Backend> QueryFragment<DB> for Cached<Q> {
    fn walk_ast<'b>(&'b self, pass: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        self.0.walk_ast(pass)
    }

    fn is_safe_to_cache_prepared(&self, _backend: &DB) -> QueryResult<bool> {
        Ok(true)
    }
}

impl<Q, Conn> RunQueryDsl<Conn> for Cached<Q> {}

#[cfg(test)]
mod tests {
    use diesel::connection::SimpleConnection;
    use diesel::prelude::*;
    use diesel::sql_types::{BigInt, Text};
    use diesel::SqliteConnection;

    use super::CacheDsl;

    diesel::table! {
        counters (name) {
            name -> Text,
            n -> BigInt,
        }
    }

    fn database() -> SqliteConnection {
        let mut conn = SqliteConnection::establish(":memory:").expect("in-memory database");
        conn.batch_execute(
            "CREATE TABLE counters (name TEXT PRIMARY KEY NOT NULL, n BIGINT NOT NULL);
             INSERT INTO counters VALUES ('a', 0), ('b', 0);",
        )
        .expect("table");
        conn
    }

    fn n(conn: &mut SqliteConnection, name: &str) -> i64 {
        counters::table
            .find(name)
            .select(counters::n)
            .get_result(conn)
            .expect("row")
    }

    #[test]
    fn a_cached_update_runs_again_with_new_binds() {
        let mut conn = database();
        for (name, by) in [("a", 1), ("b", 10), ("a", 2)] {
            let changed = diesel::update(counters::table.find(name))
                .set(counters::n.eq(counters::n + by))
                .cached()
                .execute(&mut conn)
                .expect("update");
            assert_eq!(changed, 1);
        }
        assert_eq!((n(&mut conn, "a"), n(&mut conn, "b")), (3, 10));
    }

    #[derive(QueryableByName, Debug, PartialEq)]
    struct Row {
        #[diesel(sql_type = Text)]
        name: String,
        #[diesel(sql_type = BigInt)]
        n: i64,
    }

    /// Two texts are two cache entries: neither is run in place of the other.
    #[test]
    fn cached_raw_sql_is_keyed_by_its_text() {
        let mut conn = database();
        let run = |conn: &mut SqliteConnection, sql: &str, name: &str| -> Vec<Row> {
            diesel::sql_query(sql)
                .bind::<Text, _>(name)
                .cached()
                .load(conn)
                .expect("query")
        };
        let by_name = "SELECT name, n FROM counters WHERE name = $1";
        let others = "SELECT name, n FROM counters WHERE name <> $1";
        for _ in 0..2 {
            assert_eq!(
                run(&mut conn, by_name, "a"),
                [Row {
                    name: "a".into(),
                    n: 0
                }]
            );
            assert_eq!(
                run(&mut conn, others, "a"),
                [Row {
                    name: "b".into(),
                    n: 0
                }]
            );
        }
    }
}
