//! Every event: the per-tenant advisory lock that serialises a tenant's event transactions.

use crate::adapters::db::DbConnection;

/// Serialises the event transactions of one tenant on PostgreSQL (SQLite's `BEGIN IMMEDIATE`
/// already serialises every write transaction). Released at commit or rollback.
pub(super) fn lock_tenant(conn: &mut DbConnection, tenant: &str) -> anyhow::Result<()> {
    if let DbConnection::Postgresql(pg) = conn {
        use diesel::RunQueryDsl;
        diesel::sql_query("SELECT pg_advisory_xact_lock($1, $2)")
            .bind::<diesel::sql_types::Integer, _>(STRIPE_LOCK_SPACE)
            .bind::<diesel::sql_types::Integer, _>(fnv1a(tenant))
            .execute(pg)?;
    }
    Ok(())
}

/// The advisory-lock key space of Stripe event processing (the migration lock uses another).
const STRIPE_LOCK_SPACE: i32 = 0x5354_5250; // "STRP"

/// A stable 32-bit hash of a tenant name, the second half of its advisory-lock key.
fn fnv1a(value: &str) -> i32 {
    let hash = value.bytes().fold(0x811c_9dc5_u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    });
    i32::from_ne_bytes(hash.to_ne_bytes())
}
