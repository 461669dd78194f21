//! The email outbox: one row per site and notice, so each notice is sent once.

use diesel::prelude::*;

use super::cached::CacheDsl;
use super::schema::outbox;
use super::{now_ms, DbConnection};

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = outbox)]
pub struct OutboxRow {
    pub site_id: String,
    pub notice: String,
    pub message_id: String,
    pub created_at: i64,
    pub sent_at: Option<i64>,
}

/// Adds the row unless one exists for this site and notice. Call inside a write transaction.
/// Returns whether a row was added.
pub fn add(
    conn: &mut DbConnection,
    site_id: &str,
    notice: &str,
    message_id: &str,
) -> anyhow::Result<bool> {
    if get(conn, site_id, notice)?.is_some() {
        return Ok(false);
    }
    diesel::insert_into(outbox::table)
        .values((
            outbox::site_id.eq(site_id),
            outbox::notice.eq(notice),
            outbox::message_id.eq(message_id),
            outbox::created_at.eq(now_ms()),
        ))
        .execute(conn)?;
    Ok(true)
}

pub fn get(
    conn: &mut DbConnection,
    site_id: &str,
    notice: &str,
) -> anyhow::Result<Option<OutboxRow>> {
    Ok(outbox::table
        .find((site_id, notice))
        .select(OutboxRow::as_select())
        .first(conn)
        .optional()?)
}

pub fn mark_sent(conn: &mut DbConnection, site_id: &str, notice: &str) -> anyhow::Result<()> {
    diesel::update(outbox::table.find((site_id, notice)))
        .set(outbox::sent_at.eq(now_ms()))
        .cached()
        .execute(conn)?;
    Ok(())
}
