//! The one Backforge binary: `serve` runs everything in one process; the other subcommands run one
//! part each, migrate, replay the read models or act as an operator.

mod consumers;
mod generate;
mod http;

/// mimalloc instead of glibc's allocator: the hot paths (event decoding, read-model documents,
/// HTTP bodies) make many short-lived small allocations, where glibc's malloc and its free-list
/// consolidation took about two thirds of replay's CPU in a profile (docs/benchmarks.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::sync::Arc;

use actix_web::{App, HttpServer, web};
use anyhow::Context;
use clap::{Parser, Subcommand};
use event_store::PgEventStore;
use projector::Projector;
use projector::supervise::{Consumers, supervise};
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
    /// The projector alone (read models and the NATS relays); serves /health and /metrics when BACKFORGE_ADDR is set.
    Projector,
    /// The generation worker alone; serves /health and /metrics when BACKFORGE_ADDR is set.
    Worker,
    /// Integration events.
    Events {
        #[command(subcommand)]
        action: EventsAction,
    },
    /// Create the database if missing and run every migration, then exit.
    Migrate,
    /// Rebuild the read models from the whole event history into fresh tables and swap them in.
    Replay {
        /// Build the read models in this database instead (it is created if missing).
        #[arg(long)]
        into: Option<String>,
    },
    /// Internal: the generator's child process, started by the worker under a memory limit. Reads
    /// one generation job (JSON) on stdin and writes the ZIP to stdout.
    #[command(hide = true)]
    Generate,
    /// Operator actions.
    Admin {
        #[command(subcommand)]
        action: AdminAction,
    },
    /// Feed consumers: list, park and unpark events a consumer must skip.
    Consumers {
        #[command(subcommand)]
        action: consumers::ConsumersAction,
    },
}

#[derive(Subcommand)]
enum EventsAction {
    /// Print live integration events (CloudEvents JSON, one per line).
    Tail {
        /// A NATS subject filter; default: every event of this installation (`<prefix>.events.>`).
        #[arg(long)]
        subject: Option<String>,
        /// Follow one project: its own events and those of its generations
        /// (`<prefix>.events.<project id>.>`).
        #[arg(long, conflicts_with = "subject")]
        project: Option<uuid::Uuid>,
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
    // Before settings and telemetry: the child needs neither, and its stdout is the archive.
    if let Action::Generate = cli.command {
        std::process::exit(generate::run());
    }
    // A `.env` file in the working directory fills in variables the environment does not set.
    let dotenv = dotenvy::dotenv();
    let settings = match Settings::from_env() {
        Ok(s) => s,
        Err(error) => {
            eprintln!("backforge: invalid configuration: {error:#}");
            std::process::exit(2);
        }
    };
    telemetry::init(settings.environment);
    match dotenv {
        Ok(path) => tracing::info!(path = %path.display(), "read settings from .env"),
        Err(error) if error.not_found() => {}
        Err(error) => tracing::warn!(%error, "could not read .env"),
    }
    settings.log_warnings();
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
    read_model::ensure(&settings.database_url).await?;
    worker::artifacts::migrate(&settings.database_url).await?;
    Ok(())
}

async fn open_store(settings: &Settings) -> anyhow::Result<PgEventStore> {
    migrate(settings).await?;
    let pool = event_store::setup::pool(&settings.database_url, settings.pool_size)?;
    let store = PgEventStore::new(pool, Arc::new(domain::Upcasters::backforge()))
        .with_max_event_bytes(settings.max_event_bytes);
    store.listen_for_commits(&settings.database_url);
    Ok(store)
}

async fn run(command: Action, settings: Settings) -> anyhow::Result<()> {
    match command {
        Action::Serve => serve(settings, true, true, true).await,
        Action::CommandApi => serve(settings, true, false, false).await,
        Action::QueryApi => serve(settings, false, true, false).await,
        Action::Projector => run_background(settings, true, false).await,
        Action::Worker => run_background(settings, false, true).await,
        Action::Events {
            action: EventsAction::Tail { subject, project },
        } => tail_events(settings, subject, project).await,
        // Handled in `main` before settings load; here only for completeness.
        Action::Generate => std::process::exit(generate::run()),
        Action::Migrate => {
            migrate(&settings).await?;
            println!("migrations applied");
            Ok(())
        }
        Action::Replay { into } => replay(settings, into).await,
        Action::Consumers { action } => consumers::run(settings, action).await,
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

/// The background parts of a process: the projector and its NATS relays, and/or the worker.
struct Background {
    tasks: Vec<tokio::task::JoinHandle<()>>,
    checkpoints: Option<watch::Receiver<event_store::Position>>,
    nats: Option<async_nats::Client>,
    /// The health of every supervised consumer task, for `/health/ready`.
    consumers: Option<Consumers>,
}

async fn start_background(
    settings: &Settings,
    store: &PgEventStore,
    metrics: &Metrics,
    stop: &watch::Receiver<bool>,
    project: bool,
    work: bool,
) -> anyhow::Result<Background> {
    let mut background = Background {
        tasks: Vec::new(),
        checkpoints: None,
        nats: None,
        consumers: None,
    };
    if !project && !work {
        return Ok(background);
    }
    // Connects in the background: a NATS outage delays relays and jobs, never writes or reads.
    let nats = messaging::connect(&settings.nats_url).await?;
    let names = messaging::Names::new(&settings.nats_prefix);
    // Every consumer task is supervised: restarted with backoff if it dies, and reported.
    let consumers = Consumers::new(metrics.clone());
    background.consumers = Some(consumers.clone());
    if project {
        let projector = Arc::new(Projector::new(
            store.clone(),
            store.pool().clone(),
            settings.database_url.clone(),
            metrics.clone(),
            consumers.clone(),
        ));
        background.checkpoints = Some(projector.checkpoints());
        let projector_stop = stop.clone();
        background.tasks.push(supervise(
            read_model::PROJECTION,
            consumers.clone(),
            stop.clone(),
            move || {
                let (projector, stop) = (projector.clone(), projector_stop.clone());
                async move { projector.run(stop).await }
            },
        ));
        for kind in [
            projector::relay::RelayKind::Events,
            projector::relay::RelayKind::Jobs,
        ] {
            let relay = Arc::new(
                projector::relay::Relay::new(
                    kind,
                    store.clone(),
                    settings.database_url.clone(),
                    nats.clone(),
                    names.clone(),
                    metrics.clone(),
                )
                .with_consumers(consumers.clone())
                .with_max_event_bytes(settings.max_event_bytes),
            );
            let relay_stop = stop.clone();
            background.tasks.push(supervise(
                kind.name(),
                consumers.clone(),
                stop.clone(),
                move || {
                    let (relay, stop) = (relay.clone(), relay_stop.clone());
                    async move { relay.run(stop).await }
                },
            ));
        }
    }
    if work {
        let worker = Arc::new(worker::Worker {
            store: store.clone(),
            nats: nats.clone(),
            names: names.clone(),
            settings: worker::WorkerSettings::from_env()?,
            metrics: metrics.clone(),
        });
        let sweeper = Arc::new(worker::sweep::Sweeper::new(
            store.clone(),
            consumers.clone(),
            &worker.settings,
            settings.generation_queue_timeout,
        ));
        let worker_stop = stop.clone();
        background.tasks.push(supervise(
            "generation_worker",
            consumers.clone(),
            stop.clone(),
            move || {
                let (worker, stop) = (worker.clone(), worker_stop.clone());
                // On the worker's own multi-threaded runtime (issue 10, H2).
                async move { worker.run_isolated(stop).await }
            },
        ));
        let sweeper_stop = stop.clone();
        background.tasks.push(supervise(
            worker::sweep::SWEEPER,
            consumers.clone(),
            stop.clone(),
            move || {
                let (sweeper, stop) = (sweeper.clone(), sweeper_stop.clone());
                async move { sweeper.run(stop).await }
            },
        ));
    }
    background.nats = Some(nats);
    Ok(background)
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
    // `serve` runs everything, the worker included; the split API processes run only their API.
    let background =
        start_background(&settings, &store, &metrics, &stop_rx, project, project).await?;

    let command_state = if command {
        Some(web::Data::new(command_api::CommandState::new(
            settings.clone(),
            store.clone(),
        )?))
    } else {
        None
    };
    if command {
        // Idempotency records are kept 24 h; past that they only take space.
        let pool = pool.clone();
        let ttl = settings.idempotency_ttl;
        let mut stop = stop_rx.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(std::time::Duration::from_secs(3600)) => {}
                    _ = stop.changed() => return,
                }
                match command_api::idempotency::purge_expired(&pool, ttl).await {
                    Ok(n) => tracing::info!(purged = n, "expired idempotency keys removed"),
                    Err(error) => tracing::warn!(?error, "could not purge idempotency keys"),
                }
            }
        });
    }
    let query_state = query.then(|| {
        web::Data::new(QueryState {
            store: store.clone(),
            pool: pool.clone(),
            settings: settings.clone(),
            checkpoints: Checkpoints {
                pool: pool.clone(),
                wake: background.checkpoints.clone(),
            },
        })
    });
    // The query API alone still needs the token verifier the command state would register.
    let verifier = web::Data::new(runtime::auth::Verifier {
        keys: runtime::JwtKeys::new(&settings),
        lookup: Arc::new(runtime::auth::PgSecurityLookup::new(pool.clone())),
    });
    let openapi = web::Data::new(http::openapi(command, query));
    let routes = web::Data::new(http::api_routes(&openapi));
    let readiness = web::Data::new(http::Readiness {
        postgres: pool.clone(),
        nats: background.nats.clone(),
        consumers: background.consumers.clone(),
        serves_api: true,
    });
    let metrics_data = web::Data::new(metrics.clone());
    let metrics_access = web::Data::new(http::MetricsAccess::main_port(&settings));
    let metrics_server = http::metrics_listener(&settings, &metrics)?;
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
            .app_data(routes.clone())
            .app_data(readiness.clone())
            .app_data(metrics_data.clone())
            .app_data(metrics_access.clone())
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
    if let Some(handle) = metrics_server {
        handle.stop(true).await;
    }
    for task in background.tasks {
        let _ = task.await;
    }
    result.context("the HTTP server failed")
}

async fn run_background(settings: Settings, project: bool, work: bool) -> anyhow::Result<()> {
    let store = open_store(&settings).await?;
    let metrics = Metrics::new();
    let (stop_tx, stop_rx) = watch::channel(false);
    let background = start_background(&settings, &store, &metrics, &stop_rx, project, work).await?;
    let metrics_server = http::metrics_listener(&settings, &metrics)?;
    let server = match &settings.addr {
        Some(addr) => {
            let readiness = web::Data::new(http::Readiness {
                postgres: store.pool().clone(),
                nats: background.nats.clone(),
                consumers: background.consumers.clone(),
                serves_api: false,
            });
            let metrics_data = web::Data::new(metrics.clone());
            let metrics_access = web::Data::new(http::MetricsAccess::main_port(&settings));
            let routes = web::Data::new(http::shell_routes());
            let server = HttpServer::new(move || {
                App::new()
                    .app_data(readiness.clone())
                    .app_data(routes.clone())
                    .app_data(metrics_data.clone())
                    .app_data(metrics_access.clone())
                    .route("/health", web::get().to(http::health))
                    .route("/health/ready", web::get().to(http::ready))
                    .route("/metrics", web::get().to(http::metrics))
                    .default_service(web::to(http::unknown_route))
            })
            .workers(1)
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
    tracing::info!("stopping");
    let _ = stop_tx.send(true);
    for task in background.tasks {
        let _ = task.await;
    }
    if let Some(handle) = server {
        handle.stop(true).await;
    }
    if let Some(handle) = metrics_server {
        handle.stop(true).await;
    }
    Ok(())
}

async fn tail_events(
    settings: Settings,
    subject: Option<String>,
    project: Option<uuid::Uuid>,
) -> anyhow::Result<()> {
    use futures::StreamExt;
    let client = async_nats::ConnectOptions::new()
        .connection_timeout(std::time::Duration::from_secs(3))
        .connect(&settings.nats_url)
        .await
        .with_context(|| format!("cannot reach NATS at {}", settings.nats_url))?;
    let names = messaging::Names::new(&settings.nats_prefix);
    let subject = match (subject, project) {
        (Some(subject), _) => subject,
        (None, Some(project)) => names.project_events(project),
        (None, None) => names.all_events(),
    };
    let mut subscription = client.subscribe(subject.clone()).await?;
    eprintln!("listening on {subject}; Ctrl-C to stop");
    let stop = shutdown_signal();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            message = subscription.next() => {
                let Some(message) = message else { return Ok(()) };
                println!("{}", String::from_utf8_lossy(&message.payload));
            }
            _ = &mut stop => return Ok(()),
        }
    }
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
            read_model::ensure(url).await?;
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
