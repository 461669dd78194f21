//! Layer 5, the top: the application. The API listener, the sites listener (local runtime) and
//! the job worker, built from settings and run side by side until shutdown; `berth serve` runs
//! it (`main` hands [`serve`] to the command line).

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::{Server, Service};
use actix_web::http::header;
use actix_web::{web, App, HttpMessage, HttpServer};
use anyhow::Context;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing_actix_web::{RequestId, TracingLogger};

use crate::adapters::db::{keys, Db};
use crate::adapters::mailer::Mailer;

use crate::adapters::runtime::local::serve_site;
use crate::adapters::telemetry::metrics_handle;
use crate::configuration::{Live, Mode, RuntimeKind, Settings, Source};
use crate::domain::manage_token::ManageKey;
use crate::domain::Secret;
use crate::jobs::{self, JobContext, Worker};
use crate::routes;
use crate::routes::rate_limit::RateLimits;
use crate::routes::state::AppState;
use crate::services::policy::PolicyEngine;
use crate::services::stripe::ingest::{writers_for, EventWriter};
use crate::services::tenants::Tenants;

mod reload;

pub use reload::Reloader;

/// One line per request; probes and scrapes only at debug level.
fn log_request(
    method: &actix_web::http::Method,
    path: &str,
    status: actix_web::http::StatusCode,
    took: Duration,
) {
    let duration_ms = took.as_secs_f64() * 1000.0;
    let status = status.as_u16();
    if matches!(path, "/healthz" | "/readyz" | "/metrics") {
        tracing::debug!(http.method = %method, http.path = path, http.status = status, duration_ms, "request handled");
    } else if status >= 500 {
        tracing::error!(http.method = %method, http.path = path, http.status = status, duration_ms, "request failed");
    } else {
        tracing::info!(http.method = %method, http.path = path, http.status = status, duration_ms, "request handled");
    }
}

/// The key manage tokens are derived with: `server.manage_key`, or the one this database keeps
/// (made by the first process that needed it).
async fn manage_key(db: &Db, settings: &Settings) -> anyhow::Result<ManageKey> {
    if !settings.server.manage_key.is_empty() {
        return Ok(ManageKey::new(settings.server.manage_key.clone()));
    }
    let key = db
        .write(|c| keys::get_or_create(c, "manage_key", ManageKey::generate_text))
        .await
        .context("cannot read or store the manage key")?;
    tracing::info!("server.manage_key is not set: manage tokens are derived with a key kept in the database; set it in production, so that a copy of the database cannot forge them");
    Ok(ManageKey::new(Secret::new(key)))
}

/// Clients of external services to use instead of building them from the settings.
#[derive(Default)]
pub struct Clients {
    /// For tenants with the kubernetes runtime.
    pub kubernetes: Option<kube::Client>,
}

pub struct Application {
    api_port: u16,
    sites_port: Option<u16>,
    servers: Vec<Server>,
    worker: Option<Worker>,
    job_context: Arc<JobContext>,
    reloader: Reloader,
    shutdown: CancellationToken,
}

impl Application {
    pub async fn build(settings: Settings, mode: Mode) -> anyhow::Result<Self> {
        Self::build_with(settings, mode, Clients::default()).await
    }

    /// Like [`Application::build`], with clients of external services given rather than built
    /// from the settings (tests point them at fakes).
    pub async fn build_with(
        mut settings: Settings,
        mode: Mode,
        clients: Clients,
    ) -> anyhow::Result<Self> {
        metrics_handle();
        let configured = settings.clone();
        let db = Db::connect(&settings.database)?;
        let applied = db.migrate().await?;
        if !applied.is_empty() {
            tracing::info!(migrations = ?applied, "database migrated");
        }
        let manage_key = Arc::new(manage_key(&db, &settings).await?);

        let api_listener = TcpListener::bind(settings.server.listen).with_context(|| {
            format!(
                "cannot listen on server.listen = {}",
                settings.server.listen
            )
        })?;
        settings.server.listen = api_listener.local_addr()?;
        let serves_sites = mode.api
            && settings
                .tenants
                .iter()
                .any(|t| t.runtime == RuntimeKind::Local);
        let sites_listener = if serves_sites {
            let listener = TcpListener::bind(settings.server.sites_listen).with_context(|| {
                format!(
                    "cannot listen on server.sites_listen = {}",
                    settings.server.sites_listen
                )
            })?;
            settings.server.sites_listen = listener.local_addr()?;
            Some(listener)
        } else {
            None
        };

        let settings = Arc::new(settings);
        let tenants = Arc::new(Tenants::build_with(&settings, clients.kubernetes)?);
        crate::services::rollouts::pin_unpinned(&db, &tenants).await?;
        let tenants = Live::new(tenants);
        let limits = Live::new(Arc::new(RateLimits::new(&settings.rate_limits)));
        let mailer = Live::new(Arc::new(Mailer::new(&settings.email)?));
        let wake = Arc::new(Notify::new());
        let policies = Arc::new(PolicyEngine::new(
            &settings.plugins,
            db.clone(),
            settings.tenants.len(),
        )?);
        policies.apply_configured(&settings).await?;
        let live_settings = Live::new(settings.clone());
        let reloader = Reloader::new(
            db.clone(),
            configured,
            live_settings.clone(),
            tenants.clone(),
            limits.clone(),
            mailer.clone(),
            policies.clone(),
            serves_sites,
            mode.api,
        );
        let job_context = Arc::new(JobContext {
            db: db.clone(),
            settings: live_settings.clone(),
            tenants: tenants.clone(),
            mailer: mailer.clone(),
            policies: policies.clone(),
            wake: wake.clone(),
            manage_key: manage_key.clone(),
            faults: crate::faults::Faults::from_env(),
        });
        let state = web::Data::new(AppState {
            db: db.clone(),
            settings: live_settings,
            tenants,
            limits,
            mailer,
            policies,
            events: EventWriter::start(
                db.clone(),
                writers_for(db.backend(), settings.database.max_connections),
            ),
            wake,
            manage_key,
        });

        let api_port = settings.server.listen.port();
        let mut servers = Vec::new();
        let api = HttpServer::new(move || {
            App::new()
                .wrap_fn(|req, srv| {
                    let request_id = req.extensions().get::<RequestId>().copied();
                    let cors = routes::cors::manage_origin(&req);
                    let started = std::time::Instant::now();
                    let (method, path) = (req.method().clone(), req.path().to_owned());
                    let response = srv.call(req);
                    async move {
                        let mut response = response.await?;
                        if let Some(id) = request_id {
                            if let Ok(value) = header::HeaderValue::from_str(&id.to_string()) {
                                response
                                    .headers_mut()
                                    .insert(header::HeaderName::from_static("x-request-id"), value);
                            }
                        }
                        if let Some(origin) = cors {
                            routes::cors::allow_manage(response.headers_mut(), origin);
                        }
                        // Every answer is what its Content-Type says, never sniffed as another.
                        response.headers_mut().insert(
                            header::X_CONTENT_TYPE_OPTIONS,
                            header::HeaderValue::from_static("nosniff"),
                        );
                        log_request(&method, &path, response.status(), started.elapsed());
                        Ok(response)
                    }
                })
                .wrap(TracingLogger::default())
                .app_data(state.clone())
                .configure(if mode.api {
                    routes::api
                } else {
                    routes::probes
                })
                .default_service(web::to(routes::not_found))
        })
        .on_connect(crate::routes::connections::on_connect(&settings.server))
        .listen(api_listener)?
        .disable_signals()
        .shutdown_timeout(30)
        .run();
        servers.push(api);
        tracing::info!(listen = %settings.server.listen, public_url = %settings.public_url(), "API listening");

        let sites_port = match sites_listener {
            Some(listener) => {
                let port = listener.local_addr()?.port();
                let db = web::Data::new(db.clone());
                let sites = HttpServer::new(move || {
                    App::new()
                        .wrap(TracingLogger::default())
                        .app_data(db.clone())
                        .default_service(web::to(serve_site))
                })
                .listen(listener)?
                .disable_signals()
                .shutdown_timeout(10)
                .run();
                servers.push(sites);
                tracing::info!(listen = %settings.server.sites_listen, "serving ready sites (local runtime)");
                Some(port)
            }
            None => None,
        };

        let worker = mode
            .worker
            .then(|| Worker::new(job_context.clone(), jobs::registry()));
        Ok(Self {
            api_port,
            sites_port,
            servers,
            worker,
            job_context,
            reloader,
            shutdown: CancellationToken::new(),
        })
    }

    pub fn api_port(&self) -> u16 {
        self.api_port
    }

    pub fn sites_port(&self) -> Option<u16> {
        self.sites_port
    }

    /// Cancelling this token starts a graceful shutdown.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Swaps the running configuration (`SIGHUP` under `berth serve`).
    pub fn reloader(&self) -> Reloader {
        self.reloader.clone()
    }

    /// What jobs run with; tests use it to drain the queue in step.
    pub fn job_context(&self) -> Arc<JobContext> {
        self.job_context.clone()
    }

    /// Runs until the shutdown token is cancelled (or a listener fails), then stops gracefully:
    /// in-flight requests finish, running jobs get their grace period, leases are released.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let handles: Vec<_> = self.servers.iter().map(Server::handle).collect();
        let mut server_tasks = tokio::task::JoinSet::new();
        for server in self.servers {
            server_tasks.spawn(server);
        }
        let worker = self
            .worker
            .map(|worker| tokio::spawn(worker.run(self.shutdown.clone())));
        let limits = self.reloader.limits.clone();
        let sweeper = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(60));
            loop {
                tick.tick().await;
                limits.get().sweep();
            }
        });

        let outcome = tokio::select! {
            _ = self.shutdown.cancelled() => Ok(()),
            Some(result) = server_tasks.join_next() => match result {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(anyhow::Error::from(e).context("a listener failed")),
                Err(e) => Err(anyhow::Error::from(e).context("a listener panicked")),
            },
        };
        tracing::info!("shutting down: finishing in-flight requests and jobs");
        self.shutdown.cancel();
        for handle in handles {
            handle.stop(true).await;
        }
        while server_tasks.join_next().await.is_some() {}
        if let Some(worker) = worker {
            let _ = worker.await;
        }
        sweeper.abort();
        tracing::info!("stopped");
        outcome
    }
}

/// `berth serve`: runs until SIGTERM or Ctrl-C, then shuts down gracefully; re-reads `source` on
/// SIGHUP.
pub async fn serve(settings: Settings, mode: Mode, source: Source) -> anyhow::Result<()> {
    let app = Application::build(settings, mode).await?;
    let shutdown = app.shutdown_token();
    tokio::spawn(async move {
        wait_for_signal().await;
        shutdown.cancel();
    });
    #[cfg(unix)]
    {
        let reloader = app.reloader();
        let mut hangups = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
            .context("cannot listen for SIGHUP")?;
        tokio::spawn(async move {
            while hangups.recv().await.is_some() {
                tracing::info!(config = ?source.path, "received SIGHUP: reloading the configuration");
                reloader.reload_from(&source).await;
            }
        });
    }
    app.run_until_stopped().await
}

/// SIGTERM (from an orchestrator) or Ctrl-C.
async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("can listen for SIGTERM");
        tokio::select! {
            _ = ctrl_c => tracing::info!("received Ctrl-C"),
            _ = term.recv() => tracing::info!("received SIGTERM"),
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
