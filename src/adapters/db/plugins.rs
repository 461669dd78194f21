//! Stored plugins and policy bindings, per tenant.

use diesel::prelude::*;
use serde::Serialize;

use super::schema::{plugins, policy_bindings};
use super::{now_ms, DbConnection};

/// A stored plugin without its module bytes.
#[derive(Debug, Clone, Queryable, Selectable, Serialize, utoipa::ToSchema)]
#[diesel(table_name = plugins)]
pub struct PluginRow {
    pub tenant: String,
    pub name: String,
    pub hash: String,
    pub size: i64,
    pub mutating: bool,
    pub validates_settings: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = plugins)]
pub struct NewPlugin {
    pub tenant: String,
    pub name: String,
    pub hash: String,
    pub module: Vec<u8>,
    pub size: i64,
    pub mutating: bool,
    pub validates_settings: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

/// Stores the plugin, replacing one of the same name. Returns `true` when it was new.
pub fn put(conn: &mut DbConnection, plugin: &NewPlugin) -> anyhow::Result<bool> {
    {
        let existing = plugins::table
            .find((&plugin.tenant, &plugin.name))
            .select(plugins::created_at)
            .first::<i64>(conn)
            .optional()?;
        match existing {
            Some(created_at) => {
                diesel::update(plugins::table.find((&plugin.tenant, &plugin.name)))
                    .set((
                        plugins::hash.eq(&plugin.hash),
                        plugins::module.eq(&plugin.module),
                        plugins::size.eq(plugin.size),
                        plugins::mutating.eq(plugin.mutating),
                        plugins::validates_settings.eq(plugin.validates_settings),
                        plugins::created_at.eq(created_at),
                        plugins::updated_at.eq(plugin.updated_at),
                    ))
                    .execute(conn)?;
                Ok(false)
            }
            None => {
                diesel::insert_into(plugins::table)
                    .values(plugin)
                    .execute(conn)?;
                Ok(true)
            }
        }
    }
}

pub fn list(conn: &mut DbConnection, tenant: &str) -> anyhow::Result<Vec<PluginRow>> {
    Ok(plugins::table
        .filter(plugins::tenant.eq(tenant))
        .select(PluginRow::as_select())
        .order(plugins::name)
        .load(conn)?)
}

pub fn get(conn: &mut DbConnection, tenant: &str, name: &str) -> anyhow::Result<Option<PluginRow>> {
    Ok(plugins::table
        .find((tenant, name))
        .select(PluginRow::as_select())
        .first(conn)
        .optional()?)
}

/// The module bytes of a plugin, with their hash.
pub fn module(
    conn: &mut DbConnection,
    tenant: &str,
    name: &str,
) -> anyhow::Result<Option<(String, Vec<u8>)>> {
    Ok(plugins::table
        .find((tenant, name))
        .select((plugins::hash, plugins::module))
        .first(conn)
        .optional()?)
}

/// The result of deleting a plugin.
pub enum Removal {
    Deleted,
    NotFound,
    /// Still bound to these hooks.
    Bound(Vec<String>),
}

pub fn delete(conn: &mut DbConnection, tenant: &str, name: &str) -> anyhow::Result<Removal> {
    {
        let hooks: Vec<String> = policy_bindings::table
            .filter(policy_bindings::tenant.eq(tenant))
            .filter(policy_bindings::plugin.eq(name))
            .select(policy_bindings::hook)
            .load(conn)?;
        if !hooks.is_empty() {
            return Ok(Removal::Bound(hooks));
        }
        let n = diesel::delete(plugins::table.find((tenant, name))).execute(conn)?;
        Ok(if n == 1 {
            Removal::Deleted
        } else {
            Removal::NotFound
        })
    }
}

/// A policy binding as stored; `settings` is JSON text.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = policy_bindings)]
pub struct BindingRow {
    pub tenant: String,
    pub position: i32,
    pub plugin: String,
    pub hook: String,
    pub settings: String,
    pub on_error: String,
}

/// A binding joined with its plugin's hash and mutating flag, in order.
#[derive(Debug, Clone)]
pub struct ActiveBinding {
    pub plugin: String,
    pub hook: String,
    pub settings: String,
    pub on_error: String,
    pub hash: String,
    pub mutating: bool,
}

pub fn bindings(conn: &mut DbConnection, tenant: &str) -> anyhow::Result<Vec<BindingRow>> {
    Ok(policy_bindings::table
        .filter(policy_bindings::tenant.eq(tenant))
        .select(BindingRow::as_select())
        .order(policy_bindings::position)
        .load(conn)?)
}

/// The bindings of one hook with what is needed to run them.
pub fn active(
    conn: &mut DbConnection,
    tenant: &str,
    hook: &str,
) -> anyhow::Result<Vec<ActiveBinding>> {
    let rows: Vec<(BindingRow, (String, bool))> = policy_bindings::table
        .inner_join(
            plugins::table.on(plugins::tenant
                .eq(policy_bindings::tenant)
                .and(plugins::name.eq(policy_bindings::plugin))),
        )
        .filter(policy_bindings::tenant.eq(tenant))
        .filter(policy_bindings::hook.eq(hook))
        .order(policy_bindings::position)
        .select((BindingRow::as_select(), (plugins::hash, plugins::mutating)))
        .load(conn)?;
    Ok(rows
        .into_iter()
        .map(|(b, (hash, mutating))| ActiveBinding {
            plugin: b.plugin,
            hook: b.hook,
            settings: b.settings,
            on_error: b.on_error,
            hash,
            mutating,
        })
        .collect())
}

/// Replaces a tenant's bindings, in the given order, in one transaction.
pub fn replace_bindings(
    conn: &mut DbConnection,
    tenant: &str,
    rows: &[BindingRow],
) -> anyhow::Result<()> {
    {
        diesel::delete(policy_bindings::table.filter(policy_bindings::tenant.eq(tenant)))
            .execute(conn)?;
        for row in rows {
            diesel::insert_into(policy_bindings::table)
                .values(row)
                .execute(conn)?;
        }
        Ok(())
    }
}

pub fn new_plugin(
    tenant: &str,
    name: &str,
    hash: &str,
    module: Vec<u8>,
    mutating: bool,
    validates_settings: bool,
) -> NewPlugin {
    let now = now_ms();
    NewPlugin {
        tenant: tenant.to_owned(),
        name: name.to_owned(),
        hash: hash.to_owned(),
        size: module.len() as i64,
        module,
        mutating,
        validates_settings,
        created_at: now,
        updated_at: now,
    }
}
