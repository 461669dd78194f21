//! `/admin/jobs`: the durable queue as operators see it (global admin token only: jobs span
//! tenants).

use actix_web::http::StatusCode;
use actix_web::{get, post, web, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::adapters::db::jobs::{self, JobRow};
use crate::domain::JobState;
use crate::routes::auth::GlobalAdmin;
use crate::routes::error::ApiError;
use crate::routes::params::{job_not_found, JobIdPath};
use crate::routes::registry::Routes;
use crate::routes::request::json_ok;
use crate::routes::schemas::{AdminErrors, ErrorBody};
use crate::routes::state::AppState;

/// A job as the list shows it: the row, and whether a newer job of its site superseded it (a
/// failed job that is, is not retried: its site has moved on).
#[derive(Serialize, ToSchema)]
pub struct JobView {
    #[serde(flatten)]
    job: JobRow,
    superseded: bool,
}

pub fn routes(routes: &mut Routes) {
    routes.add(list).add(retry);
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    /// Only jobs in this state.
    #[param(schema_with = job_states)]
    state: Option<String>,
    /// How many, newest first.
    // `nullable`, as utoipa gives an optional query parameter of a handler's `web::Query`: the
    // other lists' `limit` reads the same.
    #[param(nullable, minimum = 1, maximum = 1000, default = 100)]
    limit: Option<i64>,
}

fn job_states() -> utoipa::openapi::Object {
    super::one_of(&jobs::STATES)
}

/// Lists jobs, newest first, with the queue's backlog.
#[utoipa::path(
    operation_id = "list_jobs",
    tag = "admin",
    security(("bearer" = [])),
    params(ListQuery),
    responses(
        (
            status = 200,
            description = "Jobs, newest first, and the queue's backlog (global token only)",
            body = JobList
        ),
        (
            status = 400,
            description = "An unknown state, `limit` out of its range, or an unknown query parameter",
            body = ErrorBody
        ),
        AdminErrors,
    )
)]
#[get("/admin/jobs")]
pub(crate) async fn list(
    admin: GlobalAdmin<web::Query<ListQuery>>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let query = admin.input.into_inner();
    let limit = super::limit(query.limit)?;
    if let Some(wanted) = &query.state {
        if !jobs::STATES.contains(&wanted.as_str()) {
            return Err(ApiError::bad_request(
                "invalid_state",
                format!(
                    "unknown job state {wanted:?}; known: {}",
                    jobs::STATES.join(", ")
                ),
            ));
        }
    }
    let (rows, backlog) = state
        .db
        .run(move |c| {
            let rows = jobs::list(c, query.state.as_deref(), None, limit)?;
            let superseded = jobs::superseded_among(c, &rows)?;
            let rows: Vec<JobView> = rows
                .into_iter()
                .map(|job| JobView {
                    superseded: superseded.contains(&job.id),
                    job,
                })
                .collect();
            Ok((rows, jobs::Backlog::read(c)?))
        })
        .await?;
    Ok(json_ok(
        StatusCode::OK,
        &serde_json::json!({ "jobs": rows, "backlog": backlog }),
    ))
}

/// Puts a failed job back in the queue with a fresh attempt budget.
#[utoipa::path(
    operation_id = "retry_job",
    tag = "admin",
    security(("bearer" = [])),
    params(JobIdPath),
    responses(
        (
            status = 202,
            description = "Requeued with a fresh attempt budget",
            body = crate::adapters::db::jobs::JobRow
        ),
        (status = 404, description = "No job with this id (`job_not_found`)", body = ErrorBody),
        (status = 409, description = "The job is not `failed` (`invalid_state`), or a newer job of its site superseded it (`superseded`: retry the site instead)", body = ErrorBody),
        AdminErrors,
    )
)]
#[post("/admin/jobs/{id}/retry")]
pub(crate) async fn retry(
    _: GlobalAdmin,
    path: JobIdPath,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id = path.id;
    let lookup = id.clone();
    let Some(job) = state.db.run(move |c| jobs::get(c, lookup.as_str())).await? else {
        return Err(job_not_found(id.as_str()));
    };
    let (requeue, checked) = (id.clone(), job.clone());
    let outcome = state
        .db
        .write(move |c| {
            if checked.state == JobState::Failed && jobs::is_superseded(c, &checked)? {
                return Ok(None);
            }
            Ok(Some(jobs::requeue_failed(c, requeue.as_str())?))
        })
        .await?;
    match outcome {
        None => {
            return Err(ApiError::conflict(
                "superseded",
                format!(
                    "job {id} was superseded by a newer job of site {}; retry the site instead if it is failed",
                    job.site_id.as_deref().unwrap_or_default()
                ),
            ))
        }
        Some(false) => {
            return Err(ApiError::conflict(
                "invalid_state",
                format!("job {id} is {}; only failed jobs can be retried", job.state),
            ))
        }
        Some(true) => {}
    }
    state.wake.notify_one();
    tracing::info!(job.id = %id, job.kind = %job.kind, "failed job requeued by an operator");
    let job = state.db.run(move |c| jobs::get(c, id.as_str())).await?;
    Ok(json_ok(StatusCode::ACCEPTED, &job))
}

// The body of `GET /admin/jobs` (no doc comment: it would become the schema description).
#[derive(Serialize, ToSchema)]
pub struct JobList {
    jobs: Vec<JobView>,
    backlog: crate::adapters::db::jobs::Backlog,
}
