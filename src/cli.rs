//! Layer 4, the command line: `berth [--config FILE] <command>`. Commands that need no server
//! (`config check`, `plugin`, `render`, `migrate`) run here; `serve` is handed in by `main`, since
//! the application it starts sits above this layer. A new command goes in [`Command`], with its
//! own module when it is more than a few lines (like [`plugin`]).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub mod plugin;

pub use plugin::PluginCommand;

use std::future::Future;

use crate::configuration::{Mode, Settings, Source};

#[derive(Debug, Parser)]
#[command(
    name = "berth",
    version,
    about = "Turns a signup or a Stripe payment into a live, isolated customer site."
)]
pub struct Cli {
    /// The TOML configuration file. Without one, berth runs the embedded default.
    #[arg(long, global = true, env = "BERTH_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the API and the job worker (migrates the database first).
    Serve {
        /// Serve the API only; another process runs the jobs.
        #[arg(long, conflicts_with = "worker_only")]
        no_worker: bool,
        /// Run jobs only (plus /healthz, /readyz and /metrics for probes).
        #[arg(long)]
        worker_only: bool,
    },
    /// Apply pending database migrations and exit.
    Migrate,
    /// Inspect the configuration.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Print the Kubernetes objects of a site as YAML, exactly as the kubernetes runtime
    /// applies them, without a cluster.
    Render {
        /// The tenant whose workload, plans and settings to use.
        #[arg(long)]
        tenant: String,
        /// The site's name (a DNS label).
        #[arg(long)]
        name: String,
        /// The site's HTML (static workloads); without it a placeholder page.
        #[arg(long, value_name = "FILE")]
        html: Option<PathBuf>,
        /// A plan name or key from the tenant's plans; without it the default plan.
        #[arg(long)]
        plan: Option<String>,
    },
    /// Check or try a WebAssembly policy plugin without a server.
    Plugin {
        #[command(subcommand)]
        command: PluginCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print the effective configuration (file + environment), secrets redacted.
    Check,
}

/// Runs the command `cli` names; `serve` is what `berth serve` runs (the application, which sits
/// above the command line and is handed in by `main`).
pub fn run<F, Fut>(cli: Cli, serve: F) -> ExitCode
where
    F: FnOnce(Settings, Mode, Source) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    // The embedded default (no file) runs the example policies built into the binary.
    let source = Source {
        path: cli.config.clone(),
    };
    let settings = match source.load() {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("error: invalid configuration: {error}");
            return ExitCode::from(2);
        }
    };
    if let Command::Config {
        command: ConfigCommand::Check,
    } = cli.command
    {
        if let Err(error) = crate::services::tenants::Tenants::build(&settings) {
            let error = settings.redact(&format!("{error:#}"));
            eprintln!("error: invalid configuration: {error}");
            return ExitCode::from(2);
        }
        print!("{}", settings.redacted_toml());
        eprintln!("configuration is valid");
        return ExitCode::SUCCESS;
    }
    if let Command::Plugin { command } = &cli.command {
        return plugin::run(&settings, command);
    }
    if let Command::Render {
        tenant,
        name,
        html,
        plan,
    } = &cli.command
    {
        return render(&settings, tenant, name, html.as_deref(), plan.as_deref());
    }
    crate::adapters::telemetry::init(&settings.log);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let redactor = settings.clone();
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Serve {
                no_worker,
                worker_only,
            } => {
                let mode = Mode {
                    api: !worker_only,
                    worker: !no_worker,
                };
                serve(settings, mode, source).await
            }
            Command::Migrate => migrate(settings).await,
            Command::Config { .. } | Command::Plugin { .. } | Command::Render { .. } => {
                unreachable!("handled above")
            }
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            let error = redactor.redact(&format!("{error:#}"));
            tracing::error!(error, "berth stopped with an error");
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

/// The page a rendered static site shows when no `--html` is given.
const PLACEHOLDER_HTML: &str = "<!doctype html>\n<title>berth</title>\n<h1>Placeholder page</h1>\n";

/// `berth render`: exit 0 with the YAML on stdout, 2 for a bad argument, 1 otherwise.
fn render(
    settings: &Settings,
    tenant: &str,
    name: &str,
    html: Option<&std::path::Path>,
    plan: Option<&str>,
) -> ExitCode {
    let Some(tenant) = settings.tenants.iter().find(|t| t.name == tenant) else {
        eprintln!("error: no tenant named {tenant} in the configuration");
        return ExitCode::from(2);
    };
    let name = match crate::domain::SiteName::parse(name) {
        Ok(name) => name,
        Err(error) => {
            eprintln!("error: --name {name:?} {error}");
            return ExitCode::from(2);
        }
    };
    let html = match html {
        None => PLACEHOLDER_HTML.to_owned(),
        Some(path) => match std::fs::read_to_string(path) {
            Ok(html) => html,
            Err(error) => {
                eprintln!("error: cannot read --html {}: {error}", path.display());
                return ExitCode::from(2);
            }
        },
    };
    if tenant.runtime != crate::configuration::RuntimeKind::Kubernetes {
        eprintln!(
            "note: tenant {} uses the {} runtime; these are the objects it would get on kubernetes",
            tenant.name,
            format!("{:?}", tenant.runtime).to_lowercase()
        );
    }
    let site = crate::adapters::runtime::SiteSpec {
        id: String::new(),
        tenant: tenant.name.clone(),
        name: name.to_string(),
        hostname: format!("{name}.{}", tenant.base_domain),
        html: Some(html),
        plan: plan.map(str::to_owned),
        workload: None,
    };
    match crate::adapters::runtime::kubernetes::render(&settings.kubernetes, tenant, &site) {
        Ok(yaml) => {
            print!("{yaml}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn migrate(settings: Settings) -> anyhow::Result<()> {
    let db = crate::adapters::db::Db::connect(&settings.database)?;
    let applied = db.migrate().await?;
    if applied.is_empty() {
        println!("database is up to date");
    } else {
        for migration in applied {
            println!("applied {migration}");
        }
    }
    Ok(())
}
