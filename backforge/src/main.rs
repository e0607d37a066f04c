//! The one Backforge binary: `serve` runs everything in one process; the other subcommands run one
//! part each, migrate, replay the read models or act as an operator.

mod http;

use std::sync::Arc;

use actix_web::{App, HttpServer, web};
use anyhow::Context;
use clap::{Parser, Subcommand};
use event_store::PgEventStore;
use projector::Projector;
use query_api::{Checkpoints, QueryState};
use runtime::metrics::Metrics;
use runtime::{Settings, telemetry};
use tokio::sync::watch;

#[derive(Parser)]
#[command(
    name = "backforge",
    version,
    about = "Backforge: describe a backend, get one that runs"
)]
struct Cli {
    #[command(subcommand)]
    command: Action,
}

#[derive(Subcommand)]
enum Action {
    /// Command API, query API and projector in one process on one port (BACKFORGE_ADDR, default 127.0.0.1:8080).
    Serve,
    /// The command API alone (default 127.0.0.1:8080).
    CommandApi,
    /// The query API alone (default 127.0.0.1:8081).
    QueryApi,
    /// The read-model projector alone; serves /health and /metrics when BACKFORGE_ADDR is set.
    Projector,
    /// Create the database if missing and run every migration, then exit.
    Migrate,
    /// Rebuild the read models from the whole event history into fresh tables and swap them in.
    Replay {
        /// Build the read models in this database instead (it is created if missing).
        #[arg(long)]
        into: Option<String>,
    },
    /// Operator actions.
    Admin {
        #[command(subcommand)]
        action: AdminAction,
    },
}

#[derive(Subcommand)]
enum AdminAction {
    /// Make the registered user with this e-mail address a global admin.
    Grant { email: String },
}

#[actix_web::main]
async fn main() {
    let cli = Cli::parse();
    let settings = match Settings::from_env() {
        Ok(s) => s,
        Err(error) => {
            eprintln!("backforge: invalid configuration: {error:#}");
            std::process::exit(2);
        }
    };
    telemetry::init(settings.environment);
    if let Err(error) = run(cli.command, settings).await {
        tracing::error!(error = ?error, "backforge stopped with an error");
        eprintln!("backforge: {error:#}");
        std::process::exit(1);
    }
}

/// Creates the database and every table set, in dependency order.
async fn migrate(settings: &Settings) -> anyhow::Result<()> {
    event_store::setup::ensure_database(&settings.database_url).await?;
    event_store::setup::migrate(&settings.database_url).await?;
    command_api::migrate(&settings.database_url).await?;
    projector::schema::ensure(&settings.database_url).await?;
    Ok(())
}

async fn open_store(settings: &Settings) -> anyhow::Result<PgEventStore> {
    migrate(settings).await?;
    let pool = event_store::setup::pool(&settings.database_url, settings.pool_size)?;
    let store = PgEventStore::new(pool, Arc::new(domain::Upcasters::backforge()));
    store.listen_for_commits(&settings.database_url);
    Ok(store)
}

async fn run(command: Action, settings: Settings) -> anyhow::Result<()> {
    match command {
        Action::Serve => serve(settings, true, true, true).await,
        Action::CommandApi => serve(settings, true, false, false).await,
        Action::QueryApi => serve(settings, false, true, false).await,
        Action::Projector => run_projector(settings).await,
        Action::Migrate => {
            migrate(&settings).await?;
            println!("migrations applied");
            Ok(())
        }
        Action::Replay { into } => replay(settings, into).await,
        Action::Admin {
            action: AdminAction::Grant { email },
        } => {
            let store = open_store(&settings).await?;
            if command_api::admin::grant_admin(&store, &email).await? {
                println!("{email} is now an admin");
            } else {
                println!("{email} was an admin already");
            }
            Ok(())
        }
    }
}

async fn serve(
    settings: Settings,
    command: bool,
    query: bool,
    project: bool,
) -> anyhow::Result<()> {
    let default_addr = if !command && query {
        "127.0.0.1:8081"
    } else {
        "127.0.0.1:8080"
    };
    let addr = settings.addr_or(default_addr);
    let store = open_store(&settings).await?;
    let pool = store.pool().clone();
    let settings = Arc::new(settings);
    let metrics = Metrics::new();
    metrics.describe(
        "backforge_http_requests_total",
        "HTTP requests by method, route and status",
    );
    metrics.describe(
        "backforge_http_request_duration_seconds",
        "HTTP request latency",
    );

    let (stop_tx, stop_rx) = watch::channel(false);
    let projector = Arc::new(Projector::new(
        store.clone(),
        pool.clone(),
        settings.database_url.clone(),
        metrics.clone(),
    ));
    let projector_task = project.then(|| {
        let projector = projector.clone();
        let stop = stop_rx.clone();
        tokio::spawn(async move { projector.run(stop).await })
    });

    let command_state = if command {
        Some(web::Data::new(command_api::CommandState::new(
            settings.clone(),
            store.clone(),
        )?))
    } else {
        None
    };
    let query_state = query.then(|| {
        web::Data::new(QueryState {
            store: store.clone(),
            pool: pool.clone(),
            settings: settings.clone(),
            checkpoints: Checkpoints {
                pool: pool.clone(),
                wake: project.then(|| projector.checkpoints()),
            },
        })
    });
    // The query API alone still needs the token verifier the command state would register.
    let verifier = web::Data::new(runtime::auth::Verifier {
        keys: runtime::JwtKeys::new(&settings),
        lookup: Arc::new(runtime::auth::PgSecurityLookup::new(pool.clone())),
    });
    let openapi = web::Data::new(http::openapi(command, query));
    let readiness = web::Data::new(http::Readiness {
        postgres: pool.clone(),
    });
    let metrics_data = web::Data::new(metrics.clone());
    let body_limit = runtime::json::BodyLimit(settings.body_limit_bytes);

    let server = HttpServer::new(move || {
        let mut api = web::scope("/api/v1")
            .app_data(verifier.clone())
            .app_data(body_limit)
            .route(
                "/openapi.json",
                web::get().to(|doc: web::Data<utoipa::openapi::OpenApi>| async move {
                    actix_web::HttpResponse::Ok().json(doc.get_ref())
                }),
            );
        if let Some(state) = &command_state {
            api = api.configure(command_api::configure(state.clone()));
        }
        if let Some(state) = &query_state {
            api = api.configure(query_api::configure(state.clone()));
        }
        App::new()
            .app_data(openapi.clone())
            .app_data(readiness.clone())
            .app_data(metrics_data.clone())
            .wrap(actix_web::middleware::from_fn(http::record))
            .wrap(actix_web::middleware::NormalizePath::trim())
            .route("/health", web::get().to(http::health))
            .route("/health/ready", web::get().to(http::ready))
            .route("/metrics", web::get().to(http::metrics))
            .service(api)
            .default_service(web::to(http::unknown_route))
    })
    .bind(&addr)
    .with_context(|| format!("cannot listen on {addr}"))?
    .shutdown_timeout(10)
    .run();
    tracing::info!(%addr, command, query, projector = project, "backforge listening");
    let result = server.await;
    let _ = stop_tx.send(true);
    if let Some(task) = projector_task {
        let _ = task.await;
    }
    result.context("the HTTP server failed")
}

async fn run_projector(settings: Settings) -> anyhow::Result<()> {
    let store = open_store(&settings).await?;
    let metrics = Metrics::new();
    let projector = Arc::new(Projector::new(
        store.clone(),
        store.pool().clone(),
        settings.database_url.clone(),
        metrics.clone(),
    ));
    let (stop_tx, stop_rx) = watch::channel(false);
    let task = {
        let projector = projector.clone();
        tokio::spawn(async move { projector.run(stop_rx).await })
    };
    let server = match &settings.addr {
        Some(addr) => {
            let readiness = web::Data::new(http::Readiness {
                postgres: store.pool().clone(),
            });
            let metrics_data = web::Data::new(metrics.clone());
            let server = HttpServer::new(move || {
                App::new()
                    .app_data(readiness.clone())
                    .app_data(metrics_data.clone())
                    .route("/health", web::get().to(http::health))
                    .route("/health/ready", web::get().to(http::ready))
                    .route("/metrics", web::get().to(http::metrics))
                    .default_service(web::to(http::unknown_route))
            })
            .bind(addr)
            .with_context(|| format!("cannot listen on {addr}"))?
            .disable_signals()
            .run();
            let handle = server.handle();
            tokio::spawn(server);
            Some(handle)
        }
        None => None,
    };
    shutdown_signal().await;
    tracing::info!("stopping the projector");
    let _ = stop_tx.send(true);
    let _ = task.await;
    if let Some(handle) = server {
        handle.stop(true).await;
    }
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

async fn replay(settings: Settings, into: Option<String>) -> anyhow::Result<()> {
    let store = open_store(&settings).await?;
    let target = match &into {
        Some(url) => {
            event_store::setup::ensure_database(url).await?;
            projector::schema::ensure(url).await?;
            event_store::setup::pool(url, 4)?
        }
        None => store.pool().clone(),
    };
    let report =
        projector::replay::replay(&store, &target, projector::replay::print_progress).await?;
    eprintln!();
    println!(
        "replayed {} events in {:.2} s ({:.0} events/s); read models swapped in",
        report.events,
        report.seconds,
        report.events_per_second()
    );
    Ok(())
}
