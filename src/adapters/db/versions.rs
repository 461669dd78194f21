//! A site's content as numbered versions (SPEC §7), and the two pointers on its row:
//! `target_version`, what the next deploy applies, and `live_version`, what the site serves.
//!
//! An update or a rollback is [`propose`]d: the version becomes the target in one transaction
//! with the job that deploys it, so a `202` is never lost. The deploy (or the provisioning of a
//! new or resumed site) ends in [`promote`], which moves `live_version` and the versions' states
//! in one transaction: the sites listener reads the HTML through `live_version`, so a request
//! sees the old version or the new one, never a mix. A site has at most one `pending` version:
//! a newer update supersedes an older one that has not gone live. Every function that writes
//! expects to run inside [`super::Db::write`].

use diesel::prelude::*;
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::cached::CacheDsl;
use super::schema::{site_versions, sites};
use super::sites::SiteRow;
use super::{jobs::NewJob, now_ms, DbConnection};
use crate::domain::{Author, RolloutSiteState, SiteState, VersionState};

/// A stored version, without its HTML.
#[derive(Debug, Clone, Queryable, Selectable, Serialize, utoipa::ToSchema)]
#[diesel(table_name = site_versions)]
pub struct VersionRow {
    /// The version's number: 1 for the signup's content, one more for each change.
    #[serde(rename = "version")]
    pub number: i64,
    /// Hex sha256 of the HTML's UTF-8 bytes.
    pub sha256: String,
    /// The HTML's size in bytes.
    pub size: i64,
    /// Who made it.
    #[serde(rename = "by")]
    pub created_by: Author,
    pub state: VersionState,
    /// Why it failed to deploy (the last attempt's error while it is still being tried).
    pub error: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Insertable)]
#[diesel(table_name = site_versions)]
struct NewVersion<'a> {
    site_id: &'a str,
    number: i64,
    sha256: String,
    size: i64,
    html: &'a str,
    created_by: &'static str,
    state: &'static str,
    created_at: i64,
    updated_at: i64,
}

/// The row of version `number` of a site while it is `pending` (not live yet).
macro_rules! pending {
    ($site_id:expr, $number:expr) => {
        site_versions::table
            .find(($site_id, $number))
            .filter(site_versions::state.eq(VersionState::Pending.as_str()))
    };
}

/// Hex sha256 of `html`'s UTF-8 bytes.
pub fn sha256_hex(html: &str) -> String {
    hex::encode(Sha256::digest(html.as_bytes()))
}

/// Stores `html` as version `number` of site `site_id`, `pending`.
pub fn insert(
    conn: &mut DbConnection,
    site_id: &str,
    number: i64,
    html: &str,
    by: Author,
) -> anyhow::Result<()> {
    let now = now_ms();
    diesel::insert_into(site_versions::table)
        .values(NewVersion {
            site_id,
            number,
            sha256: sha256_hex(html),
            size: html.len() as i64,
            html,
            created_by: by.as_str(),
            state: VersionState::Pending.as_str(),
            created_at: now,
            updated_at: now,
        })
        .execute(conn)?;
    Ok(())
}

/// Replaces the HTML of a version that has not gone live (a renamed site's first version,
/// rewritten by a policy).
pub fn replace_pending(
    conn: &mut DbConnection,
    site_id: &str,
    number: i64,
    html: &str,
) -> anyhow::Result<()> {
    diesel::update(pending!(site_id, number))
        .set((
            site_versions::html.eq(html),
            site_versions::sha256.eq(sha256_hex(html)),
            site_versions::size.eq(html.len() as i64),
            site_versions::updated_at.eq(now_ms()),
        ))
        .execute(conn)?;
    Ok(())
}

/// The site's versions, newest first.
pub fn list(conn: &mut DbConnection, site_id: &str) -> anyhow::Result<Vec<VersionRow>> {
    Ok(site_versions::table
        .filter(site_versions::site_id.eq(site_id))
        .order(site_versions::number.desc())
        .select(VersionRow::as_select())
        .load(conn)?)
}

pub fn get(
    conn: &mut DbConnection,
    site_id: &str,
    number: i64,
) -> anyhow::Result<Option<VersionRow>> {
    Ok(site_versions::table
        .find((site_id, number))
        .select(VersionRow::as_select())
        .first(conn)
        .optional()?)
}

/// The site's newest version.
pub fn newest(conn: &mut DbConnection, site_id: &str) -> anyhow::Result<Option<VersionRow>> {
    Ok(site_versions::table
        .filter(site_versions::site_id.eq(site_id))
        .order(site_versions::number.desc())
        .select(VersionRow::as_select())
        .first(conn)
        .optional()?)
}

/// One version with its HTML.
pub fn get_with_html(
    conn: &mut DbConnection,
    site_id: &str,
    number: i64,
) -> anyhow::Result<Option<(VersionRow, String)>> {
    Ok(site_versions::table
        .find((site_id, number))
        .select((VersionRow::as_select(), site_versions::html))
        .first(conn)
        .optional()?)
}

/// The HTML of one version.
pub fn html(conn: &mut DbConnection, site_id: &str, number: i64) -> anyhow::Result<Option<String>> {
    Ok(site_versions::table
        .find((site_id, number))
        .select(site_versions::html)
        .first(conn)
        .optional()?)
}

/// The live HTML of the ready site at `hostname`, if there is one: what the sites listener
/// serves.
pub fn live_html(conn: &mut DbConnection, hostname: &str) -> anyhow::Result<Option<String>> {
    Ok(sites::table
        .inner_join(
            site_versions::table.on(site_versions::site_id
                .eq(sites::id)
                .and(sites::live_version.eq(site_versions::number.nullable()))),
        )
        .filter(sites::hostname.eq(hostname))
        .filter(sites::state.eq(SiteState::Ready.as_str()))
        .select(site_versions::html)
        .limit(1)
        .cached()
        .get_result(conn)
        .optional()?)
}

/// Whether a site at `hostname` is suspended: its visitors are told it is paused, not that
/// there is no site. Asked only when [`live_html`] found nothing.
pub fn suspended_at(conn: &mut DbConnection, hostname: &str) -> anyhow::Result<bool> {
    let found: i64 = sites::table
        .filter(sites::hostname.eq(hostname))
        .filter(sites::state.eq(SiteState::Suspended.as_str()))
        .count()
        .get_result(conn)?;
    Ok(found > 0)
}

/// The condition of the partial index `site_versions_unhashed`, in literals: the databases use
/// a partial index only for a query whose condition is the index's own.
const UNHASHED: &str = "sha256 = ''";

/// Fills in the hashes the migration to versions left empty (it cannot hash in SQL on every
/// database). Runs after migrations; once done, it reads an empty index.
pub fn fill_missing_hashes(conn: &mut DbConnection) -> anyhow::Result<usize> {
    let missing: Vec<(String, i64, String)> = site_versions::table
        .filter(diesel::dsl::sql::<diesel::sql_types::Bool>(UNHASHED))
        .select((
            site_versions::site_id,
            site_versions::number,
            site_versions::html,
        ))
        .load(conn)?;
    for (site_id, number, html) in &missing {
        diesel::update(site_versions::table.find((site_id, number)))
            .set(site_versions::sha256.eq(sha256_hex(html)))
            .execute(conn)?;
    }
    Ok(missing.len())
}

fn set_state(
    conn: &mut DbConnection,
    site_id: &str,
    number: i64,
    state: VersionState,
    error: Option<&str>,
) -> anyhow::Result<()> {
    diesel::update(site_versions::table.find((site_id, number)))
        .set((
            site_versions::state.eq(state.as_str()),
            site_versions::error.eq(error),
            site_versions::updated_at.eq(now_ms()),
        ))
        .cached()
        .execute(conn)?;
    Ok(())
}

/// Records the error of a failed attempt to deploy the version (it stays `pending` while the
/// job retries).
pub fn note_error(
    conn: &mut DbConnection,
    site_id: &str,
    number: i64,
    error: &str,
) -> anyhow::Result<()> {
    diesel::update(pending!(site_id, number))
        .set((
            site_versions::error.eq(error),
            site_versions::updated_at.eq(now_ms()),
        ))
        .cached()
        .execute(conn)?;
    Ok(())
}

/// A change to a site's content.
pub enum Change<'a> {
    /// New HTML, which becomes the next version.
    Content { html: &'a str, by: Author },
    /// An earlier version, served again.
    Rollback { to: i64 },
}

/// What [`propose`] did.
#[derive(Debug)]
pub enum Proposal {
    /// The version is the site's target: deploying (a ready site), live at once (a suspended
    /// site, which deploys it when it resumes), or already live.
    Accepted {
        site: Box<SiteRow>,
        version: VersionRow,
    },
    NotFound,
    /// Content changes apply to `ready` and `suspended` sites.
    WrongState(SiteState),
    /// The site has no HTML (its workload runs an image).
    NoContent,
    /// Rollback to a version the site does not have (never made, or pruned).
    UnknownVersion,
    /// Rollback to a version that failed to deploy.
    FailedVersion(Option<String>),
}

/// Makes `change` the site's target, in the order changes are accepted: a ready site gets a
/// version bump (older jobs stand down) and the job `deploy` builds; a suspended site's target
/// is live at once, for its resume to deploy. Keeps the newest `kept` versions (and always the
/// live and target ones). Call inside a write.
pub fn propose(
    conn: &mut DbConnection,
    site_id: &str,
    change: Change<'_>,
    kept: i64,
    deploy: impl FnOnce(&SiteRow) -> NewJob,
) -> anyhow::Result<Proposal> {
    super::sites::lock(conn, site_id)?;
    let Some(mut site) = super::sites::get(conn, site_id)? else {
        return Ok(Proposal::NotFound);
    };
    if !matches!(site.state, SiteState::Ready | SiteState::Suspended) {
        return Ok(Proposal::WrongState(site.state));
    }
    let Some(previous) = site.target_version else {
        return Ok(Proposal::NoContent);
    };
    let target = match change {
        Change::Content { html, by } => {
            let newest: Option<i64> = site_versions::table
                .filter(site_versions::site_id.eq(site_id))
                .select(diesel::dsl::max(site_versions::number))
                .first(conn)?;
            let number = newest.unwrap_or(0) + 1;
            insert(conn, site_id, number, html, by)?;
            number
        }
        Change::Rollback { to } => match get(conn, site_id, to)? {
            None => return Ok(Proposal::UnknownVersion),
            Some(version) if version.state == VersionState::Failed => {
                return Ok(Proposal::FailedVersion(version.error))
            }
            Some(_) => to,
        },
    };
    let live = site.live_version;
    if previous != target && Some(previous) != live {
        set_state(conn, site_id, previous, VersionState::Superseded, None)?;
    }
    if Some(target) != live {
        set_state(conn, site_id, target, VersionState::Pending, None)?;
    }
    let now = now_ms();
    site.target_version = Some(target);
    site.updated_at = now;
    let needs_deploy =
        site.state == SiteState::Ready && !(previous == target && live == Some(target));
    if needs_deploy {
        site.version += 1;
    }
    diesel::update(sites::table.find(site_id))
        .set((
            sites::target_version.eq(target),
            sites::version.eq(site.version),
            sites::updated_at.eq(now),
        ))
        .cached()
        .execute(conn)?;
    if needs_deploy {
        super::jobs::insert(conn, &deploy(&site))?;
    } else if site.state == SiteState::Suspended {
        promote(conn, &mut site)?;
    }
    prune(conn, &site, kept)?;
    let version = get(conn, site_id, target)?
        .ok_or_else(|| anyhow::anyhow!("version {target} of {site_id} vanished"))?;
    Ok(Proposal::Accepted {
        site: Box::new(site),
        version,
    })
}

/// Deletes all but the newest `kept` versions, keeping the live and target ones whatever their
/// age.
fn prune(conn: &mut DbConnection, site: &SiteRow, kept: i64) -> anyhow::Result<()> {
    let newest: Option<i64> = site_versions::table
        .filter(site_versions::site_id.eq(&site.id))
        .select(diesel::dsl::max(site_versions::number))
        .first(conn)?;
    let Some(newest) = newest else {
        return Ok(());
    };
    diesel::delete(
        site_versions::table
            .filter(site_versions::site_id.eq(&site.id))
            .filter(site_versions::number.le(newest - kept))
            .filter(site_versions::number.ne(site.live_version.unwrap_or(-1)))
            .filter(site_versions::number.ne(site.target_version.unwrap_or(-1))),
    )
    .execute(conn)?;
    Ok(())
}

/// The target version goes live: the previous live one is `superseded`, the target `live`, and
/// the site's `live_version` moves, all in the caller's transaction.
pub fn promote(conn: &mut DbConnection, site: &mut SiteRow) -> anyhow::Result<()> {
    let Some(target) = site.target_version else {
        return Ok(());
    };
    if let Some(live) = site.live_version.filter(|&live| live != target) {
        set_state(conn, &site.id, live, VersionState::Superseded, None)?;
    }
    set_state(conn, &site.id, target, VersionState::Live, None)?;
    if site.live_version != Some(target) {
        diesel::update(sites::table.find(&site.id))
            .set(sites::live_version.eq(target))
            .cached()
            .execute(conn)?;
        site.live_version = Some(target);
    }
    Ok(())
}

/// A deploy succeeded: while the site is still `ready` at `version`, its target goes live.
/// Returns the site when it did.
pub fn finish_deploy(
    conn: &mut DbConnection,
    site_id: &str,
    version: i64,
) -> anyhow::Result<Option<SiteRow>> {
    super::sites::lock(conn, site_id)?;
    let Some(mut site) = super::sites::get(conn, site_id)? else {
        return Ok(None);
    };
    if site.version != version || site.state != SiteState::Ready {
        return Ok(None);
    }
    promote(conn, &mut site)?;
    diesel::update(sites::table.find(site_id))
        .set((
            sites::step.eq(None::<String>),
            sites::updated_at.eq(now_ms()),
        ))
        .cached()
        .execute(conn)?;
    Ok(Some(site))
}

/// What a deploy that failed for good gave up: the content version, the workload spec, or both
/// (a content update and a rollout's spec can travel in one deploy).
#[derive(Debug, PartialEq, Eq)]
pub struct Abandoned {
    pub version: Option<i64>,
    pub spec: Option<String>,
}

/// A deploy failed for good: while the site is still `ready` at `version`, its target version
/// is `failed` with `error` and its target spec's rollout row too, the live version and the
/// applied spec become the targets again, and the job `restore` builds re-applies them (a
/// runtime may have half-rolled the failed ones out). Returns what was given up, when anything
/// was.
pub fn fail_deploy(
    conn: &mut DbConnection,
    site_id: &str,
    version: i64,
    error: &str,
    restore: impl FnOnce(&SiteRow) -> NewJob,
) -> anyhow::Result<Option<Abandoned>> {
    super::sites::lock(conn, site_id)?;
    let Some(mut site) = super::sites::get(conn, site_id)? else {
        return Ok(None);
    };
    if site.version != version || site.state != SiteState::Ready {
        return Ok(None);
    }
    let abandoned = Abandoned {
        version: site
            .target_version
            .filter(|&t| Some(t) != site.live_version),
        spec: site
            .target_spec
            .clone()
            .filter(|t| site.applied_spec.as_ref() != Some(t)),
    };
    if abandoned.version.is_none() && abandoned.spec.is_none() {
        return Ok(None);
    }
    if let Some(failed) = abandoned.version {
        set_state(conn, site_id, failed, VersionState::Failed, Some(error))?;
    }
    if let Some(spec) = &abandoned.spec {
        super::rollouts::settle(conn, site_id, spec, RolloutSiteState::Failed, Some(error))?;
    }
    site.target_version = site.live_version;
    site.target_spec = site.applied_spec.clone();
    site.version += 1;
    diesel::update(sites::table.find(site_id))
        .set((
            sites::target_version.eq(site.target_version),
            sites::target_spec.eq(&site.target_spec),
            sites::version.eq(site.version),
            sites::step.eq(None::<String>),
            sites::updated_at.eq(now_ms()),
        ))
        .cached()
        .execute(conn)?;
    super::jobs::insert(conn, &restore(&site))?;
    Ok(Some(abandoned))
}

#[cfg(test)]
mod tests {
    use diesel::connection::SimpleConnection;
    use diesel::migration::MigrationSource;
    use diesel::{Connection, SqliteConnection};

    use super::*;
    use crate::adapters::db::SQLITE_MIGRATIONS;

    #[test]
    fn stored_html_becomes_version_one_live_where_it_was_served_with_its_hash() {
        let mut conn = SqliteConnection::establish(":memory:").expect("in-memory database");
        let migrations = MigrationSource::<diesel::sqlite::Sqlite>::migrations(&SQLITE_MIGRATIONS)
            .expect("migrations");
        let at = migrations
            .iter()
            .position(|m| m.name().to_string().ends_with("site_versions"))
            .expect("the versions migration");
        let (earlier, rest) = migrations.split_at(at);
        let (versions, later) = rest.split_first().expect("the versions migration");
        for migration in earlier {
            migration.run(&mut conn).expect("an earlier migration");
        }
        conn.batch_execute(
            "INSERT INTO sites (id, tenant, name, hostname, email, html, state, created_at, updated_at) \
             VALUES ('site_a', 't', 'a', 'a.example', 'a@example.com', '<p>é</p>', 'ready', 1, 1), \
                    ('site_b', 't', 'b', 'b.example', 'b@example.com', '<p>b</p>', 'provisioning', 1, 1), \
                    ('site_c', 't', 'c', 'c.example', 'c@example.com', NULL, 'ready', 1, 1);",
        )
        .expect("sites at the earlier schema");
        versions.run(&mut conn).expect("the versions migration");
        for migration in later {
            migration.run(&mut conn).expect("a later migration");
        }
        let mut conn = DbConnection::Sqlite(conn);
        assert_eq!(fill_missing_hashes(&mut conn).unwrap(), 2);
        assert_eq!(fill_missing_hashes(&mut conn).unwrap(), 0, "done once");

        let a = super::super::sites::get(&mut conn, "site_a")
            .unwrap()
            .unwrap();
        assert_eq!((a.live_version, a.target_version), (Some(1), Some(1)));
        let version = get(&mut conn, "site_a", 1).unwrap().unwrap();
        assert_eq!(version.state, VersionState::Live);
        assert_eq!(
            version.size,
            "<p>é</p>".len() as i64,
            "bytes, not characters"
        );
        assert_eq!(version.sha256, sha256_hex("<p>é</p>"));
        assert_eq!(
            live_html(&mut conn, "a.example").unwrap().as_deref(),
            Some("<p>é</p>")
        );

        let b = super::super::sites::get(&mut conn, "site_b")
            .unwrap()
            .unwrap();
        assert_eq!((b.live_version, b.target_version), (None, Some(1)));
        assert_eq!(
            get(&mut conn, "site_b", 1).unwrap().unwrap().state,
            VersionState::Pending
        );

        let c = super::super::sites::get(&mut conn, "site_c")
            .unwrap()
            .unwrap();
        assert_eq!((c.live_version, c.target_version), (None, None));
        assert!(list(&mut conn, "site_c").unwrap().is_empty());
    }

    #[derive(diesel::QueryableByName)]
    struct PlanStep {
        #[diesel(sql_type = diesel::sql_types::Text)]
        detail: String,
    }

    #[test]
    fn looking_for_unhashed_versions_at_start_reads_the_partial_index_not_the_table() {
        use diesel::RunQueryDsl;
        use diesel_migrations::MigrationHarness;
        let mut conn = SqliteConnection::establish(":memory:").expect("in-memory database");
        conn.run_pending_migrations(SQLITE_MIGRATIONS)
            .expect("migrations apply");
        let plan: Vec<PlanStep> = diesel::sql_query(format!(
            "EXPLAIN QUERY PLAN SELECT site_id, number, html FROM site_versions WHERE {UNHASHED}"
        ))
        .load(&mut conn)
        .expect("query plan");
        let plan: Vec<&str> = plan.iter().map(|step| step.detail.as_str()).collect();
        assert_eq!(
            plan,
            ["SCAN site_versions USING INDEX site_versions_unhashed"]
        );
    }
}
